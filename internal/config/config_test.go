package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const issueExample = `
listen: 127.0.0.1:9477
sources:
  - name: cache-a
    source: redis://127.0.0.1:6379
    repo: file:///var/lib/redback/cache-a
    snapshot: {method: sync, every: 6h}        # or schedule: "CRON_TZ=UTC 0 */6 * * *"
    ship: {enabled: true, interval: 1s}
    retention: {hourly: 24, daily: 30, weekly: 52, monthly: -1, pitr: 168h}   # -1 = keep forever
    drill: {schedule: "0 3 1 * *", rto_objective: 10m}
`

func noEnv(string) string { return "" }

func TestLoad_IssueExample(t *testing.T) {
	cfg, err := Load(strings.NewReader(issueExample), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	s := DefaultSource()
	s.Name, s.Source, s.Repo = "cache-a", "redis://127.0.0.1:6379", "file:///var/lib/redback/cache-a"
	want.Sources = []Source{s}
	if d := cmp.Diff(want, cfg); d != "" {
		t.Fatalf("config (-want +got):\n%s", d)
	}
}

func TestLoad_DefaultsAndEnv(t *testing.T) {
	env := map[string]string{"PASS": "s3cr3t:#{}", "HOURLY": "5"}
	in := `
sources:
  - name: a
    source: redis://:${PASS}@127.0.0.1:6379
    repo: file:///tmp/a
    snapshot: {schedule: "CRON_TZ=UTC 0 */6 * * *"}
    retention:
      hourly: ${HOURLY}
    ship: {enabled: false}
    drill: {enabled: false}
`
	cfg, err := Load(strings.NewReader(in), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sources[0]
	if s.Source != "redis://:s3cr3t:#{}@127.0.0.1:6379" {
		t.Errorf("source %q", s.Source)
	}
	if s.Snapshot.Every != 0 || s.Snapshot.Method != "sync" {
		t.Errorf("snapshot %+v", s.Snapshot)
	}
	if s.Retention.Hourly != 5 || s.Retention.Daily != 30 || s.Retention.Monthly != -1 || s.Retention.PITR.D() != 168*time.Hour {
		t.Errorf("retention %+v", s.Retention)
	}
	if s.Ship.Enabled || s.Ship.Ack != "processed" || s.Drill.Enabled {
		t.Errorf("ship %+v drill %+v", s.Ship, s.Drill)
	}
	if cfg.Listen != DefaultListen {
		t.Errorf("listen %q", cfg.Listen)
	}
	if got := Redact(s.Source); strings.Contains(got, "s3cr3t") {
		t.Errorf("redact leaked: %s", got)
	}
}

func TestLoad_Errors(t *testing.T) {
	src := func(extra string) string {
		return "sources:\n  - name: a\n    source: redis://127.0.0.1:6379\n    repo: file:///tmp/a\n" + extra
	}
	for _, tc := range []struct {
		name, in string
		want     []string // substrings, each must appear
		not      []string // must not appear (secrets)
	}{
		{"unknown key", src("    snapshot: {evry: 1h}\n"), []string{"sources[0].snapshot.evry: unknown key (did you mean every?)"}, nil},
		{"unknown top key", "lisen: x\n" + src(""), []string{"lisen: unknown key"}, nil},
		{"bad cron", src("    snapshot: {schedule: \"61 * * * *\"}\n"), []string{"sources[0].snapshot.schedule: bad cron expression"}, nil},
		{"bad cron tz", src("    snapshot: {schedule: \"CRON_TZ=Mars/Olympus 0 * * * *\"}\n"), []string{"sources[0].snapshot.schedule"}, nil},
		{"bad drill cron", src("    drill: {schedule: \"0 3 32 * *\"}\n"), []string{"sources[0].drill.schedule: bad cron expression"}, nil},
		{"both", src("    snapshot: {every: 1h, schedule: \"@daily\"}\n"), []string{"sources[0].snapshot: set either every or schedule, not both"}, nil},
		{"ack the shipper does not have", src("    ship: {ack: received}\n"), []string{`sources[0].ship.ack: "received": want processed or durable`}, nil},
		{"bad duration", src("    ship: {interval: soon}\n"), []string{"sources[0].ship.interval: bad duration \"soon\""}, nil},
		{"bad int", src("    retention: {daily: many}\n"), []string{"sources[0].retention.daily: want a whole number"}, nil},
		{"retention", src("    retention: {weekly: -2}\n"), []string{"sources[0].retention.weekly: -2: want a count >= 0, or -1 for forever"}, nil},
		{"bad source url", "sources:\n  - name: a\n    source: http://u:hunter2@h:1\n    repo: s3://b/p\n", []string{`sources[0].source: scheme "http": want redis, rediss, unix, redis+sentinel or rediss+sentinel`}, []string{"hunter2"}},
		{"bad repo url", "sources:\n  - name: a\n    source: redis://h:1\n    repo: ftp://h/x\n", []string{`sources[0].repo: unsupported repository scheme "ftp" (supported: azblob, file, gs, mem, s3, or a plain path)`}, nil},
		{"missing env", "sources:\n  - name: a\n    source: redis://:${REDIS_PASSWORD}@h:1\n    repo: s3://b/p\n", []string{"sources[0].source: environment variable REDIS_PASSWORD is not set"}, nil},
		{"duplicate", src("  - name: a\n    source: redis://h:2\n    repo: /var/x\n"), []string{`sources[1].name: duplicate source name "a" (also sources[0])`}, nil},
		{"no sources", "listen: 127.0.0.1:1\n", []string{"sources: at least one source is required"}, nil},
		{"method", src("    snapshot: {method: copy}\n"), []string{`sources[0].snapshot.method: "copy": want sync, bgsave or log`}, nil},
		{"listen", "listen: nowhere\n" + src(""), []string{"listen: want host:port"}, nil},
		{"not a list", "sources: {name: a}\n", []string{"sources: want a list"}, nil},
		{"yaml syntax", "sources: [\n", []string{"not valid YAML"}, nil},
		{"duplicate key", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n" + src(""), []string{`mapping key "listen" already defined`}, nil},
		{"duplicate source key", src("    repo: file:///tmp/b\n"), []string{`mapping key "repo" already defined`}, nil},
		{"many", src("    snapshot: {evry: 1h}\n    retention: {hourly: -3}\n    drill: {rto_objective: x}\n"),
			[]string{"3 problems", "snapshot.evry", "retention.hourly", "drill.rto_objective"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(strings.NewReader(tc.in), noEnv)
			if err == nil {
				t.Fatal("no error")
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("want *Error, got %T: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q leaks %q", err, n)
				}
			}
		})
	}
}

func TestValidate_Default(t *testing.T) {
	c := Default()
	s := DefaultSource()
	s.Name, s.Source, s.Repo = "x", "unix:///run/redis.sock", "mem://"
	c.Sources = append(c.Sources, s)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "90s": 90 * time.Second, "1h30m": 90 * time.Minute} {
		got, err := ParseDuration(in)
		if err != nil || got.D() != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	if _, err := ParseDuration("d"); err == nil {
		t.Error("d parsed")
	}
}

func TestLoad_DeployExample(t *testing.T) {
	f, err := os.Open("../../deploy/redback.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := Load(f, func(k string) string { return map[string]string{"REDIS_PASSWORD": "pw"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 1 || cfg.Sources[0].Snapshot.Every.D() != 6*time.Hour {
		t.Fatalf("%+v", cfg)
	}
}

func TestLoad_MethodLog(t *testing.T) {
	cfg, err := Load(strings.NewReader("sources:\n  - name: a\n    source: redis://127.0.0.1:6379\n    repo: file:///tmp/a\n    snapshot: {method: log, every: 6h}\n    ship: {enabled: true}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Sources[0].Snapshot; s.Method != "log" || s.Every.D() != 6*time.Hour {
		t.Fatalf("snapshot %+v", s)
	}
}

// TestLoad_KubernetesExamples: the configuration in each Kubernetes
// example's ConfigMap is valid; the cluster one is sure its source is a
// cluster node.
func TestLoad_KubernetesExamples(t *testing.T) {
	for _, name := range []string{"agent.yaml", "cluster-agent.yaml"} {
		data, err := os.ReadFile("../../deploy/kubernetes/" + name)
		if err != nil {
			t.Fatal(err)
		}
		_, body, ok := strings.Cut(string(data), "redback.yaml: |\n")
		if !ok {
			t.Fatalf("%s: no redback.yaml in the ConfigMap", name)
		}
		body, _, _ = strings.Cut(body, "\n---")
		cfg, err := Load(strings.NewReader(body), func(k string) string { return "x" })
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := map[string]string{"agent.yaml": ClusterAuto, "cluster-agent.yaml": ClusterWhole}[name]; cfg.Sources[0].Cluster != want {
			t.Errorf("%s: cluster %q, want %q", name, cfg.Sources[0].Cluster, want)
		}
	}
	bad := "sources:\n  - name: a\n    source: redis+sentinel://127.0.0.1:26379/m\n    repo: file:///tmp/a\n    cluster: whole\n"
	if _, err := Load(strings.NewReader(bad), noEnv); err == nil || !strings.Contains(err.Error(), "sources[0].cluster") {
		t.Errorf("a sentinel source with cluster: whole: %v", err)
	}
	bad = strings.Replace(bad, "whole", "yes", 1)
	if _, err := Load(strings.NewReader(bad), noEnv); err == nil || !strings.Contains(err.Error(), "want auto, whole or single-node") {
		t.Errorf("cluster: yes: %v", err)
	}
}
