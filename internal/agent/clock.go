package agent

import (
	"time"

	"github.com/robfig/cron/v3"
)

// Clock is the agent's source of time; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// After delivers the time once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// everySchedule runs at fixed intervals.
type everySchedule time.Duration

func (e everySchedule) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

var _ cron.Schedule = everySchedule(0)

// interval estimates how far apart runs of s are around t.
func interval(s cron.Schedule, t time.Time) time.Duration {
	if e, ok := s.(everySchedule); ok {
		return time.Duration(e)
	}
	a := s.Next(t)
	b := s.Next(a)
	if a.IsZero() || b.IsZero() {
		return 0
	}
	return b.Sub(a)
}
