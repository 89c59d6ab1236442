package clusterset

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/restore"
	"redback/internal/storage"
)

// DirResult is one shard written by ToDirs.
type DirResult struct {
	Source string   `json:"source"`
	Dir    string   `json:"dir"`
	Slots  [][2]int `json:"slots"`
	Digest string   `json:"digest"`
	*restore.Result
}

// ToDirs writes each shard of set as its own data dir, dir/<shard source>
// /dump.rdb (restore.ToDir: the snapshot's bytes as they are, verified on
// the way), one per source shard: a redis-server started with
// --cluster-enabled yes on such a dir loads the shard's keys (and, in a
// fresh cluster, takes the unassigned slots it holds keys of). The dirs
// are made as needed; an existing dump.rdb is refused unless o.Force.
func ToDirs(ctx context.Context, repo storage.Backend, set *catalog.Set, dir string, o restore.Options, ids []age.Identity) ([]DirResult, error) {
	sources, _, err := openShards(ctx, repo, set, ids)
	if err != nil {
		return nil, err
	}
	var out []DirResult
	for i, sh := range set.Shards {
		d := filepath.Join(dir, sh.Source)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return out, err
		}
		res, err := restore.ToDir(ctx, sources[i].src, d, o)
		out = append(out, DirResult{Source: sh.Source, Dir: d, Slots: sh.Slots, Digest: sh.Digest, Result: res})
		if err != nil {
			return out, fmt.Errorf("set %s, shard %s: %w", set.ID, sh.Source, err)
		}
	}
	return out, nil
}
