package ship

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/storage"
)

// job is one step of the upload queue. Jobs complete strictly in queue
// order (the data objects of several segments upload concurrently, but
// their manifests are written in order), so what is visible in the
// repository is always a contiguous prefix.
type job struct {
	seg *rawSegment // store a segment
	// or end a generation
	endGen    *catalog.Generation
	endOffset int64
	endReason string
	// or mark a new generation durable at its start (no I/O)
	startGen string
	startOff int64

	prev   <-chan struct{} // closed when the job before it completed
	done   chan struct{}
	raw    int64     // spool bytes held
	queued time.Time // when it was enqueued
}

// uploader seals and stores segments with bounded concurrency and tracks
// the durable offset.
type uploader struct {
	backend storage.Backend
	pack    pack.Options
	workers int
	log     *slog.Logger
	// onDurable is called (in order) when gen is durable up to off.
	onDurable func(gen string, off int64)
	// onUploaded is called after each stored segment.
	onUploaded func()
	// onError reports storage trouble (nil when it cleared).
	onError func(error)
	free    chan []byte // recycled segment buffers for the builder (see trimFree)
	maxFree int
	minFree int

	mu      sync.Mutex
	queue   []*job
	last    <-chan struct{}
	closed  bool
	pending []*job // queued or in flight, in order (for lag)
	wake    chan struct{}

	spool atomic.Int64 // raw bytes queued or in flight

	// took holds how long the last segments took from their cut to
	// durable (queue, seal, store), newest at tookAt; guarded by mu.
	took   [8]time.Duration
	tookAt int
}

// storeTime is how long storing a segment takes now: the longest of the
// last 8 (from the cut to durable, waits in the queue included).
func (u *uploader) storeTime() time.Duration {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Max(u.took[:])
}

// idle reports whether nothing waits for storage.
func (u *uploader) idle() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.pending) == 0
}

func newUploader(b storage.Backend, po pack.Options, workers int, log *slog.Logger) *uploader {
	done := make(chan struct{})
	close(done)
	return &uploader{backend: b, pack: po, workers: max(workers, 1), log: log, last: done,
		wake: make(chan struct{}, 1), free: make(chan []byte, 1)}
}

func (u *uploader) enqueue(j *job) {
	j.done = make(chan struct{})
	j.queued = time.Now()
	if j.seg != nil {
		j.raw = int64(len(j.seg.buf))
		u.spool.Add(j.raw)
	}
	u.mu.Lock()
	j.prev = u.last
	u.last = j.done
	u.queue = append(u.queue, j)
	u.pending = append(u.pending, j)
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// close says no more jobs come; run returns once the queue is done.
func (u *uploader) close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// oldest is the receive time of the oldest segment not yet durable.
func (u *uploader) oldest() (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, j := range u.pending {
		if j.seg != nil {
			return j.seg.received, true
		}
	}
	return time.Time{}, false
}

func (u *uploader) take() (j *job, finished bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.queue) > 0 {
		j = u.queue[0]
		u.queue[0] = nil
		u.queue = u.queue[1:]
		if len(u.queue) > 0 {
			select { // let another worker take the next one
			case u.wake <- struct{}{}:
			default:
			}
		}
		return j, false
	}
	return nil, u.closed
}

