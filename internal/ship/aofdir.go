package ship

// AOF mode: a Shipper with AOFDir set tails a Redis 7 multi-part AOF
// directory instead of replicating (for hosts where replication is not
// allowed). The repository format is the same as for replication (see
// docs/format.md, "AOF mode"):
//
//   - A generation is one AOF base: the base file (appendonly.aof.<seq>.base.rdb)
//     is stored as its base snapshot, and the incr files of that base, in
//     manifest order, are its command stream. Its mode is "aof"; its replid
//     is synthetic (a hash of the base file's name, inode, mtime and size),
//     so a rewrite (a new base) starts a new generation.
//   - Offsets are byte positions in the concatenation of the base's incr
//     files (the generation starts at 0). #TS annotations are not stored as
//     they are: they give the commands' times and occupy offsets like the
//     control traffic of replication (a checkpoint follows them).
//   - Times come from the #TS:<unix seconds> annotations (ms = ts*1000).
//     With aof-timestamp-enabled off there are none: the read time is used
//     instead, a warning is logged once and the generation manifest says
//     time_source "upload".
//   - Segments end only after complete commands and never inside
//     MULTI ... EXEC; a partial command or an unfinished transaction at the
//     end of the growing last incr file waits for more bytes.
//   - Files are hard-linked into PinDir before they are read, so the
//     background deletion of history files after a rewrite cannot remove
//     them mid-read; the manifest is read again after linking, and a change
//     means "try again" (docs: redis-formats.md 7.3). Links of files no
//     longer listed are removed at each poll, and all of this run's links
//     when Run returns (a restart links the current files again).
//   - A rewrite (a new base in the manifest) ends the generation, after its
//     incr files are read to their end, with reason "aof rewrite".
//   - A restart resumes the newest open aof generation of the directory
//     whose replid matches the current base from the end of its stored
//     segments; no local state is needed.
//
// A RESP base (aof-use-rdb-preamble no) or an upgraded pre-7.0
// appendonly.aof as base is refused with an error that says what to do
// (set aof-use-rdb-preamble yes and run BGREWRITEAOF): restoring it would
// need replaying the base, which the repository format has no place for.

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"redback/internal/aof"
	"redback/internal/catalog"
	"redback/internal/replica"
	"redback/internal/snapshot"
)

// Time sources of an aof generation (catalog.Generation.TimeSource).
const (
	TimeSourceAOF    = "aof"
	TimeSourceUpload = "upload"
)

// DefaultPinDirName is the pin directory made next to the AOF directory
// (in Redis's dir, so on the same filesystem) when PinDir is empty.
const DefaultPinDirName = ".redback-aof-pin"

// ErrAOFUnsupported is wrapped when the AOF directory holds something AOF
// mode cannot ship; retrying does not help.
var ErrAOFUnsupported = errors.New("unsupported AOF directory")

// errAOFChanged says the manifest changed while the files were pinned.
var errAOFChanged = errors.New("the AOF manifest changed while its files were linked")

// aofTail is the Source of AOF mode: the AOF directory being tailed and
// where in its files the shipper is.
type aofTail struct {
	s        *Shipper
	dir, pin string
	addr     string // catalog.Source.Address of the generations

	gen      *catalog.Generation
	baseName string
	files    []string // incr files of gen's base, manifest order
	fi       int      // the file being read
	f        *os.File
	fileOff  int64 // offset of files[fi]'s first byte
	pos      int64 // position in files[fi] after the last complete unit
	db       int   // database at pos
	ms       int64 // time of the last #TS annotation (0: none known)
	baseMs   int64 // base file's mtime: the time of commands before any #TS
	sawTS    bool  // a #TS was read in this generation
	commands bool  // a command was read in this generation
	// prevSource is the time source of the generation a rewrite ended
	// (the server's setting is the same, most likely).
	prevSource string
	firstCmd   time.Time
	spoolFul   bool

	ours   map[string]bool // pin links made by this run
	prefix string          // "<appendfilename>."
	// resumed: the repository was consulted (once per run; afterwards
	// this run's own generations are the truth).
	resumed bool
	// tsAt is the time of the last #TS before each incr file this run
	// read into: a new generation that starts with that file continues
	// from it (Redis writes no #TS in the second of the previous one).
	tsAt map[string]int64
}

