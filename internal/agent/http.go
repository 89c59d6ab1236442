package agent

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"redback/internal/config"
	"redback/internal/ops"
	"redback/internal/pitr"
	"redback/internal/ui"
)

// Status is the /status document (and, reduced, /healthz's).
type Status struct {
	Healthy bool           `json:"healthy"`
	Reasons []string       `json:"reasons,omitempty"`
	Started time.Time      `json:"started"`
	Now     time.Time      `json:"now"`
	Holder  string         `json:"lease_holder"`
	Sources []SourceStatus `json:"sources"`
}

// SourceStatus is one source in /status. URLs are shown without passwords.
type SourceStatus struct {
	Name      string         `json:"name"`
	Source    string         `json:"source"`
	Repo      string         `json:"repo"`
	Healthy   bool           `json:"healthy"`
	Reasons   []string       `json:"reasons,omitempty"`
	Snapshot  jobState       `json:"snapshot"`
	Ship      *ShipView      `json:"ship"`
	Drill     *DrillView     `json:"drill,omitempty"`
	Retention retentionState `json:"retention"`
	// FromLog is set for snapshot method log: the newest synthesized
	// snapshot, how far it trails the durable log, and the fallbacks.
	FromLog *FromLogView `json:"from_log,omitempty"`
	Copies  []CopyView   `json:"copies,omitempty"`
}

// ShipView is the shipping part of a SourceStatus.
type ShipView struct {
	Enabled   bool        `json:"enabled"`
	Available bool        `json:"available"`
	Status    *ShipStatus `json:"status,omitempty"`
	LastError string      `json:"last_error,omitempty"`
	// Shards is set for a cluster: each shard's stream (Status is then
	// their sum: connected when all are, the largest lag).
	Shards []ShardStatus `json:"shards,omitempty"`
}

// FromLogView is the snapshot-from-the-log part of a SourceStatus.
type FromLogView struct {
	logState
	// TrailBytes is how far the snapshot trails the durable shipped log
	// (set while both are of the current generation).
	TrailBytes *int64 `json:"trail_bytes,omitempty"`
}

// DrillView is the drill part of a SourceStatus.
type DrillView struct {
	jobState
	RTOSeconds          float64 `json:"rto_seconds"`
	RTOObjectiveSeconds float64 `json:"rto_objective_seconds"`
}

// staleFactor: a job is late when its last success is older than this many
// expected intervals (the alert rules use the same factor).
const staleFactor = 2

// Status reports every source and whether the agent is healthy: every
// source's shipper connected (when shipping is enabled), and its last
// snapshot and drill succeeded within staleFactor expected intervals
// (counted from the agent's start when there was none yet).
func (a *Agent) Status() Status {
	now := a.clock.Now()
	st := Status{Healthy: true, Started: a.started, Now: now, Holder: a.holder}
	for _, s := range a.sources {
		ss := a.sourceStatus(s, now)
		a.m.healthy.WithLabelValues(s.cfg.Name).Set(map[bool]float64{true: 1, false: 0}[ss.Healthy])
		if !ss.Healthy {
			st.Healthy = false
			for _, r := range ss.Reasons {
				st.Reasons = append(st.Reasons, s.cfg.Name+": "+r)
			}
		}
		st.Sources = append(st.Sources, ss)
	}
	return st
}

