package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"

	"redback/internal/catalog"
	"redback/internal/progress"
	"redback/internal/snapshot"
	"redback/internal/storage"
	"redback/internal/storage/backends"
)

// runSnapshotFromRDB is `redback snapshot --from-rdb FILE|URL`: an RDB a
// managed service exported (or any RDB file) stored as a verified
// snapshot, checked like any other while it streams.
func runSnapshotFromRDB(ctx context.Context, e *env, o *snapshotOpts) error {
	try := "redback snapshot --from-rdb s3://bucket/exports/cache-a.rdb --repo URL --name cache-a"
	switch {
	case o.source != "" || o.log.FromLog || o.log.requested():
		return usagef(try, "--from-rdb takes the RDB from the file or object: drop --source and the --from-log flags")
	case o.method != "sync":
		return usagef(try, "--method applies to --source, not to --from-rdb")
	case o.name == "":
		return usagef(try, "--from-rdb needs --name: the source the snapshot belongs to")
	}
	po, err := o.pack.options()
	if err != nil {
		return err
	}
	obj, key, err := backends.OpenObject(ctx, o.fromRDB)
	if errors.Is(err, storage.ErrInvalidLocation) {
		return usagef(try, "--from-rdb: %v", err)
	}
	if err != nil {
		return fmt.Errorf("--from-rdb: %w", err)
	}
	defer obj.Close()
	where := obj.Location() + " " + key
	info, err := obj.Stat(ctx, key)
	if err != nil {
		return fmt.Errorf("--from-rdb %s: %w", where, err)
	}
	base, view, src, err := openWriter(ctx, e, o.repo, o.name, where)
	if err != nil {
		return err
	}
	defer base.Close()
	bar := progress.New(e.Err, "snapshot", -1, !o.json && progress.IsTerminal(e.Err))
	var snap *catalog.Snapshot
	err = leased(ctx, e, view, src.Name, func(ctx context.Context, repo storage.Backend) error {
		rc, err := obj.Get(ctx, key, 0, -1)
		if err != nil {
			return fmt.Errorf("--from-rdb %s: %w", where, err)
		}
		defer rc.Close()
		in, gz, err := gunzipped(rc)
		if err != nil {
			return fmt.Errorf("--from-rdb %s: %w", where, err)
		}
		if !gz {
			bar.SetTotal(info.Size)
		}
		snap, err = snapshot.Store(ctx, in, snapshot.Options{Backend: repo, Pack: po, Progress: bar, Log: e.log,
			Method: catalog.MethodRDBFile, Source: catalog.Source{Address: where}})
		return err
	})
	bar.Done()
	if err != nil {
		return err
	}
	return printSnapshot(e, o.json, snap, snap)
}

// gunzipped returns r, decompressed when it starts with gzip's magic (a
// Redis Cloud or Redis Enterprise backup, NAME.rdb.gz), and whether it
// was.
func gunzipped(r io.Reader) (io.Reader, bool, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, _ := br.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, false, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, true, fmt.Errorf("gzip: %w", err)
	}
	return zr, true, nil
}