// DefaultPinDir is the pin directory used for aofDir when PinDir is empty:
// DefaultPinDirName in the parent of aofDir.
func DefaultPinDir(aofDir string) string {
	return filepath.Join(filepath.Dir(filepath.Clean(aofDir)), DefaultPinDirName)
}

// heartbeats: an AOF's idle stretches (#TS annotations only) are cut into
// segments like the rest.
func (t *aofTail) heartbeats() bool { return false }

// live: the files are polled, not streamed.
func (t *aofTail) live(string) bool { return false }

// durable: a tailed AOF acknowledges nothing.
func (t *aofTail) durable(string, int64) {}

// feed tails s.AOFDir until ctx ends.
func (t *aofTail) feed(ctx context.Context) error {
	s := t.s
	dir, err := filepath.Abs(s.AOFDir)
	if err != nil {
		return fmt.Errorf("ship --aof-dir %s: %w", s.AOFDir, err)
	}
	pin := s.PinDir
	if pin == "" {
		pin = DefaultPinDir(dir)
	}
	if err := os.MkdirAll(pin, 0o700); err != nil {
		return fmt.Errorf("ship: create the pin directory: %w", err)
	}
	if pi, err := os.Stat(pin); err != nil {
		return fmt.Errorf("ship: pin directory: %w", err)
	} else if di, err := os.Stat(dir); err == nil && os.SameFile(pi, di) {
		return fmt.Errorf("ship --aof-dir %s: %w: the pin directory must not be the AOF directory", dir, ErrAOFUnsupported)
	}
	// Each Run starts afresh: the repository says where to resume.
	*t = aofTail{s: s, dir: dir, pin: pin, addr: "aof:" + dir, ours: map[string]bool{}, tsAt: map[string]int64{}}
	defer func() {
		if t.f != nil {
			t.f.Close()
		}
		// The files of the current manifest stay in the AOF directory; a
		// restart links them again. Links kept after a crash are removed
		// by the next run.
		for n := range t.ours {
			_ = os.Remove(filepath.Join(pin, n))
		}
	}()
	s.Log.Info("tailing the AOF directory", "dir", dir, "pin_dir", pin)
	poll := min(max(s.Interval/4, 10*time.Millisecond), time.Second)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var lastLog time.Time
	for {
		err := t.step(ctx)
		if bad := s.failed(); bad != nil && err == nil {
			return fmt.Errorf("ship --aof-dir %s: %w; the log is stored up to offset %d of generation %s", dir, bad, bad.start, bad.gen)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrAOFUnsupported):
			return fmt.Errorf("ship --aof-dir %s: %w", dir, err)
		case errors.Is(err, errAOFChanged):
			// a rewrite just finished: try again at the next tick
		case err != nil:
			s.setStat(func(x *Stats) { x.Connected = false; x.LastError = err.Error() })
			if time.Since(lastLog) >= 10*time.Second {
				s.Log.Error("tailing the AOF directory failed; retrying", "dir", dir, "err", err)
				lastLog = time.Now()
			}
		default:
			s.setStat(func(x *Stats) { x.Connected = true; x.LastError = "" })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// step reads the manifest, pins its files, handles a new base and reads
// what was appended.
func (t *aofTail) step(ctx context.Context) error {
	s := t.s
	m, err := t.pinManifest()
	if err != nil {
		return err
	}
	if m.Base == nil {
		return fmt.Errorf("%s: the manifest names no base file", t.dir)
	}
	replID, mtime, err := baseIdentity(filepath.Join(t.pin, m.Base.Name))
	if err != nil {
		return err
	}
	incr := make([]string, len(m.Incr))
	for i, f := range m.Incr {
		incr[i] = f.Name
	}
	switch {
	case t.gen == nil:
		if !t.resumed {
			if err := t.resume(ctx, m.Base.Name, replID, mtime, incr); err != nil {
				return err
			}
			t.resumed = true
		}
		if t.gen == nil {
			if err := t.start(ctx, m.Base.Name, replID, mtime, incr); err != nil {
				return err
			}
		}
	case t.gen.ReplID != replID:
		// A rewrite finished: read the old base's incr files to their end
		// (they are complete now), then end its generation.
		if err := t.read(ctx); err != nil {
			return err
		}
		if t.spoolFul {
			return nil // finish once the spool drained
		}
		if rest := t.unread(); rest != "" && !slices.Contains(incr, rest) {
			s.Log.Error("the AOF files of the old base end inside a command; the generation ends before it", "gen", t.gen.ID, "offset", s.processed(), "file", rest)
		}
		end := s.cut()
		g := *t.gen
		s.endGeneration(&g, end, "aof rewrite")
		t.gen, t.prevSource = nil, g.TimeSource
		if t.f != nil {
			t.f.Close()
			t.f = nil
		}
		if err := t.start(ctx, m.Base.Name, replID, mtime, incr); err != nil {
			return err
		}
	default:
		if len(incr) < len(t.files) || !slices.Equal(incr[:len(t.files)], t.files) {
			return fmt.Errorf("%s: the incr files of base %s changed from %v to %v without a new base", t.dir, t.baseName, t.files, incr)
		}
		t.files = incr
	}
	t.unpinExcept(append([]string{m.Base.Name}, incr...))
	return t.read(ctx)
}

// unread names the file of the old generation whose bytes were not all
// read ("" when everything was).
func (t *aofTail) unread() string {
	if t.fi != len(t.files)-1 || t.f == nil {
		return ""
	}
	st, err := t.f.Stat()
	if err != nil || st.Size() > t.pos {
		return t.files[t.fi]
	}
	return ""
}

// manifestPath finds the manifest of the AOF directory.
func manifestPath(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("read the AOF directory: %w", err)
	}
	var found []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".manifest") && !strings.HasPrefix(n, "temp-") {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%s holds no AOF manifest (is appendonly yes set? is this the appendonlydir?)", dir)
	case 1:
		return filepath.Join(dir, found[0]), nil
	}
	return "", fmt.Errorf("%w: %s holds several manifests: %s", ErrAOFUnsupported, dir, strings.Join(found, ", "))
}

