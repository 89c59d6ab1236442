package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the agent's Prometheus series; every one has the label
// source (the source's name).
type metrics struct {
	snapLast, snapInterval, snapDuration, snapSize *prometheus.GaugeVec
	snapTotal, snapFailures, snapSkipped           *prometheus.CounterVec
	drillLast, drillResult, drillRTO, drillObj     *prometheus.GaugeVec
	drillFailures                                  *prometheus.CounterVec
	retDeletions, retFailures                      *prometheus.CounterVec
	copyFailures, snapFallback                     *prometheus.CounterVec
	logOffset                                      *prometheus.GaugeVec
	repoBytes, repoSnapshots, healthy              *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, a *Agent) *metrics {
	l := []string{"source"}
	g := func(name, help string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, l)
		reg.MustRegister(v)
		return v
	}
	c := func(name, help string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, l)
		reg.MustRegister(v)
		return v
	}
	m := &metrics{
		snapLast:      g("redback_snapshot_last_success_timestamp_seconds", "Unix time the last successful snapshot ended (0: none yet)."),
		snapInterval:  g("redback_snapshot_expected_interval_seconds", "Expected time between snapshots (from every or the cron schedule)."),
		snapDuration:  g("redback_snapshot_duration_seconds", "Duration of the last successful snapshot."),
		snapSize:      g("redback_snapshot_size_bytes", "Stored size of the last successful snapshot."),
		snapTotal:     c("redback_snapshots_total", "Successful snapshots."),
		snapFailures:  c("redback_snapshot_failures_total", "Failed snapshots."),
		snapSkipped:   c("redback_snapshot_skipped_total", "Scheduled snapshots skipped because the previous one was still running."),
		drillLast:     g("redback_drill_last_success_timestamp_seconds", "Unix time the last successful drill ended (0: none yet)."),
		drillResult:   g("redback_drill_last_result", "Result of the last drill: 1 passed, 0 failed, -1 none yet."),
		drillRTO:      g("redback_drill_rto_seconds", "Measured recovery time of the last drill."),
		drillObj:      g("redback_drill_rto_objective_seconds", "Configured recovery time objective."),
		drillFailures: c("redback_drill_failures_total", "Failed drills (errors or objective missed)."),
		retDeletions:  c("redback_retention_deletions_total", "Snapshots deleted by retention."),
		retFailures:   c("redback_retention_failures_total", "Retention runs or deletes that failed."),
		repoBytes:     g("redback_repository_bytes", "Stored bytes of the snapshots in the repository after the last retention run."),
		repoSnapshots: g("redback_repository_snapshots", "Snapshots in the repository after the last retention run."),
		healthy:       g("redback_source_healthy", "1 when the source passes every /healthz check."),
	}
	m.copyFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redback_copy_failures_total",
		Help: "Copies to a copy_to target that failed (damage in the repository included)."}, []string{"source", "target"})
	reg.MustRegister(m.copyFailures)
	m.snapFallback = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redback_snapshot_fallback_total",
		Help: "Snapshots of method log taken as normal snapshots instead, by reason (no_log, gap, no_base, ended, shipping_off, no_scratch_server)."}, []string{"source", "reason"})
	reg.MustRegister(m.snapFallback)
	m.logOffset = g("redback_snapshot_log_offset", "Replication offset of the newest snapshot synthesized from the log (snapshot method log).")
	reg.MustRegister(&copyCollector{a: a})
	reg.MustRegister(&shipCollector{a: a})
	return m
}

// shipCollector reads each shipper's Status at scrape time.
type shipCollector struct{ a *Agent }

var (
	descConnected  = prometheus.NewDesc("redback_ship_connected", "1 when the shipper is connected to the source.", []string{"source"}, nil)
	descLagSeconds = prometheus.NewDesc("redback_ship_lag_seconds", "How far the durable log is behind the source, in seconds.", []string{"source"}, nil)
	descLagBytes   = prometheus.NewDesc("redback_ship_lag_bytes", "How far the durable log is behind the source, in replication bytes.", []string{"source"}, nil)
	descDurable    = prometheus.NewDesc("redback_ship_durable_offset", "Replication offset stored durably in the repository.", []string{"source"}, nil)
	descReconnects = prometheus.NewDesc("redback_ship_reconnects_total", "Reconnections to the source.", []string{"source"}, nil)
	descResets     = prometheus.NewDesc("redback_source_resets_total", "New log generations marked as a reset: the source came back empty (or drastically smaller) under a new replid, e.g. after a crash without persistence.", []string{"source"}, nil)
	descSpool      = prometheus.NewDesc("redback_ship_spool_bytes", "Bytes received but not yet uploaded.", []string{"source"}, nil)
	descGeneration = prometheus.NewDesc("redback_ship_generation_info", "The current log generation (value 1).", []string{"source", "generation"}, nil)
	descFailovers  = prometheus.NewDesc("redback_ship_failovers_total", "Failovers of the source followed without a full resync (PSYNC continued on the promoted replica).", []string{"source"}, nil)
	descLogTrail   = prometheus.NewDesc("redback_snapshot_log_trail_bytes", "How far the newest snapshot synthesized from the log trails the durable shipped log, in replication bytes (while both are of the current generation).", []string{"source"}, nil)
	descNode       = prometheus.NewDesc("redback_ship_node_info", "The server the shipper follows (value 1); for a Sentinel source, the current primary.", []string{"source", "node"}, nil)

	// A cluster source's shards (shard: the shard's repository source).
	shardLabels         = []string{"source", "shard"}
	descShardConnected  = prometheus.NewDesc("redback_ship_shard_connected", "1 when the shard's stream is connected to its primary.", shardLabels, nil)
	descShardLagSeconds = prometheus.NewDesc("redback_ship_shard_lag_seconds", "How far the shard's durable log is behind its primary, in seconds.", shardLabels, nil)
	descShardLagBytes   = prometheus.NewDesc("redback_ship_shard_lag_bytes", "How far the shard's durable log is behind its primary, in replication bytes.", shardLabels, nil)
	descShardDurable    = prometheus.NewDesc("redback_ship_shard_durable_offset", "Replication offset of the shard stored durably in the repository.", shardLabels, nil)
	descShardReconnects = prometheus.NewDesc("redback_ship_shard_reconnects_total", "Reconnections of the shard's stream.", shardLabels, nil)
	descShardFailovers  = prometheus.NewDesc("redback_ship_shard_failovers_total", "Failovers inside the shard followed without a full resync.", shardLabels, nil)
	descShardSlots      = prometheus.NewDesc("redback_ship_shard_slots", "Hash slots the shard serves (0: none any more).", shardLabels, nil)
	descShardPrimary    = prometheus.NewDesc("redback_ship_shard_primary_info", "The shard's primary the stream follows (value 1).", []string{"source", "shard", "primary"}, nil)
)

