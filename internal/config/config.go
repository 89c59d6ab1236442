package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"redback/internal/redisurl"
	"redback/internal/storage/backends"
)

// Defaults, matching the classic recipe (docs in classic-recipe.md).
const (
	DefaultListen        = "127.0.0.1:9477"
	DefaultSnapshotEvery = 6 * time.Hour
	DefaultMethod        = "sync"
	DefaultShipInterval  = time.Second
	DefaultAck           = "processed"
	DefaultShipTick      = 100 * time.Millisecond
	DefaultHourly        = 24
	DefaultDaily         = 30
	DefaultWeekly        = 52
	DefaultMonthly       = -1 // forever
	DefaultPITR          = 168 * time.Hour
	DefaultDrillSchedule = "0 3 1 * *" // 03:00 on the 1st of every month
	DefaultRTOObjective  = 10 * time.Minute
	DefaultGracePeriod   = 30 * time.Second
	DefaultLeaseTTL      = 15 * time.Second
	DefaultHeartbeat     = time.Minute
	DefaultCopyInterval  = 5 * time.Minute
)

// Config is the whole agent configuration file.
type Config struct {
	// Listen is the HTTP address of /metrics, /healthz, /status and the
	// recovery timeline (/ and /api/v1/timeline).
	Listen string `yaml:"listen"`
	// UIToken is the bearer token every route of the listener (but the
	// static page) requires when Listen is off loopback (without one they
	// answer 403 there). A secret:
	// never logged or shown.
	UIToken string `yaml:"ui_token"`
	// MetricsOpen leaves /metrics answering without the token off
	// loopback (for a scraper that cannot send one); every other route but
	// the static page still needs it.
	MetricsOpen bool `yaml:"metrics_open"`
	// GracePeriod is how long running work may take to finish after
	// SIGTERM before it is cancelled.
	GracePeriod Duration `yaml:"grace_period"`
	// LeaseTTL is how long a repository lease lasts without renewal.
	LeaseTTL Duration `yaml:"lease_ttl"`
	// Heartbeat is pinged (HTTP GET) only while every source is healthy.
	Heartbeat Heartbeat `yaml:"heartbeat"`
	// TLS applies to every source (and its sentinels) reached over TLS
	// (rediss://, rediss+sentinel://, ?tls=true) that has no tls of its own.
	TLS *TLS `yaml:"tls"`
	// RedisServer is the server binary (a path, or a name on PATH such
	// as valkey-server-9.1) the agent starts as the scratch server of
	// drills and point-in-time rebuilds; empty: the redis-server or
	// valkey-server on PATH (versioned names too) that loads the data.
	RedisServer string   `yaml:"redis_server"`
	Sources     []Source `yaml:"sources"`
}

