package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/go-cmp/cmp"

	"redback/internal/ops"
	"redback/internal/redistest"
)

// chromium returns the headless browser's path; it skips the test when
// there is none, or fails it when REDBACK_TEST_REQUIRE_CHROMIUM=1 (CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("REDBACK_TEST_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium not found on PATH and REDBACK_TEST_REQUIRE_CHROMIUM=1: run scripts/setup.sh (apt-get install chromium)")
	}
	t.Skip("chromium not found on PATH (apt-get install chromium)")
	return ""
}

// browser starts a headless Chromium for the test.
func browser(t *testing.T) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	return ctx
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	code, err := tryJSON(url, v)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// tryJSON is getJSON returning its error (a server not listening yet).
func tryJSON(url string, v any) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, v); err != nil {
			return 0, fmt.Errorf("%s: %v\n%s", url, err, body)
		}
	}
	return resp.StatusCode, nil
}

// timelineDoc is the part of GET /api/v1/timeline the tests read.
type timelineDoc struct {
	Sources []struct {
		Name      string            `json:"name"`
		Snapshots []json.RawMessage `json:"snapshots"`
		Windows   []json.RawMessage `json:"windows"`
		Drills    []json.RawMessage `json:"drills"`
		Events    []struct {
			Command string `json:"command"`
			Point   string `json:"point"`
			Time    string `json:"time"`
			Offset  int64  `json:"offset"`
		} `json:"events"`
	} `json:"sources"`
}

