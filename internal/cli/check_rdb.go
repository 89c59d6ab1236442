package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/progress"
	"redback/internal/rdb"
)

// checkRDBOpts are the flags of `redback check rdb`.
type checkRDBOpts struct {
	json bool
}

func newCheckRDBCmd(e *env) *cobra.Command {
	var o checkRDBOpts
	c := &cobra.Command{
		Use:   "rdb FILE",
		Short: "Check an RDB file the way redis-check-rdb does, and summarize it",
		Long: `Reads FILE as a stream (memory stays bounded by the largest value), checks
every record, every packed value and the CRC-64 trailer, and prints the RDB
version, the aux fields, keys per db and per type, expires, keys whose TTL has
already passed (a primary loading the file drops them), modules, functions
and the checksum status.

Exit 0 when the file is valid, 3 when it is damaged (the offset, key and
reason are printed), 1 when it cannot be read.`,
		Example: "  redback check rdb /var/lib/redis/dump.rdb\n  redback check rdb --json dump.rdb",
		Args:    exactArgs(1, "redback check rdb dump.rdb"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCheckRDB(cmd.Context(), e, o, args[0])
		},
	}
	c.Flags().BoolVar(&o.json, "json", false, "print one JSON object instead of text")
	return c
}

// rdbTypeNames names each object type byte, as in Redis's rdb.h.
var rdbTypeNames = map[rdb.Type]string{
	rdb.TypeString: "string", rdb.TypeList: "list", rdb.TypeSet: "set", rdb.TypeZSet: "zset",
	rdb.TypeHash: "hash", rdb.TypeZSet2: "zset-2", rdb.TypeModulePreGA: "module-pre-ga",
	rdb.TypeModule2: "module-2", rdb.TypeHashZipmap: "hash-zipmap", rdb.TypeListZiplist: "list-ziplist",
	rdb.TypeSetIntset: "set-intset", rdb.TypeZSetZiplist: "zset-ziplist", rdb.TypeHashZiplist: "hash-ziplist",
	rdb.TypeListQuicklist: "list-quicklist", rdb.TypeStreamListpacks: "stream-listpacks",
	rdb.TypeHashListpack: "hash-listpack", rdb.TypeZSetListpack: "zset-listpack",
	rdb.TypeListQuicklist2: "list-quicklist-2", rdb.TypeStreamListpacks2: "stream-listpacks-2",
	rdb.TypeSetListpack: "set-listpack", rdb.TypeStreamListpacks3: "stream-listpacks-3",
	rdb.TypeHashMetadataPreGA: "hash-metadata-pre-ga", rdb.TypeHashListpackExPreGA: "hash-listpack-ex-pre-ga",
	rdb.TypeHashMetadata: "hash-metadata", rdb.TypeHashListpackEx: "hash-listpack-ex",
	rdb.TypeStreamListpacks4: "stream-listpacks-4", rdb.TypeValkeyHash2: "hash-2 (valkey)",
}

func typeName(t rdb.Type) string {
	if n, ok := rdbTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type-%d", t)
}

func kindName(t rdb.Type) string {
	if k, ok := rdb.KindOf(t); ok {
		return k.String()
	}
	return "unknown"
}

// Limits on what check keeps for display, so memory never grows with the file.
const (
	maxAuxShown      = 64  // aux fields kept; more are counted
	maxAuxValueBytes = 256 // longer aux values are cut
	maxFunctions     = 10000
	maxDBsShown      = 4096 // dbs counted one by one; keys of further dbs are counted under db -1
)

type auxField struct {
	Key, Value string
}

type dbReport struct {
	DB        int              `json:"db"` // -1 holds the keys of dbs beyond the first maxDBsShown
	Keys      int64            `json:"keys"`
	Expires   int64            `json:"expires"`
	Types     map[string]int64 `json:"types"`     // per logical kind
	Encodings map[string]int64 `json:"encodings"` // per object type byte

	byType [256]int64 // counted while reading; Types and Encodings are built from it
}

type moduleReport struct {
	Keys int64 `json:"keys"`
	Aux  int64 `json:"aux"`
}

type damageReport struct {
	Offset int64  `json:"offset"`
	Key    string `json:"key,omitempty"`
	Reason string `json:"reason"`
}

// checkReport is the result of check rdb; its JSON field names are stable.
type checkReport struct {
	File           string                   `json:"file"`
	OK             bool                     `json:"ok"`
	RDBVersion     int                      `json:"rdb_version"`
	Aux            map[string]string        `json:"aux"`
	AuxOmitted     int64                    `json:"aux_omitted,omitempty"`
	Keys           int64                    `json:"keys"`
	DBs            []*dbReport              `json:"dbs"`
	Types          map[string]int64         `json:"types"`
	Encodings      map[string]int64         `json:"encodings"`
	Expires        int64                    `json:"expires"`
	AlreadyExpired int64                    `json:"already_expired"`
	Modules        map[string]*moduleReport `json:"modules"`
	Functions      []string                 `json:"functions"`
	Checksum       string                   `json:"checksum"`
	Bytes          int64                    `json:"bytes"`
	DurationMS     int64                    `json:"duration_ms"`
	Error          *damageReport            `json:"error,omitempty"`

	auxOrder []auxField
	dbIndex  map[int]*dbReport
	lastDB   *dbReport
	dur      time.Duration
}

