package verify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/redistest"
	"redback/internal/snapshot"
	"redback/internal/storage"
	"redback/internal/storage/file"
	"redback/internal/storage/mem"
)

// dumpRDB returns the SAVEd dump.rdb of redistest.SmallDump.
func dumpRDB(t *testing.T) []byte { return redistest.SmallDump(t, 200, nil) }

func store(t *testing.T, b storage.Backend, rdbBytes []byte, id string, rs *pack.Recipients) *catalog.Snapshot {
	t.Helper()
	snap, err := snapshot.Store(t.Context(), bytes.NewReader(rdbBytes), snapshot.Options{Backend: b, ID: id, Method: "rdb-file", Pack: pack.Options{Recipients: rs}})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func fileRepo(t *testing.T) (*file.Backend, string) {
	t.Helper()
	dir := t.TempDir()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b, dir
}

func codes(fs []Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, f.Severity.String()+":"+f.Code)
	}
	return strings.Join(s, ",")
}

func TestRun_Good(t *testing.T) {
	data := dumpRDB(t)
	b := mem.New()
	store(t, b, data, "20261125T000000.000Z-000001", nil)
	store(t, b, data, "20261125T000001.000Z-000002", nil)
	var items []Item
	sum, err := Run(t.Context(), b, Options{OnItem: func(it Item) { items = append(items, it) }})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.OK() || len(sum.Findings) != 0 || sum.Checked != 2 || sum.Snapshots != 2 {
		t.Fatalf("summary %+v", sum)
	}
	if len(items) != 2 || items[0].ID != "20261125T000000.000Z-000001" || items[0].Keys != 210 || items[0].Bytes == 0 {
		t.Fatalf("items %+v", items)
	}
}

