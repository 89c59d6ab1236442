package cli

import (
	"strconv"
	"strings"
	"time"
)

// timeFormatsHelp describes what parseTime accepts, for flag help.
const timeFormatsHelp = "RFC 3339 (2026-11-25T14:03:12Z, 2026-11-25T14:03:12.250+01:00) or unix seconds (1795520462, 1795520462.25)"

// parseTime reads a time flag: RFC 3339 with an optional fraction of a
// second and a zone (Z or ±hh:mm), or unix seconds with an optional
// fraction (millisecond precision). The error names the flag and the forms.
func parseTime(flag, s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, usagef("--"+flag+" 2026-11-25T14:03:12Z", "--%s is empty: give %s", flag, timeFormatsHelp)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
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
	return time.Time{}, usagef("--"+flag+" 2026-11-25T14:03:12Z", "--%s %q is not a time: give %s", flag, s, timeFormatsHelp)
}

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