// TLS names the files of a TLS client: the CAs to trust, and a client
// certificate for mutual TLS. The agent reads them again when they change
// (at the next connection): a rotated certificate needs no restart.
type TLS struct {
	CA   string `yaml:"ca"`   // PEM file of CAs; "" = system roots
	Cert string `yaml:"cert"` // client certificate (PEM); with key
	Key  string `yaml:"key"`  // its private key (PEM)
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify does not verify the server (testing only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Heartbeat configures the optional dead-man's-switch ping.
type Heartbeat struct {
	// URL may carry a token: it is never logged or shown in /status.
	URL      string   `yaml:"url"`
	Interval Duration `yaml:"interval"`
}

// Source is one Redis server and the repository it is protected into.
type Source struct {
	// Name labels metrics (source="...") and log lines; unique.
	Name string `yaml:"name"`
	// Source is redis://[user:pass@]host:port[/db], rediss://...,
	// unix:///path or redis+sentinel://[user:pass@]host:port[,host:port...]/MASTERNAME. It may carry a password: show it only through Redact.
	Source string `yaml:"source"`
	// Repo is the repository URL: file:///path, s3://bucket/prefix,
	// gs://bucket/prefix, azblob://container/prefix, mem:// (tests) or an
	// absolute path.
	Repo string `yaml:"repo"`
	// Cluster says what a node of a Redis Cluster means: auto (the
	// default) asks the node at the agent's start and backs up the whole
	// cluster when it is one; whole is sure it is (no question asked);
	// single-node backs up that node alone.
	Cluster    string     `yaml:"cluster"`
	Snapshot   Snapshot   `yaml:"snapshot"`
	Ship       Ship       `yaml:"ship"`
	Retention  Retention  `yaml:"retention"`
	Drill      Drill      `yaml:"drill"`
	Encryption Encryption `yaml:"encryption"`
	// CopyTo lists repositories (any backend) the agent keeps a copy of
	// Repo in, with redback copy's rules, every CopyInterval.
	CopyTo []string `yaml:"copy_to"`
	// CopyInterval is the longest a copy waits before it catches up; the
	// copy is at most about this (plus one copy's duration) behind.
	CopyInterval Duration `yaml:"copy_interval"`
	// TLS replaces the top-level tls for this source and its sentinels.
	TLS *TLS `yaml:"tls"`
}

// Snapshot says how and when snapshots are taken. Exactly one of Every and
// Schedule is set after defaults.
type Snapshot struct {
	// Method is sync, bgsave, or log: synthesize snapshots from the
	// shipped log (no fork on the source); when there is no usable log
	// the agent takes a sync snapshot instead.
	Method string `yaml:"method"`
	// Every is a fixed interval between snapshots.
	Every Duration `yaml:"every"`
	// Schedule is a 5-field cron expression or a descriptor (@daily),
	// optionally prefixed with CRON_TZ=Zone; without it the agent's local
	// time zone applies.
	Schedule string `yaml:"schedule"`
	// Timeout bounds one snapshot; 0 means no bound beyond the schedule.
	Timeout Duration `yaml:"timeout"`
}

// Ship configures continuous log shipping.
type Ship struct {
	Enabled  bool     `yaml:"enabled"`
	Interval Duration `yaml:"interval"` // how often segments are uploaded
	// Ack is the offset reported to the primary: processed (received and
	// parsed) or durable (stored in the repository).
	Ack string `yaml:"ack"`
	// Tick is how often a time marker is published to the source while
	// writes flow (PUBLISH __redback__:tick); 0 turns markers off.
	Tick Duration `yaml:"tick"`
	// Heartbeat is how often an idle source's heartbeat (quiet.json) is
	// rewritten instead of cutting a segment per PING (0: the default).
	Heartbeat Duration `yaml:"heartbeat"`
}

// Retention is the GFS policy applied after each snapshot; -1 keeps
// forever, 0 keeps none by that rule.
type Retention struct {
	Hourly  int      `yaml:"hourly"`
	Daily   int      `yaml:"daily"`
	Weekly  int      `yaml:"weekly"`
	Monthly int      `yaml:"monthly"`
	Within  Duration `yaml:"within"` // keep everything newer than this
	PITR    Duration `yaml:"pitr"`   // point-in-time window of the log
}

// Drill configures restore drills.
type Drill struct {
	Enabled      bool     `yaml:"enabled"`
	Schedule     string   `yaml:"schedule"`
	RTOObjective Duration `yaml:"rto_objective"`
}

// Encryption lists age recipients (public keys; not secrets).
type Encryption struct {
	Recipients     []string `yaml:"recipients"`
	RecipientsFile string   `yaml:"recipients_file"`
}

// Duration is a time.Duration written as "6h", "90s" or "7d" in YAML.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration accepts time.ParseDuration syntax plus whole days ("7d").
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok && n != "" {
		if v, err := strconv.ParseUint(n, 10, 32); err == nil {
			return Duration(time.Duration(v) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (use 90s, 6h, 7d)", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML parses a duration scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Default returns the configuration used for anything a file leaves out;
// it has no sources.
func Default() *Config {
	return &Config{
		Listen:      DefaultListen,
		GracePeriod: Duration(DefaultGracePeriod),
		LeaseTTL:    Duration(DefaultLeaseTTL),
		Heartbeat:   Heartbeat{Interval: Duration(DefaultHeartbeat)},
	}
}

// DefaultSource returns a source with every default filled in except
// Name, Source and Repo.
func DefaultSource() Source {
	return Source{
		Snapshot:  Snapshot{Method: DefaultMethod, Every: Duration(DefaultSnapshotEvery)},
		Ship:      Ship{Enabled: true, Interval: Duration(DefaultShipInterval), Ack: DefaultAck, Tick: Duration(DefaultShipTick)},
		Retention: Retention{Hourly: DefaultHourly, Daily: DefaultDaily, Weekly: DefaultWeekly, Monthly: DefaultMonthly, PITR: Duration(DefaultPITR)},
		Drill:     Drill{Enabled: true, Schedule: DefaultDrillSchedule, RTOObjective: Duration(DefaultRTOObjective)},

		CopyInterval: Duration(DefaultCopyInterval),
		Cluster:      ClusterAuto,
	}
}

// Values of Source.Cluster.
const (
	ClusterAuto       = "auto"
	ClusterWhole      = "whole"
	ClusterSingleNode = "single-node"
)

// Problem is one thing wrong with a configuration, at a field path such as
// "sources[0].snapshot.every".
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Error lists every problem found; it never contains secret values.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid configuration")
	if len(e.Problems) == 1 {
		b.WriteString(": " + e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, " (%d problems):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

type problems []Problem

func (ps *problems) add(path, format string, args ...any) {
	*ps = append(*ps, Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: ps}
}

// maxConfigBytes bounds what Load reads.
const maxConfigBytes = 4 << 20

// Load reads a YAML configuration: it expands ${VAR} in scalar values with
// getenv (a variable that is unset or empty is an error naming it; $${X}
// is a literal ${X}), rejects unknown keys and malformed values by path,
// fills in defaults, and validates the result. The returned error is an
// *Error listing every problem when the file parsed as YAML.
func Load(r io.Reader, getenv func(string) string) (*Config, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("configuration larger than %d bytes", maxConfigBytes)
	}
	cfg := Default()
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Problems: []Problem{{Msg: "empty configuration: at least one source is required"}}}
		}
		return nil, &Error{Problems: []Problem{{Msg: "not valid YAML: " + err.Error()}}}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	var ps problems
	expand(root, "", getenv, &ps)
	if !checkNode(root, reflect.TypeOf(Config{}), "", &ps) {
		return nil, ps.err()
	}
	// Decode the top level, then each source on top of its defaults.
	var top struct {
		Listen      *string     `yaml:"listen"`
		UIToken     *string     `yaml:"ui_token"`
		MetricsOpen *bool       `yaml:"metrics_open"`
		GracePeriod *Duration   `yaml:"grace_period"`
		LeaseTTL    *Duration   `yaml:"lease_ttl"`
		Heartbeat   *Heartbeat  `yaml:"heartbeat"`
		TLS         *TLS        `yaml:"tls"`
		RedisServer string      `yaml:"redis_server"`
		Sources     []yaml.Node `yaml:"sources"`
	}
	if err := root.Decode(&top); err != nil {
		return nil, &Error{Problems: []Problem{{Msg: "cannot decode: " + err.Error()}}}
	}
	if top.Listen != nil {
		cfg.Listen = *top.Listen
	}
	if top.UIToken != nil {
		cfg.UIToken = *top.UIToken
	}
	if top.MetricsOpen != nil {
		cfg.MetricsOpen = *top.MetricsOpen
	}
	cfg.TLS = top.TLS
	cfg.RedisServer = top.RedisServer
	if top.GracePeriod != nil {
		cfg.GracePeriod = *top.GracePeriod
	}
	if top.LeaseTTL != nil {
		cfg.LeaseTTL = *top.LeaseTTL
	}
	if top.Heartbeat != nil {
		iv := top.Heartbeat.Interval
		cfg.Heartbeat = *top.Heartbeat
		if iv == 0 {
			cfg.Heartbeat.Interval = Duration(DefaultHeartbeat)
		}
	}
	for i := range top.Sources {
		s := DefaultSource()
		s.Snapshot.Every = 0 // set below unless a schedule is given
		if err := top.Sources[i].Decode(&s); err != nil {
			return nil, &Error{Problems: []Problem{{Path: fmt.Sprintf("sources[%d]", i), Msg: "cannot decode: " + err.Error()}}}
		}
		if s.Snapshot.Every == 0 && s.Snapshot.Schedule == "" {
			s.Snapshot.Every = Duration(DefaultSnapshotEvery)
		}
		cfg.Sources = append(cfg.Sources, s)
	}
	// Problems found while reading come first; validation of what could be
	// read follows, so one run reports everything.
	var ve *Error
	if err := cfg.Validate(); errors.As(err, &ve) {
		seen := map[string]bool{}
		for _, p := range ps {
			seen[p.Path] = true
		}
		for _, p := range ve.Problems {
			if !seen[p.Path] {
				ps = append(ps, p)
			}
		}
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

var envRef = regexp.MustCompile(`\$\$\{|\$\{([^}]*)\}`)
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expand replaces ${VAR} in every scalar value (not in keys). Values are
// never copied into problems.
func expand(n *yaml.Node, path string, getenv func(string) string, ps *problems) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expand(c, path, getenv, ps)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			expand(n.Content[i+1], join(path, n.Content[i].Value), getenv, ps)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expand(c, fmt.Sprintf("%s[%d]", path, i), getenv, ps)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		out := envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
			if m == "$${" {
				return "${"
			}
			name := m[2 : len(m)-1]
			if !envName.MatchString(name) {
				ps.add(path, "bad environment reference ${%s}", name)
				return ""
			}
			v := ""
			if getenv != nil {
				v = getenv(name)
			}
			if v == "" {
				ps.add(path, "environment variable %s is not set (or empty)", name)
			}
			return v
		})
		n.Value = out
		if n.Style == 0 {
			n.Tag = "" // re-resolve: "${N}" was a string, its value may be an int
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var durationType = reflect.TypeOf(Duration(0))

// checkNode walks n against the Go type t, reporting unknown keys and
// values that do not fit their field, by path. Offending keys are removed
// from the tree so that the rest can still be decoded and validated; it
// reports whether n itself fits.
func checkNode(n *yaml.Node, t reflect.Type, path string, ps *problems) bool {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return true
	}
	where := path
	if where == "" {
		where = "configuration"
	}
	bad := func(format string, args ...any) bool {
		ps.add(where, format, args...)
		return false
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			return bad("want a duration such as 6h")
		}
		d, err := ParseDuration(n.Value)
		if err != nil {
			return bad("%v", err)
		}
		if d < 0 {
			return bad("negative duration %s", d)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return bad("want a mapping (key: value)")
		}
		fields := map[string]reflect.Type{}
		var names []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
			names = append(names, name)
		}
		kept := n.Content[:0:0]
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			ft, ok := fields[k]
			if !ok {
				msg := "unknown key"
				if s := closest(k, names); s != "" {
					msg += fmt.Sprintf(" (did you mean %s?)", s)
				}
				ps.add(join(path, k), "%s", msg)
				continue
			}
			if checkNode(n.Content[i+1], ft, join(path, k), ps) {
				kept = append(kept, n.Content[i], n.Content[i+1])
			}
		}
		n.Content = kept
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad("want a list")
		}
		ok := true
		for i, c := range n.Content {
			ok = checkNode(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), ps) && ok
		}
		return ok
	case t.Kind() == reflect.Int:
		if n.Kind != yaml.ScalarNode {
			return bad("want a whole number")
		}
		if _, err := strconv.Atoi(n.Value); err != nil {
			return bad("want a whole number, got %q", n.Value)
		}
	case t.Kind() == reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			return bad("want true or false")
		}
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			return bad("want a string")
		}
	}
	return true
}

