package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/redistest"
)

// runCheckCLI runs redback with args and returns the exit code, stdout, stderr.
func runCheckCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(t.Context(), args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

// savedCheckRDB starts a server, loads a small mixed dataset in dbs 0 and 3 plus a
// function, SAVEs, and returns the dump path and the server.
func savedCheckRDB(t *testing.T) (string, *redistest.Server) {
	t.Helper()
	s := redistest.Start(t)
	ctx := t.Context()
	c := s.Client()
	cmds := [][]any{
		{"DEBUG", "SET-ACTIVE-EXPIRE", "0"},
		{"SET", "s1", "hello"},
		{"SET", "n", "42"},
		{"SET", "bin\x00key", "v"},
		{"RPUSH", "l", "a", "b", "c"},
		{"SADD", "set", "1", "2"},
		{"HSET", "h", "f", "v"},
		{"ZADD", "z", "0.1", "a", "-inf", "b"},
		{"XADD", "x", "1-1", "f", "v"},
		{"PEXPIRE", "l", "100000000"},
		{"SET", "gone", "x"},
		{"PEXPIRE", "gone", "1"},
		{"FUNCTION", "LOAD", "#!lua name=libcheck\nredis.register_function('f', function() return 1 end)"},
	}
	for _, a := range cmds {
		if err := c.Do(ctx, a...).Err(); err != nil {
			t.Fatalf("%v: %v", a, err)
		}
	}
	c3 := s.Client().Conn()
	defer c3.Close()
	for _, a := range [][]any{{"SELECT", "3"}, {"SET", "other", "db"}} {
		if err := c3.Do(ctx, a...).Err(); err != nil {
			t.Fatalf("%v: %v", a, err)
		}
	}
	if err := c.Do(ctx, "SAVE").Err(); err != nil {
		t.Fatal(err)
	}
	// "gone" expires 1 ms after its PEXPIRE: make sure that moment passed.
	time.Sleep(5 * time.Millisecond)
	return filepath.Join(s.Dir, "dump.rdb"), s
}

func TestCheckRDB_Valid(t *testing.T) {
	path, _ := savedCheckRDB(t)
	code, out, errOut := runCheckCLI(t, "check", "rdb", path)
	if code != ExitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"rdb version:     10", "redis-ver", "7.0.", "ctime", "libcheck",
		"keys:            10 in 2 dbs, 2 with expire", "already expired: 1", "checksum:        ok", "status:          ok",
		"hash-listpack 1", "set-intset 1", "list-quicklist-2 1", "stream-listpacks-2 1", "zset-listpack 1"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckRDB_JSON(t *testing.T) {
	path, _ := savedCheckRDB(t)
	code, out, errOut := runCheckCLI(t, "check", "rdb", "--json", path)
	if code != ExitOK {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	var rep struct {
		File       string            `json:"file"`
		OK         bool              `json:"ok"`
		RDBVersion int               `json:"rdb_version"`
		Aux        map[string]string `json:"aux"`
		Keys       int64             `json:"keys"`
		DBs        []struct {
			DB      int              `json:"db"`
			Keys    int64            `json:"keys"`
			Expires int64            `json:"expires"`
			Types   map[string]int64 `json:"types"`
		} `json:"dbs"`
		Types          map[string]int64 `json:"types"`
		Expires        int64            `json:"expires"`
		AlreadyExpired int64            `json:"already_expired"`
		Functions      []string         `json:"functions"`
		Checksum       string           `json:"checksum"`
		Bytes          int64            `json:"bytes"`
		Error          any              `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	st, _ := os.Stat(path)
	got := fmt.Sprintf("%v %d %d %d %d %d %v %s %d %v", rep.OK, rep.RDBVersion, rep.Keys, len(rep.DBs), rep.Expires,
		rep.AlreadyExpired, rep.Functions, rep.Checksum, rep.Bytes, rep.Error)
	want := fmt.Sprintf("true 10 10 2 2 1 [libcheck] ok %d <nil>", st.Size())
	if got != want {
		t.Errorf("report = %s, want %s", got, want)
	}
	if rep.DBs[0].DB != 0 || rep.DBs[1].DB != 3 || rep.DBs[1].Keys != 1 || rep.DBs[0].Types["zset"] != 1 {
		t.Errorf("dbs = %+v", rep.DBs)
	}
	if rep.Types["string"] != 5 || rep.Aux["redis-bits"] != "64" {
		t.Errorf("types = %v, aux = %v", rep.Types, rep.Aux)
	}
	if errOut != "" {
		t.Errorf("stderr with --json: %q", errOut)
	}
}

func TestCheckRDB_Damaged(t *testing.T) {
	path, _ := savedCheckRDB(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	flipped := bytes.Clone(data)
	flipped[len(flipped)-3] ^= 0x55 // inside the CRC-64 trailer
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", data[:len(data)/2], "damaged: offset "},
		{"checksum", flipped, "damaged: offset "},
		{"bad magic", append([]byte("REDIX"), data[5:]...), "damaged: offset 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name+".rdb")
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCheckCLI(t, "check", "rdb", p)
			if code != ExitVerify || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want 3; stdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			code, out, _ = runCheckCLI(t, "check", "rdb", "--json", p)
			var rep struct {
				OK    bool `json:"ok"`
				Error *struct {
					Offset int64  `json:"offset"`
					Reason string `json:"reason"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil || code != ExitVerify || rep.OK || rep.Error == nil || rep.Error.Reason == "" {
				t.Errorf("--json: exit %d, err %v, out:\n%s", code, err, out)
			}
			code, _, errOut = runCheckCLI(t, "digest", p)
			if code != ExitVerify || !strings.Contains(errOut, "damaged: offset") {
				t.Errorf("digest: exit %d, stderr %q", code, errOut)
			}
		})
	}
}

func TestCheckRDB_Errors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"missing file", []string{"check", "rdb", filepath.Join(dir, "nope.rdb")}, ExitFailure},
		{"directory", []string{"check", "rdb", dir}, ExitFailure},
		{"no args", []string{"check", "rdb"}, ExitUsage},
		{"two args", []string{"check", "rdb", "a", "b"}, ExitUsage},
		{"bad flag", []string{"check", "rdb", "--nope", "a"}, ExitUsage},
		{"digest missing file", []string{"digest", filepath.Join(dir, "nope.rdb")}, ExitFailure},
		{"digest no args", []string{"digest"}, ExitUsage},
		{"digest bad score format", []string{"digest", "--score-format", "6.2", "x.rdb"}, ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCheckCLI(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out, errOut)
			}
			if errOut == "" {
				t.Error("no message on stderr")
			}
		})
	}
}

