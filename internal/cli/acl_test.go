package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/acl"
	"redback/internal/catalog"
	"redback/internal/redistest"
	"redback/internal/storage/file"
)

func TestACL_Usage(t *testing.T) {
	code, out, errs := runCLI(t, "acl", "--for", "snapshot,ship", "--user", "rb")
	if code != ExitOK || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "ACL SETUSER rb on ") ||
		!strings.Contains(out, " -@all ") || !strings.Contains(out, "+psync") || !strings.Contains(errs, "+psync") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if code, out, _ := runCLI(t, "acl", "--for", "drill"); code != ExitOK || out != "" {
		t.Fatalf("drill: exit %d %q", code, out)
	}
	code, out, errs = runCLI(t, "acl", "--for", "sentinel")
	if code != ExitOK || !strings.Contains(out, " +sentinel|get-master-addr-by-name ") || !strings.Contains(out, " &+switch-master") || strings.Contains(out, "psync") {
		t.Fatalf("sentinel: exit %d\n%s\n%s", code, out, errs)
	}
	for _, args := range [][]string{{"acl", "--for", "everything"}, {"acl", "--user", "a b"}, {"acl", "extra"}, {"acl", "--for", "snapshot,sentinel"}} {
		if code, _, _ := runCLI(t, args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, ExitUsage)
		}
	}
}

// aclCase runs one mode as a user with the rules given (on the server the
// mode's rules go on) and returns its exit code and stderr.
type aclCase struct {
	mode string
	run  func(t *testing.T, f *aclFixture, rules []string) (int, string, *redistest.Server)
}

const aclPass = "acl-test-pass"

type aclFixture struct {
	src    *redistest.Server
	repo   string // holds one snapshot of src (taken as the default user)
	digest string // src's DEBUG DIGEST when the snapshot was taken
}

func userURL(s *redistest.Server, user string) string {
	u := url.URL{Scheme: "redis", User: url.UserPassword(user, aclPass), Host: s.Addr()}
	return u.String()
}

// setUser gives user exactly rules on s.
func setUser(t *testing.T, s *redistest.Server, user string, rules []string) {
	t.Helper()
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + aclPass}
	for _, r := range rules {
		args = append(args, r)
	}
	if err := s.Client().Do(t.Context(), args...).Err(); err != nil {
		t.Fatalf("ACL SETUSER %v: %v", rules, err)
	}
}

// asSource gives the user rb the rules on the fixture's source and returns
// its URL as that user.
func (f *aclFixture) asSource(t *testing.T, rules []string) string {
	setUser(t, f.src, "rb", rules)
	return userURL(f.src, "rb")
}

