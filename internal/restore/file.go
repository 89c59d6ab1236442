package restore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"time"

	"redback/internal/atomicfile"
	"redback/internal/pack"
	"redback/internal/rdb"
)

// ErrExists is returned by ToFile when the destination exists and
// Options.Force is not set.
var ErrExists = errors.New("file exists")

// ToDir writes src as dir/dump.rdb, so that `redis-server --dir dir` loads
// it. See ToFile.
func ToDir(ctx context.Context, src Source, dir string, o Options) (*Result, error) {
	moved, err := PrepareDir(dir, o.Force)
	if err != nil {
		return &Result{}, err
	}
	res, err := ToFile(ctx, src, filepath.Join(dir, "dump.rdb"), o)
	for _, m := range moved {
		res.note("%s", m)
	}
	return res, err
}

// staleAOFNames are what a redis-server with appendonly yes loads instead
// of dump.rdb: the multi-part AOF dir (7.0+) and the single file (older).
var staleAOFNames = []string{"appendonlydir", "appendonly.aof"}

// staleAOF refuses a dir that holds an AOF (redis-server would load it, not
// the restored dump.rdb) unless force, which moves it aside to
// NAME.stale-<unix seconds>: never deleted, never silently kept.
func staleAOF(dir string, force bool) (moved []string, err error) {
	for _, name := range staleAOFNames {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return moved, err
		}
		if !force {
			return moved, fmt.Errorf("%s: %w: a redis-server with appendonly yes would load it instead of the restored dump.rdb; remove it, or give --force to move it aside", p, ErrExists)
		}
		aside := fmt.Sprintf("%s.stale-%d", p, time.Now().Unix())
		if err := os.Rename(p, aside); err != nil {
			return moved, fmt.Errorf("move the stale %s aside: %w", p, err)
		}
		moved = append(moved, fmt.Sprintf("moved the stale %s aside to %s (redis-server would have loaded it instead of dump.rdb)", p, aside))
	}
	return moved, nil
}