func TestDigest_MatchesServer(t *testing.T) {
	path, s := savedCheckRDB(t)
	ctx := context.Background()
	want := s.Digest(ctx)
	code, out, errOut := runCheckCLI(t, "digest", path)
	if code != ExitOK || strings.TrimSpace(out) != want {
		t.Fatalf("exit %d, digest %q, want %q; stderr %q", code, out, want, errOut)
	}
	if !strings.Contains(errOut, "1 of 10 keys already expired") {
		t.Errorf("no note about expired keys: %q", errOut)
	}
	code, out, _ = runCheckCLI(t, "digest", "--json", path)
	var j struct {
		Digest string `json:"digest"`
		Keys   int64  `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != ExitOK || j.Digest != want || j.Keys != 10 {
		t.Errorf("--json: exit %d, %v, %s", code, err, out)
	}
}

func TestDigest_PerKey(t *testing.T) {
	path, s := savedCheckRDB(t)
	code, out, errOut := runCheckCLI(t, "digest", "--per-key", path)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkPerKey(t, s, out, 10)
	code, out, _ = runCheckCLI(t, "digest", "--per-key", "--json", path)
	var arr []struct {
		DB     int    `json:"db"`
		Key    string `json:"key"`
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal([]byte(out), &arr); err != nil || code != ExitOK || len(arr) != 10 {
		t.Errorf("--per-key --json: exit %d, %v:\n%s", code, err, out)
	}
}

// A value bigger than rdb.DefaultStreamAbove is streamed into its value
// digest (never held whole): --per-key still prints the server's DEBUG
// DIGEST-VALUE of it.
func TestDigest_PerKeyStreamed(t *testing.T) {
	s := redistest.Start(t)
	ctx := t.Context()
	pipe := s.Client().Pipeline()
	for i := range 40000 {
		f := fmt.Sprintf("element-%d-0123456789abcdef0123456789abcdef", i)
		pipe.RPush(ctx, "biglist", f)
		pipe.HSet(ctx, "bighash", f, i)
	}
	pipe.Set(ctx, "small", "v", 0)
	pipe.Set(ctx, "bigstring", strings.Repeat("0123456789abcdef", 1<<17), 0)
	pipe.Save(ctx)
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCheckCLI(t, "digest", "--per-key", filepath.Join(s.Dir, "dump.rdb"))
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkPerKey(t, s, out, 4)
}

// checkPerKey compares n lines of digest --per-key output with the
// server's DEBUG DIGEST-VALUE.
func checkPerKey(t *testing.T, s *redistest.Server, out string, n int) {
	t.Helper()
	ctx := t.Context()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), n, out)
	}
	conn := s.Client().Conn()
	defer conn.Close()
	for _, line := range lines {
		var db int
		var quoted, kd string
		if _, err := fmt.Sscanf(line, "%d %q %s", &db, &quoted, &kd); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if err := conn.Do(ctx, "SELECT", db).Err(); err != nil {
			t.Fatal(err)
		}
		v, err := conn.Do(ctx, "DEBUG", "DIGEST-VALUE", quoted).StringSlice()
		if err != nil || len(v) != 1 || v[0] != kd {
			t.Errorf("db %d key %q: %s, server %v %v", db, quoted, kd, v, err)
		}
	}
}
