package keysample

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"redback/internal/digest"
	"redback/internal/rdb"
	"redback/internal/redistest"
)

// sampleOf offers every key of the RDB in data to a Sampler of n keys;
// with stream, every value (strings too) is streamed into it from its first
// piece on. It returns the sample as sorted "db key digest expire" lines.
func sampleOf(t *testing.T, data []byte, n int, stream bool) []string {
	t.Helper()
	s := New(n, digest.Score70)
	opts := rdb.Options{}
	if stream {
		opts = rdb.Options{StreamAbove: 1, StreamStrings: true, StreamValues: func(rec *rdb.Record) (*rdb.Visitor, error) { return s.Stream(rec.DB, rec) }}
	}
	rd, err := rdb.NewReader(bytes.NewReader(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	streamed := 0
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Streamed {
			streamed++
		}
		if err := s.Offer(rec.DB, rec); err != nil {
			t.Fatal(err)
		}
	}
	if stream && streamed == 0 {
		t.Fatal("no value was streamed")
	}
	var out []string
	for _, k := range s.Keys() {
		out = append(out, fmt.Sprintf("%d %q %s %d", k.DB, k.Key, k.Digest, k.Expire))
	}
	slices.Sort(out)
	return out
}

// A sample whose big values were streamed (Sampler.Stream) is the sample
// of the values held whole: the same keys, value digests and expire times,
// whether every key enters it or only a few.
func TestStream_SameSample(t *testing.T) {
	srv := redistest.Start(t)
	redistest.PopulateAll(t, srv, 200)
	if err := srv.Client().Save(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(srv.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1 << 20, 7} {
		whole, streamed := sampleOf(t, data, n, false), sampleOf(t, data, n, true)
		if !slices.Equal(whole, streamed) {
			t.Errorf("sample of %d: streamed %v, held whole %v", n, streamed, whole)
		}
	}
}

// bigList is an RDB holding a quicklist of about size bytes between two
// small keys.
func bigList(t *testing.T, size int) []byte {
	t.Helper()
	var file bytes.Buffer
	w, err := rdb.NewWriter(&file, 11)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.SelectDB(0)
	_ = w.WriteKey([]byte("before"), rdb.TypeString, rdb.EncodeString([]byte("b")), -1, -1, -1)
	var nodes [][]byte
	for n := 0; n < size; {
		elems := make([][]byte, 128)
		for j := range elems {
			elems[j] = []byte("element-" + strconv.Itoa(n) + "-0123456789abcdef0123456789abcdef")
			n += len(elems[j])
		}
		nodes = append(nodes, rdb.BuildListpack(elems))
	}
	val := rdb.AppendLen(nil, uint64(len(nodes)))
	for _, nd := range nodes {
		val = rdb.AppendRawString(rdb.AppendLen(val, 2), nd)
	}
	if err := w.WriteKey([]byte("big"), rdb.TypeListQuicklist2, val, -1, -1, -1); err != nil {
		t.Fatal(err)
	}
	_ = w.WriteKey([]byte("after"), rdb.TypeString, rdb.EncodeString([]byte("a")), -1, -1, -1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return file.Bytes()
}

// A sampled big value is digested as it streams, never held: sampling a
// 64 MiB list allocates a small part of it (the reader's buffers), where
// holding it allocates at least its size. Measured as bytes allocated,
// which does not depend on timing.
func TestStream_BigValueNotHeld(t *testing.T) {
	const size = 64 << 20
	data := bigList(t, size)
	allocated := func(stream bool) (uint64, []string) {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := sampleOf(t, data, 3, stream)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, s
	}
	whole, ws := allocated(false)
	streamed, ss := allocated(true)
	t.Logf("a %d MiB list sampled: %.1f MiB allocated held whole, %.1f MiB streamed", size>>20, float64(whole)/(1<<20), float64(streamed)/(1<<20))
	if !slices.Equal(ws, ss) || len(ss) != 3 {
		t.Fatalf("streamed sample %v, held whole %v", ss, ws)
	}
	if streamed > size/8 {
		t.Errorf("%.1f MiB allocated sampling a %d MiB value streamed: want it not held", float64(streamed)/(1<<20), size>>20)
	}
}
