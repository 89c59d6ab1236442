package ops

import (
	"context"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"
	"time"

	"redback/internal/pitr"
	"redback/internal/storage"
)

// Marked commands: each is an event of its own.
var markedCommands = map[string]bool{"FLUSHALL": true, "FLUSHDB": true, "SWAPDB": true}

// DefaultBurstKeys is how many keys DEL/UNLINK commands must delete, each
// within BurstGap of the previous one, to be marked as a burst.
const DefaultBurstKeys = 1000

// BurstGap ends a DEL/UNLINK burst: a pause longer than this.
const BurstGap = time.Second

// Event is a marked command of the shipped log: FLUSHALL, FLUSHDB, SWAPDB,
// or the first DEL/UNLINK of a burst that deleted many keys.
type Event struct {
	Time       time.Time `json:"time"`
	Generation string    `json:"generation"`
	// Offset is the replication offset before the command.
	Offset  int64  `json:"offset"`
	DB      int    `json:"db"`
	Command string `json:"command"`
	// Text is the command for display (arguments cut).
	Text string `json:"text"`
	// Commands and Keys count a burst's DEL/UNLINK commands and the keys
	// they name (1 and the arguments for a single command).
	Commands int64 `json:"commands"`
	Keys     int64 `json:"keys"`
	// Last is the time of a burst's last command.
	Last time.Time `json:"last,omitzero"`
	// CommandsBefore counts the logged commands from the generation's base
	// snapshot to the event: what a restore to just before it replays.
	CommandsBefore int64 `json:"commands_before"`
	// Point is the restore flags that stop just before the event; with
	// --conflict skip, so that restoring into the damaged server keeps what
	// was written after the event (and the functions a FLUSHALL leaves).
	Point string `json:"point"`
}

// EventScanner finds the marked commands of repositories' logs and keeps
// what it found, so each scan reads only the log stored since the last
// one. Safe for concurrent use.
type EventScanner struct {
	// BurstKeys is the burst threshold (DefaultBurstKeys when 0).
	BurstKeys int64
	// Options decrypt encrypted segments.
	Options pitr.Options

	mu    sync.Mutex
	repos map[string]*repoEvents
	lists map[string]listMemo // the newest listing per log, by fingerprint
}

type listMemo struct {
	print  uint64
	l      *Listing
	events []Event // the events found for this listing; nil: not scanned
	evErr  error   // what stopped that scan
}

// list is List, reused while the source's manifests are unchanged (same
// keys, sizes and modification times in one listing).
func (s *EventScanner) list(ctx context.Context, key string, b storage.Backend, name string) (*Listing, *listMemo, error) {
	h := fnv.New64a()
	err := b.List(ctx, "", func(oi storage.ObjectInfo) error {
		if strings.HasSuffix(oi.Key, ".json") {
			fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s\n", oi.Key, oi.Size, oi.ModTime.UnixNano(), oi.ETag)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	print := h.Sum64()
	s.mu.Lock()
	m, ok := s.lists[key]
	s.mu.Unlock()
	if ok && m.print == print {
		return m.l, &m, nil
	}
	l, _, err := List(ctx, b, name)
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	if s.lists == nil {
		s.lists = map[string]listMemo{}
	}
	s.lists[key] = listMemo{print: print, l: l}
	s.mu.Unlock()
	return l, nil, nil
}

// events returns the events of the log key, scanning only when its
// listing changed since the last scan (a scan that stopped at damage or a
// storage error is tried again once any manifest changes).
func (s *EventScanner) events(ctx context.Context, key string, b storage.Backend, known *listMemo) ([]Event, error) {
	if known != nil && known.events != nil {
		return known.events, known.evErr
	}
	evs, err := s.Scan(ctx, key, b)
	if evs == nil {
		evs = []Event{}
	}
	if ctx.Err() == nil {
		s.mu.Lock()
		if m, ok := s.lists[key]; ok {
			m.events, m.evErr = evs, err
			s.lists[key] = m
		}
		s.mu.Unlock()
	}
	return evs, err
}

type repoEvents struct {
	mu     sync.Mutex
	lastMs int64 // receive time of the newest command scanned
	gens   map[string]*genEvents
}

type genEvents struct {
	next   int64 // offset after the newest command counted
	count  int64 // commands counted from the base
	events []Event
	burst  *Event // the DEL/UNLINK burst going on
}

// Scan returns every event of b's log, oldest first; key names the log
// (repository and source) in the scanner's memory.
func (s *EventScanner) Scan(ctx context.Context, key string, b storage.Backend) ([]Event, error) {
	s.mu.Lock()
	if s.repos == nil {
		s.repos = map[string]*repoEvents{}
	}
	r := s.repos[key]
	if r == nil {
		r = &repoEvents{gens: map[string]*genEvents{}}
		s.repos[key] = r
	}
	s.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	threshold := s.BurstKeys
	if threshold <= 0 {
		threshold = DefaultBurstKeys
	}
	var from time.Time
	if r.lastMs > 0 {
		from = time.UnixMilli(r.lastMs)
	}
	err := pitr.Log(ctx, b, pitr.Filter{From: from}, s.Options, func(c *pitr.Command) error {
		g := r.gens[c.Generation]
		if g == nil {
			g = &genEvents{}
			r.gens[c.Generation] = g
		}
		if c.Offset < g.next {
			return nil // seen in the previous scan
		}
		g.next = c.Offset + c.Size
		r.lastMs = max(r.lastMs, c.Time.UnixMilli())
		before := g.count
		g.count++
		switch {
		case markedCommands[c.Name]:
			g.events = append(g.events, newEvent(c, before, int64(len(c.Args)-1)))
		case c.Name == "DEL" || c.Name == "UNLINK":
			keys := int64(len(c.Args) - 1)
			if g.burst != nil && c.Time.Sub(g.burst.Last) <= BurstGap {
				g.burst.Commands++
				g.burst.Keys += keys
				g.burst.Last = c.Time
			} else {
				if g.burst != nil && g.burst.Keys >= threshold {
					g.events = append(g.events, *g.burst)
				}
				e := newEvent(c, before, keys)
				e.Last = c.Time
				g.burst = &e
			}
		}
		return nil
	})
	var out []Event
	for _, g := range r.gens {
		out = append(out, g.events...)
		if g.burst != nil && g.burst.Keys >= threshold {
			out = append(out, *g.burst)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].Offset < out[j].Offset
	})
	return out, err
}

func newEvent(c *pitr.Command, before, keys int64) Event {
	return Event{Time: c.Time, Generation: c.Generation, Offset: c.Offset, DB: c.DB, Command: c.Name,
		Text: pitr.Display(c.Args, 48, 6), Commands: 1, Keys: keys, CommandsBefore: before,
		Point: "--before-command " + c.Name + " --after " + FormatTime(c.Time) + " --conflict skip"}
}

// FormatTime is how times appear in commands: RFC 3339 UTC with
// milliseconds, which every --at, --after and --before flag reads.
func FormatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// RestorePrefix is the start of a restore command for a repository (and,
// with several sources, a source name).
func RestorePrefix(repoURL, name string) string {
	s := "redback restore --repo " + ShellQuote(repoURL)
	if name != "" {
		s += " --name " + ShellQuote(name)
	}
	return s
}

// ShellQuote quotes s for a POSIX shell when it needs it.
func ShellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("/:.-_@=,+", c)) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
