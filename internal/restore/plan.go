package restore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"redback/internal/rdb"
	"redback/internal/serverver"
)

// Conflict says what to do with a key that already exists on the target.
type Conflict int

// Conflict modes (--conflict).
const (
	// ConflictFail refuses, before writing anything, a target db that
	// will receive keys and is not empty.
	ConflictFail Conflict = iota
	// ConflictReplace overwrites existing keys (RESTORE ... REPLACE);
	// restoring twice gives the same data.
	ConflictReplace
	// ConflictSkip keeps the target's key and counts the source key as
	// skipped.
	ConflictSkip
)

// ParseConflict parses "fail", "replace" or "skip".
func ParseConflict(s string) (Conflict, error) {
	switch s {
	case "fail", "":
		return ConflictFail, nil
	case "replace":
		return ConflictReplace, nil
	case "skip":
		return ConflictSkip, nil
	}
	return 0, fmt.Errorf("unknown conflict mode %q: want fail, replace or skip", s)
}

func (c Conflict) String() string {
	switch c {
	case ConflictReplace:
		return "replace"
	case ConflictSkip:
		return "skip"
	}
	return "fail"
}

// Filter selects and moves keys. The zero value keeps everything where it
// was.
type Filter struct {
	Match []string    // Redis glob patterns; a key is kept when it matches any (none: every key)
	DBs   []int       // source dbs to keep (none: every db)
	MapDB map[int]int // source db -> target db (unlisted dbs stay where they are)
}

// ParseMapDB parses a --map-db value "FROM:TO".
func ParseMapDB(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("--map-db %q: want FROM:TO, e.g. 0:3", s)
	}
	from, err1 := strconv.Atoi(a)
	to, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || from < 0 || to < 0 {
		return 0, 0, fmt.Errorf("--map-db %q: FROM and TO must be db numbers >= 0, e.g. 0:3", s)
	}
	return from, to, nil
}

// IsZero reports whether f keeps every key in its db.
func (f *Filter) IsZero() bool { return len(f.Match) == 0 && len(f.DBs) == 0 && len(f.MapDB) == 0 }

// KeepDB reports whether keys of source db are kept.
func (f *Filter) KeepDB(db int) bool {
	if len(f.DBs) == 0 {
		return true
	}
	for _, d := range f.DBs {
		if d == db {
			return true
		}
	}
	return false
}

// KeepKey reports whether key matches one of the patterns (or there are none).
func (f *Filter) KeepKey(key []byte) bool {
	if len(f.Match) == 0 {
		return true
	}
	for _, m := range f.Match {
		if Match([]byte(m), key) {
			return true
		}
	}
	return false
}

// TargetDB maps a source db to the target db.
func (f *Filter) TargetDB(db int) int {
	if to, ok := f.MapDB[db]; ok {
		return to
	}
	return db
}

// collision reports the first two kept source dbs that map to one target db.
func (f *Filter) collision(srcDBs []int) (a, b, to int, found bool) {
	seen := map[int]int{}
	for _, d := range srcDBs {
		if !f.KeepDB(d) {
			continue
		}
		t := f.TargetDB(d)
		if o, ok := seen[t]; ok && o != d {
			return o, d, t, true
		}
		seen[t] = d
	}
	return 0, 0, 0, false
}

// Target is what restore needs to know about a live server.
type Target struct {
	Address      string // redacted, for messages
	RedisVersion string
	RDBVersion   int    // the newest RDB/DUMP version it loads in Redis's numbering (up to 79)
	Valkey       string // valkey_version, "" on Redis
	ValkeyRDB    int    // the newest version of Valkey's own numbering it loads (80 and up), 0 if none
	MaxBulkLen   int64  // proto-max-bulk-len
	Databases    int
	Cluster      bool
	Replica      bool   // role:slave
	PrimaryAddr  string // when Replica
	Replicas     int    // replicas attached to it (connected_slaves)
	Keys         map[int]int64
}

