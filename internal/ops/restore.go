package ops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"

	"redback/internal/catalog"
	"redback/internal/restore"
	"redback/internal/storage"
)

// SnapshotSource picks the snapshot a restore reads from repo (one
// source's objects): the one with id, or the newest verified one when id
// is empty, and checks that it can be read (an encrypted snapshot needs
// ids). The errors say what to do next.
func SnapshotSource(ctx context.Context, repo storage.Backend, id string, ids []age.Identity) (restore.Source, *catalog.Snapshot, error) {
	var snap *catalog.Snapshot
	var err error
	if id != "" {
		snap, err = catalog.ReadSnapshot(ctx, repo, id)
		if errors.Is(err, catalog.ErrNoSnapshot) {
			err = fmt.Errorf("no snapshot %q in %s: see the ids with `redback list --repo %s`", id, repo.Location(), repo.Location())
		}
	} else {
		snap, err = catalog.Latest(ctx, repo)
		if errors.Is(err, catalog.ErrNoSnapshot) {
			err = fmt.Errorf("nothing to restore: %w (none verified); see `redback list --repo %s`", err, repo.Location())
		}
	}
	if err != nil {
		return restore.Source{}, nil, err
	}
	if snap.Object.Encryption != "" && len(ids) == 0 {
		return restore.Source{}, nil, fmt.Errorf("snapshot %s is encrypted (recipients %s): give --identity FILE or set $REDBACK_IDENTITY_FILE", snap.ID, strings.Join(snap.Object.Recipients, ", "))
	}
	return restore.SnapshotSource(repo, snap, ids), snap, nil
}