// closest returns the candidate within edit distance 2 of s, if any.
func closest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// cronParser accepts standard 5-field expressions, descriptors (@daily)
// and a CRON_TZ= or TZ= prefix.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a cron expression as the agent does.
func ParseSchedule(expr string) (cron.Schedule, error) {
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("bad cron expression %q: %v", expr, err)
	}
	return s, nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Validate reports every problem of c by field path; nil means the agent
// can start with it.
func (c *Config) Validate() error {
	var ps problems
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		ps.add("listen", "want host:port (such as %s): %v", DefaultListen, err)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		ps.add("listen", "bad port %q", port)
	} else {
		_ = host
	}
	if c.GracePeriod < 0 {
		ps.add("grace_period", "negative duration")
	}
	if c.LeaseTTL.D() < 3*time.Second {
		ps.add("lease_ttl", "%s is too short (at least 3s)", c.LeaseTTL)
	}
	if c.Heartbeat.URL != "" {
		u, err := url.Parse(c.Heartbeat.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add("heartbeat.url", "want an http:// or https:// URL")
		}
		if c.Heartbeat.Interval <= 0 {
			ps.add("heartbeat.interval", "must be positive")
		}
	}
	c.TLS.validate("tls", &ps)
	if c.RedisServer != "" && strings.TrimSpace(c.RedisServer) != c.RedisServer {
		ps.add("redis_server", "%q has leading or trailing spaces", c.RedisServer)
	}
	if len(c.Sources) == 0 {
		ps.add("sources", "at least one source is required")
	}
	names := map[string]int{}
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		s.TLS.validate(p+".tls", &ps)
		switch {
		case s.Name == "":
			ps.add(p+".name", "required")
		case !nameRE.MatchString(s.Name):
			ps.add(p+".name", "%q: use letters, digits, '.', '_' and '-' (at most 63)", s.Name)
		default:
			// Names key each source's objects in its repository: never
			// two alike, not even in case (case-insensitive file systems).
			if j, dup := names[strings.ToLower(s.Name)]; dup {
				ps.add(p+".name", "duplicate source name %q (also sources[%d]): names are compared ignoring case", s.Name, j)
			} else {
				names[strings.ToLower(s.Name)] = i
			}
		}
		checkSourceURL(p+".source", s.Source, &ps)
		checkRepoURL(p+".repo", s.Repo, &ps)
		for j, u := range s.CopyTo {
			cp := fmt.Sprintf("%s.copy_to[%d]", p, j)
			checkRepoURL(cp, u, &ps)
			if u == s.Repo {
				ps.add(cp, "the same repository as repo")
			}
		}
		if len(s.CopyTo) > 0 && s.CopyInterval.D() < time.Second {
			ps.add(p+".copy_interval", "%s is shorter than 1s", s.CopyInterval)
		}
		switch s.Cluster {
		case ClusterAuto, ClusterSingleNode:
		case ClusterWhole:
			if u, err := url.Parse(s.Source); err == nil && (strings.Contains(u.Scheme, "sentinel") || u.Scheme == "unix") {
				ps.add(p+".cluster", "whole: a %s source is not a cluster node", u.Scheme)
			}
		default:
			ps.add(p+".cluster", "%q: want auto, whole or single-node", s.Cluster)
		}
		sn := s.Snapshot
		switch sn.Method {
		case "sync", "bgsave", "log":
		default:
			ps.add(p+".snapshot.method", "%q: want sync, bgsave or log", sn.Method)
		}
		switch {
		case sn.Every != 0 && sn.Schedule != "":
			ps.add(p+".snapshot", "set either every or schedule, not both")
		case sn.Every == 0 && sn.Schedule == "":
			ps.add(p+".snapshot", "set every or schedule")
		case sn.Every < 0:
			ps.add(p+".snapshot.every", "must be positive")
		case sn.Every != 0 && sn.Every.D() < time.Second:
			ps.add(p+".snapshot.every", "%s is shorter than 1s", sn.Every)
		case sn.Schedule != "":
			if _, err := ParseSchedule(sn.Schedule); err != nil {
				ps.add(p+".snapshot.schedule", "%v", err)
			}
		}
		if sn.Timeout < 0 {
			ps.add(p+".snapshot.timeout", "negative duration")
		}
		if s.Ship.Enabled {
			if s.Ship.Interval <= 0 {
				ps.add(p+".ship.interval", "must be positive")
			}
			if h := s.Ship.Heartbeat; h != 0 && h.D() < time.Second {
				ps.add(p+".ship.heartbeat", "%s: want at least 1s", h)
			}
			if t := s.Ship.Tick; t < 0 || (t > 0 && t.D() < 10*time.Millisecond) {
				ps.add(p+".ship.tick", "%s: want 0 (no time markers) or at least 10ms", t)
			}
			switch s.Ship.Ack {
			case "processed", "durable":
			default:
				ps.add(p+".ship.ack", "%q: want processed or durable", s.Ship.Ack)
			}
		}
		r := s.Retention
		for _, f := range []struct {
			name string
			v    int
		}{{"hourly", r.Hourly}, {"daily", r.Daily}, {"weekly", r.Weekly}, {"monthly", r.Monthly}} {
			if f.v < -1 {
				ps.add(p+".retention."+f.name, "%d: want a count >= 0, or -1 for forever", f.v)
			}
		}
		if r.Within < 0 {
			ps.add(p+".retention.within", "negative duration")
		}
		if r.PITR < 0 {
			ps.add(p+".retention.pitr", "negative duration")
		}
		if s.Drill.Enabled {
			if _, err := ParseSchedule(s.Drill.Schedule); err != nil {
				ps.add(p+".drill.schedule", "%v", err)
			}
			if s.Drill.RTOObjective <= 0 {
				ps.add(p+".drill.rto_objective", "must be positive")
			}
		}
		for j, rc := range s.Encryption.Recipients {
			if strings.TrimSpace(rc) == "" {
				ps.add(fmt.Sprintf("%s.encryption.recipients[%d]", p, j), "empty recipient")
			}
		}
	}
	return ps.err()
}