// RDBVersionFor maps a redis_version to the RDB version it reads: 7.0 -> 10,
// 7.2 -> 11, 7.4 to 8.4 -> 12, 8.6 and later -> 13, 5.x and 6.x -> 9, 4.x -> 8, 3.2 -> 7.
func RDBVersionFor(redisVersion string) (int, error) {
	parts := strings.SplitN(redisVersion, ".", 3)
	if len(parts) < 2 {
		return 0, fmt.Errorf("cannot parse redis_version %q", redisVersion)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("cannot parse redis_version %q", redisVersion)
	}
	switch {
	case major > 8 || major == 8 && minor >= 6:
		return 13, nil
	case major == 8 || major == 7 && minor >= 4:
		return 12, nil
	case major == 7 && minor >= 2:
		return 11, nil
	case major == 7:
		return 10, nil
	case major >= 5:
		return 9, nil
	case major == 4:
		return 8, nil
	case major == 3 && minor >= 2:
		return 7, nil
	}
	return 6, nil
}

// Understands reports whether a server reading RDB version v loads object
// type t.
func Understands(v int, t rdb.Type) bool {
	switch {
	case t <= rdb.TypeZSet2 || t == rdb.TypeModule2:
		return v >= 8 || t <= rdb.TypeHash
	case t >= rdb.TypeHashZipmap && t <= rdb.TypeListQuicklist:
		return true
	case t == rdb.TypeStreamListpacks:
		return v >= 9
	case t >= rdb.TypeHashListpack && t <= rdb.TypeStreamListpacks2:
		return v >= 10
	case t == rdb.TypeSetListpack || t == rdb.TypeStreamListpacks3:
		return v >= 11
	case t == rdb.TypeHashMetadata || t == rdb.TypeHashListpackEx:
		return v >= 12
	case t == rdb.TypeStreamListpacks4:
		return v >= 13
	}
	return false
}

// KeyMeta reports whether the target loads key metadata (the KEY_META
// opcode in a DUMP payload): Redis 8.6 and later.
func (t Target) KeyMeta() bool { return t.Valkey == "" && t.RDBVersion >= 13 }

// HashFieldTTL reports whether the target keeps hash-field TTLs (Redis
// 7.4 and later, Valkey 9.0 and later).
func (t Target) HashFieldTTL() bool { return t.RDBVersion >= 12 || t.ValkeyRDB >= 80 }

// DumpVersion is the DUMP version a server writes: Redis's RDB version
// for redisVersion, or for Valkey (valkeyVersion set) 80 from 9.0 on and
// 11 before.
func DumpVersion(redisVersion, valkeyVersion string) (int, error) {
	if valkeyVersion != "" {
		r, v := serverver.RDBVersions("valkey", valkeyVersion)
		return max(r, v), nil
	}
	return RDBVersionFor(redisVersion)
}

// Understands reports whether the target loads object type t: a Valkey
// type only in Valkey's own numbering, Redis's types of RDB 12 and later
// only on Redis.
func (t Target) Understands(typ rdb.Type) bool {
	if typ.Valkey() {
		return typ == rdb.TypeValkeyHash2 && t.ValkeyRDB >= 80
	}
	return Understands(t.RDBVersion, typ)
}

// Loads reports whether the target loads a payload of DUMP version v as
// it is (Valkey refuses Redis's 12–79).
func (t Target) Loads(v int) bool {
	if v >= 80 {
		return v <= t.ValkeyRDB
	}
	return v <= t.RDBVersion
}

// Footer is the DUMP version a relabelled payload carries: the target's
// own numbering.
func (t Target) Footer() int {
	if t.ValkeyRDB > 0 {
		return t.ValkeyRDB
	}
	return t.RDBVersion
}

// Action is what Plan.Decide chose for one key.
type Action int

// Actions.
const (
	ActionRestore       Action = iota // RESTORE with the payload as in the source
	ActionRewriteFooter               // RESTORE with the footer version lowered to the target's
	ActionConvert                     // plain commands (SET, RPUSH, SADD, ZADD, HSET, XADD, ...)
	ActionFiltered                    // not selected by --match / --db
	ActionExpired                     // its expire time already passed
)

func (a Action) String() string {
	return [...]string{"restore", "rewrite-footer", "convert", "filtered", "expired"}[a]
}

// Plan is the pure part of a restore into a live server.
type Plan struct {
	Filter        Filter
	Conflict      Conflict
	Target        Target
	SourceVersion int // RDB version of the source (80+ for Valkey)
	// Footer is the DUMP footer version used for ActionRestore
	// (SourceVersion) and ActionRewriteFooter (Target.RDBVersion).
	Footer, RewriteFooter uint16
}

