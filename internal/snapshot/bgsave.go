package snapshot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotLocal means --method bgsave was asked for a server whose RDB file
// is not on this host.
var ErrNotLocal = errors.New("the server's RDB file is not reachable from this host")

// BGSaveOptions tune TakeBGSave.
type BGSaveOptions struct {
	Poll    time.Duration // INFO poll interval; 0 means 50 ms
	Timeout time.Duration // how long a save may take; 0 means 1 h
	Retries int           // how often to retry when dump.rdb was replaced before it could be opened; 0 means 3
}

// SavedFile is an RDB file produced by BGSAVE, opened once so later
// replacements of the path (a new BGSAVE, FLUSHALL with save points) cannot
// change what is read.
type SavedFile struct {
	*os.File
	Path     string
	Size     int64
	SaveTime int64 // rdb_last_save_time of the save
	Waited   []string
}

// persistence is the part of INFO persistence the BGSAVE dance needs.
type persistence struct {
	bgsaveInProgress bool
	aofRewriting     bool
	saves            int64
	lastSaveTime     int64
	lastBgsaveOK     bool
}

func readPersistence(ctx context.Context, c *redis.Client) (persistence, error) {
	txt, err := c.Info(ctx, "persistence").Result()
	if err != nil {
		return persistence{}, fmt.Errorf("INFO persistence: %w", err)
	}
	f := infoFields(txt)
	p := persistence{
		bgsaveInProgress: f["rdb_bgsave_in_progress"] == "1",
		aofRewriting:     f["aof_rewrite_in_progress"] == "1",
		lastBgsaveOK:     f["rdb_last_bgsave_status"] == "ok",
	}
	p.saves, _ = strconv.ParseInt(f["rdb_saves"], 10, 64)
	p.lastSaveTime, _ = strconv.ParseInt(f["rdb_last_save_time"], 10, 64)
	return p, nil
}