// readManifest reads and parses the manifest of dir; path is its path.
func readManifest(dir string) (m *aof.Manifest, data []byte, path string, err error) {
	p, err := manifestPath(dir)
	if err != nil {
		return nil, nil, "", err
	}
	data, err = os.ReadFile(p)
	if err != nil {
		return nil, nil, "", fmt.Errorf("read the AOF manifest: %w", err)
	}
	m, err = aof.ParseManifest(bytes.NewReader(data))
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", p, err)
	}
	return m, data, p, nil
}

// pinManifest reads the manifest, hard-links its base and incr files into
// the pin directory and reads the manifest again: errAOFChanged when it
// changed meanwhile.
func (t *aofTail) pinManifest() (*aof.Manifest, error) {
	m, data, path, err := readManifest(t.dir)
	if err != nil {
		return nil, err
	}
	// Files of this AOF are named <appendfilename>.<seq>...: only such
	// names are ever removed from the pin directory.
	t.prefix = strings.TrimSuffix(filepath.Base(path), ".manifest") + "."
	for _, f := range m.LoadOrder() {
		if err := t.link(f.Name); err != nil {
			return nil, err
		}
	}
	_, again, _, err := readManifest(t.dir)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(data, again) {
		return nil, errAOFChanged
	}
	return m, nil
}

// link makes pin/name a hard link of dir/name, unless it already is one.
func (t *aofTail) link(name string) error {
	src, dst := filepath.Join(t.dir, name), filepath.Join(t.pin, name)
	si, err := os.Stat(src)
	if errors.Is(err, os.ErrNotExist) {
		if t.ours[name] {
			return nil // pinned earlier by this run: the link keeps it
		}
		return fmt.Errorf("%w: %s is listed in the manifest but missing", errAOFChanged, src)
	}
	if err != nil {
		return err
	}
	if di, err := os.Stat(dst); err == nil {
		if os.SameFile(si, di) {
			t.ours[name] = true
			return nil
		}
		if err := os.Remove(dst); err != nil { // a stale link of an older file
			return err
		}
	}
	if err := os.Link(src, dst); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			return fmt.Errorf("%w: the pin directory %s must be on the filesystem of %s (hard links): %v", ErrAOFUnsupported, t.pin, t.dir, err)
		}
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w: %v", errAOFChanged, err)
		}
		return fmt.Errorf("pin %s: %w", name, err)
	}
	t.ours[name] = true
	return nil
}

