package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"redback/internal/storage"
)

// Run runs the conformance suite against backends made by newBackend.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b storage.Backend)
	}{
		{"RoundTrip", testRoundTrip},
		{"RangedGet", testRangedGet},
		{"Missing", testMissing},
		{"Overwrite", testOverwrite},
		{"AtomicOverwrite", testAtomicOverwrite},
		{"FailedPut", testFailedPut},
		{"CanceledPut", testCanceledPut},
		{"List", testList},
		{"ListStop", testListStop},
		{"Delete", testDelete},
		{"PutIfAbsent", testPutIfAbsent},
		{"PutIfMatch", testPutIfMatch},
		{"PutIfConcurrent", testPutIfConcurrent},
		{"NestedKeys", testNestedKeys},
		{"InvalidKeys", testInvalidKeys},
		{"Location", testLocation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, b)
		})
	}
}

// data returns n deterministic pseudo-random bytes.
func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// onlyReader hides every method but Read (no Seeker, no WriterTo).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func put(t *testing.T, b storage.Backend, key string, p []byte) storage.ObjectInfo {
	t.Helper()
	fi, err := b.Put(t.Context(), key, onlyReader{bytes.NewReader(p)})
	if err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(p), err)
	}
	if fi.Key != key || fi.Size != int64(len(p)) {
		t.Fatalf("Put(%q) info = key %q size %d, want size %d", key, fi.Key, fi.Size, len(p))
	}
	return fi
}

func get(t *testing.T, b storage.Backend, key string, off, length int64) []byte {
	t.Helper()
	p, err := tryGet(t.Context(), b, key, off, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, off, length, err)
	}
	return p
}

func tryGet(ctx context.Context, b storage.Backend, key string, off, length int64) ([]byte, error) {
	rc, err := b.Get(ctx, key, off, length)
	if err != nil {
		return nil, err
	}
	p, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return p, err
}

func list(t *testing.T, b storage.Backend, prefix string) []storage.ObjectInfo {
	t.Helper()
	var out []storage.ObjectInfo
	if err := b.List(t.Context(), prefix, func(fi storage.ObjectInfo) error {
		out = append(out, fi)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return out
}

func keys(infos []storage.ObjectInfo) []string {
	out := []string{}
	for _, fi := range infos {
		out = append(out, fi.Key)
	}
	return out
}

func wantNotExist(t *testing.T, b storage.Backend, key string) {
	t.Helper()
	if _, err := b.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat(%q) error = %v, want ErrNotExist", key, err)
	}
	if _, err := tryGet(t.Context(), b, key, 0, -1); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Get(%q) error = %v, want ErrNotExist", key, err)
	}
}

func testRoundTrip(t *testing.T, b storage.Backend) {
	for i, n := range []int{0, 1, 4096, 5<<20 + 7} {
		key := fmt.Sprintf("rt/obj-%d", n)
		p := data(uint64(i), n)
		fi := put(t, b, key, p)
		if got := get(t, b, key, 0, -1); !bytes.Equal(got, p) {
			t.Errorf("Get(%q) returned %d bytes, want the %d bytes put", key, len(got), n)
		}
		st, err := b.Stat(t.Context(), key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", key, err)
		}
		if st.Key != key || st.Size != int64(n) {
			t.Errorf("Stat(%q) = key %q size %d, want size %d", key, st.Key, st.Size, n)
		}
		if fi.ETag == "" || st.ETag != fi.ETag {
			t.Errorf("Stat(%q).ETag = %q, Put ETag = %q; want equal and non-empty", key, st.ETag, fi.ETag)
		}
		if st.ModTime.IsZero() {
			t.Errorf("Stat(%q).ModTime is zero", key)
		}
	}
}

