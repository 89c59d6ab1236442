package ui

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/ops"
	"redback/internal/storage/mem"
)

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9478": true, "127.1.2.3:1": true, "[::1]:9478": true, "localhost:9478": true,
		"0.0.0.0:9478": false, ":9478": false, "10.0.0.5:9478": false, "[::]:9478": false, "example.com:80": false,
	} {
		if got := Loopback(addr); got != want {
			t.Errorf("Loopback(%q) = %v", addr, got)
		}
	}
	if CheckListen("0.0.0.0:9478", "") == nil || CheckListen("0.0.0.0:9478", "t") != nil || CheckListen("127.0.0.1:9478", "") != nil {
		t.Error("CheckListen")
	}
}

// TestHandler_Token checks the token rule by the configured listen
// address, without binding anything: off loopback the API needs the
// bearer token (403 when none is configured), on loopback it does not.
func TestHandler_Token(t *testing.T) {
	b := mem.New()
	srcs := func() []ops.Source { return []ops.Source{{Name: "a", Repo: b, RepoURL: "mem://"}} }
	now := func() time.Time { return time.Unix(1795520462, 0) }
	cases := []struct {
		name, listen, token, header string
		want                        int
	}{
		{"loopback, no token", "127.0.0.1:9478", "", "", http.StatusOK},
		{"off loopback, token configured, none sent", "10.0.0.5:9478", "s3cret", "", http.StatusUnauthorized},
		{"off loopback, wrong token", "0.0.0.0:9478", "s3cret", "Bearer nope", http.StatusUnauthorized},
		{"off loopback, right token", "0.0.0.0:9478", "s3cret", "Bearer s3cret", http.StatusOK},
		{"off loopback, no token configured", "0.0.0.0:9478", "", "Bearer x", http.StatusForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := Handler(Options{Sources: srcs, Listen: c.listen, Token: c.token, Now: now})
			req := httptest.NewRequest("GET", "/api/v1/timeline", nil)
			if c.header != "" {
				req.Header.Set("Authorization", c.header)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.want, rec.Body)
			}
			if strings.Contains(rec.Body.String(), "s3cret") {
				t.Fatal("the token appears in a response")
			}
		})
	}
}

func TestHandler_PageAndQueries(t *testing.T) {
	b := mem.New()
	h := Handler(Options{Sources: func() []ops.Source { return []ops.Source{{Name: "a", Repo: b, RepoURL: "mem://"}} }, Listen: "127.0.0.1:9478"})
	for path, want := range map[string]int{
		"/": http.StatusOK, "/assets/app.js": http.StatusOK, "/assets/style.css": http.StatusOK,
		"/api/v1/timeline?name=a": http.StatusOK, "/api/v1/timeline?name=zzz": http.StatusNotFound,
		"/api/v1/timeline?from=2026-11-25T14:00:00Z&to=2026-11-26T14:00:00Z": http.StatusOK,
		"/api/v1/timeline?from=yesterday":                                    http.StatusBadRequest,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Errorf("GET %s: %d, want %d: %s", path, rec.Code, want, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if body := rec.Body.String(); !strings.Contains(body, "assets/app.js") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Errorf("page loads something from elsewhere or not its script:\n%s", body)
	}
}

// TestTimeline_MarksSnapshotsFromLog: a snapshot synthesized from the log
// is marked in the timeline's JSON (from_log), which the page draws apart.
func TestTimeline_MarksSnapshotsFromLog(t *testing.T) {
	b := mem.New()
	now := time.Now().UTC()
	for i, m := range []string{"sync", catalog.MethodLog} {
		at := now.Add(time.Duration(i-2) * time.Minute)
		id := catalog.NewSnapshotID(at)
		s := &catalog.Snapshot{Format: catalog.FormatVersion, ID: id, StartTime: at, EndTime: at, Verified: true, Method: m,
			Generation: "g", Source: catalog.Source{Offset: 1234}, Object: catalog.Object{Key: catalog.SnapshotDataKey(id, false)}}
		if err := catalog.PutJSON(t.Context(), b, catalog.SnapshotManifestKey(id), s); err != nil {
			t.Fatal(err)
		}
	}
	h := Handler(Options{Sources: func() []ops.Source { return []ops.Source{{Name: "a", Repo: b, RepoURL: "mem://"}} }, Listen: "127.0.0.1:9478"})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/timeline?name=a", nil))
	if n := strings.Count(rec.Body.String(), `"from_log": true`) + strings.Count(rec.Body.String(), `"from_log":true`); rec.Code != http.StatusOK || n != 1 {
		t.Fatalf("%d, %d snapshots marked from_log:\n%s", rec.Code, n, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/assets/app.js", nil))
	if !strings.Contains(rec.Body.String(), "from_log") {
		t.Error("the page does not mark snapshots from the log")
	}
}
