package aof

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseManifest(t *testing.T) {
	long := "file " + strings.Repeat("a", 1030) + " seq 1 type i\n"
	for _, tc := range []struct {
		name string
		in   string
		want *Manifest
		err  error
	}{
		{"redis", "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n",
			&Manifest{Base: &ManifestFile{"appendonly.aof.1.base.rdb", 1, TypeBase}, Incr: []ManifestFile{{"appendonly.aof.1.incr.aof", 1, TypeIncr}}}, nil},
		{"history and comments", "# c\nfile b seq 2 type b\nfile h seq 1 type h\n#x\nfile i seq 3 type i\nfile j seq 4 type i\n",
			&Manifest{Base: &ManifestFile{"b", 2, TypeBase}, History: []ManifestFile{{"h", 1, TypeHistory}}, Incr: []ManifestFile{{"i", 3, TypeIncr}, {"j", 4, TypeIncr}}}, nil},
		{"case-insensitive keys, extra pairs, any order", "TYPE i Seq 7 FiLe x.aof future yes\n",
			&Manifest{Incr: []ManifestFile{{"x.aof", 7, TypeIncr}}}, nil},
		{"quoted name", "file \"a b\\x41\\n\" seq 1 type i\r\n", &Manifest{Incr: []ManifestFile{{"a bA\n", 1, TypeIncr}}}, nil},
		{"single quoted", "file 'it\\'s' seq 1 type i\n", &Manifest{Incr: []ManifestFile{{"it's", 1, TypeIncr}}}, nil},
		{"empty", "", nil, ErrManifestEmpty},
		{"no final newline", "file a seq 1 type i", nil, ErrManifestLineTooLong},
		{"too long", long, nil, ErrManifestLineTooLong},
		{"blank line", "file a seq 1 type i\n\n", nil, ErrManifestFormat},
		{"odd tokens", "file a seq 1 type i x\n", nil, ErrManifestFormat},
		{"few tokens", "file a seq 1\n", nil, ErrManifestFormat},
		{"seq zero", "file a seq 0 type i\n", nil, ErrManifestFormat},
		{"missing type", "file a seq 1 typo i\n", nil, ErrManifestFormat},
		{"unbalanced quote", "file \"a seq 1 type i\n", nil, ErrManifestFormat},
		{"quote then text", "file \"a\"b seq 1 type i\n", nil, ErrManifestFormat},
		{"path", "file ../a seq 1 type i\n", nil, ErrManifestPath},
		{"backslash path", "file \"a\\\\b\" seq 1 type i\n", nil, ErrManifestPath},
		{"dup base", "file a seq 1 type b\nfile b seq 2 type b\n", nil, ErrManifestDupBase},
		{"seq not increasing", "file a seq 2 type i\nfile b seq 2 type i\n", nil, ErrManifestSeq},
		{"negative incr seq", "file a seq -1 type i\n", nil, ErrManifestSeq},
		{"unknown type", "file a seq 1 type x\n", nil, ErrManifestType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseManifest(strings.NewReader(tc.in))
			if tc.err != nil {
				var me *ManifestSyntaxError
				if !errors.Is(err, tc.err) || !errors.As(err, &me) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, m); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
			// WriteTo and parse again. (Redis does not quote a name with
			// a single quote and cannot read it back; neither can we.)
			if strings.Contains(tc.in, "'") {
				return
			}
			var buf bytes.Buffer
			if _, err := m.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			m2, err := ParseManifest(&buf)
			if err != nil {
				t.Fatalf("reparse %q: %v", buf.String(), err)
			}
			if d := cmp.Diff(m, m2); d != "" {
				t.Fatalf("round trip (-want +got):\n%s", d)
			}
		})
	}
}

func TestManifest_WriteTo(t *testing.T) {
	m := &Manifest{
		Base:    &ManifestFile{"appendonly.aof.2.base.rdb", 2, TypeBase},
		History: []ManifestFile{{"appendonly.aof.1.incr.aof", 1, TypeHistory}},
		Incr:    []ManifestFile{{"appendonly.aof.2.incr.aof", 2, TypeIncr}, {"we ird\"\x01.aof", 3, TypeIncr}},
	}
	var buf bytes.Buffer
	if _, err := m.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	want := "file appendonly.aof.2.base.rdb seq 2 type b\n" +
		"file appendonly.aof.1.incr.aof seq 1 type h\n" +
		"file appendonly.aof.2.incr.aof seq 2 type i\n" +
		"file \"we ird\\\"\\x01.aof\" seq 3 type i\n"
	if buf.String() != want {
		t.Fatalf("got\n%q\nwant\n%q", buf.String(), want)
	}
}

// TestParseManifest_MatchesRedisCheckAOF feeds manifests to the real
// redis-check-aof (whose loader is Redis's own) and compares acceptance.
func TestParseManifest_MatchesRedisCheckAOF(t *testing.T) {
	cases := []string{
		"file a seq 1 type b\nfile b seq 1 type i\n",
		"file a seq 1 type b\nfile b seq 1 type i",
		"file a seq 1 type b\nfile b seq 1 type b\n",
		"file a seq 2 type i\nfile b seq 1 type i\n",
		"file a seq 1 type z\n",
		"file a seq 0 type i\n",
		"file a/b seq 1 type i\n",
		"file a seq 1 type i extra\n",
		"file a seq 1 type i k v\n",
		"FILE a SEQ 1 TYPE i\n",
		"file \"a\" seq 1 type i\n",
		"file \"a\"x seq 1 type i\n",
		"file a seq 1 type i\n\n",
		"file a seq 1 type i\n# comment\n",
		"file a seq 1 type i\n   \n",
		"file a seq 1 type h\n",
		"file a seq -3 type b\n",
		"file \"\" seq 1 type i\n",
		"file a seq 1x type i\n",
		"file a seq 1 type ''\n",
		"file " + strings.Repeat("b", 1100) + " seq 1 type i\n",
		"file a seq 1 type i\n#" + strings.Repeat("c", 1100) + "\n",
	}
	dir := t.TempDir()
	for _, name := range []string{"a", "b", ""} {
		if name != "" {
			os.WriteFile(filepath.Join(dir, name), nil, 0o644)
		}
	}
	for i, in := range cases {
		p := filepath.Join(dir, fmt.Sprintf("m%d.manifest", i))
		os.WriteFile(p, []byte(in), 0o644)
		tool := runTool(t, "", p)
		_, err := ParseManifest(strings.NewReader(in))
		toolManifestOK := !strings.Contains(tool.out, "FATAL AOF MANIFEST")
		if toolManifestOK != (err == nil) {
			t.Errorf("case %d %q: ours %v, redis-check-aof:\n%s", i, in, err, tool.out)
		}
	}
}
