package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"redback/internal/ops"
	"redback/internal/repocopy"
	"redback/internal/storage"
)

// copyState is one copy_to target of a source.
type copyState struct {
	target  storage.Backend
	from    storage.Backend   // the whole repository
	include func(string) bool // the keys of this source
	cluster string            // for a cluster source: its name (its sets are copied, ops.CopyCluster)
	// guarded by the source's mu
	job     jobState
	copied  int64     // objects copied since the agent started
	current time.Time // start of the last successful copy: the copy holds everything the repository held then
}

// CopyView is a copy_to target in /status.
type CopyView struct {
	Target string `json:"target"`
	jobState
	LagSeconds float64 `json:"lag_seconds"`
	Copied     int64   `json:"copied_objects"`
}

// openCopies opens s's copy_to repositories, each with a copy of proto,
// and adds them to targets (closed when the agent stops).
func (a *Agent) openCopies(ctx context.Context, s *source, proto *copyState, targets *[]storage.Backend) error {
	for _, u := range s.cfg.CopyTo {
		t, err := a.opts.OpenRepo(ctx, u)
		if err != nil {
			return fmt.Errorf("source %s: open copy_to repository: %w", s.cfg.Name, err)
		}
		*targets = append(*targets, t)
		c := &copyState{target: t, from: proto.from, include: proto.include, cluster: proto.cluster}
		c.job.Interval = s.cfg.CopyInterval.D()
		c.job.IntervalS = c.job.Interval.Seconds()
		s.copies = append(s.copies, c)
	}
	return nil
}

// copyLoop copies s's repository to c every copy_interval (the first at
// once) until stop is done. A copy in progress gets runCtx.
func (a *Agent) copyLoop(stop, runCtx context.Context, s *source, c *copyState) error {
	for {
		a.copyOnce(runCtx, s, c)
		next := a.clock.Now().Add(s.cfg.CopyInterval.D())
		s.mu.Lock()
		c.job.Next = next
		s.mu.Unlock()
		select {
		case <-stop.Done():
			return nil
		case <-a.clock.After(s.cfg.CopyInterval.D()):
		}
	}
}

func (a *Agent) copyOnce(ctx context.Context, s *source, c *copyState) {
	start := a.clock.Now()
	s.mu.Lock()
	c.job.Running, c.job.LastAttempt = true, start
	s.mu.Unlock()
	var (
		res *repocopy.Result
		err error
	)
	if c.cluster != "" {
		res, err = ops.CopyCluster(ctx, c.from, c.target, c.cluster, a.log.With("source", s.cfg.Name, "target", c.target.Location()))
	} else {
		res, err = repocopy.Copy(ctx, c.from, c.target, repocopy.Options{Include: c.include})
	}
	end := a.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	c.job.Running = false
	if res != nil {
		c.copied += int64(res.Copied)
	}
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down
		}
		c.job.Failures++
		c.job.LastError = s.scrub(err)
		a.m.copyFailures.WithLabelValues(s.cfg.Name, c.target.Location()).Inc()
		a.log.Error("copy failed", "source", s.cfg.Name, "target", c.target.Location(), "err", c.job.LastError)
		return
	}
	c.job.LastError = ""
	c.job.LastSuccess = end
	c.current = start
	a.log.Info("copy done", "source", s.cfg.Name, "target", c.target.Location(), "copied", res.Copied, "bytes", res.CopiedBytes, "dur", end.Sub(start).String())
}

// copyLag is how far the copy may be behind the repository: the time
// since the start of its last successful copy (or since the agent
// started, before the first).
func (a *Agent) copyLag(c *copyState, now time.Time) time.Duration {
	base := c.current
	if base.IsZero() {
		base = a.started
	}
	return now.Sub(base)
}

var (
	descCopyLag  = prometheus.NewDesc("redback_copy_lag_seconds", "How far the copy_to target may be behind the repository: time since the start of its last successful copy (before the first one, since the agent started).", []string{"source", "target"}, nil)
	descCopyLast = prometheus.NewDesc("redback_copy_last_success_timestamp_seconds", "Unix time the last successful copy to the target ended (0: none yet).", []string{"source", "target"}, nil)
	descCopied   = prometheus.NewDesc("redback_copy_objects_total", "Objects copied to the target since the agent started.", []string{"source", "target"}, nil)
)

// copyCollector reads each copy's state at scrape time.
type copyCollector struct{ a *Agent }

func (c *copyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCopyLag
	ch <- descCopyLast
	ch <- descCopied
}

func (c *copyCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.a.clock.Now()
	for _, s := range c.a.sources {
		s.mu.Lock()
		for _, cp := range s.copies {
			if cp.target == nil {
				continue
			}
			t := cp.target.Location()
			last := 0.0
			if !cp.job.LastSuccess.IsZero() {
				last = float64(cp.job.LastSuccess.UnixNano()) / 1e9
			}
			ch <- prometheus.MustNewConstMetric(descCopyLag, prometheus.GaugeValue, c.a.copyLag(cp, now).Seconds(), s.cfg.Name, t)
			ch <- prometheus.MustNewConstMetric(descCopyLast, prometheus.GaugeValue, last, s.cfg.Name, t)
			ch <- prometheus.MustNewConstMetric(descCopied, prometheus.CounterValue, float64(cp.copied), s.cfg.Name, t)
		}
		s.mu.Unlock()
	}
}
