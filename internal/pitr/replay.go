package pitr

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"redback/internal/aof"
	"redback/internal/atomicfile"
	"redback/internal/catalog"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/respconn"
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
	// Replay is the part of Duration spent replaying the log.
	Replay time.Duration `json:"-"`
}

// replay streams the planned records to emit: every record of the planned
// segments up to the cut, minus commands already replayed from an earlier
// overlapping segment and the skipped ones. SELECT is always passed on, so
// the db stays right. The rest of the last segment is still read, so its
// checksum is verified.
func (p *Plan) replay(ctx context.Context, emit func(*record) error) error {
	for i, seg := range p.Segments {
		last := i == len(p.Segments)-1
		from, to := p.spans[i].from, p.spans[i].to
		err := p.log.scan(ctx, seg, func(r *record) error {
			switch {
			case last && p.stopPos >= 0 && r.AOFPos >= p.stopPos:
				return nil
			case !r.Annotation && !r.Synthetic && r.Offset >= to:
				return nil // another history (after a fork)
			case r.Tick > 0, !r.Annotation && catalog.IsMarkerPublish(r.Args):
				return nil // redback's time markers are not data
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
	if ro.Conflict == restore.ConflictFail {
		if err := checkEmpty(ctx, u); err != nil {
			return res, err
		}
	}
	br, err := restore.ToRedis(ctx, restore.SnapshotSource(p.log.b, p.Base, p.log.ids), u, ro)
	res.Base = br
	if err != nil {
		return res, fmt.Errorf("restore base snapshot %s: %w", p.Base.ID, err)
	}
	if br != nil && br.KeysFailed > 0 {
		return res, fmt.Errorf("restore base snapshot %s: %d keys were not restored; the log was not replayed", p.Base.ID, br.KeysFailed)
	}
	rstart := time.Now()
	err = p.replayRedis(ctx, u, res)
	res.Replay = time.Since(rstart)
	return res, err
}

// ErrTargetNotEmpty is wrapped when ToRedis with restore.ConflictFail
// finds keys on the target.
var ErrTargetNotEmpty = errors.New("the target server is not empty")

// checkEmpty refuses a target holding keys in any db: the replay writes to
// whatever dbs the log names, not only those of the base snapshot.
func checkEmpty(ctx context.Context, u *redisurl.URL) error {
	c := redis.NewClient(u.GoRedisOptions())
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := c.Info(cctx, "keyspace").Result()
	if err != nil {
		return fmt.Errorf("check that %s is empty: %w", u.Redacted(), err)
	}
	var dbs []string
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "db") {
			name, rest, _ := strings.Cut(line, ":")
			keys, _, _ := strings.Cut(strings.TrimPrefix(rest, "keys="), ",")
			dbs = append(dbs, name+" "+keys+" keys")
		}
	}
	if len(dbs) > 0 {
		return fmt.Errorf("%s: %w (%s): a point-in-time restore replays commands into every db the log names; restore into an empty server, or pass --conflict replace to overwrite", u.Redacted(), ErrTargetNotEmpty, strings.Join(dbs, ", "))
	}
	return nil
}

// replyMeta says which command a reply answers.
type replyMeta struct {
	offset int64
	name   string
}

func (p *Plan) replayRedis(ctx context.Context, u *redisurl.URL, res *Result) error {
	c, err := respconn.Dial(ctx, u, respconn.Options{Timeout: 30 * time.Second, ReadBuffer: 256 << 10, WriteBuffer: 256 << 10,
		Error: func(addr, msg string, err error) error {
			if msg == respconn.MsgUnreachable {
				return fmt.Errorf("connect for replay: %w", err)
			}
			return fmt.Errorf("replay to %s: %s: %w", addr, msg, err)
		}})
	if err != nil {
		return err
	}
	defer c.Close()
	bw, rd := c.Writer(), c.Reader()
	// Replies are matched to commands in order; the writer hands the
	// reader batches of command descriptions (bounded: the writer waits
	// when the reader is 64 batches behind).
	const batchLen = 512
	pending := make(chan []replyMeta, 64)
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
		for batch := range pending {
			for _, m := range batch {
				v, err := rd.ReadValue()
				var re resp.Error
				switch {
				case errors.As(err, &re):
					addErr(m, re.Error())
				case err != nil:
					readErr = err
					c.Close()
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
		}
	}()
	batch := make([]replyMeta, 0, batchLen)
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		select {
		case pending <- batch:
		default:
			// The reader is behind: before waiting for it, send what is
			// buffered, or it could wait for replies to commands still
			// in our buffer.
			if err := bw.Flush(); err != nil {
				return err
			}
			select {
			case pending <- batch:
			case <-readerDone:
				return errors.New("connection lost")
			}
		}
		batch = make([]replyMeta, 0, batchLen)
		return nil
	}
	werr := p.replay(ctx, func(r *record) error {
		if r.Annotation {
			return nil
		}
		if _, err := bw.Write(r.Raw); err != nil {
			return err
		}
		res.Commands++
		res.Bytes += int64(len(r.Raw))
		batch = append(batch, replyMeta{offset: r.Offset, name: r.Name})
		if len(batch) == batchLen {
			return send()
		}
		return nil
	})
	if werr == nil {
		werr = send()
	}
	if werr == nil {
		werr = bw.Flush()
	}
	close(pending)
	if werr != nil {
		c.Close()
	}
	<-readerDone
	if err := ctx.Err(); err != nil {
		return err
	}
	if readErr != nil {
		return fmt.Errorf("replay to %s: read replies: %w", u.Redacted(), readErr)
	}
	if werr != nil {
		return fmt.Errorf("replay to %s stopped after %d commands (the target holds a partial restore; restore again into an empty server): %w", u.Redacted(), res.Commands, werr)
	}
	if res.Errors > 0 {
		return fmt.Errorf("replay: %d commands failed on the target (first: %s)", res.Errors, res.FirstErrors[0])
	}
	return nil
}

// ToDir writes a multi-part AOF directory DIR/appendonlydir (base RDB,
// the replayed log as one incr file, manifest) that
// `redis-server --appendonly yes --dir DIR` loads by itself. The manifest
// is written last; on failure the files written are removed. An existing
// manifest is refused unless ro.Force (then it is removed first, so a
// failure never leaves old and new files mixed).
func (p *Plan) ToDir(ctx context.Context, dir string, ro restore.Options) (*Result, error) {
	start := time.Now()
	res := &Result{}
	defer func() { res.Duration = time.Since(start) }()
	if err := checkBaseOptions(ro); err != nil {
		return res, err
	}
	ad := filepath.Join(dir, AOFDirName)
	mpath := filepath.Join(ad, ManifestName)
	if _, err := os.Stat(mpath); err == nil {
		if !ro.Force {
			return res, fmt.Errorf("%s: %w (use --force to replace it)", mpath, restore.ErrExists)
		}
		// The old manifest goes first: until the new one is written the
		// dir holds no loadable set, never a mix of old and new files.
		if err := os.Remove(mpath); err != nil {
			return res, err
		}
		if err := atomicfile.SyncDir(ad); err != nil {
			return res, err
		}
	}
	if err := os.MkdirAll(ad, 0o755); err != nil {
		return res, err
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(filepath.Join(ad, BaseFileName))
			os.Remove(filepath.Join(ad, IncrFileName))
		}
	}()
	bro := ro
	bro.Force = true // a base left by an earlier run without its manifest
	br, err := restore.ToFile(ctx, restore.SnapshotSource(p.log.b, p.Base, p.log.ids), filepath.Join(ad, BaseFileName), bro)
	res.Base = br
	if err != nil {
		return res, fmt.Errorf("write base snapshot %s: %w", p.Base.ID, err)
	}
	err = atomicfile.Write(filepath.Join(ad, IncrFileName), func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 256<<10)
		err := p.replay(ctx, func(r *record) error {
			if !r.Annotation {
				res.Commands++
			}
			res.Bytes += int64(len(r.Raw))
			_, err := bw.Write(r.Raw)
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
	err = atomicfile.Write(filepath.Join(ad, ManifestName), func(w io.Writer) error {
		_, err := m.WriteTo(w)
		return err
	})
	ok = err == nil
	return res, err
}