func (c *shipCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnected, descLagSeconds, descLagBytes, descDurable, descReconnects, descResets, descSpool, descGeneration, descFailovers, descNode, descLogTrail,
		descShardConnected, descShardLagSeconds, descShardLagBytes, descShardDurable, descShardReconnects, descShardFailovers, descShardSlots, descShardPrimary} {
		ch <- d
	}
}

func (c *shipCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.a.sources {
		if s.shipper == nil {
			continue
		}
		st := s.shipper.Status()
		n := s.cfg.Name
		conn := 0.0
		if st.Connected {
			conn = 1
		}
		ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, conn, n)
		ch <- prometheus.MustNewConstMetric(descLagSeconds, prometheus.GaugeValue, st.LagSeconds, n)
		ch <- prometheus.MustNewConstMetric(descLagBytes, prometheus.GaugeValue, float64(st.LagBytes), n)
		ch <- prometheus.MustNewConstMetric(descDurable, prometheus.GaugeValue, float64(st.DurableOffset), n)
		ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(st.Reconnects), n)
		ch <- prometheus.MustNewConstMetric(descResets, prometheus.CounterValue, float64(st.Resets), n)
		ch <- prometheus.MustNewConstMetric(descSpool, prometheus.GaugeValue, float64(st.SpoolBytes), n)
		if st.Generation != "" {
			ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, 1, n, st.Generation)
		}
		ch <- prometheus.MustNewConstMetric(descFailovers, prometheus.CounterValue, float64(st.Failovers), n)
		if st.Node != "" {
			ch <- prometheus.MustNewConstMetric(descNode, prometheus.GaugeValue, 1, n, st.Node)
		}
		if trail, ok := s.logTrail(st); ok {
			ch <- prometheus.MustNewConstMetric(descLogTrail, prometheus.GaugeValue, float64(trail), n)
		}
		if ms, ok := s.shipper.(ShardedShipper); ok {
			collectShards(ch, n, ms.Shards())
		}
	}
}

// collectShards sends the series of a cluster source's shards.
func collectShards(ch chan<- prometheus.Metric, n string, shards []ShardStatus) {
	for _, x := range shards {
		conn, slots := 0.0, 0
		if x.Connected {
			conn = 1
		}
		for _, r := range x.Slots {
			slots += r[1] - r[0] + 1
		}
		ch <- prometheus.MustNewConstMetric(descShardConnected, prometheus.GaugeValue, conn, n, x.Source)
		ch <- prometheus.MustNewConstMetric(descShardLagSeconds, prometheus.GaugeValue, x.LagSeconds, n, x.Source)
		ch <- prometheus.MustNewConstMetric(descShardLagBytes, prometheus.GaugeValue, float64(x.LagBytes), n, x.Source)
		ch <- prometheus.MustNewConstMetric(descShardDurable, prometheus.GaugeValue, float64(x.DurableOffset), n, x.Source)
		ch <- prometheus.MustNewConstMetric(descShardReconnects, prometheus.CounterValue, float64(x.Reconnects), n, x.Source)
		ch <- prometheus.MustNewConstMetric(descShardFailovers, prometheus.CounterValue, float64(x.Failovers), n, x.Source)
		ch <- prometheus.MustNewConstMetric(descShardSlots, prometheus.GaugeValue, float64(slots), n, x.Source)
		if x.Primary != "" {
			ch <- prometheus.MustNewConstMetric(descShardPrimary, prometheus.GaugeValue, 1, n, x.Source, x.Primary)
		}
	}
}

// logTrail is how far the newest synthesized snapshot trails the durable
// log st reports; ok is false without one of the current generation.
func (s *source) logTrail(st ShipStatus) (int64, bool) {
	s.mu.Lock()
	fl := s.fromLog
	s.mu.Unlock()
	if fl.Snapshot == "" || fl.Generation == "" || fl.Generation != st.Generation {
		return 0, false
	}
	return max(0, st.DurableOffset-fl.Offset), true
}