func testRangedGet(t *testing.T, b storage.Backend) {
	p := data(7, 1000)
	put(t, b, "r", p)
	for _, tc := range []struct {
		off, length int64
		want        []byte
	}{
		{0, -1, p},
		{0, 10, p[:10]},
		{10, 20, p[10:30]},
		{990, -1, p[990:]},
		{995, 100, p[995:]},
		{999, 1, p[999:]},
		{500, 0, nil},
		{1000, -1, nil},
		{1000, 5, nil},
	} {
		got := get(t, b, "r", tc.off, tc.length)
		if !bytes.Equal(got, tc.want) {
			t.Errorf("Get(off %d, length %d) = %d bytes, want %d", tc.off, tc.length, len(got), len(tc.want))
		}
	}
	// Beyond the end: an empty reader or an error, never data or a panic.
	if got, err := tryGet(t.Context(), b, "r", 5000, -1); err == nil && len(got) != 0 {
		t.Errorf("Get(off beyond size) = %d bytes, want none", len(got))
	}
}

func testMissing(t *testing.T, b storage.Backend) {
	wantNotExist(t, b, "missing")
	wantNotExist(t, b, "missing/deep/key")
	if _, err := tryGet(t.Context(), b, "missing", 10, 5); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("ranged Get of missing key error = %v, want ErrNotExist", err)
	}
	put(t, b, "file", []byte("x"))
	// A key below an existing object's key is missing too.
	wantNotExist(t, b, "file/below")
}

func testOverwrite(t *testing.T, b storage.Backend) {
	a := put(t, b, "o", []byte("first version"))
	c := put(t, b, "o", []byte("second"))
	if got := get(t, b, "o", 0, -1); string(got) != "second" {
		t.Errorf("Get after overwrite = %q, want %q", got, "second")
	}
	if a.ETag == c.ETag {
		t.Errorf("overwrite kept ETag %q", a.ETag)
	}
	if got := keys(list(t, b, "")); len(got) != 1 || got[0] != "o" {
		t.Errorf("List after overwrite = %q, want [o]", got)
	}
}

// gatedReader returns the first half of p, then blocks until gate is closed
// (or ctx ends), then returns the rest.
type gatedReader struct {
	ctx     context.Context
	p       []byte
	half    int
	reached chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (g *gatedReader) Read(b []byte) (int, error) {
	if len(g.p) == 0 {
		return 0, io.EOF
	}
	if len(g.p) <= g.half {
		g.once.Do(func() { close(g.reached) })
		select {
		case <-g.gate:
		case <-g.ctx.Done():
			return 0, g.ctx.Err()
		}
		g.half = -1
	}
	n := len(g.p)
	if g.half > 0 {
		n = len(g.p) - g.half
	}
	n = copy(b[:min(len(b), n)], g.p)
	g.p = g.p[n:]
	return n, nil
}

func uniform(p []byte, c byte) bool {
	return len(bytes.Trim(p, string([]byte{c}))) == 0
}

func testAtomicOverwrite(t *testing.T, b storage.Backend) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	oldData := bytes.Repeat([]byte{'a'}, 1<<20)
	newData := bytes.Repeat([]byte{'b'}, 3<<20)
	put(t, b, "atomic", oldData)

	check := func(p []byte) error {
		switch {
		case len(p) == len(oldData) && uniform(p, 'a'):
		case len(p) == len(newData) && uniform(p, 'b'):
		default:
			return fmt.Errorf("get during put returned %d bytes, neither the old (%d) nor the new (%d) object", len(p), len(oldData), len(newData))
		}
		return nil
	}
	g := &gatedReader{ctx: ctx, p: newData, half: len(newData) / 2, reached: make(chan struct{}), gate: make(chan struct{})}
	putErr := make(chan error, 1)
	go func() {
		_, err := b.Put(ctx, "atomic", onlyReader{g})
		putErr <- err
	}()
	select {
	case <-g.reached:
	case err := <-putErr:
		t.Fatalf("Put returned before reading all data: %v", err)
	case <-ctx.Done():
		t.Fatal("timed out waiting for Put to read")
	}
	// Half the new object has been handed to Put: readers see the old one.
	for range 3 {
		p, err := tryGet(ctx, b, "atomic", 0, -1)
		if err != nil {
			t.Fatalf("Get during Put: %v", err)
		}
		if len(p) != len(oldData) || !uniform(p, 'a') {
			t.Fatalf("Get during Put returned %d bytes, want the old %d-byte object", len(p), len(oldData))
		}
	}
	if got := keys(list(t, b, "")); len(got) != 1 || got[0] != "atomic" {
		t.Errorf("List during Put = %q, want [atomic] (temporary objects must not be listed)", got)
	}
	// Let the Put finish while a reader loops (bounded by count and time).
	close(g.gate)
	readerErr := make(chan error, 1)
	go func() {
		for i := 0; i < 200 && ctx.Err() == nil; i++ {
			p, err := tryGet(ctx, b, "atomic", 0, -1)
			if err == nil {
				err = check(p)
			}
			if err != nil {
				readerErr <- err
				return
			}
			if len(p) == len(newData) {
				break
			}
		}
		readerErr <- nil
	}()
	if err := <-putErr; err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := <-readerErr; err != nil {
		t.Fatal(err)
	}
	if p := get(t, b, "atomic", 0, -1); len(p) != len(newData) || !uniform(p, 'b') {
		t.Fatalf("Get after Put returned %d bytes, want the new %d-byte object", len(p), len(newData))
	}
}

