package drill

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"redback/internal/digest"
	"redback/internal/keysample"
	"redback/internal/rdb"
)

func TestSampleFile_SmallestHashes(t *testing.T) {
	data, _ := dumpRDB(t)
	path := filepath.Join(t.TempDir(), "dump.rdb")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Every key's hash, read independently.
	f, _ := os.Open(path)
	defer f.Close()
	rd, err := rdb.NewReader(f, rdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var all []uint64
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Kind == rdb.RecordKey {
			all = append(all, keysample.Hash(rec.DB, rec.Key))
		}
	}
	slices.Sort(all)

	s, err := sampleFile(t.Context(), path, 10, digest.Score70, true)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, k := range s.keys {
		got = append(got, keysample.Hash(k.DB, []byte(k.Key)))
		if len(k.Digest) != 40 {
			t.Errorf("key %q digest %q", k.Key, k.Digest)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, all[:10]) {
		t.Fatalf("sample hashes %v, want the 10 smallest %v", got, all[:10])
	}
	if s.digest == "" || len(s.digest) != 40 {
		t.Fatalf("full digest %q", s.digest)
	}
}

// The sampling pass of the drill streams a big value into the sample's
// value digest and the full digest, never holding it: on a 64 MiB list
// and a 16 MiB string it allocates a small part of them, and both digests
// equal those of the values held whole.
func TestSampleFile_BigValueStreamed(t *testing.T) {
	const size = 64 << 20
	elems := make([][]byte, 128)
	for i := range elems {
		elems[i] = []byte("element-" + strconv.Itoa(i) + "-0123456789abcdef0123456789abcdef")
	}
	node := rdb.AppendRawString(rdb.AppendLen(nil, 2), rdb.BuildListpack(elems))
	val := rdb.AppendLen(nil, uint64(size/len(node)))
	for range size / len(node) {
		val = append(val, node...)
	}
	var file bytes.Buffer
	w, err := rdb.NewWriter(&file, 11)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.SelectDB(3)
	_ = w.WriteKey([]byte("small"), rdb.TypeString, rdb.EncodeString([]byte("v")), -1, -1, -1)
	_ = w.WriteKey([]byte("big"), rdb.TypeListQuicklist2, val, 4102444800000, -1, -1)
	_ = w.WriteKey([]byte("bigstring"), rdb.TypeString, rdb.AppendRawString(nil, bytes.Repeat([]byte("0123456789abcdef"), 1<<20)), -1, -1, -1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// The digests of the values held whole.
	all := digest.New(digest.Options{ScoreFormat: digest.Score72})
	want := map[string]string{}
	rd, err := rdb.NewReader(bytes.NewReader(file.Bytes()), rdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = rd.ForEach(t.Context(), func(rec *rdb.Record) error {
		if rec.Kind != rdb.RecordKey {
			return nil
		}
		kd, err := all.KeyDigest(rec)
		want[string(rec.Key)] = kd
		if err != nil {
			return err
		}
		return all.Add(rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dump.rdb")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	val = nil
	file = bytes.Buffer{}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := sampleFile(t.Context(), path, 5, digest.Score72, true)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d MiB list sampled: %.1f MiB allocated", size>>20, float64(alloc)/(1<<20))
	if s.digest != all.Sum() || len(s.keys) != 3 {
		t.Fatalf("digest %s, %d keys sampled; held whole: %s", s.digest, len(s.keys), all.Sum())
	}
	for _, k := range s.keys {
		if k.DB != 3 || k.Digest != want[k.Key] {
			t.Errorf("db %d key %q: value digest %s, held whole %s", k.DB, k.Key, k.Digest, want[k.Key])
		}
	}
	if alloc > size/8 {
		t.Errorf("%.1f MiB allocated sampling a %d MiB value: want it streamed, not held", float64(alloc)/(1<<20), size>>20)
	}
}
