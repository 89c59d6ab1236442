package restore

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"redback/internal/rdb"
)

// Defaults of Options.
const (
	DefaultParallel   = 1 // measured fastest into a single-threaded server on 2 cores (docs/performance.md)
	DefaultBatchBytes = 1 << 20
	DefaultBatchKeys  = 5000
	DefaultMaxListed  = 100
	DefaultTimeout    = 2 * time.Minute
)

// Options tune a restore. The zero value restores everything with
// ConflictFail and the defaults above.
type Options struct {
	Filter     Filter
	Conflict   Conflict
	Parallel   int           // connections to the target
	BatchBytes int           // bytes of commands sent per batch; a larger value goes alone
	BatchKeys  int           // keys per batch
	MaxListed  int           // failures listed in Result.Failures (all are counted)
	Timeout    time.Duration // per connection setup and per batch round trip
	// MaxValueBytes caps one serialized value (rdb.Options.MaxValueBytes).
	MaxValueBytes int64
	// SampleKeys is how many keys, chosen by hash, are read back from a
	// server target to verify it where DEBUG DIGEST is not compared
	// (0: SampleKeys; < 0: none, and no key counts either).
	SampleKeys int
	// Force lets ToFile replace an existing file.
	Force bool
	// NoPrecheck skips Source.Precheck: the stored object is then read
	// once, and damage found at its end comes after keys were written.
	NoPrecheck bool
	// Method chooses how ToRedis writes (MethodRestore when zero).
	Method Method
	// VerifySample makes a restore by replication prove the loaded target
	// by a sample of keys and the key counts (as where DEBUG DIGEST is
	// refused) instead of asking its DEBUG DIGEST, which hashes every key
	// and can take several times the load. The stream is still checked
	// against the data's digest or CRC as it is sent.
	VerifySample bool
	// Listen is the address ToRedis listens on for the target's
	// replication connection ("" : the local address of its own
	// connection to the target, port chosen by the system); Advertise is
	// the address the target is told to connect to ("" : the listening
	// address).
	Listen, Advertise string
	// Now is the clock deciding which keys already expired (time.Now if nil).
	Now func() time.Time
	// Cluster lets the target be a cluster node whose keys the caller
	// routes by slot (package clusterset): RESTORE replies MOVED, ASK,
	// TRYAGAIN and CLUSTERDOWN then add the key to Result.Redirected, for
	// the caller to write again, instead of stopping the restore.
	Cluster bool
	// Progress, when set, receives increments of source bytes read and
	// keys handled. It is called from one goroutine.
	Progress func(bytes, keys int64)
}