var errInjected = errors.New("injected read failure")

// failingReader returns n bytes of data and then errInjected.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errInjected
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 'f'
	}
	f.n -= k
	return k, nil
}

func testFailedPut(t *testing.T, b storage.Backend) {
	for _, n := range []int{0, 100, 2 << 20} {
		if _, err := b.Put(t.Context(), "fail/new", &failingReader{n: n}); err == nil {
			t.Fatalf("Put with a reader failing after %d bytes succeeded", n)
		}
		wantNotExist(t, b, "fail/new")
	}
	put(t, b, "fail/old", []byte("keep me"))
	if _, err := b.Put(t.Context(), "fail/old", &failingReader{n: 1 << 20}); err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	if got := get(t, b, "fail/old", 0, -1); string(got) != "keep me" {
		t.Errorf("after a failed overwrite Get = %q, want the old object", got)
	}
	if got := keys(list(t, b, "")); len(got) != 1 || got[0] != "fail/old" {
		t.Errorf("List after failed Puts = %q, want [fail/old] (no temporary objects)", got)
	}
}

func testCanceledPut(t *testing.T, b storage.Backend) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := b.Put(ctx, "canceled", bytes.NewReader([]byte("data"))); err == nil {
		t.Fatal("Put with a canceled context succeeded")
	}
	wantNotExist(t, b, "canceled")
	if got := keys(list(t, b, "")); len(got) != 0 {
		t.Errorf("List after canceled Put = %q, want none", got)
	}
}

func testList(t *testing.T, b storage.Backend) {
	all := []string{"x-1", "x/a-b", "x/a/b", "x/a/c/d", "x/ab", "x/b", "y/z"}
	// Put in a scrambled order.
	for _, i := range []int{3, 0, 6, 1, 5, 2, 4} {
		put(t, b, all[i], []byte(all[i]))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"x", all[:6]},
		{"x/", all[1:6]},
		{"x/a", all[1:5]},
		{"x/a/", all[2:4]},
		{"x/a/c/d", all[3:4]},
		{"y/", all[6:]},
		{"nope/", nil},
		{"x/q", nil},
	} {
		infos := list(t, b, tc.prefix)
		got := keys(infos)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		for _, fi := range infos {
			if fi.Size != int64(len(fi.Key)) {
				t.Errorf("List(%q): %s has size %d, want %d", tc.prefix, fi.Key, fi.Size, len(fi.Key))
			}
		}
	}
}