func newCheckReport(file string) *checkReport {
	return &checkReport{
		File: file, Aux: map[string]string{}, DBs: []*dbReport{}, Types: map[string]int64{},
		Encodings: map[string]int64{}, Modules: map[string]*moduleReport{}, Functions: []string{},
		Checksum: rdb.ChecksumUnknown.String(), dbIndex: map[int]*dbReport{},
	}
}

func (r *checkReport) db(id int) *dbReport {
	if r.lastDB != nil && r.lastDB.DB == id {
		return r.lastDB
	}
	d := r.dbIndex[id]
	if d == nil && len(r.dbIndex) >= maxDBsShown {
		id = -1 // fold the rest into one entry so memory stays bounded
		d = r.dbIndex[id]
	}
	if d == nil {
		d = &dbReport{DB: id, Types: map[string]int64{}, Encodings: map[string]int64{}}
		r.dbIndex[id] = d
		r.DBs = append(r.DBs, d)
	}
	r.lastDB = d
	return d
}

// finish builds the per-type maps from the counters and sorts the dbs.
func (r *checkReport) finish() {
	sort.Slice(r.DBs, func(i, j int) bool { return r.DBs[i].DB < r.DBs[j].DB })
	for _, d := range r.DBs {
		for t, n := range d.byType {
			if n == 0 {
				continue
			}
			kind, enc := kindName(rdb.Type(t)), typeName(rdb.Type(t))
			d.Types[kind] += n
			d.Encodings[enc] += n
			r.Types[kind] += n
			r.Encodings[enc] += n
		}
	}
}

func (r *checkReport) add(rec *rdb.Record, nowMS int64) {
	switch rec.Kind {
	case rdb.RecordAux:
		k := string(rec.AuxKey)
		if _, seen := r.Aux[k]; !seen && len(r.Aux) >= maxAuxShown {
			r.AuxOmitted++
			return
		}
		v := rec.AuxValue
		if len(v) > maxAuxValueBytes {
			v = v[:maxAuxValueBytes]
		}
		if old, seen := r.Aux[k]; seen && k == "lua" {
			// Redis ≤ 6.2 writes one "lua" aux field per cached script.
			n, _ := strconv.Atoi(strings.TrimSuffix(old, " scripts"))
			r.Aux[k] = strconv.Itoa(n+1) + " scripts"
			return
		} else if k == "lua" {
			r.Aux[k] = "1 scripts"
		} else {
			r.Aux[k] = string(v)
		}
		if !slices.ContainsFunc(r.auxOrder, func(a auxField) bool { return a.Key == k }) {
			r.auxOrder = append(r.auxOrder, auxField{Key: k})
		}
	case rdb.RecordFunction:
		if len(r.Functions) < maxFunctions {
			r.Functions = append(r.Functions, catalog.LibraryName(rec.FunctionCode))
		}
	case rdb.RecordModuleAux:
		r.module(rec.Module).Aux++
	case rdb.RecordKey:
		d := r.db(rec.DB)
		r.Keys++
		d.Keys++
		d.byType[rec.Type]++
		if rec.Expire >= 0 {
			r.Expires++
			d.Expires++
			if rec.Expire < nowMS {
				r.AlreadyExpired++
			}
		}
		if rec.Type == rdb.TypeModule2 || rec.Type == rdb.TypeModulePreGA {
			r.module(rec.Module).Keys++
		}
	}
}

func (r *checkReport) module(name string) *moduleReport {
	if name == "" {
		name = "unknown"
	}
	m := r.Modules[name]
	if m == nil {
		m = &moduleReport{}
		r.Modules[name] = m
	}
	return m
}

// scanRDB opens path and calls fn for every record, streaming, reading
// with opts. It returns the reader (for its version and checksum status;
// nil when the header was not readable) and the first error: a
// *rdb.FormatError for damage.
func scanRDB(ctx context.Context, e *env, path string, quiet bool, opts rdb.Options, fn func(*rdb.Record) error) (*rdb.Reader, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, 0, fmt.Errorf("%s is a directory", path)
	}
	var src io.Reader = f
	var bar *progress.Bar
	if !quiet && st.Size() >= 64<<20 && progress.IsTerminal(e.Err) {
		bar = progress.New(e.Err, path, st.Size(), true)
		src = &progress.Reader{R: f, Bar: bar}
		defer bar.Done()
	}
	// No bufio: the Reader buffers (and grows its buffer) itself.
	rd, err := rdb.NewReader(src, opts)
	if err != nil {
		return nil, 0, err
	}
	for n := 0; ; n++ {
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return rd, rd.Offset(), err
			}
		}
		rec, err := rd.Next()
		if err == io.EOF {
			return rd, rd.Offset(), nil
		}
		if err != nil {
			return rd, rd.Offset(), err
		}
		if err := fn(rec); err != nil {
			return rd, rd.Offset(), err
		}
	}
}

