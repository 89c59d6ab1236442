// Package agent is redback's daemon: a supervisor whose Run(ctx) owns every
// goroutine (one errgroup). Per source it runs the shipper continuously,
// takes snapshots on schedule (never two of one source at once: a run still
// going when the next is due is skipped and counted, like a Kubernetes
// CronJob with concurrencyPolicy Forbid), applies retention after each
// successful snapshot and runs restore drills on schedule. Each repository
// is written under a lease (catalog.AcquireLease) held for the agent's
// life; losing it stops all work. It serves /metrics (Prometheus, its own
// registry), /healthz and /status over HTTP and pings an optional
// heartbeat URL while everything is healthy.
//
// Cancelling Run's context (SIGTERM) stops scheduling; running work gets
// the configured grace period to finish, then its context is cancelled;
// Run returns nil after a clean stop.
//
// Snapshots, shipping and drills are plugged in through Options (function
// fields and the Shipper interface) so the daemon does not depend on how
// they are done.
package agent