func testListStop(t *testing.T, b storage.Backend) {
	for i := range 5 {
		put(t, b, fmt.Sprintf("s/%d", i), []byte{byte(i)})
	}
	stop := errors.New("stop here")
	n := 0
	err := b.List(t.Context(), "s/", func(storage.ObjectInfo) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("List with fn failing on item 2: err = %v after %d calls, want the fn error after 2", err, n)
	}
}

func testDelete(t *testing.T, b storage.Backend) {
	if err := b.Delete(t.Context(), "never/was"); err != nil {
		t.Errorf("Delete of missing key: %v", err)
	}
	put(t, b, "d/1", []byte("1"))
	put(t, b, "d/2", []byte("2"))
	if err := b.Delete(t.Context(), "d/1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotExist(t, b, "d/1")
	if err := b.Delete(t.Context(), "d/1"); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if got := keys(list(t, b, "")); len(got) != 1 || got[0] != "d/2" {
		t.Errorf("List after Delete = %q, want [d/2]", got)
	}
}

func testPutIfAbsent(t *testing.T, b storage.Backend) {
	fi, err := b.PutIf(t.Context(), "lease", []byte("one"), storage.Condition{IfAbsent: true})
	if err != nil {
		t.Fatalf("first PutIf IfAbsent: %v", err)
	}
	if fi.Key != "lease" || fi.Size != 3 || fi.ETag == "" {
		t.Errorf("PutIf info = %+v, want key lease, size 3, an ETag", fi)
	}
	if _, err := b.PutIf(t.Context(), "lease", []byte("two"), storage.Condition{IfAbsent: true}); !errors.Is(err, storage.ErrPrecondition) {
		t.Errorf("second PutIf IfAbsent error = %v, want ErrPrecondition", err)
	}
	if got := get(t, b, "lease", 0, -1); string(got) != "one" {
		t.Errorf("Get = %q, want %q", got, "one")
	}
	if got := keys(list(t, b, "")); len(got) != 1 {
		t.Errorf("List = %q, want [lease]", got)
	}
}

func testPutIfMatch(t *testing.T, b storage.Backend) {
	v1 := put(t, b, "m", []byte("v1"))
	v2, err := b.PutIf(t.Context(), "m", []byte("v2"), storage.Condition{IfMatch: v1.ETag})
	if err != nil {
		t.Fatalf("PutIf with the current ETag: %v", err)
	}
	if v2.ETag == "" || v2.ETag == v1.ETag {
		t.Errorf("PutIf ETag = %q, want a new one (old %q)", v2.ETag, v1.ETag)
	}
	if st, err := b.Stat(t.Context(), "m"); err != nil || st.ETag != v2.ETag {
		t.Errorf("Stat after PutIf = %+v, %v; want ETag %q", st, err, v2.ETag)
	}
	if _, err := b.PutIf(t.Context(), "m", []byte("v3"), storage.Condition{IfMatch: v1.ETag}); !errors.Is(err, storage.ErrPrecondition) {
		t.Errorf("PutIf with a stale ETag error = %v, want ErrPrecondition", err)
	}
	if got := get(t, b, "m", 0, -1); string(got) != "v2" {
		t.Errorf("Get = %q, want v2", got)
	}
	if _, err := b.PutIf(t.Context(), "m-missing", []byte("x"), storage.Condition{IfMatch: v1.ETag}); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("PutIf IfMatch on a missing key error = %v, want ErrNotExist", err)
	}
	wantNotExist(t, b, "m-missing")
}

