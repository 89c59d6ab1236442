package redisurl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParse(t *testing.T) {
	tests := []struct {
		in       string
		env      map[string]string
		scheme   string
		addr     string
		user     string
		pass     string
		db       int
		redacted string
	}{
		{"localhost:6380", nil, "redis", "localhost:6380", "", "", 0, "redis://localhost:6380"},
		{"10.0.0.1", nil, "redis", "10.0.0.1:6379", "", "", 0, "redis://10.0.0.1:6379"},
		{"[::1]:7000", nil, "redis", "[::1]:7000", "", "", 0, "redis://[::1]:7000"},
		{"redis://h:1/3", nil, "redis", "h:1", "", "", 3, "redis://h:1/3"},
		{"redis://:s3cret@h:1", nil, "redis", "h:1", "", "s3cret", 0, "redis://:xxxxx@h:1"},
		{"redis://bob:p%40ss@h/2", nil, "redis", "h:6379", "bob", "p@ss", 2, "redis://bob:xxxxx@h:6379/2"},
		{"redis://h:1?db=4", nil, "redis", "h:1", "", "", 4, "redis://h:1/4"},
		{"rediss://u:pw@example.com:6380", nil, "rediss", "example.com:6380", "u", "pw", 0, "rediss://u:xxxxx@example.com:6380"},
		{"unix:///var/run/redis.sock?db=5", nil, "unix", "/var/run/redis.sock", "", "", 5, "unix:///var/run/redis.sock?db=5"},
		{"unix:///tmp/r.sock", map[string]string{"REDIS_PASSWORD": "envpw"}, "unix", "/tmp/r.sock", "", "envpw", 0, "unix://:xxxxx@/tmp/r.sock"},
		{"h:1", map[string]string{"REDISCLI_AUTH": "clipw", "REDIS_PASSWORD": "b"}, "redis", "h:1", "", "clipw", 0, "redis://:xxxxx@h:1"},
		{"redis://:urlpw@h:1", map[string]string{"REDISCLI_AUTH": "clipw"}, "redis", "h:1", "", "urlpw", 0, "redis://:xxxxx@h:1"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := Parse(tt.in, Options{Getenv: env(tt.env)})
			if err != nil {
				t.Fatal(err)
			}
			got := fmt.Sprint(u.Scheme, " ", u.Addr, " ", u.Username, " ", u.Password.Reveal(), " ", u.DB)
			want := fmt.Sprint(tt.scheme, " ", tt.addr, " ", tt.user, " ", tt.pass, " ", tt.db)
			if got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			if u.Redacted() != tt.redacted || u.String() != tt.redacted {
				t.Fatalf("redacted %q, want %q", u.Redacted(), tt.redacted)
			}
			if tt.pass != "" && strings.Contains(fmt.Sprintf("%v %+v %#v %s", u, *u, u, u.Password), tt.pass) {
				t.Fatalf("password leaked by fmt: %+v", *u)
			}
			o := u.GoRedisOptions()
			if o.Addr != tt.addr || o.Password != tt.pass || o.DB != tt.db || !o.DisableIdentity || (o.TLSConfig != nil) != (tt.scheme == "rediss") {
				t.Fatalf("go-redis options %+v", o)
			}
		})
	}
}

func TestParse_Errors(t *testing.T) {
	const pw = "hunter2"
	tests := []struct{ in, want string }{
		{"", "empty"},
		{"http://h:1", "unknown scheme"},
		{"redis://:" + pw + "@h:99999", "bad port"},
		{"redis://:" + pw + "@h:1/x", "bad database"},
		{"redis://:" + pw + "@h:1?foo=1", "unknown query parameter"},
		{"redis://:" + pw + "%zz@h:1", "malformed"},
		{"redis://:hun/ter2@h:1", "hunter"}, // checked below: no password in it
		{"unix://host/sock", "unix:///path"},
		{"redis://", "missing host"},
		{"a:b:c", "IPv6"},
		{"user:" + pw + "@h:1", "not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in, Options{})
			if err == nil {
				if tt.want == "hunter" {
					return // parsed (a '/' in a password is legal for url.Parse in some forms)
				}
				t.Fatal("no error")
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("not *Error: %T", err)
			}
			if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), "ter2") {
				t.Fatalf("password in error: %v", err)
			}
			if tt.want != "hunter" && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParse_TLS(t *testing.T) {
	u, err := Parse("rediss://h:1", Options{TLS: TLSOptions{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatal(err)
	}
	if c := u.TLSConfig(); c == nil || !c.InsecureSkipVerify || c.ServerName != "h" {
		t.Fatalf("tls config %+v", c)
	}
	if _, err := Parse("rediss://h:1", Options{TLS: TLSOptions{CAFile: t.TempDir() + "/none.pem"}}); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Fatalf("missing CA: %v", err)
	}
	if _, err := Parse("rediss://h:1", Options{TLS: TLSOptions{CertFile: "c.pem"}}); err == nil || !strings.Contains(err.Error(), "together") {
		t.Fatalf("cert without key: %v", err)
	}
	if _, err := Parse("redis://h:1", Options{TLS: TLSOptions{InsecureSkipVerify: true}}); err == nil {
		t.Fatal("TLS options on redis:// accepted")
	}
}

func TestURL_Dial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
	}()
	u, err := Parse("redis://:topsecret@"+addr, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := u.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	l.Close()
	_, err = u.Dial(context.Background())
	if err == nil || strings.Contains(err.Error(), "topsecret") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("dial closed port: %v", err)
	}
}

