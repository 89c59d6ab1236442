package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"redback/internal/redistest"
	"redback/internal/storage/s3/s3test"
)

// faultProxy is a toxiproxy proxy (its Go packages, in-process) on a free
// loopback port in front of upstream.
type faultProxy struct {
	t *testing.T
	p *toxiproxy.Proxy
}

func startFaultProxy(t *testing.T, name, upstream string) *faultProxy {
	t.Helper()
	zerolog.SetGlobalLevel(zerolog.ErrorLevel) // the toxics log through zerolog's global logger
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return &faultProxy{t: t, p: p}
}

// Addr is the proxy's listen address.
func (f *faultProxy) Addr() string { return f.p.Listen }

// add adds a toxic (toxiproxy's JSON form: type, stream, attributes) to
// every connection, present and future.
func (f *faultProxy) add(name, typ, stream string, attrs map[string]any) {
	f.t.Helper()
	b, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	if _, err := f.p.Toxics.AddToxicJson(strings.NewReader(string(b))); err != nil {
		f.t.Fatalf("toxic %s: %v", name, err)
	}
}

func (f *faultProxy) remove(name string) {
	f.t.Helper()
	if err := f.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
		f.t.Fatalf("remove toxic %s: %v", name, err)
	}
}

// netFault is one fault of TestReliability_NetworkFaults: toxics added to
// the Redis or the S3 proxy for a while, then removed.
type netFault struct {
	name   string
	s3     bool // on the S3 proxy (else between ship and Redis)
	typ    string
	stream string
	attrs  map[string]any
	hold   time.Duration
	long   bool // only with REDBACK_RELIABILITY=1
	// exits: ship must stop (exit 1, lease lost: it could not renew its
	// lease for longer than the lease TTL) and is started again.
	exits bool
}