func testPutIfConcurrent(t *testing.T, b storage.Backend) {
	const n = 4
	run := func(cond storage.Condition, key string) int {
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, errs[i] = b.PutIf(t.Context(), key, []byte{byte('0' + i)}, cond)
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case errors.Is(err, storage.ErrPrecondition), storage.IsTransient(err):
			default:
				t.Errorf("concurrent PutIf(%+v): %v", cond, err)
			}
		}
		return wins
	}
	if wins := run(storage.Condition{IfAbsent: true}, "c/absent"); wins != 1 {
		t.Errorf("%d concurrent PutIf IfAbsent succeeded, want exactly 1", wins)
	}
	fi := put(t, b, "c/match", []byte("base"))
	if wins := run(storage.Condition{IfMatch: fi.ETag}, "c/match"); wins > 1 {
		t.Errorf("%d concurrent PutIf IfMatch with the same ETag succeeded, want at most 1", wins)
	}
}

func testNestedKeys(t *testing.T, b storage.Backend) {
	key := "gen/0001/snap/00000000000000ff.rdb.zst"
	put(t, b, key, []byte("snap"))
	put(t, b, "gen/0001/seg/0000000000000000-00000000000000ff.aof.zst", []byte("seg"))
	if got := get(t, b, key, 0, -1); string(got) != "snap" {
		t.Errorf("Get(%q) = %q", key, got)
	}
	if got := keys(list(t, b, "gen/0001/snap/")); len(got) != 1 || got[0] != key {
		t.Errorf("List = %q, want [%s]", got, key)
	}
	if err := b.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if got := keys(list(t, b, "gen/")); len(got) != 1 {
		t.Errorf("List after Delete = %q, want only the segment", got)
	}
}

func testInvalidKeys(t *testing.T, b storage.Backend) {
	ctx := t.Context()
	for _, key := range []string{"", "../x", "a/../../x", "/abs", "a//b", "a/./b", "a/", ".", "a\\b"} {
		ops := map[string]error{}
		_, ops["Put"] = b.Put(ctx, key, strings.NewReader("x"))
		_, ops["PutIf"] = b.PutIf(ctx, key, []byte("x"), storage.Condition{IfAbsent: true})
		_, ops["Get"] = b.Get(ctx, key, 0, -1)
		_, ops["Stat"] = b.Stat(ctx, key)
		ops["Delete"] = b.Delete(ctx, key)
		for op, err := range ops {
			if !errors.Is(err, storage.ErrInvalidKey) {
				t.Errorf("%s(%q) error = %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
	for _, prefix := range []string{"/abs", "../", "a//"} {
		if err := b.List(ctx, prefix, func(storage.ObjectInfo) error { return nil }); !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("List(%q) error = %v, want ErrInvalidKey", prefix, err)
		}
	}
	if got := keys(list(t, b, "")); len(got) != 0 {
		t.Errorf("List after invalid writes = %q, want none", got)
	}
}

func testLocation(t *testing.T, b storage.Backend) {
	if b.Location() == "" {
		t.Error("Location() is empty")
	}
	if b.Properties().Connections < 1 {
		t.Errorf("Properties().Connections = %d, want >= 1", b.Properties().Connections)
	}
}

// URLs checks a backend's URL parser (parse returns the Location of what it
// parsed) against cases: {URL, the location it should report, or a
// fragment of the error it should return}. No error may contain
// "topsecret" (put it where a credential would leak).
func URLs(t *testing.T, parse func(string) (string, error), cases [][3]string) {
	t.Helper()
	for _, c := range cases {
		tc := struct{ In, WantLoc, WantErr string }{c[0], c[1], c[2]}
		loc, err := parse(tc.In)
		switch {
		case tc.WantErr == "" && err != nil:
			t.Errorf("parse(%q): %v", tc.In, err)
		case tc.WantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.WantErr)):
			t.Errorf("parse(%q) error = %v, want %q", tc.In, err, tc.WantErr)
		case err != nil && strings.Contains(err.Error(), "topsecret"):
			t.Errorf("parse(%q) error leaks the secret: %v", tc.In, err)
		case err == nil && loc != tc.WantLoc:
			t.Errorf("parse(%q) location = %q, want %q", tc.In, loc, tc.WantLoc)
		}
	}
}
