// Package progress draws a one-line progress indicator for long operations
// on a terminal. It draws nothing when disabled (not a terminal, or --json),
// so callers can use it unconditionally.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar is a byte-count progress line. The zero value and nil are disabled.
type Bar struct {
	mu      sync.Mutex
	w       io.Writer
	label   string
	total   int64
	done    int64
	items   int64
	start   time.Time
	last    time.Time
	enabled bool
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// New returns a bar writing to w when enabled; total < 0 means unknown.
func New(w io.Writer, label string, total int64, enabled bool) *Bar {
	return &Bar{w: w, label: label, total: total, start: time.Now(), enabled: enabled}
}

// SetTotal changes the expected total (bytes), e.g. once it becomes known.
func (b *Bar) SetTotal(n int64) {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.total = n
	b.mu.Unlock()
}

// Add records n more bytes and items, redrawing at most 5 times a second.
func (b *Bar) Add(n, items int64) {
	if b == nil || !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done += n
	b.items += items
	now := time.Now()
	if now.Sub(b.last) < 200*time.Millisecond {
		return
	}
	b.last = now
	b.draw(now)
}

func (b *Bar) draw(now time.Time) {
	el := now.Sub(b.start).Seconds()
	rate := 0.0
	if el > 0 {
		rate = float64(b.done) / el
	}
	line := fmt.Sprintf("%s  %s", b.label, HumanBytes(b.done))
	if b.total > 0 {
		line += fmt.Sprintf(" / %s  %3.0f%%", HumanBytes(b.total), 100*float64(b.done)/float64(b.total))
	}
	line += fmt.Sprintf("  %s/s", HumanBytes(int64(rate)))
	if b.items > 0 {
		line += fmt.Sprintf("  %d keys", b.items)
	}
	fmt.Fprintf(b.w, "\r\033[K%s", line)
}

// Done clears the line.
func (b *Bar) Done() {
	if b == nil || !b.enabled {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprint(b.w, "\r\033[K")
}

// HumanBytes formats a byte count for people: "512 B", "1.5 KiB", "20.3 MiB", "1.21 GiB".
func HumanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Reader counts bytes read through it into a Bar.
type Reader struct {
	R   io.Reader
	Bar *Bar
}

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	r.Bar.Add(int64(n), 0)
	return n, err
}