// TestTimeline_Browser runs the agent (snapshots, shipping, drills) against
// a real redis-server and drives the timeline page in headless Chromium:
// the page draws the source with its snapshots and window; after a
// FLUSHALL is shipped, the event appears, and selecting it shows a command
// that, run as shown, restores the pre-FLUSHALL DEBUG DIGEST. Then `redback
// ui` serves the stopped repository, and its API matches `redback list
// --json` field by field.
func TestTimeline_Browser(t *testing.T) {
	bctx := browser(t)
	src := redistest.Start(t)
	redistest.Populate(t, src, 200)
	dir := t.TempDir()
	repo := "file://" + filepath.Join(dir, "repo")
	port := redistest.FreePort(t)
	cfgPath := filepath.Join(dir, "redback.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:%d
grace_period: 10s
sources:
  - name: cache-a
    source: %s
    repo: %s
    snapshot: {method: sync, every: 3s}
    ship: {enabled: true, interval: 200ms}
    drill: {schedule: "@every 4s", rto_objective: 1m}
`, port, src.URL(), repo)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"agent", "--config", cfgPath}, Stdio{In: strings.NewReader(""), Out: io.Discard, Err: &errb})
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// waitDoc polls the API until ok accepts it (bounded: 60 s).
	waitDoc := func(what string, ok func(*timelineDoc) bool) *timelineDoc {
		t.Helper()
		for i := 0; i < 300; i++ {
			select {
			case code := <-done:
				t.Fatalf("agent exited early with %d: %s", code, errb.String())
			case <-time.After(200 * time.Millisecond):
			}
			var d timelineDoc
			if code, _ := tryJSON(base+"/api/v1/timeline", &d); code == http.StatusOK && len(d.Sources) == 1 && ok(&d) {
				return &d
			}
		}
		t.Fatalf("%s: not in the timeline within 60 s; stderr:\n%s", what, errb.String())
		return nil
	}
	waitDoc("two snapshots, a window and a drill", func(d *timelineDoc) bool {
		s := d.Sources[0]
		return len(s.Snapshots) >= 2 && len(s.Windows) == 1 && len(s.Drills) >= 1
	})
	c := src.Client()
	if err := c.Do(t.Context(), "HSET", "user:42", "name", "Ada").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Do(t.Context(), "WAIT", 1, 10000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	before := src.Digest(t.Context())
	if err := c.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	var flushTime string
	var flushOffset int64
	waitDoc("the FLUSHALL event", func(d *timelineDoc) bool {
		for _, e := range d.Sources[0].Events {
			if e.Command == "FLUSHALL" {
				flushTime, flushOffset = e.Time, e.Offset
				return true
			}
		}
		return false
	})
	// GET /api/v1/point plans the event's point as the restore will.
	var facts ops.PointFacts
	if code := getJSON(t, base+"/api/v1/point?name=cache-a&before_command=FLUSHALL&after="+url.QueryEscape(flushTime), &facts); code != http.StatusOK ||
		facts.Match == nil || facts.Match.Offset != flushOffset || facts.Offset != flushOffset || facts.BaseSnapshot == "" || facts.Uncertain != nil {
		t.Fatalf("point of the FLUSHALL (offset %d): %d %+v", flushOffset, code, facts)
	}
	if code := getJSON(t, base+"/api/v1/point?name=cache-a", nil); code != http.StatusBadRequest {
		t.Errorf("point without a point: %d, want 400", code)
	}

	err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(`section.source[data-source="cache-a"]`),
		chromedp.WaitVisible(`svg.axis rect.window`),
		chromedp.WaitVisible(`svg.axis rect.snapshot`),
	)
	if err != nil {
		t.Fatalf("browser: %v; stderr:\n%s", err, errb.String())
	}
	snapshots, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.axis rect.snapshot').length`))
	if err != nil {
		t.Fatal(err)
	}
	windows, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('svg.axis rect.window').length`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Click(`tr.event-row[data-command="FLUSHALL"]`), chromedp.WaitVisible(`#detail`)); err != nil {
		t.Fatalf("select the FLUSHALL: %v", err)
	}
	command, err := chromedp.Run(bctx, chromedp.Text(`#command`))
	if err != nil {
		t.Fatal(err)
	}
	// The page replaces its estimate with the server's plan of the point.
	if err := chromedp.Do(bctx, chromedp.WaitVisible(`#facts li.exact`)); err != nil {
		t.Fatalf("exact facts: %v", err)
	}
	exact, err := chromedp.Run(bctx, chromedp.Text(`#facts li.exact`))
	if err != nil || !strings.HasPrefix(exact, "exact: base snapshot "+facts.BaseSnapshot) || !strings.Contains(exact, fmt.Sprintf("to offset %d", flushOffset)) {
		t.Errorf("exact facts shown: %q, %v", exact, err)
	}
	if snapshots < 2 || windows != 1 {
		t.Errorf("page draws %d snapshots and %d windows", snapshots, windows)
	}
	if dir := os.Getenv("REDBACK_SCREENSHOT_DIR"); dir != "" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "timeline.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("command shown: %s", command)
	args := strings.Fields(command)
	if len(args) < 3 || args[0] != "redback" || args[1] != "restore" || !strings.Contains(command, "--name cache-a --before-command FLUSHALL --after ") ||
		!strings.Contains(command, "--to-redis "+src.URL()) || strings.ContainsAny(command, `'"`) {
		t.Fatalf("command %q", command)
	}
	if code, out, errs := runCLI(t, args[1:]...); code != 0 {
		t.Fatalf("the command shown exits %d\n%s%s", code, out, errs)
	}
	if got := src.Digest(t.Context()); got != before {
		t.Fatalf("DEBUG DIGEST after running the shown command %s, before the FLUSHALL %s", got, before)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("agent exit %d: %s", code, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop")
	}

	// redback ui on the stopped repository: the API against list --json.
	uctx, ucancel := context.WithCancel(t.Context())
	defer ucancel()
	ready := make(chan string, 1)
	uidone := make(chan error, 1)
	e := &env{Stdio: Stdio{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, getenv: func(string) string { return "" }}
	e.log = slog.New(slog.DiscardHandler)
	go func() {
		uidone <- runUI(uctx, e, &uiOpts{repo: repo, listen: "127.0.0.1:0"}, func(a string) { ready <- a })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-uidone:
		t.Fatalf("ui: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("ui did not start")
	}
	var api struct {
		Sources []struct {
			Name      string `json:"name"`
			Snapshots any    `json:"snapshots"`
			Windows   any    `json:"windows"`
		} `json:"sources"`
	}
	if code := getJSON(t, "http://"+addr+"/api/v1/timeline", &api); code != http.StatusOK || len(api.Sources) != 1 {
		t.Fatalf("ui API: %d %+v", code, api)
	}
	code, out, errs := runCLI(t, "list", "--repo", repo, "--json")
	var list struct {
		Snapshots   any `json:"snapshots"`
		Generations any `json:"generations"`
	}
	if err := json.Unmarshal([]byte(out), &list); code != 0 || err != nil {
		t.Fatalf("list: exit %d %v\n%s%s", code, err, out, errs)
	}
	if d := cmp.Diff(list.Snapshots, api.Sources[0].Snapshots); d != "" {
		t.Errorf("API snapshots differ from list --json (-list +api):\n%s", d)
	}
	if d := cmp.Diff(list.Generations, api.Sources[0].Windows); d != "" {
		t.Errorf("API windows differ from list --json generations (-list +api):\n%s", d)
	}
	if api.Sources[0].Name != "cache-a" {
		t.Errorf("source name %q", api.Sources[0].Name)
	}
	ucancel()
	if err := <-uidone; err != nil {
		t.Fatalf("ui: %v", err)
	}
}

// TestUI_TokenOffLoopback: `redback ui` refuses an address off loopback
// without a token (exit 2) before binding anything.
func TestUI_TokenOffLoopback(t *testing.T) {
	code, _, errs := runCLI(t, "ui", "--repo", "file://"+t.TempDir(), "--listen", "0.0.0.0:9478")
	if code != ExitUsage || !strings.Contains(errs, "token") {
		t.Fatalf("exit %d: %s", code, errs)
	}
}
