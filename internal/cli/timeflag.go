package cli

import (
	"strconv"
	"strings"
	"time"
)

// timeFormatsHelp describes what parseTime accepts, for flag help.
const timeFormatsHelp = "RFC 3339 (2026-11-25T14:03:12Z, 2026-11-25T14:03:12.250+01:00), local time (\"2026-11-25 14:03:12\"), unix seconds (1795520462, 1795520462.25) or relative to now (now, now-5m, now-1h30m)"

// pointFormatsHelp is timeFormatsHelp for a point-in-time flag, which also
// takes "latest".
const pointFormatsHelp = timeFormatsHelp + ", or latest (the newest durable point)"

// localLayouts are the local date-and-time forms parseTime accepts.
var localLayouts = []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04:05.000", "2006-01-02 15:04", "2006-01-02"}

// parseTime reads a time flag, the same forms in every verb: RFC 3339 with
// an optional fraction of a second and a zone (Z or ±hh:mm); a local date
// and time without zone; unix seconds with an optional fraction
// (millisecond precision); or "now" with an optional signed Go duration
// ("now-5m", "now-1h30m"). The error names the flag and the forms.
func parseTime(flag, s string) (time.Time, error) {
	return parseTimeAt(flag, s, time.Now())
}

func parseTimeAt(flag, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	try := "--" + flag + " 2026-11-25T14:03:12Z"
	if s == "" {
		return time.Time{}, usagef(try, "--%s is empty: give %s", flag, timeFormatsHelp)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "now"); ok {
		if rest == "" {
			return now, nil
		}
		if rest[0] == '-' || rest[0] == '+' {
			if d, err := time.ParseDuration(rest[1:]); err == nil && d >= 0 {
				if rest[0] == '-' {
					d = -d
				}
				return now.Add(d), nil
			}
		}
		return time.Time{}, usagef("--"+flag+" now-5m", "--%s %q: after \"now\" give a signed duration like -5m, -1h30m or -90s", flag, s)
	}
	if isUnixNumber(s) {
		sec, frac, _ := strings.Cut(s, ".")
		n, err := strconv.ParseInt(sec, 10, 64)
		if err == nil && n >= 0 && n < 1<<40 {
			var ms int64
			if frac != "" {
				frac = (frac + "000")[:3]
				ms, _ = strconv.ParseInt(frac, 10, 64)
			}
			return time.UnixMilli(n*1000 + ms).UTC(), nil
		}
	}
	return time.Time{}, usagef(try, "--%s %q is not a time: give %s", flag, s, timeFormatsHelp)
}

// isLatest reports whether a point-in-time flag asks for the newest
// durable point.
func isLatest(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "latest") }

func isUnixNumber(s string) bool {
	dot := false
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return false
		}
	}
	return true
}