func TestRedactRaw(t *testing.T) {
	for in, want := range map[string]string{
		"redis://u:p/w@h:1/0": "redis://u:xxxxx@h:1/0",
		"redis://h:1":         "redis://h:1",
		"redis://:pw@h":       "redis://:xxxxx@h",
		"u:pw@h":              "xxxxx@h",
	} {
		if got := redactRaw(in); got != want {
			t.Errorf("redactRaw(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParse_Sentinel(t *testing.T) {
	tests := []struct {
		in        string
		addrs     string
		name      string
		user      string
		pass      string
		suser     string
		spass     string
		db        int
		nodeTLS   bool
		sentTLS   bool
		redacted  string
		nodeAddr  string
		nodeRedac string
	}{
		{"redis+sentinel://127.0.0.1:26379/mymaster", "127.0.0.1:26379", "mymaster", "", "", "", "", 0, false, false,
			"redis+sentinel://127.0.0.1:26379/mymaster", "127.0.0.1:6380", "redis://127.0.0.1:6380"},
		{"redis+sentinel://u:pw@h1:1,h2,[::1]:3/m?sentinel_user=su&sentinel_password=spw&db=2", "h1:1,h2:26379,[::1]:3", "m", "u", "pw", "su", "spw", 2, false, false,
			"redis+sentinel://u:xxxxx@h1:1,h2:26379,[::1]:3/m?db=2&sentinel_password=xxxxx&sentinel_user=su", "h9:7", "redis://u:xxxxx@h9:7/2"},
		{"rediss+sentinel://:pw@h1:1/m", "h1:1", "m", "", "pw", "", "", 0, true, true,
			"rediss+sentinel://:xxxxx@h1:1/m", "h9:7", "rediss://:xxxxx@h9:7"},
		{"rediss+sentinel://h1:1/m?tls=false", "h1:1", "m", "", "", "", "", 0, true, false,
			"rediss+sentinel://h1:1/m?tls=false", "h9:7", "rediss://h9:7"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := Parse(tt.in, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !u.IsSentinel() || u.Addr != "" {
				t.Fatalf("not a sentinel URL: %+v", u)
			}
			s := u.Sentinel
			got := fmt.Sprint(strings.Join(s.Addrs, ","), " ", s.MasterName, " ", u.Username, " ", u.Password.Reveal(), " ", s.Username, " ", s.Password.Reveal(), " ", u.DB, " ", u.TLS(), " ", s.TLS())
			want := fmt.Sprint(tt.addrs, " ", tt.name, " ", tt.user, " ", tt.pass, " ", tt.suser, " ", tt.spass, " ", tt.db, " ", tt.nodeTLS, " ", tt.sentTLS)
			if got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			if u.Redacted() != tt.redacted {
				t.Fatalf("redacted %q, want %q", u.Redacted(), tt.redacted)
			}
			n := u.Node(tt.nodeAddr)
			if n.IsSentinel() || n.Addr != tt.nodeAddr || n.Redacted() != tt.nodeRedac {
				t.Fatalf("node %q %+v", n.Redacted(), n)
			}
			if n.TLS() && n.TLSConfig().ServerName != "h9" {
				t.Fatalf("node TLS server name %q", n.TLSConfig().ServerName)
			}
			so := u.SentinelOptions(s.Addrs[0])
			if so.Username != tt.suser || so.Password != tt.spass || (so.TLSConfig != nil) != tt.sentTLS {
				t.Fatalf("sentinel options %+v", so)
			}
			if _, err := u.Dial(t.Context()); !errors.Is(err, ErrUnresolved) {
				t.Fatalf("Dial of a sentinel URL: %v", err)
			}
			for _, secret := range []string{tt.pass, tt.spass} {
				if secret != "" && strings.Contains(fmt.Sprintf("%v %+v %#v %v", u, *u, u, *u.Sentinel), secret) {
					t.Fatalf("password %q leaked by fmt", secret)
				}
			}
		})
	}
}

func TestParse_SentinelErrors(t *testing.T) {
	for _, in := range []string{
		"redis+sentinel:///mymaster",
		"redis+sentinel://h:1",
		"redis+sentinel://h:1/",
		"redis+sentinel://h:1,,h2:2/m",
		"redis+sentinel://h:99999/m",
		"redis+sentinel://h:1/m?tls=maybe",
		"redis+sentinel://h:1/m?sentinel_password=topsecret&bogus=1",
		"redisx+sentinel://h:1/m",
	} {
		t.Run(in, func(t *testing.T) {
			_, err := Parse(in, Options{})
			var ue *Error
			if !errors.As(err, &ue) {
				t.Fatalf("want *Error, got %v", err)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Fatalf("secret in error: %v", err)
			}
		})
	}
}