func TestRun_Damage(t *testing.T) {
	data := dumpRDB(t)
	b, dir := fileRepo(t)
	ids := []string{"20261125T000000.000Z-00000a", "20261125T000001.000Z-00000b", "20261125T000002.000Z-00000c", "20261125T000003.000Z-00000d", "20261125T000004.000Z-00000e"}
	snaps := map[string]*catalog.Snapshot{}
	for _, id := range ids {
		snaps[id] = store(t, b, data, id, nil)
	}
	path := func(id string) string { return filepath.Join(dir, filepath.FromSlash(snaps[id].Object.Key)) }
	// a: bit flip in the middle of the stored object
	raw, _ := os.ReadFile(path(ids[0]))
	raw[len(raw)/2] ^= 0x10
	os.WriteFile(path(ids[0]), raw, 0o644)
	// b: truncated
	raw, _ = os.ReadFile(path(ids[1]))
	os.WriteFile(path(ids[1]), raw[:len(raw)-100], 0o644)
	// c: data object missing
	os.Remove(path(ids[2]))
	// d: manifest digest and census tampered (data intact)
	s := snaps[ids[3]]
	s.Digest = strings.Repeat("0", 40)
	s.Census.Keys++
	if err := catalog.PutJSON(t.Context(), b, catalog.SnapshotManifestKey(s.ID), s); err != nil {
		t.Fatal(err)
	}
	// an unreadable manifest and an orphan data object
	os.WriteFile(filepath.Join(dir, "snapshots", "20261125T000009.000Z-00000f.json"), []byte("{not json"), 0o644)
	os.WriteFile(filepath.Join(dir, "data", "snapshots", "20261124T000000.000Z-deadbe.rdb.zst"), []byte("partial"), 0o644)

	sum, err := Run(t.Context(), b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sum.Findings {
		t.Log(f)
	}
	if sum.OK() || !sum.Damaged() || sum.Checked != 6 {
		t.Fatalf("summary %+v", sum)
	}
	by := map[string][]Finding{}
	for _, f := range sum.Findings {
		by[f.Object] = append(by[f.Object], f)
	}
	want := map[string]string{
		snaps[ids[0]].Object.Key:                             "sha256",
		snaps[ids[1]].Object.Key:                             "size",
		snaps[ids[2]].Object.Key:                             "missing",
		snaps[ids[3]].Object.Key:                             "census",
		"snapshots/20261125T000009.000Z-00000f.json":         "manifest",
		"data/snapshots/20261124T000000.000Z-deadbe.rdb.zst": "orphan",
	}
	for obj, code := range want {
		if !strings.Contains(codes(by[obj]), code) {
			t.Errorf("%s: findings %s, want %s: %v", obj, codes(by[obj]), code, by[obj])
		}
	}
	if !strings.Contains(codes(by[snaps[ids[3]].Object.Key]), "digest") {
		t.Errorf("tampered digest not found: %v", by[snaps[ids[3]].Object.Key])
	}
	if got := by[snaps[ids[4]].Object.Key]; len(got) != 0 {
		t.Errorf("intact snapshot has findings %v", got)
	}
	for _, f := range by["data/snapshots/20261124T000000.000Z-deadbe.rdb.zst"] {
		if f.Severity != Info {
			t.Errorf("orphan severity %v", f.Severity)
		}
	}
	// The truncated object also fails to decode: both are reported.
	if c := codes(by[snaps[ids[1]].Object.Key]); !strings.Contains(c, "sha256") || !strings.Contains(c, "decode") && !strings.Contains(c, "format") {
		t.Errorf("truncation findings %s", c)
	}
}

func TestRun_Encrypted(t *testing.T) {
	data := dumpRDB(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pack.ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	store(t, b, data, "20261125T000000.000Z-000001", rs)

	sum, err := Run(t.Context(), b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.OK() || sum.Damaged() || !sum.Has(CodeIdentity) {
		t.Fatalf("no identity: %+v", sum)
	}
	sum, err = Run(t.Context(), b, Options{Identities: []age.Identity{id}})
	if err != nil || !sum.OK() {
		t.Fatalf("with identity: %+v %v", sum, err)
	}
	other, _ := age.GenerateX25519Identity()
	sum, err = Run(t.Context(), b, Options{Identities: []age.Identity{other}})
	if err != nil || !sum.Has(CodeIdentity) || sum.Damaged() {
		t.Fatalf("wrong identity: %+v %v", sum, err)
	}
}

func TestRun_IDsAndSample(t *testing.T) {
	data := dumpRDB(t)
	b := mem.New()
	var ids []string
	for i := range 10 {
		id := fmt.Sprintf("20261125T0000%02d.000Z-%06x", i, i)
		ids = append(ids, id)
		store(t, b, data, id, nil)
	}
	sum, err := Run(t.Context(), b, Options{IDs: []string{ids[3], "20991231T000000.000Z-ffffff"}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 2 || !sum.Has(CodeMissing) {
		t.Fatalf("ids: %+v", sum)
	}
	a := Sample(ids, 30)
	if len(a) != 3 {
		t.Fatalf("sample 30%% of 10: %v", a)
	}
	if b := Sample(ids, 30); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("sample not stable: %v %v", a, b)
	}
	if got := Sample(ids[:2], 1); len(got) != 1 {
		t.Fatalf("sample of a small repo: %v", got)
	}
	var seen []string
	sum, err = Run(t.Context(), b, Options{SamplePercent: 30, OnItem: func(it Item) { seen = append(seen, it.ID) }})
	if err != nil || sum.Checked != 3 || fmt.Sprint(seen) != fmt.Sprint(a) {
		t.Fatalf("sampled run: %v %+v %v", seen, sum, err)
	}
}

func TestRun_Canceled(t *testing.T) {
	data := dumpRDB(t)
	b := mem.New()
	store(t, b, data, "20261125T000000.000Z-000001", nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Run(ctx, b, Options{}); err == nil {
		t.Fatal("canceled run returned no error")
	}
}

// segmentChecker stands for the log shipping checks that plug in later.
type segmentChecker struct{}

func (segmentChecker) Check(ctx context.Context, b storage.Backend, opts *Options, report func(Item)) error {
	report(Item{Kind: "segment", ID: "0000000000000000-0000000000000010", Object: "gen/x/seg/0000000000000000-0000000000000010.aof.zst",
		Findings: []Finding{{Object: "gen/x/seg/0000000000000000-0000000000000010.aof.zst", Severity: Error, Code: CodeSHA256, Message: "sha256 differs"}}})
	return nil
}

func TestRun_Checkers(t *testing.T) {
	b := mem.New()
	var kinds []string
	sum, err := Run(t.Context(), b, Options{Checkers: []Checker{segmentChecker{}}, OnItem: func(it Item) { kinds = append(kinds, it.Kind) }})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Checked != 1 || !sum.Damaged() || fmt.Sprint(kinds) != "[segment]" {
		t.Fatalf("%+v %v", sum, kinds)
	}
}

// inFlight counts the data objects being read at once.
type inFlight struct {
	storage.Backend
	mu       sync.Mutex
	cur, max int
}

func (b *inFlight) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	rc, err := b.Backend.Get(ctx, key, off, length)
	if err != nil || !strings.HasPrefix(key, catalog.SnapshotDataPrefix) {
		return rc, err
	}
	b.mu.Lock()
	b.cur++
	b.max = max(b.max, b.cur)
	b.mu.Unlock()
	return &countedReader{ReadCloser: rc, b: b}, nil
}

type countedReader struct {
	io.ReadCloser
	b    *inFlight
	once sync.Once
}

func (r *countedReader) Close() error {
	r.once.Do(func() {
		r.b.mu.Lock()
		r.b.cur--
		r.b.mu.Unlock()
	})
	return r.ReadCloser.Close()
}

// Verify of several snapshots checks at most DefaultParallel of them at
// once unless told (each check holds its own buffers, so memory grows with
// how many run together), and at most --parallel when told.
func TestRun_ChecksAtOnce(t *testing.T) {
	data := dumpRDB(t)
	b := &inFlight{Backend: mem.New()}
	for i := range 4 {
		store(t, b.Backend, data, fmt.Sprintf("20261125T00000%d.000Z-00000%d", i, i+1), nil)
	}
	if got := DefaultParallel(b); got < 1 || got > max(1, runtime.GOMAXPROCS(0)/4) {
		t.Fatalf("DefaultParallel %d with %d CPUs", got, runtime.GOMAXPROCS(0))
	}
	for _, par := range []int{0, 3} {
		b.max = 0
		sum, err := Run(t.Context(), b, Options{Parallel: par})
		if err != nil || !sum.OK() || sum.Checked != 4 {
			t.Fatalf("parallel %d: %+v, %v", par, sum, err)
		}
		want := par
		if par == 0 {
			want = DefaultParallel(b)
		}
		if b.max == 0 || b.max > want {
			t.Errorf("parallel %d: %d data objects read at once, want 1..%d", par, b.max, want)
		}
	}
}