// damage converts a FormatError into what check and digest print.
func damage(fe *rdb.FormatError) *damageReport {
	d := &damageReport{Offset: fe.Offset, Reason: fe.Err.Error()}
	if fe.Key != nil {
		d.Key = string(fe.Key)
	}
	return d
}

func runCheckRDB(ctx context.Context, e *env, o checkRDBOpts, path string) error {
	start := time.Now()
	nowMS := start.UnixMilli()
	rep := newCheckReport(path)
	// Reader.Next already walks every value (packed blobs, LZF, stream
	// listpacks) and returns a *rdb.FormatError naming the key on damage;
	// a big one as it arrives, piece by piece, never held whole.
	rd, n, err := scanRDB(ctx, e, path, o.json, rdb.Options{StreamValues: rdb.CheckStreamed, StreamStrings: true}, func(rec *rdb.Record) error {
		rep.add(rec, nowMS)
		return nil
	})
	rep.dur = time.Since(start)
	rep.DurationMS = rep.dur.Milliseconds()
	rep.Bytes = n
	if rd != nil {
		rep.RDBVersion = rd.Version()
	}
	var fe *rdb.FormatError
	switch {
	case err == nil:
		rep.OK = true
		rep.Checksum = rd.Checksum().String()
	case errors.As(err, &fe):
		rep.Error = damage(fe)
		rep.Checksum = "not reached"
		if errors.Is(err, rdb.ErrChecksum) {
			rep.Checksum = "mismatch"
		}
	default:
		return fmt.Errorf("check rdb: %w", err)
	}
	rep.finish()
	if o.json {
		if err := printJSON(e, rep); err != nil {
			return err
		}
	} else {
		printCheckReport(e.Out, rep)
	}
	if !rep.OK {
		return &silentError{code: ExitVerify}
	}
	return nil
}

func printCheckReport(w io.Writer, r *checkReport) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("file:            %s\n", r.File)
	p("rdb version:     %d\n", r.RDBVersion)
	if len(r.auxOrder) > 0 {
		p("aux fields:\n")
		for _, a := range r.auxOrder {
			v := r.Aux[a.Key]
			if a.Key == "ctime" {
				if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
					v += " (" + time.Unix(sec, 0).UTC().Format(time.RFC3339) + ")"
				}
			}
			if a.Key == "used-mem" {
				if b, err := strconv.ParseInt(v, 10, 64); err == nil {
					v += " (" + progress.HumanBytes(b) + ")"
				}
			}
			p("  %-16s %s\n", a.Key, strconv.Quote(v)[1:len(strconv.Quote(v))-1])
		}
		if r.AuxOmitted > 0 {
			p("  (%d more aux fields not shown)\n", r.AuxOmitted)
		}
	}
	if len(r.Functions) > 0 {
		p("functions:       %d libraries: %s\n", len(r.Functions), strings.Join(r.Functions, ", "))
	} else {
		p("functions:       none\n")
	}
	if len(r.Modules) > 0 {
		var parts []string
		for _, n := range slices.Sorted(maps.Keys(r.Modules)) {
			parts = append(parts, fmt.Sprintf("%s (%d keys, %d aux)", n, r.Modules[n].Keys, r.Modules[n].Aux))
		}
		p("modules:         %s\n", strings.Join(parts, ", "))
	} else {
		p("modules:         none\n")
	}
	for _, d := range r.DBs {
		if d.DB == -1 {
			p("other dbs:       %d keys, %d with expire (more than %d dbs)\n", d.Keys, d.Expires, maxDBsShown)
		} else {
			p("db %d:            %d keys, %d with expire\n", d.DB, d.Keys, d.Expires)
		}
		p("  types:         %s\n", countList(d.Types))
		p("  encodings:     %s\n", countList(d.Encodings))
	}
	p("keys:            %d in %d dbs, %d with expire\n", r.Keys, len(r.DBs), r.Expires)
	if r.AlreadyExpired > 0 {
		p("already expired: %d (TTL passed; a primary loading this file drops them, DEBUG DIGEST counts them)\n", r.AlreadyExpired)
	} else {
		p("already expired: 0\n")
	}
	p("types:           %s\n", countList(r.Types))
	p("encodings:       %s\n", countList(r.Encodings))
	p("checksum:        %s\n", r.Checksum)
	secs := r.dur.Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(r.Bytes) / secs / 1e6
	}
	p("read:            %d bytes in %s (%.1f MB/s)\n", r.Bytes, r.dur.Round(time.Millisecond), rate)
	if r.Error != nil {
		if r.Error.Key != "" {
			p("damaged: offset %d, key %q: %s\n", r.Error.Offset, r.Error.Key, r.Error.Reason)
		} else {
			p("damaged: offset %d: %s\n", r.Error.Offset, r.Error.Reason)
		}
	} else {
		p("status:          ok\n")
	}
}

// countList prints "a 3, b 1" sorted by name.
func countList(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %d", n, m[n])
	}
	return strings.Join(parts, ", ")
}
