package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"redback/internal/redistest"
)

// shipRun is a standalone `redback ship` running in the test against src
// into repo, with the helpers the point-in-time tests share.
type shipRun struct {
	t        *testing.T
	src      *redistest.Server
	repo     string
	stdout   pitrShipLog
	stderr   pitrShipLog
	done     chan int
	cancel   context.CancelFunc
	stopOnce sync.Once
	code     int
}

// startShip runs `redback ship --source src --repo repo` plus extra flags
// until stop (or the test's end).
func startShip(t *testing.T, src *redistest.Server, repo string, extra ...string) *shipRun {
	t.Helper()
	return startShipVia(t, src, src.URL(), repo, extra...)
}

// startShipVia is startShip reaching src at the URL via (a fault proxy).
func startShipVia(t *testing.T, src *redistest.Server, via, repo string, extra ...string) *shipRun {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &shipRun{t: t, src: src, repo: repo, done: make(chan int, 1), cancel: cancel, code: -1}
	args := append([]string{"ship", "--source", via, "--repo", repo}, extra...)
	go func() {
		r.done <- Run(ctx, args, Stdio{In: strings.NewReader(""), Out: &r.stdout, Err: &r.stderr})
	}()
	t.Cleanup(func() { r.stop() })
	return r
}

// stop ends ship and returns its exit code (-1 when it did not stop in 30 s).
func (r *shipRun) stop() int {
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case r.code = <-r.done:
		case <-time.After(30 * time.Second):
			r.t.Errorf("ship did not stop in 30 s; stderr:\n%s", r.stderr.String())
		}
	})
	return r.code
}

// masterInfo is the source's replid and replication offset.
func (r *shipRun) masterInfo() (string, int64) {
	r.t.Helper()
	info, err := r.src.Client().Info(context.Background(), "replication").Result()
	if err != nil {
		r.t.Fatal(err)
	}
	var id string
	var off int64
	for _, l := range strings.Split(info, "\n") {
		l = strings.TrimSpace(l)
		if v, ok := strings.CutPrefix(l, "master_replid:"); ok {
			id = v
		}
		if v, ok := strings.CutPrefix(l, "master_repl_offset:"); ok {
			fmt.Sscan(v, &off)
		}
	}
	if id == "" {
		r.t.Fatalf("no master_replid in INFO:\n%s", info)
	}
	return id, off
}

// list is `redback list --json` of the repository.
func (r *shipRun) list() listOutput {
	r.t.Helper()
	return listRepo(r.t, r.repo)
}

func listRepo(t *testing.T, repo string) listOutput {
	t.Helper()
	code, out, errs := runCLI(t, "list", "--repo", repo, "--json")
	var l listOutput
	if err := json.Unmarshal([]byte(out), &l); code != ExitOK || err != nil {
		t.Fatalf("list: exit %d %v\n%s%s", code, err, out, errs)
	}
	return l
}

// waitDurable waits until `redback list` shows the source's replid with a
// contiguous log up to its offset, and returns that generation's id. Every
// write made before the call is then durable. The replid is read again on
// each try (it changes when the first replica connects); the offset is the
// one first seen under that replid: what the source adds later while idle
// (PINGs, time markers) is made durable only by the next heartbeat.
func (r *shipRun) waitDurable() string {
	r.t.Helper()
	var replid string
	var off int64
	first := map[string]int64{}
	last := ""
	for i := 0; i < 300; i++ {
		select {
		case code := <-r.done:
			r.t.Fatalf("ship exited early with %d: %s", code, r.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
		replid, off = r.masterInfo()
		if o, ok := first[replid]; ok {
			off = o
		} else {
			first[replid] = off
		}
		code, out, errs := runCLI(r.t, "list", "--repo", r.repo, "--json")
		var l listOutput
		if code != ExitOK || json.Unmarshal([]byte(out), &l) != nil {
			// ship has not written its repository yet (a slow machine)
			last = fmt.Sprintf("list: exit %d %s%s", code, out, errs)
			continue
		}
		for _, w := range l.Generations {
			if w.ReplID == replid && w.Problem == "" && w.ToOffset >= off {
				return w.Generation
			}
			last = fmt.Sprintf("%+v", w)
		}
	}
	r.t.Fatalf("durable offset did not reach %d of replid %s in 30 s; last window %s; ship stderr:\n%s", off, replid, last, r.stderr.String())
	return ""
}
