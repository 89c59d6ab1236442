package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/progress"
	"redback/internal/redisurl"
	"redback/internal/snapshot"
	"redback/internal/storage"
	"redback/internal/synth"
)

// fromLogFlags are the flags of `redback snapshot --from-log`.
type fromLogFlags struct {
	FromLog     bool
	At          string
	ToOffset    string
	RedisServer string
	ScratchDir  string
	Identity    string
}

func (f *fromLogFlags) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&f.FromLog, "from-log", false, "synthesize the snapshot from the repository's newest snapshot and shipped log in a scratch server here, without contacting the source")
	fs.StringVar(&f.At, "at", "", "with --from-log: the state after the last command received at or before `TIME` (default: the newest durable point): "+pointFormatsHelp)
	fs.StringVar(&f.ToOffset, "to-offset", "", "with --from-log: the state at replication offset `N`")
	fs.StringVar(&f.RedisServer, "redis-server", "", "with --from-log: server binary of the scratch server (default: the redis-server or valkey-server on PATH that loads the data)")
	fs.StringVar(&f.ScratchDir, "scratch-dir", "", "with --from-log: where the scratch server's dir is made (default: the temp dir); needs about twice the RDB's size")
	fs.StringVar(&f.Identity, "identity", "", "with --from-log: age identity file for an encrypted base and log (or $REDBACK_IDENTITY_FILE, $REDBACK_IDENTITY)")
}

func (f *fromLogFlags) requested() bool {
	return f.At != "" || f.ToOffset != "" || f.RedisServer != "" || f.ScratchDir != "" || f.Identity != ""
}

// target is the point to synthesize; the zero Target is the newest
// durable point of the newest generation.
func (f *fromLogFlags) target() (pitr.Target, error) {
	if f.ToOffset == "" && (f.At == "" || isLatest(f.At)) {
		return pitr.Target{}, nil
	}
	p := pitrFlags{At: f.At, ToOffset: f.ToOffset}
	return p.target()
}

// fromLogJSON is the --json output of snapshot --from-log.
type fromLogJSON struct {
	*synth.Result
	// Fallback, when set, says why a normal snapshot of --source was taken
	// instead (Result is then empty but for Snapshot).
	Fallback string `json:"fallback,omitempty"`
}

// runSnapshotFromLog is `redback snapshot --from-log`.
func runSnapshotFromLog(ctx context.Context, e *env, o *snapshotOpts) error {
	try := "redback snapshot --from-log --repo " + o.repo + " --name NAME"
	tg, err := o.log.target()
	if err != nil {
		return err
	}
	po, err := o.pack.options()
	if err != nil {
		return err
	}
	ids, err := loadIdentities(e, o.log.Identity, "redback snapshot --from-log --repo URL --identity key.txt")
	if err != nil {
		return err
	}
	var u *redisurl.URL
	var base, view storage.Backend
	var name string
	if o.source != "" {
		if u, err = o.redis.parse(e, "source", o.source); err != nil {
			return err
		}
		var src catalog.SourceRef
		if base, view, src, err = openWriter(ctx, e, o.repo, o.name, u.Redacted()); err != nil {
			return err
		}
		name = src.Name
	} else {
		set, v, err := openOneSource(ctx, e, o.repo, o.name, try)
		if err != nil {
			return err
		}
		base, view, name = set.base, v, set.sources[0].Name
	}
	defer base.Close()
	bar := progress.New(e.Err, "snapshot", -1, !o.json && progress.IsTerminal(e.Err))
	out := fromLogJSON{Result: &synth.Result{}}
	err = leased(ctx, e, view, name, func(ctx context.Context, repo storage.Backend) error {
		res, err := synth.Build(ctx, synth.Options{Backend: repo, Pack: po, Identities: ids, Target: tg,
			RedisServer: o.log.RedisServer, TempDir: o.log.ScratchDir, Progress: bar, Log: e.log})
		if res != nil {
			out.Result = res
		}
		var nl *synth.NoLogError
		if !errors.As(err, &nl) || u == nil || tg.Kind != 0 {
			return err
		}
		out.Fallback = nl.Reason
		fmt.Fprintf(e.Err, "note: %v: taking a normal snapshot of %s instead\n", err, u.Redacted())
		out.Snapshot, err = takeSnapshot(ctx, e, u, snapshotParams{Method: o.method, PreferReplica: o.preferReplica,
			Store: snapshot.Options{Backend: repo, Pack: po, Progress: bar, Log: e.log}})
		return err
	})
	bar.Done()
	if err != nil {
		return err
	}
	snap := out.Snapshot
	if err := printSnapshot(e, o.json, out, snap); err != nil || o.json || out.Fallback != "" {
		return err
	}
	r := out.Result
	fmt.Fprintf(e.Out, "from the log: generation %s, offset %d; base %s + %d segments (%d commands) replayed in %s, equal to its DEBUG DIGEST %s\n",
		snap.Generation, snap.Source.Offset, r.Base, r.Segments, r.Commands, r.Server, r.ScratchDigest)
	fmt.Fprintf(e.Out, "scratch server: %.1fs CPU, %s resident; rebuild %.1fs, save %.1fs, store %.1fs\n",
		r.ScratchCPUSeconds, humanBytes(r.ScratchRSSBytes), r.Rebuild.Seconds(), r.Save.Seconds(), r.Store.Seconds())
	return nil
}
