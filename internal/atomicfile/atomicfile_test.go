package atomicfile

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

func TestWriter_WritesEverything(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 3*writebackChunk+12345)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	w := &Writer{F: f}
	for p := want; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(3<<20))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if w.hinted == 0 || w.hinted > w.off {
		t.Errorf("writeback requested up to %d of %d bytes", w.hinted, w.off)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file differs (%d bytes, err %v)", len(got), err)
	}
	if err := SyncDir(dir); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
	if err := SyncDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("SyncDir of a missing dir: no error")
	}
}