// unpinExcept removes the pin links of this AOF's files not in keep.
func (t *aofTail) unpinExcept(keep []string) {
	ents, err := os.ReadDir(t.pin)
	if err != nil {
		return
	}
	for _, e := range ents {
		n := e.Name()
		if t.prefix == "" || !strings.HasPrefix(n, t.prefix) || !e.Type().IsRegular() ||
			slices.Contains(keep, n) || (t.f != nil && n == t.files[t.fi]) {
			continue
		}
		if err := os.Remove(filepath.Join(t.pin, n)); err == nil {
			delete(t.ours, n)
		}
	}
}

// baseIdentity is the synthetic replid of a base file: a hash of its name,
// inode, mtime and size (not its ctime: linking it into the pin directory
// changes that), and its mtime in unix ms.
func baseIdentity(path string) (string, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, fmt.Errorf("stat the AOF base: %w", err)
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = uint64(st.Ino)
	}
	h := sha1.Sum(fmt.Appendf(nil, "%s\x00%d\x00%d\x00%d", filepath.Base(path), ino, fi.ModTime().UnixNano(), fi.Size()))
	return hex.EncodeToString(h[:]), fi.ModTime().UnixMilli(), nil
}

// resume continues the newest open aof generation of the directory whose
// replid is replID; other open ones are ended. t.gen stays nil when a new
// generation must start.
func (t *aofTail) resume(ctx context.Context, base, replID string, mtimeMs int64, incr []string) error {
	s := t.s
	gens, err := catalog.ListGenerations(ctx, s.Backend)
	if err != nil {
		return err
	}
	var open []*catalog.Generation
	for _, g := range gens {
		if !g.Ended && g.Mode == "aof" && g.Source.Address == t.addr {
			open = append(open, g)
		}
	}
	var resume *catalog.Generation
	if n := len(open); n > 0 && open[n-1].ReplID == replID {
		resume, open = open[n-1], open[:n-1]
	}
	for _, g := range open {
		end, _, _, _, err := s.storedEnd(ctx, g)
		if err != nil {
			return err
		}
		if err := s.endNow(ctx, g, end, "aof rewrite while redback was not shipping: the log after this offset is not in the repository"); err != nil {
			return err
		}
	}
	if resume == nil {
		return nil
	}
	end, db, known, _, err := s.storedEnd(ctx, resume)
	if err != nil {
		return err
	}
	lastMs := mtimeMs // the time of the last stored command
	segs, err := catalog.ListSegments(ctx, s.Backend, resume.ID)
	if err != nil {
		return err
	}
	for _, sg := range segs {
		if sg.End == end {
			lastMs = sg.LastMs
		}
	}
	// Find the file and position of offset end.
	fi, fileOff := 0, int64(0)
	located := false
	for i, name := range incr {
		st, err := os.Stat(filepath.Join(t.pin, name))
		if err != nil {
			return fmt.Errorf("stat pinned %s: %w", name, err)
		}
		if end <= fileOff+st.Size() {
			fi, located = i, true
			break
		}
		fileOff += st.Size()
	}
	if !known || !located {
		why := "restart: the database at the resume point is unknown"
		if !located {
			why = fmt.Sprintf("restart: offset %d is past the end of the AOF files of its base", end)
		}
		return s.endNow(ctx, resume, end, why)
	}
	t.gen, t.baseName, t.files = resume, base, incr
	t.fi, t.fileOff, t.pos, t.db = fi, fileOff, end-fileOff, db
	t.ms, t.baseMs, t.sawTS, t.commands, t.firstCmd = 0, mtimeMs, false, end > 0, time.Now()
	switch resume.TimeSource {
	case TimeSourceAOF:
		t.ms = lastMs
	case TimeSourceUpload:
		t.warnUpload()
	}
	s.resumeAt(resume, end, db, lastMs, nil)
	s.queueStart(resume.ID, end)
	s.Log.Info("resuming generation", "gen", resume.ID, "offset", end, "file", incr[fi])
	return nil
}

