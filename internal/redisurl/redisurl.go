package redisurl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPort is used when a TCP address has no port.
const DefaultPort = 6379

// Secret holds a password. Its String, GoString, LogValue and MarshalText
// forms are masked; Reveal returns the value.
type Secret string

const mask = "xxxxx"

// String returns a mask, or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return mask
}

// GoString masks like String.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue masks like String.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalText masks like String, so a Secret never leaks into JSON or YAML.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself. Use it only to hand it to a server.
func (s Secret) Reveal() string { return string(s) }

// TLSOptions configures rediss:// connections.
type TLSOptions struct {
	CAFile             string // PEM bundle of CAs to trust; "" = system roots
	CertFile, KeyFile  string // client certificate for mutual TLS; both or neither
	InsecureSkipVerify bool   // do not verify the server certificate (testing only)
	ServerName         string // overrides the name checked in the certificate; "" = the URL's host
	// Reload re-reads CAFile, CertFile and KeyFile when they change
	// (checked at every new connection), so that long-running users (the
	// agent) take rotated certificates without a restart.
	Reload bool
}

// empty reports whether o sets nothing that needs TLS.
func (o TLSOptions) empty() bool {
	o.Reload = false
	return o == TLSOptions{}
}

// Options are the inputs of Parse besides the URL text.
type Options struct {
	TLS TLSOptions
	// Getenv looks up REDISCLI_AUTH and REDIS_PASSWORD when the URL has no
	// password. Nil means no environment lookup.
	Getenv func(string) string
}

// URL is a parsed server address. Build it with Parse.
type URL struct {
	// Scheme is "redis", "rediss" or "unix", or "redis+sentinel" or
	// "rediss+sentinel" for a set managed by Sentinel.
	Scheme string
	// Addr is host:port for TCP, the socket path for unix, and "" for a
	// Sentinel URL (ask the sentinels, then use Node).
	Addr     string
	Username string // "" = the default user (of the Redis nodes)
	Password Secret
	DB       int
	// Sentinel is set for redis+sentinel:// and rediss+sentinel:// URLs.
	Sentinel *Sentinel

	tls       *tls.Config // non-nil for rediss and rediss+sentinel
	tlsFiles  *tlsFiles   // non-nil when tls reloads its files
	fixedName bool        // tls.ServerName was given; Node keeps it
}

// Sentinel says where a redis+sentinel:// URL finds its primary: the
// sentinels to ask, in order, and the name they monitor it under.
type Sentinel struct {
	Addrs      []string // host:port of each sentinel
	MasterName string
	// Username and Password authenticate to the sentinels
	// (sentinel_user, sentinel_password); the URL's own credentials are
	// for the Redis nodes.
	Username string
	Password Secret

	tls      *tls.Config // non-nil when the sentinels are reached over TLS
	tlsFiles *tlsFiles
}

// TLS reports whether the sentinels are reached over TLS.
func (s *Sentinel) TLS() bool { return s.tls != nil }

// IsSentinel reports whether u names a Sentinel-managed set rather than
// one server.
func (u *URL) IsSentinel() bool { return u.Sentinel != nil }

// Error is returned by Parse. Its text names the bad part but never the
// password.
type Error struct {
	URL string // the redacted input
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("redis url %q: %s", e.URL, e.Msg) }

