package agent

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"redback/internal/storage/mem"
)

// TestAgent_HTTPPolicy checks who may use the listener. The listen
// address is only configured, never bound: the policy off loopback is
// exercised on handler() directly.
func TestAgent_HTTPPolicy(t *testing.T) {
	routes := []string{"/metrics", "/healthz", "/status", "/api/v1/timeline"}
	do := func(h http.Handler, path, token string) int {
		r := httptest.NewRequest("GET", path, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	handler := func(listen, token string, metricsOpen bool) http.Handler {
		cfg := testConfig("redis://127.0.0.1:1", "mem://")
		cfg.Listen, cfg.UIToken, cfg.MetricsOpen = listen, token, metricsOpen
		cfg.Sources[0].Ship.Enabled = false
		cfg.Sources[0].Drill.Enabled = false
		a, err := New(Options{Config: cfg, OpenRepo: memOpener(mem.New())})
		if err != nil {
			t.Fatal(err)
		}
		return a.handler()
	}
	denied := func(code int) bool { return code == http.StatusUnauthorized || code == http.StatusForbidden }

	// Loopback: everything answers without a token.
	// (The timeline itself needs a running agent: only its refusals are
	// checked here; internal/ui tests it.)
	h := handler("127.0.0.1:9477", "", false)
	for _, p := range routes[:3] {
		if c := do(h, p, ""); denied(c) {
			t.Errorf("loopback %s: %d", p, c)
		}
	}
	// Off loopback with a token: every route needs it, but the page.
	for _, listen := range []string{"0.0.0.0:9477", ":9477", "10.0.0.5:9477", "[::]:9477"} {
		h = handler(listen, "s3cret-token", false)
		for _, p := range routes {
			if c := do(h, p, ""); c != http.StatusUnauthorized {
				t.Errorf("%s %s without token: %d, want 401", listen, p, c)
			}
			if c := do(h, p, "wrong"); c != http.StatusUnauthorized {
				t.Errorf("%s %s with a wrong token: %d, want 401", listen, p, c)
			}
		}
		for _, p := range []string{"/metrics", "/healthz", "/status"} {
			if c := do(h, p, "s3cret-token"); denied(c) {
				t.Errorf("%s %s with the token: %d", listen, p, c)
			}
		}
		if c := do(h, "/", ""); c != http.StatusOK {
			t.Errorf("%s page: %d", listen, c)
		}
	}
	// Off loopback without a token: refused (403), but the page.
	h = handler("0.0.0.0:9477", "", false)
	for _, p := range routes {
		if c := do(h, p, "anything"); c != http.StatusForbidden {
			t.Errorf("no ui_token %s: %d, want 403", p, c)
		}
	}
	// metrics_open: /metrics alone answers without the token.
	h = handler("0.0.0.0:9477", "s3cret-token", true)
	if c := do(h, "/metrics", ""); c != http.StatusOK {
		t.Errorf("metrics_open /metrics: %d", c)
	}
	for _, p := range []string{"/healthz", "/status", "/api/v1/timeline", "/metrics/../status", "/assets/../status"} {
		if c := do(h, p, ""); !denied(c) && c != http.StatusTemporaryRedirect {
			t.Errorf("metrics_open %s without token: %d", p, c)
		}
	}
}
