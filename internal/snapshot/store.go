package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"redback/internal/catalog"
	"redback/internal/digest"
	"redback/internal/pack"
	"redback/internal/progress"
	"redback/internal/rdb"
	"redback/internal/storage"
)

// Options configure Store.
type Options struct {
	Backend  storage.Backend
	Pack     pack.Options
	Method   string         // recorded in the manifest: sync, bgsave, rdb-file, ship
	Source   catalog.Source // recorded in the manifest (no secrets)
	Progress *progress.Bar  // may be nil
	Log      *slog.Logger   // may be nil
	// Generation, when set, marks the snapshot as the base of a log generation.
	Generation string
	// ID overrides the generated snapshot id (tests, shipping).
	ID string
	// Start is when the snapshot was requested (before any wait for the
	// source); zero means when Store is called.
	Start time.Time
	// Check, when set, is called with the manifest after the data object
	// was stored and before the manifest is written (to prove the digest
	// against a server, say): an error removes the data object, so the
	// repository is left as it was, and is returned.
	Check func(*catalog.Snapshot) error
}

// Stats are measured on the way.
type Stats struct {
	Raw, Stored int64
	Duration    time.Duration
}

// writeSide remembers the first error of the storage side so that a storage
// failure is not mistaken for a damaged RDB.
type writeSide struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (ws *writeSide) Write(p []byte) (int, error) {
	n, err := ws.w.Write(p)
	if err != nil {
		ws.mu.Lock()
		if ws.err == nil {
			ws.err = err
		}
		ws.mu.Unlock()
		return n, errStorageSide
	}
	return n, nil
}

func (ws *writeSide) failure() error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return ws.err
}

var errStorageSide = errors.New("storage side failed")

// Store streams the RDB in src into the repository and returns its
// manifest. Nothing becomes visible unless the whole RDB verified and the
// data object was stored: a damaged RDB returns a *rdb.FormatError (exit 3)
// and leaves the repository as it was.
func Store(ctx context.Context, src io.Reader, opts Options) (*catalog.Snapshot, error) {
	start := opts.Start
	if start.IsZero() {
		start = time.Now()
	}
	b := opts.Backend
	id := opts.ID
	if id == "" {
		id = catalog.NewSnapshotID(start)
	}
	encrypted := opts.Pack.Recipients != nil
	key := catalog.SnapshotDataKey(id, encrypted)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type putResult struct {
		info storage.ObjectInfo
		err  error
	}
	putDone := make(chan putResult, 1)
	go func() {
		info, err := b.Put(ctx, key, pr)
		pr.CloseWithError(err) // unblock the writer if Put stopped early
		putDone <- putResult{info, err}
	}()
	abort := func(err error) error {
		pw.CloseWithError(err)
		cancel()
		<-putDone
		return err
	}

	ws := &writeSide{w: pw}
	pk, err := pack.NewWriter(ws, opts.Pack)
	if err != nil {
		return nil, abort(err)
	}
	var in io.Reader = io.TeeReader(src, pk)
	if opts.Progress != nil {
		in = &progress.Reader{R: in, Bar: opts.Progress}
	}
	m, err := verify(ctx, in, time.Now().UnixMilli(), opts.Progress)
	if err != nil {
		if werr := ws.failure(); werr != nil {
			err = fmt.Errorf("store %s: %w", key, werr)
		}
		pk.Close()
		return nil, abort(err)
	}
	if err := pk.Close(); err != nil {
		if werr := ws.failure(); werr != nil {
			err = werr
		}
		return nil, abort(fmt.Errorf("store %s: %w", key, err))
	}
	pw.Close()
	res := <-putDone
	if res.err != nil {
		return nil, fmt.Errorf("store %s: %w", key, res.err)
	}
	end := time.Now()
	snap := &catalog.Snapshot{
		Format:     catalog.FormatVersion,
		ID:         id,
		StartTime:  start.UTC(),
		EndTime:    end.UTC(),
		Duration:   end.Sub(start).Seconds(),
		Method:     opts.Method,
		Source:     opts.Source,
		RDBVersion: m.version,
		RDBCTime:   m.ctime,
		Checksum:   m.checksum.String(),
		Object: catalog.Object{
			Key:         key,
			RawBytes:    pk.Raw,
			StoredBytes: pk.Stored.N,
			SHA256:      pk.Stored.Sum(),
			Compression: pack.CompressionZstd,
		},
		Census:     m.census,
		Digest:     m.digest,
		Verified:   true,
		Generation: opts.Generation,
	}
	if snap.Source.ReplID == "" && m.replID != "" {
		snap.Source.ReplID, snap.Source.Offset = m.replID, m.replOffset
	}
	if snap.Source.ValkeyVersion == "" {
		snap.Source.ValkeyVersion = m.valkeyVer
	}
	if snap.Source.RedisVersion == "" {
		snap.Source.RedisVersion = m.redisVer
	}
	if encrypted {
		snap.Object.Encryption = pack.EncryptionAge
		snap.Object.Recipients = opts.Pack.Recipients.Fingerprints
	}
	if opts.Check != nil {
		if err := opts.Check(snap); err != nil {
			_ = b.Delete(context.WithoutCancel(ctx), key)
			return nil, err
		}
	}
	if err := catalog.PutJSON(ctx, b, catalog.SnapshotManifestKey(id), snap); err != nil {
		// The data object without a manifest is invisible; remove it.
		_ = b.Delete(context.WithoutCancel(ctx), key)
		return nil, err
	}
	if err := catalog.IndexManifests(ctx, b); err != nil && opts.Log != nil {
		opts.Log.Warn("manifest index not updated (listings read each manifest until it is)", "err", err)
	}
	return snap, nil
}

