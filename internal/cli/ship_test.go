package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/redistest"
)

func TestShip_Usage(t *testing.T) {
	for _, args := range [][]string{
		{"ship", "--source", "redis://127.0.0.1:1", "--repo", "x", "--aof-dir", "/tmp"},
		{"ship", "--source", "redis://127.0.0.1:1", "--repo", "x", "--ack", "sometimes"},
		{"ship", "--source", "redis://127.0.0.1:1", "--repo", "x", "--spool-size", "lots"},
		{"ship", "--repo", "x"},
		{"ship", "--aof-dir", "/tmp", "--repo", "x", "--ack", "durable"},
		{"ship", "--source", "redis://127.0.0.1:1", "--repo", "x", "--spool-dir", "/tmp"},
	} {
		if code, _, errs := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, ExitUsage, errs)
		}
	}
	for in, want := range map[string]int64{"64MiB": 64 << 20, "1g": 1 << 30, "512k": 512 << 10, "2000000": 2000000, "1.5MB": 1500000} {
		if got, err := parseSpoolSize(in); err != nil || got != want {
			t.Errorf("parseSpoolSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestShip_RunUntilCancelled(t *testing.T) {
	src := redistest.Start(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"ship", "--source", src.URL(), "--repo", dir, "--name", "t", "--interval", "100ms", "--ack", "durable", "--json"},
			Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	}()
	b := sourceView(t, dir, "t")
	deadline := time.Now().Add(30 * time.Second)
	for {
		gens, _ := catalog.ListGenerations(context.Background(), b)
		if len(gens) == 1 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no generation; stderr:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := src.Client().Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := src.Client().Do(context.Background(), "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT = %d, %v", n, err)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	var st struct {
		DurableOffset, PrimaryOffset int64
		Generation                   string
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.DurableOffset == 0 || st.DurableOffset != st.PrimaryOffset || st.Generation == "" {
		t.Fatalf("output %q: %+v, %v", out.String(), st, err)
	}
}

func TestShip_AOFDir(t *testing.T) {
	src := redistest.Start(t, "--appendonly", "yes", "--aof-timestamp-enabled", "yes")
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"ship", "--aof-dir", filepath.Join(src.Dir, "appendonlydir"), "--repo", dir, "--name", "t", "--interval", "100ms", "--json"},
			Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	}()
	if err := src.Client().Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	b := sourceView(t, dir, "t")
	deadline := time.Now().Add(30 * time.Second)
	for {
		gens, _ := catalog.ListGenerations(context.Background(), b)
		if len(gens) == 1 && gens[0].Mode == "aof" {
			segs, _ := catalog.ListSegments(context.Background(), b, gens[0].ID)
			if len(segs) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("no aof generation with a segment; stderr:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != ExitOK {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	var st struct {
		DurableOffset int64
		Generation    string
	}
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || st.DurableOffset == 0 || st.Generation == "" {
		t.Fatalf("output %q: %+v, %v", out.String(), st, err)
	}
}

// ship sets the process's soft memory limit to its spool plus
// shipHeapBase, unless $GOMEMLIMIT chooses one or the run is in-process
// (no Stdio.SetMemoryLimit: tests must not change their binary's GC).
func TestShip_SoftMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		gomemlimit string
		want       int64 // 0: not set
	}{{"", 24<<20 + shipHeapBase}, {"1GiB", 0}} {
		var got int64
		e := &env{Stdio: Stdio{SetMemoryLimit: func(n int64) int64 { got = n; return 0 }},
			getenv: func(k string) string {
				if k == "GOMEMLIMIT" {
					return tc.gomemlimit
				}
				return ""
			}}
		softMemoryLimit(e, 24<<20+shipHeapBase)
		if got != tc.want {
			t.Errorf("GOMEMLIMIT=%q: limit %d, want %d", tc.gomemlimit, got, tc.want)
		}
	}
	softMemoryLimit(&env{getenv: func(string) string { return "" }}, 1<<20) // in-process: nothing to set, no panic
}

// restore sets its soft memory limit from --parallel (unless $GOMEMLIMIT),
// before it opens anything.
func TestRestore_SoftMemoryLimit(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("$GOMEMLIMIT is set: restore leaves the limit alone")
	}
	for _, tc := range []struct {
		args []string
		want int64
	}{
		{nil, restoreHeapBase + 6<<20},
		{[]string{"--parallel", "2"}, restoreHeapBase + 10<<20},
	} {
		var got int64
		var errb bytes.Buffer
		args := append([]string{"restore", "--from-rdb", filepath.Join(t.TempDir(), "missing.rdb"), "--to-dir", t.TempDir()}, tc.args...)
		code := Run(t.Context(), args, Stdio{In: strings.NewReader(""), Out: io.Discard, Err: &errb,
			SetMemoryLimit: func(n int64) int64 { got = n; return 0 }})
		if code != 1 || got != tc.want {
			t.Errorf("%v: exit %d, limit %d, want exit 1 and %d\n%s", tc.args, code, got, tc.want, errb.String())
		}
	}
}
