package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"redback/internal/catalog"
	"redback/internal/storage"
)

// PruneParams says what Prune applies to one source.
type PruneParams struct {
	Policy catalog.Policy
	Now    time.Time
	// UploadsBefore: incomplete multipart uploads started before it are
	// abandoned (aborted, or reported with DryRun).
	UploadsBefore time.Time
	// TempsBefore: staging files of a folder repository (".redback-tmp-*",
	// left by a writer killed mid-write) last written before it are
	// abandoned (removed, or reported with DryRun). Zero: none are. Keep
	// it at least an hour back (TempFloor) so a running writer's file,
	// whose mtime moves as it writes, is never removed.
	TempsBefore time.Time
	DryRun      bool
}

// TempFloor is the least age at which a staging file counts as abandoned.
const TempFloor = time.Hour

// PruneOutcome is what Prune did, or would do with DryRun.
type PruneOutcome struct {
	*catalog.PruneResult
	AbandonedUploads []AbandonedUpload `json:"abandoned_uploads"`
	// AbandonedTempFiles are the staging files Prune found, in the same
	// shape: Key the file's key, Initiated its last write, Aborted that it
	// was removed (UploadID stays empty).
	AbandonedTempFiles []AbandonedUpload `json:"abandoned_temp_files"`
	// Warnings are problems that did not fail the prune (an upload
	// listing the store refused).
	Warnings []string `json:"-"`
}

// AbandonedUpload is an incomplete multipart upload Prune found.
type AbandonedUpload struct {
	Key       string    `json:"key"`
	UploadID  string    `json:"upload_id,omitempty"`
	Initiated time.Time `json:"initiated"`
	Aborted   bool      `json:"aborted"`
}

// Prune applies retention to the source whose objects are repo (name
// labels errors and log lines) and deals with its abandoned uploads:
// under the source's lease, or, with DryRun, without it and changing
// nothing. The outcome is nil only when nothing could be evaluated; an
// error with an outcome means some deletions or aborts failed (named in
// the error) while the rest went on.
func Prune(ctx context.Context, log *slog.Logger, repo storage.Backend, name string, p PruneParams) (*PruneOutcome, error) {
	var out *PruneOutcome
	var perr error
	run := func(ctx context.Context, repo storage.Backend) error {
		out, perr = pruneSource(ctx, repo, p)
		return nil
	}
	if p.DryRun {
		_ = run(ctx, repo)
		return out, perr
	}
	if err := Leased(ctx, log, repo, name, run); err != nil {
		if out == nil {
			return nil, err
		}
		perr = errors.Join(perr, err)
	}
	return out, perr
}

// pruneSource is Prune of the source whose objects are repo, its lease
// held by the caller (or p.DryRun).
func pruneSource(ctx context.Context, repo storage.Backend, p PruneParams) (*PruneOutcome, error) {
	res, err := catalog.Prune(ctx, repo, p.Policy, p.Now, catalog.PruneOptions{DryRun: p.DryRun})
	if res == nil {
		return nil, err
	}
	out := &PruneOutcome{PruneResult: res}
	var uerr error
	out.AbandonedUploads, out.Warnings, uerr = abandonedUploads(ctx, repo, p.UploadsBefore, p.DryRun)
	temps, terr := AbandonedTemps(ctx, repo, p.TempsBefore, p.DryRun)
	out.AbandonedTempFiles = temps
	return out, errors.Join(err, uerr, terr)
}

// abandonedUploads lists the incomplete multipart uploads of repo started
// before cutoff and, unless dryRun, aborts them. A failed abort is
// reported in the error (naming the object) and the others go on; a store
// that refuses the listing (a policy without s3:ListBucketMultipartUploads)
// is a warning, not a failed prune.
func abandonedUploads(ctx context.Context, repo storage.Backend, cutoff time.Time, dryRun bool) ([]AbandonedUpload, []string, error) {
	var found []storage.Upload
	err := storage.ListUploads(ctx, repo, "", func(u storage.Upload) error {
		if u.Initiated.Before(cutoff) {
			found = append(found, u)
		}
		return nil
	})
	if err != nil {
		return nil, []string{fmt.Sprintf("incomplete multipart uploads not checked: %v", err)}, nil
	}
	var out []AbandonedUpload
	var errs []error
	for _, u := range found {
		a := AbandonedUpload{Key: u.Key, UploadID: u.ID, Initiated: u.Initiated}
		if !dryRun {
			if err := storage.AbortUpload(ctx, repo, u); err != nil {
				errs = append(errs, err)
			} else {
				a.Aborted = true
			}
		}
		out = append(out, a)
	}
	return out, nil, errors.Join(errs...)
}

// AbandonedTemps lists the staging files of repo (a folder repository's
// ".redback-tmp-*", storage.ListTemps) last written before cutoff and,
// unless dryRun, removes them. A zero cutoff finds none. A failed listing
// or removal is in the error (naming the file); the others go on.
func AbandonedTemps(ctx context.Context, repo storage.Backend, cutoff time.Time, dryRun bool) ([]AbandonedUpload, error) {
	if cutoff.IsZero() {
		return nil, nil
	}
	var found []storage.ObjectInfo
	err := storage.ListTemps(ctx, repo, "", func(o storage.ObjectInfo) error {
		if o.ModTime.Before(cutoff) {
			found = append(found, o)
		}
		return nil
	})
	errs := []error{err}
	var out []AbandonedUpload
	for _, o := range found {
		a := AbandonedUpload{Key: o.Key, Initiated: o.ModTime}
		if !dryRun {
			if err := storage.RemoveTemp(ctx, repo, o.Key); err != nil {
				errs = append(errs, err)
			} else {
				a.Aborted = true
			}
		}
		out = append(out, a)
	}
	return out, errors.Join(errs...)
}