// measured is what verify learns from the RDB.
type measured struct {
	version          int
	checksum         rdb.ChecksumStatus
	census           catalog.Census
	digest           string
	ctime            int64
	replID, redisVer string
	valkeyVer        string
	replOffset       int64
}

// verify parses the whole RDB from r, and then requires r to end. The
// digest is computed on digest.Workers() goroutines beside the reader.
func verify(ctx context.Context, r io.Reader, nowMs int64, bar *progress.Bar) (*measured, error) {
	// The digest decodes (and so fully checks) every value: Next only
	// needs to walk each value's outline.
	// A big value is streamed into dg as it arrives, never held whole.
	dg := digest.New(digest.Options{})
	rr, err := rdb.NewReader(r, rdb.Options{SkipValueCheck: true, StreamValues: dg.Stream, StreamStrings: true})
	if err != nil {
		return nil, err
	}
	cnt := catalog.NewCounter(nowMs)
	m := &measured{version: rr.Version()}
	scan := func(ctx context.Context, fn func(*rdb.Record) error) error {
		for n := 0; ; n++ {
			if n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			rec, err := rr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			cnt.Add(rec)
			switch rec.Kind {
			case rdb.RecordKey:
				if err := fn(rec); err != nil {
					return err
				}
				bar.Add(0, 1)
			case rdb.RecordAux:
				switch string(rec.AuxKey) {
				case "ctime":
					fmt.Sscan(string(rec.AuxValue), &m.ctime)
				case "repl-id":
					m.replID = string(rec.AuxValue)
				case "repl-offset":
					fmt.Sscan(string(rec.AuxValue), &m.replOffset)
				case "redis-ver":
					m.redisVer = string(rec.AuxValue)
				case "valkey-ver":
					m.valkeyVer = string(rec.AuxValue)
				}
			}
		}
	}
	if w := digest.Workers(); w > 1 {
		err = digest.Parallel(ctx, dg, digest.Options{}, w, scan)
	} else {
		err = scan(ctx, dg.Add)
	}
	if err != nil {
		return nil, err
	}
	m.checksum = rr.Checksum()
	m.census = cnt.Census()
	m.digest = dg.Sum()
	// Nothing may follow the RDB.
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return nil, &rdb.FormatError{Offset: rr.Offset(), Err: errors.New("unexpected bytes after the RDB's end")}
	}
	return m, nil
}
