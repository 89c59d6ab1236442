// Package acl knows which Redis permissions each redback mode needs, so that
// an operator can give redback a least-privilege ACL user.
//
// Every permission is listed with the reason redback needs it. Permissions
// marked optional make redback better when granted and are not required: the
// mode still works without them and says what it assumed. The tests prove the
// rest: each mode works with exactly its rules and fails, naming the missing
// permission, with any required one taken away.
package acl

import (
	"fmt"
	"slices"
	"strings"
)

// Perm is one command (or command|subcommand) a mode sends.
type Perm struct {
	Command string `json:"command"` // lower case, "config|get" for a subcommand
	Why     string `json:"why"`
	// Optional, when set, says what the mode does without the permission.
	Optional string `json:"optional,omitempty"`
	// Channels are the Pub/Sub channel patterns the command needs (without '&').
	Channels []string `json:"channels,omitempty"`
	// Since names the first servers that know the command: ACL SETUSER
	// refuses a command the server does not know, so the rules leave it out
	// and `redback acl` says when to add it.
	Since string `json:"since,omitempty"`
}

// Mode is what one redback mode needs on one kind of server.
type Mode struct {
	Name     string `json:"name"`
	Server   string `json:"server"` // which server the rules go on
	Summary  string `json:"summary"`
	Commands []Perm `json:"commands"`
	Keys     string `json:"keys,omitempty"` // key pattern rule: "", "%R~*" or "~*"
	// Dangerous names commands a mode needs that an operator may not expect
	// (FLUSHALL, CONFIG SET, SHUTDOWN, DEBUG): empty for all but consistency.
	Dangerous []string `json:"dangerous,omitempty"`
}

// The time-marker channel the shipper publishes on (see internal/ship).
const markerChannels = "__redback__:*"

var connect = []Perm{
	{Command: "hello", Why: "the client library's connection handshake (RESP3)", Optional: "the client falls back to RESP2 after one NOPERM per connection (an ACL LOG entry each time)"},
	{Command: "ping", Why: "checks the connection before work starts", Optional: "one NOPERM per connection (an ACL LOG entry each time)"},
}

// connectPing is connect for modes whose own connection checks itself
// with PING before any work.
var connectPing = []Perm{connect[0],
	{Command: "ping", Why: "checks the connection (and the credentials) before any work starts"}}

var info = Perm{Command: "info", Why: "role, version, replication offset, persistence and keyspace facts"}

// infoNote is INFO where a mode works without it.
var infoNote = Perm{Command: "info", Why: "records the source's role and version and checks it is not loading",
	Optional: "the source's version and role are not recorded, and the server's state is not checked first"}

var replication = []Perm{
	{Command: "psync", Why: "the replication handshake: a full sync for a snapshot, a continued stream for shipping"},
	{Command: "replconf", Why: "the replication handshake (capabilities, listening port) and ACKs of the stream"},
}

var restoreTarget = []Perm{
	info,
	{Command: "config|get", Why: "reads proto-max-bulk-len and databases to plan the restore", Optional: "defaults are assumed (512 MB bulk limit, 16 dbs)"},
	{Command: "select", Why: "switches to each db the restore writes to"},
	{Command: "restore", Why: "writes each key exactly (RESTORE … ABSTTL, with REPLACE for --conflict replace)"},
	{Command: "function|load", Why: "restores the snapshot's function libraries (a snapshot without functions does not need it)"},
	{Command: "del", Why: "--conflict replace of a key rebuilt by commands; cleanup of a temp key", Optional: "needed only for keys written by commands (older target, oversize value)"},
	{Command: "dump", Why: "reads a sample of the restored keys back to verify them where DEBUG DIGEST is not compared", Optional: sampleOptional},
	{Command: "pttl", Why: "whether each sampled key has a TTL", Optional: sampleOptional},
	{Command: "pexpiretime", Why: "each sampled key's expire time", Optional: sampleOptional},
}

