package catalog

import (
	"bytes"
	"strconv"
	"strings"
)

// Time markers (see docs/format.md, "Time markers"). While shipping, redback
// publishes the unix ms on TickChannel to the source every ~100 ms; the
// PUBLISH comes back through the replication stream in order with the
// writes (and is re-sent with them after PSYNC +CONTINUE), so the commands
// between two markers ran between their times. A segment stores a marker as
// the annotation line "#TICK:<unix ms>", never as the PUBLISH itself: it is
// not replayed, and Redis and redis-check-aof skip '#' lines.
const (
	// TickChannel is the channel of the markers: PUBLISH TickChannel MS,
	// or SPUBLISH in a cluster (where the channel may carry a hash tag,
	// TickChannel + "{tag}", to stay in the node's own slots).
	TickChannel = "__redback__:tick"
	// MarkerPrefix is the prefix of every channel redback publishes on: a
	// PUBLISH or SPUBLISH on it is never replayed into a target.
	MarkerPrefix = "__redback__:"
	tickPrefix   = "#TICK:"
)

// AppendTick appends the annotation line of a marker at ms.
func AppendTick(b []byte, ms int64) []byte {
	b = append(b, tickPrefix...)
	b = strconv.AppendInt(b, ms, 10)
	return append(b, '\r', '\n')
}

// ParseTick reads a marker annotation line ("#TICK:<ms>", with or without
// its CRLF); ok is false for any other line.
func ParseTick(line []byte) (ms int64, ok bool) {
	if !bytes.HasPrefix(line, []byte(tickPrefix)) {
		return 0, false
	}
	s := bytes.TrimSuffix(line[len(tickPrefix):], []byte("\r\n"))
	ms, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil || ms <= 0 {
		return 0, false
	}
	return ms, true
}

// IsMarkerPublish reports whether a command is a PUBLISH or SPUBLISH on a
// redback marker channel (MarkerPrefix): it carries no data and is never
// replayed.
func IsMarkerPublish(args [][]byte) bool {
	if len(args) != 3 || len(args[1]) < len(MarkerPrefix) || string(args[1][:len(MarkerPrefix)]) != MarkerPrefix {
		return false
	}
	n := string(args[0])
	return strings.EqualFold(n, "PUBLISH") || strings.EqualFold(n, "SPUBLISH")
}

// Tick is a time marker as published: Ms is the sender's clock when it was
// sent; After, when not 0, is the Ms of the marker sent just before it on
// the same connection, whose reply had come back before Ms was read. That
// earlier PUBLISH had therefore run by Ms: the commands before it in the
// stream ran at or before Ms (a marker's own Ms is only a lower bound of
// when its PUBLISH ran, so it bounds what follows it, never what precedes
// it).
type Tick struct {
	Ms, After int64
}

// Message is the PUBLISH message of the marker: "<ms>" or "<ms>:<after>".
func (t Tick) Message() string {
	if t.After <= 0 {
		return strconv.FormatInt(t.Ms, 10)
	}
	return strconv.FormatInt(t.Ms, 10) + ":" + strconv.FormatInt(t.After, 10)
}

// TickOf returns the marker of a command (PUBLISH or SPUBLISH on
// TickChannel, with or without a hash tag, of "<ms>" or "<ms>:<after>"); ok
// is false for any other command.
func TickOf(args [][]byte) (t Tick, ok bool) {
	if !IsMarkerPublish(args) {
		return Tick{}, false
	}
	ch := string(args[1])
	if ch != TickChannel && !(strings.HasPrefix(ch, TickChannel+"{") && strings.HasSuffix(ch, "}")) {
		return Tick{}, false
	}
	msg, after, two := strings.Cut(string(args[2]), ":")
	ms, err := strconv.ParseInt(msg, 10, 64)
	if err != nil || ms <= 0 {
		return Tick{}, false
	}
	t.Ms = ms
	if two {
		a, err := strconv.ParseInt(after, 10, 64)
		if err != nil || a <= 0 || a >= ms {
			return Tick{}, false
		}
		t.After = a
	}
	return t, true
}