func (a *Agent) sourceStatus(s *source, now time.Time) SourceStatus {
	s.mu.Lock()
	ss := SourceStatus{
		Name:      s.cfg.Name,
		Source:    config.Redact(s.cfg.Source),
		Repo:      config.Redact(s.cfg.Repo),
		Snapshot:  s.snap,
		Retention: s.ret,
		Ship:      &ShipView{Enabled: s.cfg.Ship.Enabled, Available: s.shipper != nil, LastError: s.ship.lastErr},
	}
	for _, c := range s.copies {
		ss.Copies = append(ss.Copies, CopyView{Target: c.target.Location(), jobState: c.job,
			LagSeconds: a.copyLag(c, now).Seconds(), Copied: c.copied})
	}
	if s.cfg.Snapshot.Method == "log" {
		fl := s.fromLog
		fl.Fallbacks = maps.Clone(fl.Fallbacks)
		ss.FromLog = &FromLogView{logState: fl}
	}
	if s.drillSch != nil {
		ss.Drill = &DrillView{jobState: s.drill, RTOSeconds: s.rto.Seconds(), RTOObjectiveSeconds: s.cfg.Drill.RTOObjective.D().Seconds()}
	}
	s.mu.Unlock()
	var reasons []string
	late := func(kind string, j jobState) {
		if j.LastError != "" {
			reasons = append(reasons, fmt.Sprintf("last %s failed: %s", kind, j.LastError))
		}
		base := j.LastSuccess
		if base.IsZero() {
			base = a.started
		}
		if j.Interval > 0 && now.Sub(base) > staleFactor*j.Interval {
			if j.LastSuccess.IsZero() {
				reasons = append(reasons, fmt.Sprintf("no successful %s since the agent started %s ago (expected every %s)", kind, now.Sub(base).Round(time.Second), j.Interval))
			} else {
				reasons = append(reasons, fmt.Sprintf("last successful %s %s ago (expected every %s)", kind, now.Sub(base).Round(time.Second), j.Interval))
			}
		}
	}
	late("snapshot", ss.Snapshot)
	for _, c := range ss.Copies {
		late("copy to "+c.Target, c.jobState)
	}
	if s.cfg.Ship.Enabled {
		if s.shipper == nil {
			reasons = append(reasons, "shipping is enabled but not available in this build")
		} else {
			sh := s.shipper.Status()
			ss.Ship.Status = &sh
			if ms, ok := s.shipper.(ShardedShipper); ok {
				ss.Ship.Shards = ms.Shards()
				for _, x := range ss.Ship.Shards {
					if !x.Connected {
						r := fmt.Sprintf("shard %s (primary %s) not shipping", x.Source, x.Primary)
						if x.LastError != "" {
							r += ": " + s.scrub(errors.New(x.LastError))
						}
						reasons = append(reasons, r)
					}
				}
			}
			if trail, ok := s.logTrail(sh); ok && ss.FromLog != nil {
				ss.FromLog.TrailBytes = &trail
			}
			if !sh.Connected {
				r := "shipper not connected to the source"
				if sh.LastError != "" {
					r += ": " + sh.LastError
				}
				reasons = append(reasons, r)
			}
		}
	}
	if ss.Drill != nil {
		if (s.shards == nil && a.opts.Drill == nil) || (s.shards != nil && a.opts.DrillSet == nil) {
			reasons = append(reasons, "drills are enabled but not available in this build")
		} else {
			late("drill", ss.Drill.jobState)
		}
	}
	ss.Reasons = reasons
	ss.Healthy = len(reasons) == 0
	return ss
}

func (a *Agent) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st := a.Status()
		code := http.StatusOK
		if !st.Healthy {
			code = http.StatusServiceUnavailable
		}
		// following: the server each shipping source follows.
		following := map[string]string{}
		for _, s := range st.Sources {
			if s.Ship != nil && s.Ship.Status != nil && s.Ship.Status.Node != "" {
				following[s.Name] = s.Ship.Status.Node
			}
		}
		ui.WriteJSON(w, code, struct {
			Healthy   bool              `json:"healthy"`
			Reasons   []string          `json:"reasons,omitempty"`
			Following map[string]string `json:"following,omitempty"`
		}{st.Healthy, st.Reasons, following})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		ui.WriteJSON(w, http.StatusOK, a.Status())
	})
	ui.Register(mux, ui.Options{Sources: a.timelineSources, Listen: a.cfg.Listen, Token: a.cfg.UIToken,
		Events: &ops.EventScanner{Options: pitr.Options{Identities: a.opts.Identities}}, Now: a.clock.Now})
	return ui.Guard(mux, a.httpPolicy())
}

// httpPolicy is who may use the listener: anyone on loopback; elsewhere
// only requests with ui_token, but for the static page and, with
// metrics_open, /metrics.
func (a *Agent) httpPolicy() ui.Policy {
	open := slices.Clone(ui.StaticPaths)
	if a.cfg.MetricsOpen {
		open = append(open, "/metrics")
	}
	return ui.Policy{Remote: !ui.Loopback(a.cfg.Listen), Token: a.cfg.UIToken, Open: open}
}

// timelineSources are the agent's sources as the timeline shows them: their
// repositories read through a manifest cache, their live shipping state.
func (a *Agent) timelineSources() []ops.Source {
	out := make([]ops.Source, 0, len(a.sources))
	for _, s := range a.sources {
		if s.shards != nil {
			continue // a cluster: its shards' timelines are not shown yet
		}
		s.mu.Lock()
		every := s.snap.Interval
		s.mu.Unlock()
		src := ops.Source{Name: s.cfg.Name, Repo: s.cached, RepoURL: config.Redact(s.cfg.Repo), Address: config.Redact(s.cfg.Source),
			SnapshotEvery: every, RTOObjective: s.cfg.Drill.RTOObjective.D()}
		if s.cfg.Ship.Enabled && s.shipper != nil {
			src.Shipping = func() *ops.Shipping {
				st := a.sourceStatus(s, a.clock.Now())
				sh := st.Ship.Status
				if sh == nil {
					return nil
				}
				following := config.Redact(s.cfg.Source)
				if sh.Node != "" {
					following = sh.Node // the server itself, e.g. the primary a Sentinel set names
				}
				return &ops.Shipping{Live: true, Connected: sh.Connected, Following: following, Failovers: sh.Failovers,
					LagSeconds: sh.LagSeconds, LagBytes: sh.LagBytes, Generation: sh.Generation, Healthy: st.Healthy, Reasons: st.Reasons}
			}
		}
		out = append(out, src)
	}
	return out
}