// Parse parses s. See the package documentation for the accepted forms.
func Parse(s string, opts Options) (*URL, error) {
	red := redactRaw(s)
	fail := func(format string, args ...any) (*URL, error) {
		return nil, &Error{URL: red, Msg: fmt.Sprintf(format, args...)}
	}
	if strings.TrimSpace(s) == "" {
		return fail("empty address")
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok && strings.HasSuffix(strings.ToLower(scheme), "+sentinel") {
		u, msg := parseSentinel(s, opts)
		if msg != "" {
			return fail("%s", msg)
		}
		return u, nil
	}
	u := &URL{}
	if !strings.Contains(s, "://") {
		// Plain host:port.
		if strings.ContainsAny(s, "/@?") {
			return fail("not a URL and not host:port (use redis://, rediss:// or unix://)")
		}
		addr, err := hostPort(s)
		if err != nil {
			return fail("%v", err)
		}
		u.Scheme, u.Addr = "redis", addr
	} else {
		pu, err := url.Parse(s)
		if err != nil {
			// url's own error text can quote the userinfo; do not use it.
			return fail("malformed URL")
		}
		u.Scheme = strings.ToLower(pu.Scheme)
		if pu.User != nil {
			u.Username = pu.User.Username()
			if p, ok := pu.User.Password(); ok {
				u.Password = Secret(p)
			}
		}
		q := pu.Query()
		for k := range q {
			if k != "db" {
				return fail("unknown query parameter %q (only db is accepted)", k)
			}
		}
		switch u.Scheme {
		case "redis", "rediss":
			if pu.Host == "" {
				return fail("missing host")
			}
			addr, err := hostPort(pu.Host)
			if err != nil {
				return fail("%v", err)
			}
			u.Addr = addr
			path := strings.TrimPrefix(pu.Path, "/")
			if path != "" {
				db, err := parseDB(path)
				if err != nil {
					return fail("path: %v", err)
				}
				u.DB = db
			}
		case "unix":
			if pu.Host != "" {
				return fail("unix socket URL must look like unix:///path/redis.sock (host %q given)", pu.Host)
			}
			if pu.Path == "" {
				return fail("missing socket path")
			}
			u.Addr = pu.Path
		default:
			return fail("unknown scheme %q (want redis, rediss or unix)", pu.Scheme)
		}
		if v, ok := q["db"]; ok {
			if len(v) != 1 {
				return fail("db given more than once")
			}
			db, err := parseDB(v[0])
			if err != nil {
				return fail("db: %v", err)
			}
			u.DB = db
		}
	}
	if u.Password == "" && opts.Getenv != nil {
		u.Password = Secret(envPassword(opts.Getenv))
	}
	if u.Scheme == "rediss" {
		cfg, files, err := buildTLS(opts.TLS, u.Addr)
		if err != nil {
			return fail("tls: %v", err)
		}
		u.tls, u.tlsFiles, u.fixedName = cfg, files, opts.TLS.ServerName != ""
	} else if !opts.TLS.empty() {
		return fail("TLS options given but the scheme is %s (use rediss://)", u.Scheme)
	}
	return u, nil
}

// envPassword is $REDISCLI_AUTH, else $REDIS_PASSWORD.
func envPassword(getenv func(string) string) string {
	for _, name := range []string{"REDISCLI_AUTH", "REDIS_PASSWORD"} {
		if p := getenv(name); p != "" {
			return p
		}
	}
	return ""
}

func parseDB(s string) (int, error) {
	db, err := strconv.Atoi(s)
	if err != nil || db < 0 || db > 1<<20 {
		return 0, fmt.Errorf("bad database number %q", s)
	}
	return db, nil
}

func hostPort(s string) (string, error) { return hostPortDefault(s, DefaultPort) }

func hostPortDefault(s string, defPort int) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: "host" or "[::1]".
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			return net.JoinHostPort(s[1:len(s)-1], strconv.Itoa(defPort)), nil
		}
		if strings.Count(s, ":") > 1 {
			return "", fmt.Errorf("bad address %q (write IPv6 as [addr]:port)", s)
		}
		if strings.Contains(s, ":") {
			return "", fmt.Errorf("bad address %q", s)
		}
		host, port = s, strconv.Itoa(defPort)
	}
	if host == "" {
		return "", fmt.Errorf("missing host in %q", s)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(host, port), nil
}

func buildTLS(o TLSOptions, addr string) (*tls.Config, *tlsFiles, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // opt-in
	cfg.ServerName = o.ServerName
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		cfg.ServerName = host
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, nil, errors.New("client certificate and key must be given together")
	}
	if o.Reload {
		f := &tlsFiles{ca: o.CAFile, cert: o.CertFile, key: o.KeyFile, skipVerify: o.InsecureSkipVerify}
		if _, _, err := f.current(); err != nil {
			return nil, nil, err
		}
		if o.CertFile != "" {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				_, c, err := f.current()
				return c, err
			}
		}
		f.verifyAs(cfg)
		return cfg, f, nil
	}
	if o.CAFile != "" {
		pool, err := loadCA(o.CAFile)
		if err != nil {
			return nil, nil, err
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil, nil
}

func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// tlsFiles holds the CA pool and client certificate read from files, and
// reads them again when a file's size or modification time changed. A
// rotation caught half-way (a new certificate with the old key) keeps the
// previous pair until both files match.
type tlsFiles struct {
	ca, cert, key string
	skipVerify    bool

	mu        sync.Mutex
	caStamp   string
	pairStamp string
	pool      *x509.CertPool
	pair      *tls.Certificate
}

// stamp identifies the files' versions: size and modification time.
func stamp(paths ...string) (string, error) {
	var b strings.Builder
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", st.Size(), st.ModTime().UnixNano())
	}
	return b.String(), nil
}

