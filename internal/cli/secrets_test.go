package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/redis/go-redis/v9"

	"redback/internal/redistest"
	"redback/internal/storage/s3/s3test"
)

// TestSecrets_NeverLeak runs every verb, on success and failure paths, with
// canary secrets (the Redis password, the S3 secret key, the age identity)
// and checks that none appears in any output or any stored object.
func TestSecrets_NeverLeak(t *testing.T) {
	pass := "canary-redis-pass-" + fmt.Sprint(time.Now().UnixNano())
	wrong := "canary-wrong-pass-" + fmt.Sprint(time.Now().UnixNano())
	srv := s3test.StartServer(t)
	s3test.SetEnv(t, srv.AccessKey, srv.SecretKey)
	repo := srv.URL("secrets")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	canaries := map[string]string{"redis password": pass, "wrong password": wrong, "S3 secret key": srv.SecretKey, "age identity": id.String()}

	src := redistest.Start(t)
	redistest.Populate(t, src, 50)
	dst := redistest.Start(t)
	for _, s := range []*redistest.Server{src, dst} {
		if err := s.Client().ConfigSet(t.Context(), "requirepass", pass).Err(); err != nil {
			t.Fatal(err)
		}
	}
	withPass := func(s *redistest.Server, p string) string {
		return (&url.URL{Scheme: "redis", User: url.UserPassword("default", p), Host: s.Addr()}).String()
	}
	outDir := t.TempDir()

	var outputs []string
	run := func(wantOK bool, args ...string) {
		t.Helper()
		for _, verbose := range []bool{false, true} {
			a := args
			if verbose {
				a = append([]string{"--verbose"}, args...)
			}
			code, out, errs := runCLI(t, a...)
			outputs = append(outputs, out, errs)
			if wantOK && code != ExitOK {
				t.Fatalf("%v: exit %d\n%s\n%s", a, code, out, errs)
			}
			if !wantOK && code == ExitOK {
				t.Fatalf("%v: exit 0, want a failure", a)
			}
		}
	}
	run(true, "snapshot", "--source", withPass(src, pass), "--repo", repo, "--encrypt-to", id.Recipient().String(), "--json")
	run(false, "snapshot", "--source", withPass(src, wrong), "--repo", repo)
	run(true, "list", "--repo", repo, "--json")
	run(true, "list", "--repo", repo)
	run(true, "verify", "--repo", repo, "--identity", idFile, "--json")
	run(true, "restore", "--repo", repo, "--latest", "--identity", idFile, "--to-redis", withPass(dst, pass), "--conflict", "replace", "--json")
	run(false, "restore", "--repo", repo, "--latest", "--identity", idFile, "--to-redis", withPass(dst, wrong))
	run(true, "restore", "--repo", repo, "--latest", "--identity", idFile, "--to-dir", outDir, "--force")
	run(true, "drill", "--repo", repo, "--identity", idFile, "--json")
	run(true, "prune", "--repo", repo, "--dry-run", "--json")
	run(true, "migrate", "--from", withPass(src, pass), "--to", withPass(dst, pass), "--conflict", "replace", "--json")
	run(false, "migrate", "--from", withPass(src, wrong), "--to", withPass(dst, pass))
	run(true, "consistency", "--redis", withPass(src, pass), "--force")
	run(false, "consistency", "--redis", withPass(src, wrong), "--force")

	// The password from the environment, not the URL.
	t.Setenv("REDISCLI_AUTH", pass)
	run(true, "snapshot", "--source", src.URL(), "--repo", repo, "--encrypt-to", id.Recipient().String())
	t.Setenv("REDISCLI_AUTH", wrong)
	run(false, "snapshot", "--source", src.URL(), "--repo", repo)
	t.Setenv("REDISCLI_AUTH", "")

	// Shipping, briefly, then its log.
	ctx, cancel := context.WithCancel(t.Context())
	var so, se bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"--verbose", "ship", "--source", withPass(src, pass), "--repo", repo, "--interval", "100ms", "--encrypt-to", id.Recipient().String(), "--json"},
			Stdio{In: strings.NewReader(""), Out: &so, Err: &se})
	}()
	cw := redis.NewClient(&redis.Options{Addr: src.Addr(), Password: pass})
	defer cw.Close()
	for i := 0; ; i++ {
		info, _ := cw.Info(t.Context(), "replication").Result()
		if strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online") {
			break
		}
		if i > 600 {
			cancel()
			<-done
			t.Fatalf("ship never came online:\n%s", se.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cw.Set(t.Context(), "shipped", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := cw.Do(t.Context(), "WAIT", 1, 20000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT = %d, %v\n%s", n, err, se.String())
	}
	cancel()
	<-done
	outputs = append(outputs, so.String(), se.String())
	run(true, "log", "--repo", repo, "--identity", idFile)

	// Agent configuration check, with the password from the environment.
	cfg := filepath.Join(t.TempDir(), "redback.yaml")
	t.Setenv("CANARY_PASS", pass)
	os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\nsources:\n  - name: canary\n    source: redis://default:${CANARY_PASS}@%s\n    repo: %s\n", src.Addr(), repo)), 0o600)
	run(true, "agent", "--config", cfg, "--check-config")

	for i, o := range outputs {
		for what, secret := range canaries {
			if strings.Contains(o, secret) {
				t.Errorf("output %d holds the %s:\n%s", i, what, o)
			}
		}
	}
	// Every stored object and every file written.
	client := srv.Client()
	list, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) < 4 {
		t.Fatalf("only %d objects stored", len(list.Contents))
	}
	for _, obj := range list.Contents {
		o, err := client.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: obj.Key})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(o.Body)
		o.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for what, secret := range canaries {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("object %s holds the %s", aws.ToString(obj.Key), what)
			}
		}
	}
	filepath.WalkDir(outDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, _ := os.ReadFile(p)
		for what, secret := range canaries {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("restored file %s holds the %s", p, what)
			}
		}
		return nil
	})
}
