package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/s3/s3test"
)

// objectKeys lists every object key of the file repository dir under prefix.
func objectKeys(t *testing.T, dir, prefix string) map[string]bool {
	t.Helper()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	if err := b.List(t.Context(), prefix, func(oi storage.ObjectInfo) error { keys[oi.Key] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestTwoSources_OneRepository runs two sources (two real servers) into one
// repository, under one agent and under two agents: snapshots every 2 s and
// shipping for both, retention that keeps everything for alpha (within: 1h) and
// `hourly: 1` for beta. Beta's retention and a CLI prune of beta never
// delete an object of alpha (checked object by object); each source's
// newest snapshot and newest point restore to its own server's DEBUG
// DIGEST; list shows each source's windows under its name; commands that
// need one source ask for --name.
func TestTwoSources_OneRepository(t *testing.T) {
	for _, agents := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d agents", agents), func(t *testing.T) { testTwoSources(t, agents) })
	}
}

func testTwoSources(t *testing.T, agents int) {
	ctx := t.Context()
	srvA, srvB := redistest.Start(t), redistest.Start(t)
	redistest.Populate(t, srvA, 40)
	redistest.Populate(t, srvB, 60)
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	repo := "file://" + repoDir
	source := func(name, url, retention string) string {
		return fmt.Sprintf(`  - name: %s
    source: %s
    repo: %s
    snapshot: {method: sync, every: 2s}
    ship: {enabled: true, interval: 200ms}
    retention: %s
    drill: {schedule: "0 3 1 * *", rto_objective: 1m}
`, name, url, repo, retention)
	}
	alpha := source("alpha", srvA.URL(), "{hourly: 24, daily: 0, weekly: 0, monthly: 0, within: 1h, pitr: 168h}")
	beta := source("beta", srvB.URL(), "{hourly: 1, daily: 0, weekly: 0, monthly: 0, pitr: 1h}")
	var configs []string
	if agents == 1 {
		configs = []string{alpha + beta}
	} else {
		configs = []string{alpha, beta}
	}
	type agentRun struct {
		cancel context.CancelFunc
		done   chan int
		log    *pitrShipLog
	}
	var runs []agentRun
	for i, srcs := range configs {
		cfgPath := filepath.Join(dir, fmt.Sprintf("agent%d.yaml", i))
		cfg := fmt.Sprintf("listen: 127.0.0.1:%d\ngrace_period: 10s\nsources:\n%s", redistest.FreePort(t), srcs)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithCancel(ctx)
		r := agentRun{cancel: cancel, done: make(chan int, 1), log: &pitrShipLog{}}
		go func() {
			r.done <- Run(actx, []string{"agent", "--config", cfgPath}, Stdio{In: strings.NewReader(""), Out: &pitrShipLog{}, Err: r.log})
		}()
		runs = append(runs, r)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		for i, r := range runs {
			r.cancel()
			select {
			case code := <-r.done:
				if code != 0 {
					t.Errorf("agent %d: exit %d\n%s", i, code, r.log.String())
				}
			case <-time.After(60 * time.Second):
				t.Errorf("agent %d did not stop", i)
			}
		}
	}
	defer stop()

	// Writes while the agents run; the snapshots after them and the log
	// cover them.
	for i := 0; i < 20; i++ {
		srvA.Client().Set(ctx, fmt.Sprintf("alpha:%d", i), i, 0)
		srvB.Client().HSet(ctx, "beta:h", fmt.Sprintf("f%d", i), i)
	}
	lastWrite := time.Now()

	// Until beta's retention has deleted snapshots and both sources have a
	// snapshot taken after the writes, watch alpha's objects: none may
	// ever disappear (its policy keeps everything).
	seenAlpha := map[string]bool{}
	seenBeta := map[string]bool{}
	viewA, viewB := sourceView(t, repoDir, "alpha"), sourceView(t, repoDir, "beta")
	newest := func(b storage.Backend) *catalog.Snapshot {
		snaps, _, _ := catalog.ListSnapshots(ctx, b)
		for _, s := range snaps {
			if s.Method == "sync" {
				return s
			}
		}
		return nil
	}
	for i := 0; ; i++ {
		if i == 600 {
			t.Fatalf("no retention pass of beta with fresh snapshots in 60 s; alpha saw %d objects, beta %d snapshots\n%s",
				len(seenAlpha), len(seenBeta), runs[len(runs)-1].log.String())
		}
		time.Sleep(100 * time.Millisecond)
		for k := range objectKeys(t, repoDir, "src/alpha/") {
			seenAlpha[k] = true
		}
		snapsB, _, _ := catalog.ListSnapshots(ctx, viewB)
		for _, s := range snapsB {
			if s.Method == "sync" {
				seenBeta[s.ID] = true
			}
		}
		a, b := newest(viewA), newest(viewB)
		if a != nil && b != nil && a.StartTime.After(lastWrite) && b.StartTime.After(lastWrite) && len(seenBeta) >= 3 && len(snapsB) < len(seenBeta) {
			break
		}
	}
	stop()
	now := objectKeys(t, repoDir, "src/alpha/")
	for k := range seenAlpha {
		if !now[k] {
			t.Errorf("alpha's object %s was deleted", k)
		}
	}

	// A CLI prune of beta (everything but what it must keep) leaves every
	// object of alpha, and the repository's own records, in place.
	before := objectKeys(t, repoDir, "")
	code, out, errs := runCLI(t, "prune", "--repo", repo, "--name", "beta", "--keep-hourly", "0", "--keep-daily", "0",
		"--keep-weekly", "0", "--keep-monthly", "0", "--keep-pitr", "0")
	if code != ExitOK {
		t.Fatalf("prune --name beta: exit %d\n%s%s", code, out, errs)
	}
	after := objectKeys(t, repoDir, "")
	for k := range before {
		if !after[k] && !strings.HasPrefix(k, "src/beta/") {
			t.Errorf("prune of beta deleted %s", k)
		}
	}

	// Each source restores to its own server: the newest snapshot, and the
	// newest point of its log.
	for _, tc := range []struct {
		name string
		srv  *redistest.Server
	}{{"alpha", srvA}, {"beta", srvB}} {
		want := tc.srv.Digest(ctx)
		for _, how := range [][]string{{"--latest"}, {"--at", "latest"}} {
			dst := redistest.Start(t)
			args := append([]string{"restore", "--repo", repo, "--name", tc.name, "--to-redis", dst.URL()}, how...)
			if code, out, errs := runCLI(t, args...); code != ExitOK {
				t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
			}
			if got := dst.Digest(ctx); got != want {
				t.Fatalf("restore %s %v: digest %s, want %s (its server's)", tc.name, how, got, want)
			}
			dst.Stop()
		}
	}

	// list: both sources, every item names its source, and each source's
	// windows follow its own server's replication id.
	l := listRepo(t, repo)
	if !slices.Equal(l.Sources, []string{"alpha", "beta"}) {
		t.Fatalf("list sources %v", l.Sources)
	}
	replid := map[string]string{}
	for name, srv := range map[string]*redistest.Server{"alpha": srvA, "beta": srvB} {
		info, _ := srv.Client().Info(ctx, "replication").Result()
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "master_replid:"); ok {
				replid[name] = v
			}
		}
	}
	windows := map[string]int{}
	for _, w := range l.Generations {
		if w.ReplID != replid[w.SourceName] {
			t.Errorf("source %q lists generation %s of replid %s, want its server's %s", w.SourceName, w.Generation, w.ReplID, replid[w.SourceName])
		}
		windows[w.SourceName]++
	}
	if windows["alpha"] == 0 || windows["beta"] == 0 {
		t.Errorf("windows per source: %v", windows)
	}
	for _, s := range l.Snapshots {
		if s.SourceName != "alpha" && s.SourceName != "beta" {
			t.Errorf("snapshot %s has source_name %q", s.ID, s.SourceName)
		}
	}

	// One source at a time where it matters; all of them where it helps.
	for _, args := range [][]string{
		{"restore", "--repo", repo, "--to-dir", t.TempDir()},
		{"log", "--repo", repo},
		{"drill", "--repo", repo},
		{"prune", "--repo", repo},
	} {
		if code, out, errs := runCLI(t, args...); code != ExitUsage || !strings.Contains(errs, "alpha, beta") {
			t.Errorf("%v: exit %d, want 2 listing the sources\n%s%s", args, code, out, errs)
		}
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK || !strings.Contains(out, "== source alpha ==") || !strings.Contains(out, "== source beta ==") {
		t.Errorf("verify of both sources: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runCLI(t, "prune", "--repo", repo, "--dry-run"); code != ExitOK || !strings.Contains(out, "== source beta ==") {
		t.Errorf("prune --dry-run of both sources: exit %d\n%s%s", code, out, errs)
	}
}

// TestMissingRepository: every reader fails (exit 1, naming the URL) on a
// location that holds no repository: a missing directory, an empty S3
// prefix, a missing bucket. An initialised repository without snapshots
// lists as empty.
func TestMissingRepository(t *testing.T) {
	srv := s3test.StartServer(t)
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	missingDir := filepath.Join(t.TempDir(), "no-such-dir")
	noBucket := strings.Replace(srv.URL("redis"), "s3://"+srv.Bucket, "s3://no-such-bucket-"+strings.ToLower(srv.Bucket), 1)
	for _, tc := range []struct{ name, url, where string }{
		{"missing directory", missingDir, "file://" + missingDir},
		{"empty prefix", srv.URL("nothing/here"), "s3://" + srv.Bucket + "/nothing/here"},
		{"missing bucket", noBucket, "s3://no-such-bucket-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, args := range [][]string{
				{"list", "--repo", tc.url},
				{"verify", "--repo", tc.url},
				{"log", "--repo", tc.url},
				{"drill", "--repo", tc.url},
				{"restore", "--repo", tc.url, "--to-dir", t.TempDir()},
				{"prune", "--repo", tc.url, "--dry-run"},
			} {
				code, out, errs := runCLI(t, args...)
				if code != ExitFailure || !strings.Contains(errs, "no redback repository at "+tc.where) {
					t.Errorf("%s: exit %d, want 1 with 'no redback repository at %s'\n%s%s", args[0], code, tc.where, out, errs)
				}
			}
		})
	}
	if _, err := os.Stat(missingDir); !os.IsNotExist(err) {
		t.Errorf("a reader created %s: %v", missingDir, err)
	}

	// Initialised, no snapshot yet: empty, exit 0.
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.InitSource(t.Context(), b, "cache-a", "redis://127.0.0.1:6379"); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, "list", "--repo", dir); code != ExitOK || !strings.Contains(out, "(no snapshots)") {
		t.Errorf("empty repository: exit %d\n%s%s", code, out, errs)
	}
}