// run processes jobs until close was called and every job completed, or
// ctx ends, or a job failed for good (the lease was lost): then the other
// workers stop too.
func (u *uploader) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, u.workers)
	for i := 0; i < u.workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = u.worker(ctx); errs[i] != nil {
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (u *uploader) worker(ctx context.Context) error {
	var out bytes.Buffer
	var sl sealer
	defer sl.close()
	for {
		j, finished := u.take()
		if j == nil {
			if finished {
				// Wake the others so they see it too.
				select {
				case u.wake <- struct{}{}:
				default:
				}
				// Wait for the last job to complete before returning.
				u.mu.Lock()
				last := u.last
				u.mu.Unlock()
				select {
				case <-last:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			select {
			case <-u.wake:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := u.do(ctx, j, &sl, &out); err != nil {
			return err
		}
	}
}

// do performs one job; it only fails when ctx ends.
func (u *uploader) do(ctx context.Context, j *job, sl *sealer, out *bytes.Buffer) error {
	var m *catalog.Segment
	if j.seg != nil {
		var err error
		m, err = u.storeData(ctx, j.seg, sl, out)
		if err != nil {
			return err
		}
		u.recycle(j.seg.buf)
		j.seg.buf = nil
		u.spool.Add(-j.raw)
	}
	select {
	case <-j.prev:
	case <-ctx.Done():
		return ctx.Err()
	}
	var gen string
	var off int64
	switch {
	case m != nil:
		key := catalog.SegmentKey(m.Generation, m.Start, m.End)
		if err := u.retry(ctx, "store segment manifest "+key, func() error {
			return catalog.PutJSON(ctx, u.backend, key, m)
		}); err != nil {
			return err
		}
		gen, off = m.Generation, m.End
		u.log.Debug("segment stored", "gen", gen, "offset", m.End, "bytes", m.Object.StoredBytes, "key", m.Object.Key)
		if u.onUploaded != nil {
			u.onUploaded()
		}
	case j.endGen != nil:
		g := *j.endGen
		g.Ended, g.EndOffset, g.EndReason, g.EndTime = true, j.endOffset, j.endReason, time.Now().UTC()
		if err := u.retry(ctx, "end generation "+g.ID, func() error {
			return catalog.PutJSON(ctx, u.backend, catalog.GenerationKey(g.ID), &g)
		}); err != nil {
			return err
		}
		u.log.Info("generation ended", "gen", g.ID, "offset", g.EndOffset, "reason", g.EndReason)
	default:
		gen, off = j.startGen, j.startOff
	}
	u.mu.Lock()
	for i, p := range u.pending {
		if p == j {
			u.pending = append(u.pending[:i], u.pending[i+1:]...)
			break
		}
	}
	if m != nil {
		u.took[u.tookAt] = time.Since(j.queued)
		u.tookAt = (u.tookAt + 1) % len(u.took)
	}
	u.mu.Unlock()
	if gen != "" && u.onDurable != nil {
		u.onDurable(gen, off)
	}
	close(j.done)
	return nil
}

// trimFree lets go of the recycled buffers beyond keep: while storage
// keeps up, one buffer cycles between the builder and the uploader; the
// spool's worth kept through a backlog goes back to the GC once it is
// stored.
func (u *uploader) trimFree(keep int) {
	for len(u.free) > keep {
		select {
		case <-u.free:
		default:
			return
		}
	}
}

func (u *uploader) recycle(buf []byte) {
	if cap(buf) < u.minFree || cap(buf) > u.maxFree {
		return
	}
	select {
	case u.free <- buf[:0]:
	default:
	}
}

// storeData seals the segment and stores its data object (retrying until
// it works or ctx ends), and returns its manifest.
func (u *uploader) storeData(ctx context.Context, s *rawSegment, sl *sealer, out *bytes.Buffer) (*catalog.Segment, error) {
	encrypted := u.pack.Recipients != nil
	key := catalog.SegmentDataKey(s.gen, s.start, s.end, encrypted)
	out.Reset()
	cnt, err := sl.seal(out, s.buf, u.pack)
	if err != nil {
		return nil, fmt.Errorf("seal %s: %w", key, err)
	}
	data := out.Bytes()
	if err := u.retry(ctx, "store segment "+key, func() error {
		_, err := u.backend.Put(ctx, key, bytes.NewReader(data))
		return err
	}); err != nil {
		return nil, err
	}
	m := &catalog.Segment{
		Format:     catalog.FormatVersion,
		Generation: s.gen,
		Start:      s.start,
		End:        s.end,
		FirstMs:    s.firstMs,
		LastMs:     s.lastMs,
		Commands:   s.commands,
		DBAtStart:  s.dbAtStart,
		Object: catalog.Object{
			Key:         key,
			RawBytes:    int64(len(s.buf)),
			StoredBytes: cnt.N,
			SHA256:      cnt.Sum(),
			Compression: pack.CompressionZstd,
		},
		Index:   s.index,
		DBAtEnd: s.dbAtEnd,
	}
	if encrypted {
		m.Object.Encryption = pack.EncryptionAge
		m.Object.Recipients = u.pack.Recipients.Fingerprints
	}
	return m, nil
}

// retry runs f until it succeeds or ctx ends, backing off up to 5 s and
// logging at most every 10 s while it fails.
func (u *uploader) retry(ctx context.Context, what string, f func() error) error {
	backoff := 100 * time.Millisecond
	var lastLog time.Time
	failed := false
	for {
		err := f()
		if err == nil {
			if failed {
				u.log.Info("storage works again", "op", what)
				if u.onError != nil {
					u.onError(nil)
				}
			}
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, catalog.ErrLeaseLost) {
			return fmt.Errorf("%s: %w", what, err)
		}
		failed = true
		if u.onError != nil {
			u.onError(err)
		}
		if time.Since(lastLog) >= 10*time.Second {
			u.log.Error("storage write failed; retrying (data stays in the spool)", "op", what, "err", err, "spool_bytes", u.spool.Load())
			lastLog = time.Now()
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", what, err)
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// sealer produces the stored form pack.NewReader reads (zstd, then age
// when encrypting) with one reused zstd encoder, so that sealing several
// segments a second does not allocate a new encoder (and its window) each
// time. Segments are small, so a 1 MiB window costs little ratio.
type sealer struct {
	enc *zstd.Encoder
}

func (sl *sealer) seal(dst io.Writer, raw []byte, po pack.Options) (*pack.Counter, error) {
	if sl.enc == nil {
		level := po.Level
		if level == 0 {
			level = zstd.SpeedDefault
		}
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return nil, fmt.Errorf("start compression: %w", err)
		}
		sl.enc = enc
	}
	cnt := pack.NewCounter(dst)
	var next io.Writer = cnt
	var aw io.WriteCloser
	if po.Recipients != nil {
		var err error
		aw, err = age.Encrypt(cnt, po.Recipients.List...)
		if err != nil {
			return nil, fmt.Errorf("start encryption: %w", err)
		}
		next = aw
	}
	sl.enc.Reset(next)
	if _, err := sl.enc.Write(raw); err != nil {
		return nil, err
	}
	if err := sl.enc.Close(); err != nil {
		return nil, fmt.Errorf("finish compression: %w", err)
	}
	if aw != nil {
		if err := aw.Close(); err != nil {
			return nil, fmt.Errorf("finish encryption: %w", err)
		}
	}
	return cnt, nil
}

func (sl *sealer) close() {
	if sl.enc != nil {
		_ = sl.enc.Close()
	}
}
