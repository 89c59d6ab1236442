package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/storage"
	"redback/internal/storage/file"
)

// copyTree copies the directory src into a new temp dir and returns it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestFormat1Fixture: a repository written by the format-1 code (see
// testdata/format1/README.md) still lists, verifies and restores, to the
// digests its source server reported.
func TestFormat1Fixture(t *testing.T) {
	repo := copyTree(t, filepath.Join("testdata", "format1"))
	code, out, errs := runCLI(t, "list", "--repo", repo, "--json")
	if code != 0 {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	var l struct {
		Snapshots []struct {
			ID     string `json:"id"`
			Digest string `json:"digest"`
		} `json:"snapshots"`
		Generations []json.RawMessage `json:"generations"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("list --json: %v\n%s", err, out)
	}
	if len(l.Snapshots) != 2 || len(l.Generations) != 1 {
		t.Fatalf("list: %d snapshots, %d generations, want 2 and 1\n%s", len(l.Snapshots), len(l.Generations), out)
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != 0 || !strings.Contains(out, "all good") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		digest string
	}{
		{"snapshot", []string{"--snapshot", "20261207T030946.397Z-e80f36"}, "dbd14f32ee46a5a8516ffcb1851d8f05996045f5"},
		{"latest", []string{"--latest"}, "bfa2f4a5fe019ec3471142613b2ec8cc18c339fc"},
		{"offset", []string{"--to-offset", "214"}, "ece110d00ba79d80178ef572dea9f65529a908db"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := redistest.Start(t)
			args := append([]string{"restore", "--repo", repo, "--to-redis", dst.URL()}, tc.args...)
			if code, out, errs := runCLI(t, args...); code != 0 {
				t.Fatalf("restore %v: exit %d\n%s%s", tc.args, code, out, errs)
			}
			if got := dst.Digest(t.Context()); got != tc.digest {
				t.Fatalf("restore %v: digest %s, want %s", tc.args, got, tc.digest)
			}
		})
	}
}

// sourceView is the objects of source name in the file repository dir.
func sourceView(t *testing.T, dir, name string) storage.Backend {
	t.Helper()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return catalog.NamedSource(name).Backend(b)
}

// TestFormat1Fixture_Upgrade: the first writer of another server upgrades
// the format-1 fixture in place (marker only): its history stays one
// source, named after its server, that still restores; the new source
// lives beside it.
func TestFormat1Fixture_Upgrade(t *testing.T) {
	repo := copyTree(t, filepath.Join("testdata", "format1"))
	src := redistest.Start(t)
	redistest.Populate(t, src, 20)
	if code, out, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", repo, "--name", "other"); code != ExitOK {
		t.Fatalf("snapshot into the format-1 repository: exit %d\n%s%s", code, out, errs)
	}
	l := listRepo(t, repo)
	if strings.Join(l.Sources, ",") != "127.0.0.1-38057,other" || len(l.Snapshots) != 3 || len(l.Generations) != 1 {
		t.Fatalf("after the upgrade: sources %v, %d snapshots, %d generations", l.Sources, len(l.Snapshots), len(l.Generations))
	}
	if code, out, errs := runCLI(t, "verify", "--repo", repo); code != ExitOK {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errs)
	}
	dst := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--name", "127.0.0.1-38057", "--to-offset", "214", "--to-redis", dst.URL()); code != ExitOK {
		t.Fatalf("restore of the format-1 history: exit %d\n%s%s", code, out, errs)
	}
	if got := dst.Digest(t.Context()); got != "ece110d00ba79d80178ef572dea9f65529a908db" {
		t.Fatalf("format-1 history after the upgrade: digest %s", got)
	}
	dst2 := redistest.Start(t)
	if code, out, errs := runCLI(t, "restore", "--repo", repo, "--name", "other", "--to-redis", dst2.URL()); code != ExitOK {
		t.Fatalf("restore of the new source: exit %d\n%s%s", code, out, errs)
	}
	if got, want := dst2.Digest(t.Context()), src.Digest(t.Context()); got != want {
		t.Fatalf("new source: digest %s, want %s", got, want)
	}
	var m catalog.Marker
	b, _ := file.New(repo)
	if err := catalog.GetJSON(t.Context(), b, catalog.MarkerKey, &m); err != nil || m.Format != 2 || m.RootSource != "127.0.0.1-38057" {
		t.Fatalf("marker after the upgrade: %+v %v", m, err)
	}
}