// TestReliability_NetworkFaults runs `redback ship --ack durable` from a
// redis-server under write load into an S3 repository (versitygw), with a
// toxiproxy proxy on loopback between ship and Redis and another between
// ship and S3, and injects one fault after the other: latency, a bandwidth
// limit, connections reset mid-stream, connections that swallow data and
// then close, and (long version) a half-open link that never closes. After
// each fault is removed every write must become durable (WAIT 1) within
// 90 s. At the end: one generation or new ones each with a logged reason
// and no silent gap, no incomplete multipart upload left, `verify` clean,
// and `restore --at latest` digest-equal to the source at a quiet point.
func TestReliability_NetworkFaults(t *testing.T) {
	long := os.Getenv("REDBACK_RELIABILITY") == "1"
	ctx := t.Context()
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	redis := startFaultProxy(t, "redis", src.Addr())
	s3srv := s3test.StartServer(t)
	s3test.SetEnv(t, s3srv.AccessKey, s3srv.SecretKey)
	s3p := startFaultProxy(t, "s3", strings.TrimPrefix(s3srv.Endpoint, "http://"))
	via := *s3srv
	via.Endpoint = "http://" + s3p.Addr()
	repo := via.URL("net")

	ld := startWriteLoad(t, src, uint64(time.Now().UnixNano()))
	r := startShipVia(t, src, "redis://"+redis.Addr(), repo, "--ack", "durable", "--interval", "200ms", "--json")
	if !ld.durable(60 * time.Second) {
		t.Fatalf("ship did not store the first writes in 60 s:\n%s", r.stderr.String())
	}
	faults := []netFault{
		{name: "redis latency 300ms ±100ms", typ: "latency", stream: "downstream", attrs: map[string]any{"latency": 300, "jitter": 100}, hold: 3 * time.Second},
		{name: "redis bandwidth 32 KB/s", typ: "bandwidth", stream: "downstream", attrs: map[string]any{"rate": 32}, hold: 3 * time.Second},
		{name: "redis reset_peer after 300ms", typ: "reset_peer", stream: "downstream", attrs: map[string]any{"timeout": 300}, hold: 3 * time.Second},
		{name: "redis timeout 2s (data swallowed, then closed)", typ: "timeout", stream: "downstream", attrs: map[string]any{"timeout": 2000}, hold: 3 * time.Second},
		{name: "redis half-open (blackhole both ways, never closed)", typ: "timeout", stream: "both", attrs: map[string]any{"timeout": 0}, hold: 70 * time.Second, long: true},
		{name: "s3 latency 500ms", s3: true, typ: "latency", stream: "downstream", attrs: map[string]any{"latency": 500}, hold: 3 * time.Second},
		{name: "s3 bandwidth 16 KB/s up", s3: true, typ: "bandwidth", stream: "upstream", attrs: map[string]any{"rate": 16}, hold: 3 * time.Second},
		{name: "s3 reset_peer after 100ms", s3: true, typ: "reset_peer", stream: "downstream", attrs: map[string]any{"timeout": 100}, hold: 3 * time.Second},
		{name: "s3 timeout 2s (data swallowed, then closed)", s3: true, typ: "timeout", stream: "upstream", attrs: map[string]any{"timeout": 2000}, hold: 3 * time.Second},
		{name: "s3 half-open for 8 s (blackhole both ways, never closed)", s3: true, typ: "timeout", stream: "both", attrs: map[string]any{"timeout": 0}, hold: 8 * time.Second, long: true},
		{name: "s3 half-open for 25 s, beyond the lease TTL (15 s)", s3: true, typ: "timeout", stream: "both", attrs: map[string]any{"timeout": 0}, hold: 25 * time.Second, long: true, exits: true},
	}
	injected := 0
	logs := "" // of the ship runs that ended
	for i, f := range faults {
		if f.long && !long {
			continue
		}
		p := redis
		if f.s3 {
			p = s3p
		}
		streams := []string{f.stream}
		if f.stream == "both" {
			streams = []string{"upstream", "downstream"}
		}
		for _, st := range streams {
			p.add(fmt.Sprintf("f%d-%s", i, st), f.typ, st, f.attrs)
		}
		time.Sleep(f.hold)
		for _, st := range streams {
			p.remove(fmt.Sprintf("f%d-%s", i, st))
		}
		injected++
		if f.exits {
			for i := 0; i < 600 && !strings.Contains(r.stderr.String(), "lease lost"); i++ {
				time.Sleep(100 * time.Millisecond)
			}
			if code := r.stop(); code != ExitFailure || !strings.Contains(r.stderr.String(), "repository lease lost: not renewed before") {
				t.Fatalf("%s: ship exit %d, want 1 saying the lease could not be renewed:\n%s", f.name, code, r.stderr.String())
			}
			t.Logf("%s: ship stopped with exit 1: %s", f.name, lastLine(r.stderr.String()))
			logs += r.stderr.String()
			r = startShipVia(t, src, "redis://"+redis.Addr(), repo, "--ack", "durable", "--interval", "200ms", "--json")
		}
		began := time.Now()
		if !ld.durable(90 * time.Second) {
			t.Fatalf("%s: the writes did not become durable within 90 s after the fault was removed:\n%s", f.name, r.stderr.String())
		}
		t.Logf("%s: held %s; durable again %s after it was removed", f.name, f.hold, time.Since(began).Round(100*time.Millisecond))
	}
	ld.stop()
	if !ld.durable(60 * time.Second) {
		t.Fatalf("not durable at the quiet point:\n%s", r.stderr.String())
	}
	if code := r.stop(); code != ExitOK {
		t.Fatalf("ship: exit %d\n%s", code, r.stderr.String())
	}
	var st struct {
		Reconnects  int64 `json:"reconnects"`
		Generations int64 `json:"generations"`
	}
	_ = json.Unmarshal([]byte(r.stdout.String()), &st)
	logs += r.stderr.String()
	gens := listRepo(t, repo).Generations
	for _, w := range gens {
		for _, g := range w.Gaps {
			t.Errorf("generation %s has a silent gap or overlap %+v", w.Generation, g)
		}
	}
	if len(gens) > 1 && !strings.Contains(logs, "generation") {
		t.Errorf("%d generations and no log line says why:\n%s", len(gens), logs)
	}
	up, err := s3srv.Client().ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s3srv.Bucket)})
	if err != nil || len(up.Uploads) != 0 {
		t.Errorf("incomplete multipart uploads left: %v %v", up, err)
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	dst := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--at", "latest", "--to-redis", dst.URL()); code != ExitOK {
		t.Fatalf("restore --at latest: exit %d\n%s%s", code, out, errs)
	}
	if got, want := dst.Digest(ctx), src.Digest(ctx); got != want {
		t.Fatalf("restored digest %s, want the source's %s", got, want)
	}
	t.Logf("network faults: %d injected; %d writes, %d acknowledged by WAIT; ship reconnects %d, %d generation(s) in the repository (%d started by this run), 0 silent gaps, 0 incomplete uploads; verify clean; restore --at latest digest-equal",
		injected, ld.writes.Load(), ld.ackedWrites.Load(), st.Reconnects, len(gens), st.Generations)
	if testing.Verbose() {
		t.Logf("ship log:\n%s", logs)
	}
}