func (o *Options) withDefaults() Options {
	c := *o
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.BatchKeys <= 0 {
		c.BatchKeys = DefaultBatchKeys
	}
	if c.MaxListed <= 0 {
		c.MaxListed = DefaultMaxListed
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Source is an RDB stream restore can open, once or (to find its dbs) twice.
type Source struct {
	Name string // file path or snapshot id, for messages
	// Object is the stored object's key when the source is a repository
	// object: a damage error names it.
	Object string
	Open   func(ctx context.Context) (io.ReadCloser, error)
	Size   int64 // raw RDB bytes when known, else -1
	DBs    []int // dbs holding keys when known (a snapshot's census), else nil
	// Verified: the bytes are those of a snapshot fully verified when it
	// was taken, and the stored object's size and sha256 are checked as it
	// is read. ToDir and ToFile then walk only each value's outline (CRC-64
	// and structure of the file are still checked) and publish the file
	// only after the sha256 matched; a restore into a live server always
	// checks every value, since it sends them before the end is reached.
	Verified bool
	// Precheck, when set, proves the stored bytes (size and sha256 against
	// the manifest) without decoding them; ToRedis runs it before the
	// first write (see Options.NoPrecheck).
	Precheck func(ctx context.Context) error
	// Digest is the DEBUG DIGEST of the data (Redis 7.0 score format)
	// when known (a snapshot's manifest), and ZSets says whether the data
	// holds sorted sets (whose digest depends on the score format).
	Digest string
	ZSets  bool
}

// Failure is one key (or function library, DB -1) that was not restored.
type Failure struct {
	DB     int    `json:"db"`
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Result counts what a restore did. KeysConverted is the part of
// KeysRestored that took the fallback path (plain commands).
type Result struct {
	KeysRestored     int64     `json:"keys_restored"`
	KeysSkipped      int64     `json:"keys_skipped"`
	KeysExpired      int64     `json:"keys_expired"`
	KeysFiltered     int64     `json:"keys_filtered"`
	KeysConverted    int64     `json:"keys_converted"`
	KeysRewritten    int64     `json:"keys_footer_rewritten"`
	KeysFailed       int64     `json:"keys_failed"`
	Failures         []Failure `json:"failures"`
	FunctionsLoaded  int64     `json:"functions_loaded"`
	FunctionsSkipped int64     `json:"functions_skipped"`
	Bytes            int64     `json:"bytes"`
	// Method is how the keys were written into a live server: "replicate"
	// or "restore" ("" for a file).
	Method string `json:"method,omitempty"`
	// Digest is the target's DEBUG DIGEST after a restore by replication,
	// checked equal to the data's ("" when not compared).
	Digest string `json:"digest,omitempty"`
	// DigestSeconds is how long the target took to answer DEBUG DIGEST
	// (part of the restore's duration; the target is still a read-only
	// replica meanwhile, so nothing else changes it).
	DigestSeconds float64 `json:"digest_seconds,omitempty"`
	// VerifiedBy says how the target's data was checked against the
	// source once written: "digest" (DEBUG DIGEST of the whole dataset,
	// after a restore by replication), "sample" (DUMP and PEXPIRETIME of
	// SampleChecked keys chosen by hash, and key counts from INFO keyspace
	// where they are comparable: after RESTORE commands, or when the target
	// refuses DEBUG), or "" (not checked; Notes say why).
	VerifiedBy       string        `json:"verified_by,omitempty"`
	SampleChecked    int           `json:"sample_checked,omitempty"`
	SampleMismatches int           `json:"sample_mismatches,omitempty"`
	Duration         time.Duration `json:"-"`
	Notes            []string      `json:"notes,omitempty"`
	// Redirected are the keys the target answered with a redirect or a
	// retry-later error (Options.Cluster): not restored, not failed.
	Redirected []string `json:"-"`

	mu        sync.Mutex
	maxListed int
}

func (r *Result) fail(db int, key []byte, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.KeysFailed++
	if len(r.Failures) < r.maxListed {
		r.Failures = append(r.Failures, Failure{DB: db, Key: string(key), Reason: reason})
	}
}

func (r *Result) add(p *int64, n int64) {
	r.mu.Lock()
	*p += n
	r.mu.Unlock()
}

func (r *Result) note(format string, args ...any) {
	r.mu.Lock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// damageLabel is how a DamagedSourceError names src: its name and, for a
// repository object, the object's key.
func (src Source) damageLabel() string {
	if src.Object == "" {
		return src.Name
	}
	return src.Name + " (object " + src.Object + ")"
}

// DamagedSourceError means the source data is damaged (a *rdb.FormatError or a
// pack integrity error inside); Written keys had already been written to the
// target when it was found.
type DamagedSourceError struct {
	Source  string
	Written int64
	// Span says which keys of the source were sent before the damage was
	// found ("" when none).
	Span string
	Err  error
}

func (e *DamagedSourceError) Error() string {
	if e.Written == 0 && e.Span == "" {
		return fmt.Sprintf("source %s is damaged: %v (nothing was written to the target)", e.Source, e.Err)
	}
	return fmt.Sprintf("source %s is damaged: %v (%d keys had already been written to the target: %s)", e.Source, e.Err, e.Written, e.Span)
}

// keySpan remembers the first and the last key read from a source.
type keySpan struct {
	n                 int64
	firstDB, lastDB   int
	firstKey, lastKey []byte
}

func (s *keySpan) see(db int, key []byte) {
	if s.n == 0 {
		s.firstDB, s.firstKey = db, append([]byte(nil), key...)
	}
	s.n++
	s.lastDB, s.lastKey = db, append(s.lastKey[:0], key...)
}

func (s *keySpan) String() string {
	if s.n == 0 {
		return ""
	}
	return fmt.Sprintf("at most the source's first %d keys in its order, db %d key %q to db %d key %q; nothing after it", s.n, s.firstDB, s.firstKey, s.lastDB, s.lastKey)
}
func (e *DamagedSourceError) Unwrap() error            { return e.Err }
func (e *DamagedSourceError) VerificationFailed() bool { return true }

// ScanDBs reads a whole RDB stream and returns the dbs that hold keys.
func ScanDBs(r io.Reader, maxValue int64) ([]int, error) {
	rd, err := rdb.NewReader(r, rdb.Options{MaxValueBytes: maxValue, StreamValues: rdb.CheckStreamed, StreamStrings: true})
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if rec.Kind == rdb.RecordKey {
			seen[rec.DB] = true
		}
	}
	dbs := make([]int, 0, len(seen))
	for d := range seen {
		dbs = append(dbs, d)
	}
	sort.Ints(dbs)
	return dbs, nil
}