// ToFile writes src (decrypted and decompressed by its Open) as a plain RDB
// file at path, parsing every record on the way: a temporary file in the
// same directory is written, synced and renamed over path, and the
// directory synced; on any error it is removed and path is untouched. An
// existing path is refused (ErrExists) unless Options.Force.
//
// Without filters the bytes are copied as they are (keys already expired
// stay in the file: a primary drops them while loading; they are counted in
// KeysExpired). With filters the file is rewritten with rdb.Writer at the
// source's version, keeping the matching keys' raw values, aux fields and
// functions, and dropping expired keys; mapping two source dbs onto one
// target db is refused because duplicate keys would stop the server loading.
func ToFile(ctx context.Context, src Source, path string, o Options) (*Result, error) {
	opts := o.withDefaults()
	start := opts.Now()
	res := &Result{maxListed: opts.MaxListed}
	if _, err := os.Lstat(path); err == nil && !opts.Force {
		return res, fmt.Errorf("%s: %w: give --force to replace it", path, ErrExists)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return res, err
	}
	if msg, err := mapCollision(ctx, src, opts); err != nil {
		return res, err
	} else if msg != "" {
		return res, fmt.Errorf("%s; restore into a live server instead", msg)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".redback-*")
	if err != nil {
		return res, fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	rc, err := src.Open(ctx)
	if err != nil {
		return res, err
	}
	defer rc.Close()
	if opts.Filter.IsZero() {
		err = copyVerified(ctx, rc, tmp, res, opts, src.Verified)
	} else {
		err = rewrite(ctx, rc, tmp, res, opts, src.Verified)
	}
	if err != nil {
		if pack.VerificationFailed(err) {
			return res, &DamagedSourceError{Source: src.damageLabel(), Err: err}
		}
		return res, fmt.Errorf("restore %s to %s: %w", src.Name, path, err)
	}
	published, err := publish(tmp, path)
	ok = published
	if err != nil {
		return res, err
	}
	res.Duration = opts.Now().Sub(start)
	return res, nil
}

// mapCollision says which two source dbs --map-db sends to one target db
// ("" when none): an RDB cannot merge dbs. It reads the source once when
// its dbs are not known.
func mapCollision(ctx context.Context, src Source, opts Options) (string, error) {
	if len(opts.Filter.MapDB) == 0 {
		return "", nil
	}
	var from []int
	for d := range opts.Filter.MapDB {
		from = append(from, d)
	}
	dbs := src.DBs
	if dbs == nil {
		var err error
		if dbs, err = scanSource(ctx, src, opts.MaxValueBytes); err != nil {
			return "", err
		}
	}
	from = append(from, dbs...)
	sort.Ints(from)
	if a, b, to, ok := opts.Filter.collision(from); ok {
		return fmt.Sprintf("--map-db sends source dbs %d and %d both to db %d: an RDB file cannot merge dbs (duplicate keys stop the server loading it)", a, b, to), nil
	}
	return "", nil
}

// progressFn adapts Options.Progress to byte offsets.
type progressFn struct {
	fn         func(bytes, keys int64)
	last, keys int64
}

// add counts a key at source offset off (force: reports what is counted,
// counting nothing).
func (p *progressFn) add(off int64, force bool) {
	if p.fn == nil {
		return
	}
	if !force {
		p.keys++
	}
	if force || p.keys >= 512 {
		p.fn(off-p.last, p.keys)
		p.last, p.keys = off, 0
	}
}

// copyVerified copies the RDB bytes to f while parsing them, then cuts the
// file at the end of the RDB (the reader reads ahead). Unless the source is
// verified, every value is checked, on all cores: the reader walks the
// outline and Fanout workers check the values beside it.
func copyVerified(ctx context.Context, rc io.Reader, f *os.File, res *Result, opts Options, verified bool) error {
	aw := newAsyncWriter(&atomicfile.Writer{F: f})
	defer aw.Close()
	var fan *rdb.Fanout
	if w := runtime.GOMAXPROCS(0); !verified && w > 1 {
		w = min(w, 4)
		fan = rdb.NewFanout(ctx, w, rdb.CheckValues(w))
	}
	// A big value is checked as it arrives, never held whole.
	rd, err := rdb.NewReader(io.TeeReader(rc, aw), rdb.Options{MaxValueBytes: opts.MaxValueBytes, SkipValueCheck: verified || fan != nil,
		StreamValues: rdb.CheckStreamed, StreamStrings: true})
	if err != nil {
		if fan != nil {
			fan.Wait(nil)
		}
		return err
	}
	var add func(*rdb.Record) error
	if fan != nil {
		add = fan.Add
	}
	err = countRecords(ctx, rd, add, res, opts)
	if fan != nil {
		err = fan.Wait(err)
	}
	if err != nil {
		return err
	}
	if res.KeysExpired > 0 {
		res.note("the file holds all %d keys, %d of them already expired (counted as expired): a server loading it as a primary drops those, a replica keeps them until its primary expires them",
			res.KeysRestored+res.KeysExpired, res.KeysExpired)
	}
	if err := aw.Close(); err != nil {
		return err
	}
	res.Bytes = rd.Offset()
	if aw.n > rd.Offset() {
		if err := f.Truncate(rd.Offset()); err != nil {
			return err
		}
		if _, err := f.Seek(rd.Offset(), io.SeekStart); err != nil {
			return err
		}
	}
	// Read to the end so a stored object's size and sha256 are checked.
	_, err = io.Copy(io.Discard, rc)
	return err
}

// countRecords reads every record, counting keys and functions into res
// and handing key records to add when it is not nil.
func countRecords(ctx context.Context, rd *rdb.Reader, add func(*rdb.Record) error, res *Result, opts Options) error {
	now := opts.Now().UnixMilli()
	pr := progressFn{fn: opts.Progress}
	err := rd.ForEach(ctx, func(rec *rdb.Record) error {
		if rec.Kind == rdb.RecordFunction {
			res.FunctionsLoaded++
		}
		if rec.Kind != rdb.RecordKey {
			return nil
		}
		if add != nil {
			if err := add(rec); err != nil {
				return err
			}
		}
		if rec.Expire >= 0 && rec.Expire <= now {
			res.KeysExpired++
		} else {
			res.KeysRestored++
		}
		pr.add(rd.Offset(), false)
		return nil
	})
	if err != nil {
		return err
	}
	pr.add(rd.Offset(), true)
	res.Bytes = rd.Offset()
	return nil
}

// rewrite writes the kept records with an rdb.Writer.
func rewrite(ctx context.Context, rc io.Reader, f *os.File, res *Result, opts Options, verified bool) error {
	rw := newRewriter(res, opts, nil)
	rd, err := rdb.NewReader(rc, rw.readerOptions(rdb.Options{MaxValueBytes: opts.MaxValueBytes, SkipValueCheck: verified}))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(&atomicfile.Writer{F: f}, 1<<20)
	if err := rw.run(ctx, rd, bw, nil); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	return err
}

// rewriter writes the records of an rdb.Reader that a filter keeps, and
// are not expired, as an RDB of the reader's version. A value the Reader
// streams (rdb.Options.StreamValues: a big aggregate or string) is never
// held whole: a kept one is copied to the Writer as its serialized bytes
// arrive (the rewritten file has the source's version, so they are valid
// as they are) and handed to also, when set, piece by piece (a digest of
// what the target will hold); one filtered out or expired is only checked
// by the Reader as it passes.
type rewriter struct {
	res      *Result
	flt      *Filter
	now      int64
	progress func(bytes, keys int64)
	also     func(*rdb.Record) (*rdb.Visitor, error)

	w           *rdb.Writer
	curDB       int
	streaming   bool // the value being streamed is kept: written and given to also
	metaDropped int64
}

func newRewriter(res *Result, opts Options, also func(*rdb.Record) (*rdb.Visitor, error)) *rewriter {
	return &rewriter{res: res, flt: &opts.Filter, now: opts.Now().UnixMilli(), progress: opts.Progress, also: also, curDB: -1}
}

// readerOptions is o with the rewriter's streaming: every big value,
// strings too, is streamed through it.
func (rw *rewriter) readerOptions(o rdb.Options) rdb.Options {
	o.StreamValues, o.StreamStrings = rw.stream, true
	return o
}

// keep says whether the key record rec goes to the output: counted as
// filtered or expired when it does not.
func (rw *rewriter) keep(rec *rdb.Record) bool {
	switch {
	case !rw.passes(rec):
		rw.res.KeysFiltered++
	case rw.expired(rec):
		rw.res.KeysExpired++
	default:
		return true
	}
	return false
}

// passes says whether the filter keeps rec's db and key.
func (rw *rewriter) passes(rec *rdb.Record) bool {
	return rw.flt.KeepDB(rec.DB) && rw.flt.KeepKey(rec.Key)
}

// expired says whether rec's TTL has passed.
func (rw *rewriter) expired(rec *rdb.Record) bool { return rec.Expire >= 0 && rec.Expire <= rw.now }

// moveTo counts a kept key, writes a SELECTDB when its target db is not
// the current one and returns the record as the target holds it (its db
// mapped).
func (rw *rewriter) moveTo(rec *rdb.Record) (rdb.Record, error) {
	moved := *rec // as the target holds it (a digest mixes in the db)
	moved.DB = rw.flt.TargetDB(rec.DB)
	if moved.DB != rw.curDB {
		if err := rw.w.SelectDB(moved.DB); err != nil {
			return moved, err
		}
		rw.curDB = moved.DB
	}
	rw.res.KeysRestored++
	if rec.Meta != nil {
		rw.metaDropped++
	}
	return moved, nil
}

// stream is the Reader's StreamValues: a kept key's head is written now,
// its value's bytes as they arrive (Raw), and also gets its elements.
func (rw *rewriter) stream(rec *rdb.Record) (*rdb.Visitor, error) {
	rw.streaming = false
	if !rw.passes(rec) || rw.expired(rec) {
		return nil, nil // only checked; counted when its record comes
	}
	moved, err := rw.moveTo(rec)
	if err != nil {
		return nil, err
	}
	v, err := rw.w.StreamKey(rec.Key, rec.Type, rec.Expire, rec.Idle, rec.Freq)
	if err != nil {
		return nil, err
	}
	rw.streaming = true
	if rw.also == nil {
		return v, nil
	}
	a, err := rw.also(&moved)
	if err != nil {
		return nil, err
	}
	return rdb.Tee(v, a), nil
}

// key writes the key record rec when it is kept (a streamed value is
// already written) and hands it to add, as the target holds it.
func (rw *rewriter) key(rec *rdb.Record, add func(*rdb.Record) error) error {
	streamed := rec.Streamed && rw.streaming
	rw.streaming = false
	if !rw.keep(rec) {
		return nil
	}
	var moved rdb.Record
	switch {
	case streamed:
		moved = *rec
		moved.DB = rw.curDB
	case rec.Streamed:
		return fmt.Errorf("key %q: its value was streamed, but not through this rewrite", rec.Key)
	default:
		var err error
		if moved, err = rw.moveTo(rec); err == nil {
			err = rw.w.WriteKey(rec.Key, rec.Type, rec.Value, rec.Expire, rec.Idle, rec.Freq)
		}
		if err != nil {
			return err
		}
	}
	if add != nil {
		return add(&moved)
	}
	return nil
}

// run writes the kept records of rd to out (header to CRC-64 trailer),
// handing each key record written to add when it is not nil (a Streamed
// one ends the value also was given).
func (rw *rewriter) run(ctx context.Context, rd *rdb.Reader, out io.Writer, add func(*rdb.Record) error) error {
	w, err := rdb.NewWriter(out, rd.Version())
	if err != nil {
		return err
	}
	rw.w = w
	res := rw.res
	pr := progressFn{fn: rw.progress}
	err = rd.ForEach(ctx, func(rec *rdb.Record) error {
		var err error
		switch rec.Kind {
		case rdb.RecordAux:
			err = w.WriteAux(rec.AuxKey, rec.AuxValue)
		case rdb.RecordFunction:
			res.FunctionsLoaded++
			err = w.WriteFunction(rec.FunctionCode)
		case rdb.RecordModuleAux:
			res.note("module aux data of %s is not copied when filtering", rec.Module)
		case rdb.RecordKey:
			pr.add(rd.Offset(), false)
			return rw.key(rec, add)
		}
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	pr.add(rd.Offset(), true)
	res.Bytes = rd.Offset()
	if rw.metaDropped > 0 {
		res.note("%d keys carried module key metadata (KEY_META, Redis 8.6), not copied when filtering", rw.metaDropped)
	}
	return w.Close()
}