// sampleOptional is what a restore does without the commands of its
// verification by sample.
const sampleOptional = "the restore is not verified by sample, and says so (verified_by is empty)"

// convert are the commands restore falls back to when the target cannot
// take a key's DUMP payload (an older RDB version, a value past the bulk limit).
var convert = []string{"append", "set", "rpush", "sadd", "zadd", "hset", "xadd", "xsetid", "xgroup", "xclaim", "pexpireat", "rename", "renamenx"}

func convertPerms() []Perm {
	const why, optional = "rebuilds a key by commands when the target cannot take its DUMP payload",
		"needed only for keys converted for an older target or a value past the bulk limit"
	out := make([]Perm, 0, len(convert)+1)
	for _, c := range convert {
		out = append(out, Perm{Command: c, Why: why, Optional: optional})
	}
	return append(out, Perm{Command: "hpexpireat", Why: why + " (hash fields with their own TTL)", Optional: optional, Since: "Redis 7.4, Valkey 9.0"})
}

// Modes lists every mode, in the order `redback acl` prints them.
var Modes = []Mode{
	{
		Name: "snapshot", Server: "source", Summary: "redback snapshot --method sync (the default): a full sync over the replication protocol",
		Commands: cat(connect, []Perm{infoNote}, replication),
	},
	{
		Name: "snapshot-bgsave", Server: "source", Summary: "redback snapshot --method bgsave: BGSAVE, then the file read on the same host",
		Commands: cat(connect, []Perm{info,
			{Command: "bgsave", Why: "starts the save (BGSAVE SCHEDULE while a rewrite runs)"},
			{Command: "config|get", Why: "finds the RDB file (dir, dbfilename) and, when a save fails, the log (logfile)"},
		}),
	},
	{
		Name: "ship", Server: "source", Summary: "redback ship and the agent's shipping: a replica stream, plus time markers",
		Commands: cat(connect, []Perm{infoNote}, replication, []Perm{
			{Command: "publish", Why: "time markers on __redback__:tick, carried in order with the writes, so every shipped command has a known time",
				Optional: "shipping works; commands re-sent after a reconnect then carry a time interval instead of a time", Channels: []string{markerChannels}},
			{Command: "spublish", Why: "the time markers on a cluster node (SPUBLISH keeps them in the node's shard)",
				Optional: "needed only for a cluster node; without it shipping works, as without publish", Channels: []string{markerChannels}, Since: "Redis 7.0, Valkey 7.2"},
		}),
	},
	{
		Name: "restore", Server: "target", Summary: "redback restore --to-redis: RESTORE of every key into the target",
		Commands: cat(connectPing, restoreTarget, convertPerms()),
		Keys:     "~*",
	},
	{
		Name: "drill", Server: "no server of yours", Summary: "redback drill: restores into scratch redis-servers it starts itself; it sends nothing to your servers",
	},
	{
		Name: "migrate", Server: "source", Summary: "redback migrate --method dump (the default), on the source (the target needs the restore rules)",
		Commands: cat(connectPing, []Perm{info,
			{Command: "select", Why: "switches to each db it copies"},
			{Command: "scan", Why: "walks the keys"},
			{Command: "dump", Why: "reads each key's exact payload"},
			{Command: "pexpiretime", Why: "reads each key's expiry time (PTTL on servers before 7.0)"},
			{Command: "multi", Why: "reads a key's payload and expiry in one transaction"},
			{Command: "exec", Why: "reads a key's payload and expiry in one transaction"},
			{Command: "function|list", Why: "copies the function libraries", Optional: "functions are not copied, and the summary says so"},
		}),
		Keys: "%R~*",
	},
	{
		Name: "migrate-sync", Server: "source", Summary: "redback migrate --method sync, on the source: one full sync (the target needs the restore rules)",
		Commands: cat(connectPing, []Perm{info}, replication),
	},
	{
		Name: "sentinel", Server: "sentinels", Summary: "a redis+sentinel:// source or target (sentinel_user in the URL): asks the sentinels for the primary or a replica and follows failovers",
		Commands: []Perm{connect[0],
			{Command: "ping", Why: "checks the +switch-master subscription after 2 s of silence (a connection that fails it is replaced)"},
			{Command: "sentinel|get-master-addr-by-name", Why: "asks for the primary's address"},
			{Command: "sentinel|replicas", Why: "lists the replicas when a replica is preferred as the source (snapshots, ship)",
				Optional: "the primary is read instead of a replica"},
			{Command: "subscribe", Why: "follows failovers (+switch-master) as they happen", Channels: []string{"+switch-master"}},
		},
	},
	{
		Name: "consistency", Server: "source", Summary: "redback consistency: DEBUG RELOAD between two DEBUG DIGESTs",
		Commands: cat(connect, []Perm{info,
			{Command: "debug", Why: "DEBUG DIGEST before and after, and DEBUG RELOAD itself (the server must also allow DEBUG: enable-debug-command)"},
		}),
		Dangerous: []string{"DEBUG (the mode's purpose: DEBUG RELOAD blocks the server while it saves and reloads)"},
	},
}

