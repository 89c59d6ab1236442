package keysample

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"redback/internal/resp"
	"redback/internal/respconn"
)

// MaxListed bounds Result.Mismatches.
const MaxListed = 20

// Result is what Check found.
type Result struct {
	Checked    int      `json:"sample_checked"`
	Mismatched int      `json:"sample_mismatches"`
	Mismatches []string `json:"sample_mismatch_list,omitempty"` // the first MaxListed
	// NoExpireTimes: the server has no PEXPIRETIME (before Redis 7.0), so
	// only the presence of a TTL was compared (by PTTL).
	NoExpireTimes bool `json:"-"`
	// Counts says the key count of every db offered was compared with
	// INFO keyspace (Check's counts argument).
	Counts bool `json:"-"`
}

func (r *Result) mismatch(format string, args ...any) {
	r.Mismatched++
	if len(r.Mismatches) < MaxListed {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf(format, args...))
	}
}

// Summary says in a sentence what was compared and how it went.
func (r *Result) Summary() string {
	what := "value (DUMP) and expire time (PEXPIRETIME)"
	if r.NoExpireTimes {
		what = "value (DUMP) and TTL presence (PTTL; the server has no PEXPIRETIME)"
	}
	if r.Mismatched == 0 {
		counts := ""
		if r.Counts {
			counts = "; key counts per db (INFO keyspace) as restored"
		}
		return fmt.Sprintf("%d keys chosen by hash: %s equal to the backup%s", r.Checked, what, counts)
	}
	return fmt.Sprintf("%d of %d keys chosen by hash differ from the backup: %s", r.Mismatched, r.Checked, strings.Join(r.Mismatches, "; "))
}

// ParseKeyspace reads the keys= count of every db in INFO keyspace text.
func ParseKeyspace(info string) map[int]int64 {
	got := map[int]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "db") {
			continue
		}
		db, err := strconv.Atoi(name[2:])
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "keys="); ok {
				got[db], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return got
}

// Check reads every sampled key back from the server behind c with DUMP,
// PTTL and PEXPIRETIME (pipelined, one db at a time, after a SELECT) and
// compares value digests and expire times with the backup's. A key whose
// TTL ended before the check (nowMs) may be missing. With counts, the key
// count of every db that was offered keys is compared with INFO keyspace
// (keys with a TTL may have gone since; use it when those dbs were empty
// before). It needs no DEBUG. c must be in db 0 with no reply pending; it
// is left in db 0.
func (s *Sampler) Check(c *respconn.Conn, timeout time.Duration, nowMs func() int64, counts bool) (*Result, error) {
	res := &Result{Counts: counts}
	defer c.SetDeadline(time.Time{})
	if counts {
		_ = c.SetDeadline(time.Now().Add(timeout))
		v, err := c.Do("INFO", "keyspace")
		if err == nil {
			err = v.Err()
		}
		if err != nil {
			return nil, fmt.Errorf("INFO keyspace: %w", err)
		}
		got := ParseKeyspace(v.Text())
		for _, db := range slices.Sorted(maps.Keys(s.keys)) {
			want, ttl := s.keys[db], s.ttls[db]
			if g := got[db]; g > want || g < want-ttl {
				res.mismatch("db %d holds %d keys, %d were restored (%d with a TTL)", db, g, want, ttl)
			}
		}
	}
	byDB := map[int][]Key{}
	for _, k := range s.Keys() {
		byDB[k.DB] = append(byDB[k.DB], k)
	}
	dbs := make([]int, 0, len(byDB))
	for db := range byDB {
		dbs = append(dbs, db)
	}
	slices.Sort(dbs)
	cur := 0
	for _, db := range dbs {
		ks := byDB[db]
		slices.SortFunc(ks, func(a, b Key) int { return strings.Compare(a.Key, b.Key) })
		_ = c.SetDeadline(time.Now().Add(timeout))
		if err := selectDB(c, db, &cur); err != nil {
			return nil, err
		}
		w := c.Writer()
		for _, k := range ks {
			if _, err := w.Write(resp.AppendCommandString(nil, "DUMP", k.Key)); err != nil {
				return nil, err
			}
			if _, err := w.Write(resp.AppendCommandString(nil, "PTTL", k.Key)); err != nil {
				return nil, err
			}
			if _, err := w.Write(resp.AppendCommandString(nil, "PEXPIRETIME", k.Key)); err != nil {
				return nil, err
			}
		}
		if err := w.Flush(); err != nil {
			return nil, err
		}
		replies := make([]resp.Value, 3*len(ks))
		for i := range replies {
			v, err := c.Reader().ReadValue()
			if err != nil {
				return nil, fmt.Errorf("read the sample's replies: %w", err)
			}
			replies[i] = v
		}
		now := nowMs()
		for i, k := range ks {
			res.Checked++
			dump, pttl, pexp := replies[3*i], replies[3*i+1], replies[3*i+2]
			name := strconv.Quote(k.Key)
			if err := dump.Err(); err != nil {
				return nil, fmt.Errorf("DUMP of db %d key %s: %w", db, name, err)
			}
			if err := pttl.Err(); err != nil {
				return nil, fmt.Errorf("PTTL of db %d key %s: %w", db, name, err)
			}
			if dump.Kind == resp.KindNull {
				if k.Expire >= 0 && k.Expire <= now {
					continue // its TTL ended since
				}
				res.mismatch("db %d key %s is missing on the server", db, name)
				continue
			}
			got, err := s.ValueDigest(dump.Str, pttl.Int >= 0)
			if err != nil {
				res.mismatch("db %d key %s: %v", db, name, err)
				continue
			}
			if got != k.Digest {
				res.mismatch("db %d key %s: value digest %s on the server, %s in the backup", db, name, got, k.Digest)
				continue
			}
			if err := pexp.Err(); err != nil {
				if strings.Contains(strings.ToLower(err.Error()), "unknown command") {
					res.NoExpireTimes = true
					continue
				}
				return nil, fmt.Errorf("PEXPIRETIME of db %d key %s: %w", db, name, err)
			}
			if pexp.Int != k.Expire && !(k.Expire < 0 && pexp.Int == -1) {
				res.mismatch("db %d key %s: expire time %d on the server, %d in the backup", db, name, pexp.Int, k.Expire)
			}
		}
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := selectDB(c, 0, &cur); err != nil {
		return nil, err
	}
	return res, nil
}

// selectDB sends SELECT db unless *cur is db already (a server that
// refuses SELECT still serves db 0).
func selectDB(c *respconn.Conn, db int, cur *int) error {
	if db == *cur {
		return nil
	}
	v, err := c.Do("SELECT", strconv.Itoa(db))
	if err == nil {
		err = v.Err()
	}
	if err != nil {
		return fmt.Errorf("SELECT %d: %w", db, err)
	}
	*cur = db
	return nil
}
