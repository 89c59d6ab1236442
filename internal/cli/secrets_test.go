package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
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
	"redback/internal/storage/azure/azuretest"
	"redback/internal/storage/s3/s3test"
)

// TestSecrets_NeverLeak runs every verb, on success and failure paths, with
// canary secrets (Redis and Sentinel passwords, the S3 secret key, an Azure
// account key, age identities) and checks that none appears in any output
// or any stored object.
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
	sentinelPass := "canary-sentinel-pass-" + fmt.Sprint(time.Now().UnixNano())
	azureKey := base64.StdEncoding.EncodeToString([]byte("canary-azure-key-" + fmt.Sprint(time.Now().UnixNano())))
	azureWrong := base64.StdEncoding.EncodeToString([]byte("canary-azure-wrong-" + fmt.Sprint(time.Now().UnixNano())))
	canaries := map[string]string{"redis password": pass, "wrong password": wrong, "S3 secret key": srv.SecretKey, "age identity": id.String(),
		"sentinel password": sentinelPass, "Azure account key": azureKey, "wrong Azure key": azureWrong}

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
	runT := func(t *testing.T, wantOK bool, args ...string) {
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
	run := func(wantOK bool, args ...string) {
		t.Helper()
		runT(t, wantOK, args...)
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
	run(true, "restore", "--repo", repo, "--at", "latest", "--identity", idFile, "--to-redis", withPass(dst, pass), "--conflict", "replace", "--json")

	// A Sentinel password in the URL (the sentinels cannot be reached).
	closed := redistest.FreePort(t)
	sentinelURL := fmt.Sprintf("redis+sentinel://default:%s@127.0.0.1:%d/mymaster?sentinel_user=redback&sentinel_password=%s", pass, closed, sentinelPass)
	run(false, "snapshot", "--source", sentinelURL, "--repo", repo)
	run(false, "migrate", "--from", sentinelURL, "--to", withPass(dst, pass))

	// copy (to another prefix of the bucket), keep, rekey to a second
	// identity (a canary too) with the first removed: the second restores,
	// the first is refused.
	repo2 := srv.URL("secrets-copy")
	run(true, "copy", "--from", repo, "--to", repo2, "--json")
	code, out, errs := runCLI(t, "list", "--repo", repo2, "--json")
	if code != ExitOK {
		t.Fatalf("list: exit %d\n%s%s", code, out, errs)
	}
	l := listRepoJSON(t, out)
	if len(l.Snapshots) == 0 {
		t.Fatal("the copy holds no snapshot")
	}
	snap := l.Snapshots[0]
	run(true, "keep", "--repo", repo2, "--name", snap.SourceName, snap.ID)
	run(true, "keep", "--repo", repo2, "--name", snap.SourceName, snap.ID, "--unset")
	id2, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	canaries["second age identity"] = id2.String()
	id2File := filepath.Join(t.TempDir(), "identity2.txt")
	if err := os.WriteFile(id2File, []byte(id2.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run(false, "rekey", "--repo", repo2, "--identity", id2File, "--encrypt-to", id2.Recipient().String())
	run(true, "rekey", "--repo", repo2, "--identity", idFile, "--encrypt-to", id2.Recipient().String(), "--remove-recipient", id.Recipient().String(), "--verify-identity", id2File, "--json")
	run(true, "restore", "--repo", repo2, "--name", snap.SourceName, "--at", "latest", "--identity", id2File, "--to-redis", withPass(dst, pass), "--conflict", "replace")
	run(false, "restore", "--repo", repo2, "--name", snap.SourceName, "--latest", "--identity", idFile, "--to-redis", withPass(dst, pass), "--conflict", "replace")

	// Azure Blob Storage with a canary account key (Azurite), and a wrong one.
	// (skipped, alone, when Azurite is not installed)
	t.Run("azure", func(t *testing.T) {
		az := azuretest.StartServerKey(t, azureKey)
		az.SetEnv(t)
		azRepo := az.URL("secrets")
		runT(t, true, "copy", "--from", repo, "--to", azRepo)
		runT(t, true, "list", "--repo", azRepo, "--json")
		runT(t, true, "verify", "--repo", azRepo, "--identity", idFile)
		runT(t, true, "restore", "--repo", azRepo, "--name", snap.SourceName, "--latest", "--identity", idFile, "--to-redis", withPass(dst, pass), "--conflict", "replace")
		t.Setenv("AZURE_STORAGE_CONNECTION_STRING", strings.ReplaceAll(az.ConnectionString(), azureKey, azureWrong))
		runT(t, false, "list", "--repo", azRepo)
		runT(t, false, "snapshot", "--source", withPass(src, pass), "--repo", azRepo)
		grepFiles(t, "Azure blob file", az.Dir, canaries)
	})

	// Agent configuration check, with the password from the environment.
	cfg := filepath.Join(t.TempDir(), "redback.yaml")
	t.Setenv("CANARY_PASS", pass)
	os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\nsources:\n  - name: canary\n    source: redis://default:${CANARY_PASS}@%s\n    repo: %s\n", src.Addr(), repo)), 0o600)
	run(true, "agent", "--config", cfg, "--check-config")

	// The agent running: its logs, /metrics, /healthz, /status, the
	// timeline API, with the password, a wrong password (a failing
	// source), the age identity ($REDBACK_IDENTITY), the UI token and a
	// heartbeat URL token as canaries.
	outputs = append(outputs, agentOutputs(t, src, repo, pass, wrong, id, canaries)...)

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
	grepFiles(t, "restored file", outDir, canaries)
}

// grepFiles fails t for every file under dir that holds one of the canaries.
func grepFiles(t *testing.T, what, dir string, canaries map[string]string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // a server's temp file, gone
		} else if err != nil {
			return err
		}
		for name, secret := range canaries {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s %s holds the %s", what, p, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// agentOutputs runs the agent with canary secrets until it has taken a
// snapshot, shipped and failed on a source with a wrong password, and
// returns its log and every HTTP answer it gave. It adds its own canaries.
func agentOutputs(t *testing.T, src *redistest.Server, repo, pass, wrong string, id *age.X25519Identity, canaries map[string]string) []string {
	t.Helper()
	token := "canary-ui-token-" + fmt.Sprint(time.Now().UnixNano())
	hbToken := "canary-heartbeat-" + fmt.Sprint(time.Now().UnixNano())
	canaries["ui token"], canaries["heartbeat token"] = token, hbToken
	hb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer hb.Close()
	t.Setenv("CANARY_PASS", pass)
	t.Setenv("CANARY_WRONG", wrong)
	t.Setenv("CANARY_TOKEN", token)
	t.Setenv("CANARY_HB", hbToken)
	t.Setenv("REDBACK_IDENTITY", id.String())
	port := redistest.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	text := fmt.Sprintf(`listen: 127.0.0.1:%d
ui_token: ${CANARY_TOKEN}
grace_period: 5s
heartbeat: {url: "%s/ping/${CANARY_HB}", interval: 1s}
sources:
  - name: canary
    source: redis://default:${CANARY_PASS}@%s
    repo: %s
    snapshot: {every: 1h}
    ship: {enabled: true, interval: 100ms}
    encryption: {recipients: [%s]}
  - name: wrongpass
    source: redis://default:${CANARY_WRONG}@%s
    repo: %s
    snapshot: {every: 1h}
    ship: {enabled: true, interval: 100ms}
`, port, hb.URL, src.Addr(), repo, id.Recipient().String(), src.Addr(), repo)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var so, se pitrShipLog
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"--verbose", "agent", "--config", cfg}, Stdio{In: strings.NewReader(""), Out: &so, Err: &se})
	}()
	defer func() {
		cancel()
		<-done
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string) string {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// Wait for a snapshot and a failure of the wrong password, in the
	// status, then for a shipped segment of the timeline.
	ready := false
	for i := 0; i < 600 && !ready; i++ {
		st := get("/status")
		ready = strings.Contains(st, `"last_success": "2`) && strings.Contains(strings.ToLower(st), "wrongpass") && strings.Contains(st, "WRONGPASS")
		if !ready {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ready {
		t.Fatalf("the agent never snapshotted and failed on the wrong password:\n%s\n%s", get("/status"), se.String())
	}
	var outs []string
	for _, p := range []string{"/metrics", "/healthz", "/status", "/api/v1/timeline", "/api/v1/timeline?name=canary", "/api/v1/timeline?name=wrongpass", "/"} {
		outs = append(outs, get(p))
	}
	if !strings.Contains(outs[0], "redback_") {
		t.Fatalf("no metrics scraped:\n%s", outs[0])
	}
	cancel()
	<-done
	done <- 0
	return append(outs, so.String(), se.String())
}