// start stores the base file as the base snapshot of a new generation.
func (t *aofTail) start(ctx context.Context, base, replID string, mtimeMs int64, incr []string) error {
	s := t.s
	path := filepath.Join(t.pin, base)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open the AOF base: %w", err)
	}
	defer f.Close()
	head := make([]byte, 5)
	if _, err := io.ReadFull(f, head); err != nil || string(head) != "REDIS" || !strings.HasSuffix(base, ".rdb") {
		return fmt.Errorf("%w: base file %s is not an RDB base (aof-use-rdb-preamble no, or an AOF upgraded from before Redis 7): set aof-use-rdb-preamble yes and run BGREWRITEAOF", ErrAOFUnsupported, base)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	now := time.Now()
	id := catalog.NewGenerationID(now, replID)
	s.Log.Info("new AOF base: storing it as the base snapshot of a new generation", "gen", id, "file", base)
	snap, err := snapshot.Store(ctx, f, snapshot.Options{
		Backend:    s.Backend,
		Pack:       s.Pack,
		Method:     "aof",
		Source:     catalog.Source{Address: t.addr, ReplID: replID},
		Log:        s.Log,
		Generation: id,
		ID:         catalog.NewSnapshotID(now),
		Start:      time.UnixMilli(mtimeMs),
	})
	if err != nil {
		return fmt.Errorf("store the base snapshot of generation %s from %s: %w", id, base, err)
	}
	g := &catalog.Generation{
		Format:       catalog.FormatVersion,
		ID:           id,
		ReplID:       replID,
		BaseSnapshot: snap.ID,
		Created:      now.UTC(),
		Source:       snap.Source,
		Mode:         "aof",
		TimeSource:   t.prevSource,
	}
	if err := catalog.PutJSON(ctx, s.Backend, catalog.GenerationKey(id), g); err != nil {
		return fmt.Errorf("start generation %s: %w", id, err)
	}
	t.gen, t.baseName, t.files = g, base, incr
	t.fi, t.fileOff, t.pos, t.db = 0, 0, 0, 0
	t.baseMs, t.sawTS, t.commands = mtimeMs, false, false
	t.ms = 0
	if len(incr) > 0 {
		t.ms = t.tsAt[incr[0]]
	}
	clear(t.tsAt)
	s.newGeneration(id, 0, snap.ID)
	s.restartTimes() // times are ordered within a generation, and this one re-reads files
	s.Log.Info("generation started", "gen", id, "offset", 0, "key", catalog.SnapshotManifestKey(snap.ID))
	return nil
}

// read reads the complete units appended to the generation's incr files
// since the last call, into the builder.
func (t *aofTail) read(ctx context.Context) error {
	t.spoolFul = false
	for ctx.Err() == nil && t.fi < len(t.files) {
		name := t.files[t.fi]
		if t.f == nil {
			f, err := os.Open(filepath.Join(t.pin, name))
			if err != nil {
				return fmt.Errorf("open pinned %s: %w", name, err)
			}
			t.f = f
		}
		st, err := t.f.Stat()
		if err != nil {
			return err
		}
		size := st.Size()
		if size < t.pos {
			return fmt.Errorf("%s shrank to %d bytes below the shipped position %d (was it truncated?)", name, size, t.pos)
		}
		last := t.fi == len(t.files)-1
		clean, err := t.readFile(ctx, name, size, last)
		if err != nil || !clean || last {
			t.decideTimeSource(ctx)
			return err
		}
		if st, err := t.f.Stat(); err != nil || st.Size() != size {
			continue // it grew meanwhile: read the rest first
		}
		// The next file starts after every byte of this one.
		t.f.Close()
		t.f = nil
		t.fileOff += size
		t.fi++
		t.pos = 0
		t.tsAt[t.files[t.fi]] = t.ms
	}
	t.decideTimeSource(ctx)
	return nil
}