// current returns the CA pool and the client certificate, read again when
// their files changed. A file that cannot be read or does not load keeps
// the previous version (when there is one).
func (f *tlsFiles) current() (*x509.CertPool, *tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ca != "" {
		st, err := stamp(f.ca)
		if err == nil && st != f.caStamp {
			var pool *x509.CertPool
			if pool, err = loadCA(f.ca); err == nil {
				f.pool, f.caStamp = pool, st
			}
		}
		if err != nil && f.pool == nil {
			return nil, nil, err
		}
	}
	if f.cert != "" {
		st, err := stamp(f.cert, f.key)
		if err == nil && st != f.pairStamp {
			var c tls.Certificate
			if c, err = tls.LoadX509KeyPair(f.cert, f.key); err == nil {
				f.pair, f.pairStamp = &c, st
			} else {
				err = fmt.Errorf("load client certificate: %w", err)
			}
		}
		if err != nil && f.pair == nil {
			return nil, nil, err
		}
	}
	return f.pool, f.pair, nil
}

// verifyAs makes cfg verify the server's certificate for cfg.ServerName
// against the current CA file (Go's own check takes a fixed pool). A nil
// f, or no CA file, leaves cfg as it is.
func (f *tlsFiles) verifyAs(cfg *tls.Config) {
	if f == nil || f.ca == "" || f.skipVerify {
		return
	}
	name := cfg.ServerName
	cfg.InsecureSkipVerify = true //nolint:gosec // verified below, by VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		pool, _, err := f.current()
		if err != nil {
			return err
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: the server sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: pool, DNSName: name, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err = cs.PeerCertificates[0].Verify(opts)
		return err
	}
}

// TLS reports whether connections use TLS.
func (u *URL) TLS() bool { return u.tls != nil }

// TLSConfig returns a copy of the TLS configuration, or nil without TLS.
func (u *URL) TLSConfig() *tls.Config {
	if u.tls == nil {
		return nil
	}
	return u.tls.Clone()
}

// DefaultSentinelPort is used when a sentinel address has no port.
const DefaultSentinelPort = 26379

// parseSentinel parses redis+sentinel:// and rediss+sentinel:// URLs. It
// returns an error message (never holding a password) or the URL.
func parseSentinel(s string, opts Options) (*URL, string) {
	scheme, rest, _ := strings.Cut(s, "://")
	scheme = strings.ToLower(scheme)
	if scheme != "redis+sentinel" && scheme != "rediss+sentinel" {
		return nil, fmt.Sprintf("unknown scheme %q (want redis+sentinel or rediss+sentinel)", scheme)
	}
	// The host list (h1:p1,h2:p2,...) is not a URL host, so it is cut out
	// by hand: the authority ends at the first '/' or '?', the userinfo at
	// its last '@'.
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth, tail := rest[:end], rest[end:]
	userinfo, hosts := "", auth
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		userinfo, hosts = auth[:at+1], auth[at+1:]
	}
	pu, err := url.Parse(scheme + "://" + userinfo + "sentinels" + tail)
	if err != nil {
		return nil, "malformed URL"
	}
	u := &URL{Scheme: scheme, Sentinel: &Sentinel{}}
	if pu.User != nil {
		u.Username = pu.User.Username()
		if p, ok := pu.User.Password(); ok {
			u.Password = Secret(p)
		}
	}
	if hosts == "" {
		return nil, "missing sentinel addresses (redis+sentinel://host:port[,host:port...]/MASTERNAME)"
	}
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			return nil, "empty sentinel address in the list"
		}
		addr, err := hostPortDefault(h, DefaultSentinelPort)
		if err != nil {
			return nil, err.Error()
		}
		u.Sentinel.Addrs = append(u.Sentinel.Addrs, addr)
	}
	name := strings.TrimPrefix(pu.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return nil, "missing master name (redis+sentinel://host:port/MASTERNAME)"
	}
	u.Sentinel.MasterName = name
	sentinelTLS := scheme == "rediss+sentinel"
	for k, v := range pu.Query() {
		if len(v) != 1 {
			return nil, fmt.Sprintf("%s given more than once", k)
		}
		switch k {
		case "db":
			db, err := parseDB(v[0])
			if err != nil {
				return nil, "db: " + err.Error()
			}
			u.DB = db
		case "sentinel_user":
			u.Sentinel.Username = v[0]
		case "sentinel_password":
			u.Sentinel.Password = Secret(v[0])
		case "tls":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return nil, fmt.Sprintf("tls=%q: want true or false", v[0])
			}
			sentinelTLS = b
		default:
			return nil, fmt.Sprintf("unknown query parameter %q (accepted: db, sentinel_user, sentinel_password, tls)", k)
		}
	}
	if u.Password == "" && opts.Getenv != nil {
		u.Password = Secret(envPassword(opts.Getenv))
	}
	var err2 error
	if scheme == "rediss+sentinel" {
		if u.tls, u.tlsFiles, err2 = buildTLS(opts.TLS, ""); err2 != nil {
			return nil, "tls: " + err2.Error()
		}
		u.fixedName = opts.TLS.ServerName != ""
	}
	if sentinelTLS {
		if u.Sentinel.tls, u.Sentinel.tlsFiles, err2 = buildTLS(opts.TLS, ""); err2 != nil {
			return nil, "tls: " + err2.Error()
		}
	}
	if u.tls == nil && u.Sentinel.tls == nil && !opts.TLS.empty() {
		return nil, "TLS options given but neither the nodes (rediss+sentinel://) nor the sentinels (tls=true) use TLS"
	}
	return u, ""
}

