package cli

import (
	"errors"

	"github.com/spf13/pflag"

	"redback/internal/redisurl"
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
			return nil, usagef("--"+name+" redis://[user:password@]host:port[/db]", "--%s: %v", name, err)
		}
		return nil, err
	}
	return u, nil
}
