package restore

import (
	"context"
	"fmt"
	"io"
	"os"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/storage"
)

// FileSource reads a local RDB file.
func FileSource(path string) Source {
	size := int64(-1)
	if st, err := os.Stat(path); err == nil {
		size = st.Size()
	}
	return Source{Name: path, Size: size, Open: func(context.Context) (io.ReadCloser, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open source: %w", err)
		}
		return f, nil
	}}
}

// SnapshotSource reads a repository snapshot's data object, checking its
// stored size and sha256 (a mismatch is a pack.IntegrityError at the end),
// decrypting with ids and decompressing.
func SnapshotSource(b storage.Backend, s *catalog.Snapshot, ids []age.Identity) Source {
	var dbs []int
	for _, d := range s.Census.DBs {
		if d.Keys > 0 {
			dbs = append(dbs, d.DB)
		}
	}
	if dbs == nil {
		dbs = []int{}
	}
	obj := s.Object
	exp := pack.Expect{Key: obj.Key, Size: obj.StoredBytes, SHA256: obj.SHA256, Encrypted: obj.Encryption != ""}
	precheck := func(ctx context.Context) error {
		rc, err := b.Get(ctx, obj.Key, 0, -1)
		if err != nil {
			return fmt.Errorf("read snapshot %s: %w", s.ID, err)
		}
		defer rc.Close()
		return pack.CheckStored(rc, exp)
	}
	return Source{Name: "snapshot " + s.ID, Object: obj.Key, Size: obj.RawBytes, DBs: dbs, Verified: s.Verified, Precheck: precheck,
		Digest: s.Digest, ZSets: s.Census.Types["zset"] > 0, Open: func(ctx context.Context) (io.ReadCloser, error) {
			rc, err := b.Get(ctx, obj.Key, 0, -1)
			if err != nil {
				return nil, fmt.Errorf("read snapshot %s: %w", s.ID, err)
			}
			ur, err := pack.NewReader(rc, exp, ids)
			if err != nil {
				rc.Close()
				return nil, err
			}
			// rc first: it ends a read the unsealing goroutine may be blocked in.
			return &both{Reader: ur, closers: []io.Closer{rc, ur}}, nil
		}}
}

type both struct {
	io.Reader
	closers []io.Closer
}

func (b *both) Close() error {
	var first error
	for _, c := range b.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