// infoFields parses INFO text into a map.
func infoFields(txt string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// TakeBGSave runs BGSAVE on the server (waiting for a save already running,
// scheduling around an AOF rewrite), waits for it, checks its status, and
// opens the resulting file from CONFIG GET dir + dbfilename. The caller
// closes the file.
func TakeBGSave(ctx context.Context, c *redis.Client, opts BGSaveOptions) (*SavedFile, error) {
	if opts.Poll == 0 {
		opts.Poll = 50 * time.Millisecond
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Hour
	}
	if opts.Retries == 0 {
		opts.Retries = 3
	}
	cfg, err := c.ConfigGet(ctx, "dir").Result()
	if err != nil {
		return nil, fmt.Errorf("CONFIG GET dir: %w", err)
	}
	dbf, err := c.ConfigGet(ctx, "dbfilename").Result()
	if err != nil {
		return nil, fmt.Errorf("CONFIG GET dbfilename: %w", err)
	}
	path := filepath.Join(cfg["dir"], dbf["dbfilename"])
	if st, err := os.Stat(cfg["dir"]); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: its dir %s does not exist here", ErrNotLocal, cfg["dir"])
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	var waited []string
	for attempt := 0; attempt < opts.Retries; attempt++ {
		saveTime, notes, err := bgsaveOnce(ctx, c, opts.Poll)
		waited = append(waited, notes...)
		if err != nil {
			return nil, err
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open %s after BGSAVE: %w", path, err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("stat %s: %w", path, err)
		}
		// The file we hold is a complete RDB (Redis renames over the path).
		// Make sure it is ours: no other save finished since.
		p, err := readPersistence(ctx, c)
		if err != nil {
			f.Close()
			return nil, err
		}
		if p.lastSaveTime == saveTime && !p.bgsaveInProgress {
			return &SavedFile{File: f, Path: path, Size: st.Size(), SaveTime: saveTime, Waited: waited}, nil
		}
		f.Close()
		waited = append(waited, "another save replaced the file before it was opened; taking it again")
	}
	return nil, fmt.Errorf("BGSAVE: %s kept being replaced by other saves (%d attempts)", path, opts.Retries)
}

// bgsaveOnce performs one BGSAVE and returns rdb_last_save_time of it.
func bgsaveOnce(ctx context.Context, c *redis.Client, poll time.Duration) (int64, []string, error) {
	var notes []string
	tick := time.NewTicker(poll)
	defer tick.Stop()
	wait := func() error {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for BGSAVE: %w", context.Cause(ctx))
		case <-tick.C:
			return nil
		}
	}
	before, err := readPersistence(ctx, c)
	if err != nil {
		return 0, nil, err
	}
	// A save already running forked before our request: wait for it, then take our own.
	if before.bgsaveInProgress {
		notes = append(notes, "waited for a BGSAVE already in progress")
		for before.bgsaveInProgress {
			if err := wait(); err != nil {
				return 0, notes, err
			}
			if before, err = readPersistence(ctx, c); err != nil {
				return 0, notes, err
			}
		}
	}
	started := false // our save has forked (BGSAVE replies after the fork)
	for {
		_, err := c.Do(ctx, "BGSAVE").Text()
		if err == nil {
			started = true
			break
		}
		msg := err.Error()
		switch {
		case strings.Contains(msg, "already in progress"):
			// Someone else's save started in between: wait and retry.
			if err := wait(); err != nil {
				return 0, notes, err
			}
			if before, err = readPersistence(ctx, c); err != nil {
				return 0, notes, err
			}
			continue
		case strings.Contains(msg, "Another child process is active"):
			if _, err := c.Do(ctx, "BGSAVE", "SCHEDULE").Text(); err != nil {
				return 0, notes, fmt.Errorf("BGSAVE SCHEDULE: %w", err)
			}
			notes = append(notes, "an AOF rewrite was running: BGSAVE was scheduled after it")
		default:
			return 0, notes, fmt.Errorf("BGSAVE: %w", err)
		}
		break
	}
	for {
		if err := wait(); err != nil {
			return 0, notes, err
		}
		p, err := readPersistence(ctx, c)
		if err != nil {
			return 0, notes, err
		}
		if p.bgsaveInProgress {
			started = true
			continue
		}
		failedNow := before.lastBgsaveOK && !p.lastBgsaveOK
		if !started && p.saves == before.saves && p.lastSaveTime == before.lastSaveTime && !failedNow {
			continue // scheduled, not started yet
		}
		if !p.lastBgsaveOK {
			return 0, notes, &SaveError{Reason: bgsaveReason(ctx, c)}
		}
		return p.lastSaveTime, notes, nil
	}
}

// SaveError is a BGSAVE that the server reported as failed.
type SaveError struct{ Reason string }

func (e *SaveError) Error() string {
	return "BGSAVE failed on the server (rdb_last_bgsave_status:err): " + e.Reason
}

// bgsaveReason finds Redis's own explanation in its log file when it is
// readable from here.
func bgsaveReason(ctx context.Context, c *redis.Client) string {
	const fallback = "see the Redis log for the reason"
	lf, err := c.ConfigGet(ctx, "logfile").Result()
	if err != nil || lf["logfile"] == "" {
		return fallback
	}
	path := lf["logfile"]
	if !filepath.IsAbs(path) {
		if d, err := c.ConfigGet(ctx, "dir").Result(); err == nil {
			path = filepath.Join(d["dir"], path)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return fallback
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 64<<10 {
		_, _ = f.Seek(st.Size()-64<<10, 0)
	}
	// Prefer the child's specific complaint over the parent's summary line.
	var specific, generic string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.Contains(l, "Failed opening"), strings.Contains(l, "Write error"),
			strings.Contains(l, "Error moving temp"), strings.Contains(l, "Can't save"):
			specific = l
		case strings.Contains(l, "Background saving error"), strings.Contains(l, "Background saving terminated by signal"):
			generic = l
		}
	}
	last := specific
	if last == "" {
		last = generic
	}
	if last == "" {
		return fallback
	}
	// Strip the "pid:C date * " prefix Redis writes.
	if i := strings.Index(last, " # "); i >= 0 {
		last = last[i+3:]
	} else if i := strings.Index(last, " * "); i >= 0 {
		last = last[i+3:]
	}
	return last
}
