package pitr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"redback/internal/aof"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/restore"
)

// Names of the files ToDir writes (Redis's defaults).
const (
	AOFDirName   = "appendonlydir"
	BaseFileName = "appendonly.aof.1.base.rdb"
	IncrFileName = "appendonly.aof.1.incr.aof"
	ManifestName = "appendonly.aof.manifest"
)

// DefaultMaxErrors is how many replay errors a Result lists.
const DefaultMaxErrors = 20

// Result is what a point-in-time restore did.
type Result struct {
	Base     *restore.Result `json:"base"`
	Commands int64           `json:"commands"` // commands replayed (SELECT, MULTI, EXEC included)
	Bytes    int64           `json:"bytes"`    // RESP bytes replayed
	// Errors counts commands the target answered with an error (or, in an
	// EXEC reply, with errors inside); FirstErrors lists the first ones.
	Errors      int64         `json:"errors"`
	FirstErrors []string      `json:"first_errors,omitempty"`
	Duration    time.Duration `json:"-"`
}

// replay streams the planned records to emit: every record of the planned
// segments up to the cut, minus commands already replayed from an earlier
// overlapping segment and the skipped ones. SELECT is always passed on, so
// the db stays right. The rest of the last segment is still read, so its
// checksum is verified.
func (p *Plan) replay(ctx context.Context, emit func(*record) error) error {
	for i, seg := range p.Segments {
		last := i == len(p.Segments)-1
		from := p.from[i]
		err := scanSegment(ctx, p.b, p.ids, seg, func(r *record) error {
			switch {
			case last && p.stopPos >= 0 && r.AOFPos >= p.stopPos:
				return nil
			case r.Annotation, r.Synthetic, r.Name == "SELECT":
				return emit(r)
			case r.Offset < from, p.skip[r.Offset]:
				return nil
			}
			return emit(r)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// checkBaseOptions refuses restore options a replay cannot honour.
func checkBaseOptions(ro restore.Options) error {
	if !ro.Filter.IsZero() {
		return errors.New("point-in-time restore replays the whole log: --match, --db and --map-db are not supported with it")
	}
	return nil
}

// ToRedis restores the base snapshot into the server at u with the restore
// package (ro: conflict mode, parallelism), then replays the log over one
// connection, pipelined, in order.
func (p *Plan) ToRedis(ctx context.Context, u *redisurl.URL, ro restore.Options) (*Result, error) {
	start := time.Now()
	res := &Result{}
	defer func() { res.Duration = time.Since(start) }()
	if err := checkBaseOptions(ro); err != nil {
		return res, err
	}
	br, err := restore.ToRedis(ctx, restore.SnapshotSource(p.b, p.Base, p.ids), u, ro)
	res.Base = br
	if err != nil {
		return res, fmt.Errorf("restore base snapshot %s: %w", p.Base.ID, err)
	}
	if br != nil && br.KeysFailed > 0 {
		return res, fmt.Errorf("restore base snapshot %s: %d keys were not restored; the log was not replayed", p.Base.ID, br.KeysFailed)
	}
	return res, p.replayRedis(ctx, u, res)
}

// replyMeta says which command a reply answers.
type replyMeta struct {
	offset int64
	name   string
}

func (p *Plan) replayRedis(ctx context.Context, u *redisurl.URL, res *Result) error {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	nc, err := u.Dial(dctx)
	cancel()
	if err != nil {
		return fmt.Errorf("connect for replay: %w", err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	bw := bufio.NewWriterSize(nc, 256<<10)
	rd := resp.NewReader(bufio.NewReaderSize(nc, 256<<10), resp.Options{})
	if pw := u.Password.Reveal(); pw != "" {
		args := []string{"AUTH", pw}
		if u.Username != "" {
			args = []string{"AUTH", u.Username, pw}
		}
		if _, err := bw.Write(resp.AppendCommandString(nil, args...)); err != nil {
			return fmt.Errorf("replay to %s: %w", u.Redacted(), err)
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("replay to %s: %w", u.Redacted(), err)
		}
		if _, err := rd.ReadValue(); err != nil {
			return fmt.Errorf("replay to %s: authenticate: %w", u.Redacted(), err)
		}
	}
	pending := make(chan replyMeta, 1<<14)
	readerDone := make(chan struct{})
	var readErr error
	addErr := func(m replyMeta, msg string) {
		res.Errors++
		if len(res.FirstErrors) < DefaultMaxErrors {
			res.FirstErrors = append(res.FirstErrors, fmt.Sprintf("offset %d %s: %s", m.offset, m.name, msg))
		}
	}
	go func() {
		defer close(readerDone)
		for m := range pending {
			v, err := rd.ReadValue()
			var re resp.Error
			switch {
			case errors.As(err, &re):
				addErr(m, re.Error())
			case err != nil:
				readErr = err
				nc.Close()
				for range pending {
				}
				return
			case m.name == "EXEC" && v.Kind == resp.KindArray:
				for _, e := range v.Array {
					if e.Kind == resp.KindError {
						addErr(m, "inside the transaction: "+e.Text())
					}
				}
			}
		}
	}()
	var buf []byte
	werr := p.replay(ctx, func(r *record) error {
		if r.Annotation {
			return nil
		}
		buf = resp.AppendCommand(buf[:0], r.Args...)
		if _, err := bw.Write(buf); err != nil {
			return err
		}
		res.Commands++
		res.Bytes += int64(len(buf))
		select {
		case pending <- replyMeta{offset: r.Offset, name: r.Name}:
		case <-readerDone:
			return errors.New("connection lost")
		}
		return nil
	})
	if werr == nil {
		werr = bw.Flush()
	}
	close(pending)
	if werr != nil {
		nc.Close()
	}
	<-readerDone
	if err := ctx.Err(); err != nil {
		return err
	}
	if readErr != nil {
		return fmt.Errorf("replay to %s: read replies: %w", u.Redacted(), readErr)
	}
	if werr != nil {
		var ne net.Error
		if errors.As(werr, &ne) {
			return fmt.Errorf("replay to %s: %w", u.Redacted(), werr)
		}
		return werr
	}
	if res.Errors > 0 {
		return fmt.Errorf("replay: %d commands failed on the target (first: %s)", res.Errors, res.FirstErrors[0])
	}
	return nil
}

// ToDir writes a multi-part AOF directory DIR/appendonlydir (base RDB,
// the replayed log as one incr file, manifest) that
// `redis-server --appendonly yes --dir DIR` loads by itself. An existing
// appendonlydir is refused unless ro.Force.
func (p *Plan) ToDir(ctx context.Context, dir string, ro restore.Options) (*Result, error) {
	start := time.Now()
	res := &Result{}
	defer func() { res.Duration = time.Since(start) }()
	if err := checkBaseOptions(ro); err != nil {
		return res, err
	}
	ad := filepath.Join(dir, AOFDirName)
	if _, err := os.Stat(filepath.Join(ad, ManifestName)); err == nil && !ro.Force {
		return res, fmt.Errorf("%s: %w (use --force to replace it)", filepath.Join(ad, ManifestName), restore.ErrExists)
	}
	if err := os.MkdirAll(ad, 0o755); err != nil {
		return res, err
	}
	br, err := restore.ToFile(ctx, restore.SnapshotSource(p.b, p.Base, p.ids), filepath.Join(ad, BaseFileName), ro)
	res.Base = br
	if err != nil {
		return res, fmt.Errorf("write base snapshot %s: %w", p.Base.ID, err)
	}
	err = writeAtomic(ad, IncrFileName, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		var buf []byte
		err := p.replay(ctx, func(r *record) error {
			if r.Annotation {
				buf = append(append(append(buf[:0], '#'), r.Raw...), '\r', '\n')
			} else {
				buf = resp.AppendCommand(buf[:0], r.Args...)
				res.Commands++
			}
			res.Bytes += int64(len(buf))
			_, err := bw.Write(buf)
			return err
		})
		if err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return res, err
	}
	m := &aof.Manifest{
		Base: &aof.ManifestFile{Name: BaseFileName, Seq: 1, Type: aof.TypeBase},
		Incr: []aof.ManifestFile{{Name: IncrFileName, Seq: 1, Type: aof.TypeIncr}},
	}
	err = writeAtomic(ad, ManifestName, func(w io.Writer) error {
		_, err := m.WriteTo(w)
		return err
	})
	return res, err
}

// writeAtomic writes dir/name through a synced temp file renamed into place,
// then syncs dir.
func writeAtomic(dir, name string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !strings.Contains(err.Error(), "invalid argument") {
		return err
	}
	return nil
}
