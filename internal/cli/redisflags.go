package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"redback/internal/redisurl"
	"redback/internal/sentinel"
)

// redisFlags are the TLS flags shared by every command that connects to a
// Redis server.
type redisFlags struct {
	tls redisurl.TLSOptions
}

func (f *redisFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.tls.CAFile, "tls-ca", "", "PEM file of CAs to trust for rediss:// (default: system roots)")
	fs.StringVar(&f.tls.CertFile, "tls-cert", "", "client certificate (PEM) for rediss://")
	fs.StringVar(&f.tls.KeyFile, "tls-key", "", "client key (PEM) for rediss://")
	fs.BoolVar(&f.tls.InsecureSkipVerify, "tls-insecure", false, "do not verify the server certificate (testing only)")
}

// parse turns the value of flag name into a URL; a malformed one is a usage
// error. The password may come from $REDISCLI_AUTH or $REDIS_PASSWORD.
func (f *redisFlags) parse(e *env, name, raw string) (*redisurl.URL, error) {
	if raw == "" {
		return nil, usagef("--"+name+" redis://127.0.0.1:6379", "--%s is required", name)
	}
	u, err := redisurl.Parse(raw, redisurl.Options{TLS: f.tls, Getenv: e.getenv})
	if err != nil {
		var ue *redisurl.Error
		if errors.As(err, &ue) {
			return nil, usagef("--"+name+" redis://[user:password@]host:port[/db] (or redis+sentinel://host:port[,host:port...]/MASTERNAME)", "--%s: %v", name, err)
		}
		return nil, err
	}
	return u, nil
}

// node parses like parse and, for a redis+sentinel:// URL, asks the
// sentinels which server to use: the primary, or with o.PreferReplica a
// healthy replica when there is one. Other URLs are returned as they are.
func (f *redisFlags) node(ctx context.Context, e *env, name, raw string, o sentinel.Options) (*redisurl.URL, error) {
	u, err := f.parse(e, name, raw)
	if err != nil {
		return nil, err
	}
	n, err := sentinel.Resolve(ctx, u, o)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	if n != u {
		e.log.Info("sentinel named the server", "set", u.Redacted(), "node", n.Redacted())
	}
	return n, nil
}