// Node is the URL of one server of u's set (the primary or a replica the
// sentinels named): the same credentials, database and TLS settings, with
// the certificate checked against addr's host unless a server name was
// given. For a URL that is not a Sentinel URL it returns a copy with Addr
// replaced.
func (u *URL) Node(addr string) *URL {
	n := *u
	n.Addr, n.Sentinel = addr, nil
	n.Scheme = strings.TrimSuffix(u.Scheme, "+sentinel")
	n.tls = withServerName(u.tls, u.tlsFiles, addr, u.fixedName)
	return &n
}

func withServerName(cfg *tls.Config, files *tlsFiles, addr string, fixed bool) *tls.Config {
	if cfg == nil {
		return nil
	}
	c := cfg.Clone()
	if !fixed {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	files.verifyAs(c)
	return c
}

// SentinelOptions returns go-redis options for the sentinel at addr (one of
// u.Sentinel.Addrs): the sentinel credentials and TLS settings.
func (u *URL) SentinelOptions(addr string) *redis.Options {
	o := &redis.Options{
		Addr:               addr,
		Username:           u.Sentinel.Username,
		Password:           u.Sentinel.Password.Reveal(),
		TLSConfig:          withServerName(u.Sentinel.tls, u.Sentinel.tlsFiles, addr, u.fixedName),
		DisableIdentity:    true,
		DialerRetries:      1,
		DialerRetryTimeout: 100 * time.Millisecond,
		DialTimeout:        2 * time.Second,
		ReadTimeout:        2 * time.Second,
		WriteTimeout:       2 * time.Second,
		MaxRetries:         -1,
	}
	return o
}

// ErrUnresolved is returned when a Sentinel URL is used as if it named one
// server: ask the sentinels for the node first (package sentinel), then use
// Node.
var ErrUnresolved = errors.New("a redis+sentinel:// URL names a set, not a server: its primary must be asked from the sentinels first")

// Network is "unix" or "tcp".
func (u *URL) Network() string {
	if u.Scheme == "unix" {
		return "unix"
	}
	return "tcp"
}

// Redacted is the URL with the password masked. Use it in every log line,
// error and manifest.
func (u *URL) Redacted() string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.Username != "" || u.Password != "" {
		b.WriteString(url.PathEscape(u.Username))
		if u.Password != "" {
			b.WriteString(":" + mask)
		}
		b.WriteString("@")
	}
	if u.Sentinel != nil {
		b.WriteString(strings.Join(u.Sentinel.Addrs, ","))
		b.WriteString("/" + url.PathEscape(u.Sentinel.MasterName))
		q := url.Values{}
		if u.DB != 0 {
			q.Set("db", strconv.Itoa(u.DB))
		}
		if u.Sentinel.Username != "" {
			q.Set("sentinel_user", u.Sentinel.Username)
		}
		if u.Sentinel.Password != "" {
			q.Set("sentinel_password", mask)
		}
		if (u.Sentinel.tls != nil) != (u.tls != nil) {
			q.Set("tls", strconv.FormatBool(u.Sentinel.tls != nil))
		}
		if len(q) > 0 {
			b.WriteString("?" + q.Encode())
		}
		return b.String()
	}
	if u.Scheme == "unix" {
		b.WriteString(u.Addr)
		if u.DB != 0 {
			b.WriteString("?db=" + strconv.Itoa(u.DB))
		}
		return b.String()
	}
	b.WriteString(u.Addr)
	if u.DB != 0 {
		b.WriteString("/" + strconv.Itoa(u.DB))
	}
	return b.String()
}