func cat(parts ...[]Perm) []Perm {
	var out []Perm
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// Names lists the modes' names.
func Names() []string {
	out := make([]string, len(Modes))
	for i, m := range Modes {
		out[i] = m.Name
	}
	return out
}

// Lookup returns the modes named, in the order given.
func Lookup(names []string) ([]Mode, error) {
	var out []Mode
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		i := slices.IndexFunc(Modes, func(m Mode) bool { return m.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("unknown mode %q (modes: %s)", n, strings.Join(Names(), ", "))
		}
		out = append(out, Modes[i])
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no mode named (modes: %s)", strings.Join(Names(), ", "))
	}
	return out, nil
}

// Rules returns the ACL rules for one user that may do every mode given:
// "-@all" first, then each command once, the key rule and the channels.
// Without optional permissions unless withOptional. Omit, when set, drops
// one command (the tests use it to prove each one is needed).
func Rules(modes []Mode, withOptional bool, omit string) []string {
	rules := []string{"resetkeys", "resetchannels", "-@all"}
	seen := map[string]bool{}
	keys := ""
	var chans []string
	for _, m := range modes {
		for _, p := range m.Commands {
			if (p.Optional != "" && !withOptional) || p.Since != "" || p.Command == omit || seen[p.Command] {
				continue
			}
			seen[p.Command] = true
			rules = append(rules, "+"+p.Command)
			for _, c := range p.Channels {
				if !slices.Contains(chans, c) {
					chans = append(chans, c)
				}
			}
		}
		keys = widerKeys(keys, m.Keys)
	}
	if keys != "" {
		rules = append(rules, keys)
	}
	for _, c := range chans {
		rules = append(rules, "&"+c)
	}
	return rules
}

// widerKeys returns the key rule that allows what both a and b allow.
func widerKeys(a, b string) string {
	switch {
	case a == "~*" || b == "~*":
		return "~*"
	case a != "" || b != "":
		return "%R~*"
	}
	return ""
}

// SetUser returns the ACL SETUSER command giving user exactly the rules of
// modes. It sets no password and keeps any the user has: "on" enables it,
// the rules replace its commands, keys and channels.
func SetUser(user string, modes []Mode, withOptional bool) string {
	return "ACL SETUSER " + user + " on " + strings.Join(Rules(modes, withOptional, ""), " ")
}

// CheckUser reports whether name is usable as an ACL user name on a
// command line (no spaces, no control characters, not empty).
func CheckUser(name string) error {
	if name == "" {
		return fmt.Errorf("empty user name")
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '"' || r == '\'' {
			return fmt.Errorf("user name %q: spaces, quotes and control characters are not allowed", name)
		}
	}
	return nil
}