func runShipACL(t *testing.T, f *aclFixture, rules []string) (int, string, *redistest.Server) {
	source := f.asSource(t, rules)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"ship", "--source", source, "--repo", dir, "--interval", "100ms", "--ack", "durable"},
			Stdio{In: strings.NewReader(""), Out: &out, Err: &errb})
	}()
	b, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3000; i++ {
		select {
		case code := <-done:
			return code, errb.String(), f.src
		default:
		}
		if gens, _ := catalog.ListGenerations(context.Background(), b); len(gens) == 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Shipping: a write is acknowledged once it is stored.
	c := f.src.Client()
	if err := c.Set(ctx, "acl:shipped", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(ctx, "WAIT", 1, 20000).Int(); err != nil || n != 1 {
		cancel()
		<-done
		return ExitFailure, fmt.Sprintf("WAIT = %d, %v\n%s", n, err, errb.String()), f.src
	}
	cancel()
	return <-done, errb.String(), f.src
}

var aclCases = []aclCase{
	{mode: "snapshot", run: func(t *testing.T, f *aclFixture, rules []string) (int, string, *redistest.Server) {
		u := f.asSource(t, rules)
		code, _, errs := runCLI(t, "snapshot", "--source", u, "--repo", t.TempDir())
		return code, errs, f.src
	}},
	{mode: "snapshot-bgsave", run: func(t *testing.T, f *aclFixture, rules []string) (int, string, *redistest.Server) {
		u := f.asSource(t, rules)
		code, _, errs := runCLI(t, "snapshot", "--method", "bgsave", "--source", u, "--repo", t.TempDir())
		return code, errs, f.src
	}},
	{mode: "ship", run: runShipACL},
	{mode: "restore", run: func(t *testing.T, f *aclFixture, rules []string) (int, string, *redistest.Server) {
		dst := redistest.Start(t)
		setUser(t, dst, "rb", rules)
		code, _, errs := runCLI(t, "restore", "--repo", f.repo, "--latest", "--to-redis", userURL(dst, "rb"))
		if code == ExitOK && dst.Digest(t.Context()) != f.digest {
			return ExitVerify, "digest differs after restore\n" + errs, dst
		}
		return code, errs, dst
	}},
	{mode: "migrate", run: func(t *testing.T, f *aclFixture, rules []string) (int, string, *redistest.Server) {
		u := f.asSource(t, rules)
		dst := redistest.Start(t)
		code, _, errs := runCLI(t, "migrate", "--from", u, "--to", dst.URL())
		if code == ExitOK && dst.Digest(t.Context()) != f.src.Digest(t.Context()) {
			return ExitVerify, "digest differs after migrate\n" + errs, f.src
		}
		return code, errs, f.src
	}},
	{mode: "migrate-sync", run: func(t *testing.T, f *aclFixture, rules []string) (int, string, *redistest.Server) {
		u := f.asSource(t, rules)
		dst := redistest.Start(t)
		code, _, errs := runCLI(t, "migrate", "--method", "sync", "--from", u, "--to", dst.URL())
		if code == ExitOK && dst.Digest(t.Context()) != f.src.Digest(t.Context()) {
			return ExitVerify, "digest differs after migrate\n" + errs, f.src
		}
		return code, errs, f.src
	}},
	{mode: "consistency", run: func(t *testing.T, f *aclFixture, rules []string) (int, string, *redistest.Server) {
		u := f.asSource(t, rules)
		code, _, errs := runCLI(t, "consistency", "--force", "--redis", u)
		return code, errs, f.src
	}},
}

// TestACL_Modes proves, against a real server, that each mode works with
// exactly the rules `redback acl --minimal` prints for it (and with the
// full ones), that taking away any required command makes it fail with exit
// 1 and a message naming that command, and that none of those users may run
// FLUSHALL, CONFIG SET or SHUTDOWN, nor DEBUG unless the mode needs it.
func TestACL_Modes(t *testing.T) {
	src := redistest.Start(t)
	redistest.Populate(t, src, 300)
	f := &aclFixture{src: src, repo: t.TempDir(), digest: src.Digest(t.Context())}
	if code, _, errs := runCLI(t, "snapshot", "--source", src.URL(), "--repo", f.repo); code != ExitOK {
		t.Fatalf("fixture snapshot: exit %d\n%s", code, errs)
	}
	for _, tc := range aclCases {
		t.Run(tc.mode, func(t *testing.T) {
			modes, err := acl.Lookup([]string{tc.mode})
			if err != nil {
				t.Fatal(err)
			}
			for _, withOptional := range []bool{false, true} {
				rules := acl.Rules(modes, withOptional, "")
				code, errs, srv := tc.run(t, f, rules)
				if code != ExitOK {
					t.Fatalf("with %v: exit %d\n%s", rules, code, errs)
				}
				assertForbidden(t, srv, modes[0])
			}
			for _, p := range modes[0].Commands {
				if p.Optional != "" {
					continue
				}
				rules := acl.Rules(modes, false, p.Command)
				code, errs, _ := tc.run(t, f, rules)
				if code != ExitFailure || !strings.Contains(strings.ToLower(errs), "'"+p.Command+"'") {
					t.Errorf("without +%s: exit %d (want %d, naming %q)\n%s", p.Command, code, ExitFailure, p.Command, errs)
				}
			}
		})
	}
}

// assertForbidden checks that the user rb, as set on s, cannot run the
// commands that would damage a server, except those the mode needs.
func assertForbidden(t *testing.T, s *redistest.Server, m acl.Mode) {
	t.Helper()
	ctx := t.Context()
	conn := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "rb", Password: aclPass, Protocol: 2, MaxRetries: -1})
	defer conn.Close()
	for _, cmd := range [][]any{{"FLUSHALL"}, {"CONFIG", "SET", "maxmemory", "1"}, {"SHUTDOWN", "NOSAVE"}, {"DEBUG", "SLEEP", "0"}} {
		err := conn.Do(ctx, cmd...).Err()
		allowed := cmd[0] == "DEBUG" && len(m.Dangerous) > 0
		if allowed {
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
			t.Errorf("%s: %v, want NOPERM for the %s user", cmd[0], err, m.Name)
		}
	}
}
