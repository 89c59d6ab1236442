package drill

import (
	"io"
	"os"
	"path/filepath"
	"slices"
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