// String is Redacted, so a URL printed by accident leaks nothing.
func (u *URL) String() string { return u.Redacted() }

// LogValue is Redacted.
func (u *URL) LogValue() slog.Value { return slog.StringValue(u.Redacted()) }

// GoRedisOptions returns options for a go-redis client: address, TLS,
// credentials and DB, with DisableIdentity set (no CLIENT SETINFO, which
// older and managed servers reject).
func (u *URL) GoRedisOptions() *redis.Options {
	o := &redis.Options{
		Network:         u.Network(),
		Addr:            u.Addr,
		Username:        u.Username,
		Password:        u.Password.Reveal(),
		DB:              u.DB,
		TLSConfig:       u.TLSConfig(),
		DisableIdentity: true,
		// Fail fast on a dead server: one quick re-dial, not go-redis's
		// default of several with growing back-off.
		DialerRetries:      2,
		DialerRetryTimeout: 100 * time.Millisecond,
		DialTimeout:        5 * time.Second,
	}
	if u.Sentinel != nil {
		// Never let go-redis fall back to its default address.
		o.Dialer = func(context.Context, string, string) (net.Conn, error) { return nil, ErrUnresolved }
	}
	return o
}

// Dial opens a raw connection, with the TLS handshake done when the scheme is
// rediss. It does not authenticate or select a DB. Errors name the redacted
// URL.
func (u *URL) Dial(ctx context.Context) (net.Conn, error) {
	if u.Sentinel != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), ErrUnresolved)
	}
	var d net.Dialer
	var c net.Conn
	var err error
	if u.tls != nil {
		td := tls.Dialer{NetDialer: &d, Config: u.tls.Clone()}
		c, err = td.DialContext(ctx, u.Network(), u.Addr)
	} else {
		c, err = d.DialContext(ctx, u.Network(), u.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	return c, nil
}

// redactRaw masks the password in text that may not parse as a URL: it
// keeps the user name and masks what follows its ':' up to the last '@'.
func redactRaw(s string) string {
	return redactUserinfo(redactQuery(s, "sentinel_password="))
}

// redactQuery masks the value of the query parameter key (given with its
// '=') wherever it appears.
func redactQuery(s, key string) string {
	var b strings.Builder
	for {
		i := strings.Index(strings.ToLower(s), key)
		if i < 0 || (i > 0 && s[i-1] != '?' && s[i-1] != '&') {
			if i < 0 {
				b.WriteString(s)
				return b.String()
			}
			b.WriteString(s[:i+len(key)])
			s = s[i+len(key):]
			continue
		}
		b.WriteString(s[:i+len(key)] + mask)
		s = s[i+len(key):]
		if j := strings.IndexByte(s, '&'); j >= 0 {
			s = s[j:]
		} else {
			s = ""
		}
	}
}

func redactUserinfo(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		if at := strings.LastIndex(s, "@"); at >= 0 {
			return mask + "@" + s[at+1:]
		}
		return s
	}
	rest := s[i+3:]
	// A password may hold unescaped '/', '?' or '@', so the last '@' of the
	// whole text is taken as the end of the userinfo (over-masking a path
	// that holds '@' is the safe mistake).
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	user := rest[:at]
	if c := strings.IndexByte(user, ':'); c >= 0 {
		user = user[:c] + ":" + mask
	}
	return s[:i+3] + user + rest[at:]
}