// ErrCluster is returned for a cluster-mode target.
var ErrCluster = errors.New("the target runs in cluster mode: restoring into a cluster is not supported yet; restore into a standalone server, or into a file with --to-dir and load it on each node")

// ConflictError refuses non-empty target dbs under ConflictFail.
type ConflictError struct {
	Target string
	DBs    map[int]int64 // target db -> keys it holds
	Note   string
}

func (e *ConflictError) Error() string {
	var parts []string
	for _, d := range slices.Sorted(maps.Keys(e.DBs)) {
		parts = append(parts, fmt.Sprintf("db %d has %d keys", d, e.DBs[d]))
	}
	msg := fmt.Sprintf("target %s is not empty", e.Target)
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, ", ") + ")"
	}
	if e.Note != "" {
		msg += "; " + e.Note
	}
	return msg + ": nothing was written. Use --conflict replace to overwrite existing keys, or --conflict skip to keep them"
}

// NewPlan checks the target against the source and filters. srcDBs lists
// the source dbs holding keys, or is nil when unknown (then every non-empty
// target db that could receive keys counts).
func NewPlan(srcVersion int, srcDBs []int, t Target, f Filter, c Conflict) (*Plan, error) {
	if t.Cluster {
		return nil, ErrCluster
	}
	if t.Replica {
		return nil, fmt.Errorf("target %s is a replica of %s (read-only, and a resync would discard the restored keys): restore into the primary, or run REPLICAOF NO ONE on the target first", t.Address, t.PrimaryAddr)
	}
	p := &Plan{Filter: f, Conflict: c, Target: t, SourceVersion: srcVersion}
	p.Footer = uint16(min(srcVersion, 0xffff))
	p.RewriteFooter = uint16(t.Footer())
	if t.Databases > 0 {
		check := func(db int) error {
			if to := f.TargetDB(db); to >= t.Databases {
				return fmt.Errorf("source db %d goes to db %d, but target %s has only %d databases (0-%d): use --map-db %d:N with N < %d", db, to, t.Address, t.Databases, t.Databases-1, db, t.Databases)
			}
			return nil
		}
		for _, d := range srcDBs {
			if f.KeepDB(d) {
				if err := check(d); err != nil {
					return nil, err
				}
			}
		}
		for from := range f.MapDB {
			if f.KeepDB(from) {
				if err := check(from); err != nil {
					return nil, err
				}
			}
		}
	}
	if c == ConflictFail {
		busy := map[int]int64{}
		if srcDBs != nil {
			for _, d := range srcDBs {
				if !f.KeepDB(d) {
					continue
				}
				if n := t.Keys[f.TargetDB(d)]; n > 0 {
					busy[f.TargetDB(d)] = n
				}
			}
		} else {
			for d, n := range t.Keys {
				if n > 0 && p.mayReceive(d) {
					busy[d] = n
				}
			}
		}
		if len(busy) > 0 {
			return nil, &ConflictError{Target: t.Address, DBs: busy}
		}
	}
	return p, nil
}

// mayReceive reports whether target db could receive keys when the source
// dbs are unknown.
func (p *Plan) mayReceive(db int) bool {
	f := &p.Filter
	for from, to := range f.MapDB {
		if to == db && f.KeepDB(from) {
			return true
		}
	}
	if _, moved := f.MapDB[db]; moved {
		return false
	}
	return f.KeepDB(db)
}

// Decide chooses what to do with one key of source db. payloadLen is the
// size of its DUMP payload (type byte + value + 10).
func (p *Plan) Decide(db int, key []byte, t rdb.Type, expire int64, payloadLen int64, nowMs int64) Action {
	if !p.Filter.KeepDB(db) || !p.Filter.KeepKey(key) {
		return ActionFiltered
	}
	if expire >= 0 && expire <= nowMs {
		return ActionExpired
	}
	if !p.Target.Understands(t) {
		return ActionConvert
	}
	if p.Target.MaxBulkLen > 0 && payloadLen > p.Target.MaxBulkLen {
		return ActionConvert
	}
	if !p.Target.Loads(p.SourceVersion) {
		return ActionRewriteFooter
	}
	return ActionRestore
}