func checkSourceURL(path, raw string, ps *problems) {
	if raw == "" {
		ps.add(path, "required (redis://host:port)")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		ps.add(path, "not a URL (redis://host:port)") // the value may hold a password
		return
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Host == "" {
			ps.add(path, "no host (redis://host:port)")
		}
	case "unix":
		if u.Path == "" {
			ps.add(path, "no socket path (unix:///run/redis.sock)")
		}
	case "redis+sentinel", "rediss+sentinel":
		// redisurl's errors mask the passwords.
		var ue *redisurl.Error
		if _, err := redisurl.Parse(raw, redisurl.Options{}); errors.As(err, &ue) {
			ps.add(path, "%s", ue.Msg)
		}
	default:
		ps.add(path, "scheme %q: want redis, rediss, unix, redis+sentinel or rediss+sentinel", u.Scheme)
	}
}

func checkRepoURL(path, raw string, ps *problems) {
	if raw == "" {
		ps.add(path, "required (file:///var/lib/redback/NAME, s3://bucket/prefix, gs://bucket/prefix or azblob://container/prefix)")
		return
	}
	if !strings.Contains(raw, "://") && !strings.HasPrefix(raw, "/") {
		ps.add(path, "want an absolute path or a URL (file:///path, s3://bucket/prefix, gs://bucket/prefix, azblob://container/prefix)")
		return
	}
	// Each backend parses and validates its own URLs.
	if err := backends.Check(raw); err != nil {
		ps.add(path, "%v", err)
	}
}

// Redact returns raw with any password masked as "xxxxx", for logs and
// /status. It does not rely on the URL parsing, so a password holding
// characters that should have been escaped ('#', '/', '@') is masked too.
func Redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return raw
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return raw
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// validate checks that the files exist and that cert and key come together.
func (t *TLS) validate(path string, ps *problems) {
	if t == nil {
		return
	}
	if (t.Cert == "") != (t.Key == "") {
		ps.add(path, "cert and key must be given together")
	}
	for _, f := range []struct{ name, file string }{{"ca", t.CA}, {"cert", t.Cert}, {"key", t.Key}} {
		if f.file == "" {
			continue
		}
		if _, err := os.Stat(f.file); err != nil {
			ps.add(path+"."+f.name, "%v", err)
		}
	}
}

// SourceTLS is the TLS configuration of source s: its own, else the
// top-level one (nil when neither is set).
func (c *Config) SourceTLS(s Source) *TLS {
	if s.TLS != nil {
		return s.TLS
	}
	return c.TLS
}