// readFile feeds files[fi] from t.pos up to size to the builder, one
// complete unit at a time. clean reports that every byte was read (no
// partial command, no unfinished transaction, not stopped by a full spool).
func (t *aofTail) readFile(ctx context.Context, name string, size int64, last bool) (clean bool, err error) {
	s := t.s
	ar := aof.NewReader(io.NewSectionReader(t.f, t.pos, size-t.pos), aof.ReaderOptions{File: name, StartOffset: t.pos})
	inTx := false
	db := t.db
	var txMs int64 // t.ms at the MULTI
	stop := func() {
		if inTx {
			s.rollback() // the transaction is read again next time
			t.ms = txMs
		}
	}
	for n := 0; ; n++ {
		if n%1024 == 1023 && ctx.Err() != nil {
			stop()
			return false, nil
		}
		rec, err := ar.Next()
		if err == io.EOF {
			stop()
			if inTx && !last {
				return false, fmt.Errorf("%w: %s ends inside MULTI ... EXEC and a later incr file exists, so it will not grow (redis-check-aof reports it too)", ErrAOFUnsupported, name)
			}
			return !inTx, nil
		}
		if errors.Is(err, aof.ErrTruncated) {
			stop()
			if last {
				return false, nil // a command being written: wait for the rest
			}
			return false, fmt.Errorf("%w: %w (a later incr file exists, so it will not grow)", ErrAOFUnsupported, err)
		}
		if err != nil {
			stop()
			return false, err
		}
		if rec.Kind == aof.RecordAnnotation {
			if rec.HasTimestamp {
				t.ms, t.sawTS = rec.Timestamp*1000, true
			}
			now := time.Now()
			ms := t.timeFor()
			if ms == 0 {
				ms = now.UnixMilli()
			}
			end := t.fileOff + rec.Offset + rec.Size
			s.skip(t.fileOff+rec.Offset, end, now, ms)
			if !inTx {
				t.pos = rec.Offset + rec.Size
				s.setStat(func(x *Stats) { x.PrimaryOffset = end })
			}
			continue
		}
		cn := rec.Args[0]
		if !inTx {
			if s.spoolFull(0) {
				t.spoolFul = true
				return false, nil // storage is behind: the file waits on disk
			}
		}
		switch {
		case eqFold(cn, "MULTI"):
			inTx, txMs = true, t.ms
		case eqFold(cn, "SELECT") && len(rec.Args) == 2:
			d, err := strconv.Atoi(string(rec.Args[1]))
			if err != nil || d < 0 {
				stop()
				return false, &aof.CorruptionError{File: name, Offset: rec.Offset, Line: rec.Line, Err: fmt.Errorf("SELECT %q", rec.Args[1])}
			}
			db = d
		}
		ms := t.timeFor()
		now := time.Now()
		if ms == 0 {
			ms = now.UnixMilli()
		}
		cmd := replica.Command{Args: rec.Args, Offset: t.fileOff + rec.Offset, Len: rec.Size, DB: db}
		unitEnd, _ := s.add(cmd, now, ms)
		if !t.commands {
			t.commands, t.firstCmd = true, now
		}
		if eqFold(cn, "EXEC") || eqFold(cn, "DISCARD") {
			inTx = false
		}
		if unitEnd {
			t.pos, t.db = rec.Offset+rec.Size, db
			s.setStat(func(x *Stats) { x.PrimaryOffset = cmd.End() })
		}
	}
}

// timeFor is the time of the next command: the last #TS annotation, else
// (time source not known or "aof") the base's time, else 0 (read time).
func (t *aofTail) timeFor() int64 {
	switch {
	case t.ms > 0:
		return t.ms
	case t.gen.TimeSource == TimeSourceUpload:
		return 0
	}
	return t.baseMs
}

// decideTimeSource records, once commands were read, whether the
// generation's times come from #TS annotations or from read times, and
// warns when they cannot.
func (t *aofTail) decideTimeSource(ctx context.Context) {
	s := t.s
	g := t.gen
	// Redis writes #TS only when its second advanced since the last one,
	// so the first commands of a file may have none: only commands read
	// over more than two seconds without any say that timestamps are off.
	if g == nil || g.TimeSource != "" || !(t.sawTS || t.commands && time.Since(t.firstCmd) > 2*time.Second) {
		return
	}
	if t.sawTS {
		g.TimeSource = TimeSourceAOF
	} else {
		g.TimeSource = TimeSourceUpload
		t.warnUpload()
	}
	cp := *g
	_ = s.retryStorage(ctx, "record the time source of generation "+g.ID, func() error {
		return catalog.PutJSON(ctx, s.Backend, catalog.GenerationKey(g.ID), &cp)
	})
}

// warnUpload says that the generation's times are read times.
func (t *aofTail) warnUpload() {
	t.s.Log.Warn("the AOF has no #TS annotations (aof-timestamp-enabled no): segment times are the times redback read the commands, so restores by time are approximate; restore by offset, or set aof-timestamp-enabled yes",
		"gen", t.gen.ID, "dir", t.dir)
}
