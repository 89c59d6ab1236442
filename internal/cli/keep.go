package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/storage"
)

type keepOpts struct {
	repo  string
	name  string
	unset bool
}

const keepTry = "redback keep --repo file:///var/lib/redback/cache-a 20261125T140312.123Z-a1b2c3"

func newKeepCmd(e *env) *cobra.Command {
	o := &keepOpts{}
	c := &cobra.Command{
		Use:   "keep --repo URL [--name NAME] ID [--unset]",
		Short: "Mark a snapshot so that retention never deletes it (or unmark it)",
		Long: `Set (or with --unset clear) the keep mark in a snapshot's manifest. Retention
(redback prune and the agent) never deletes a marked snapshot. The manifest
is rewritten with a conditional write, so a concurrent change is detected
instead of lost.`,
		Example: "  " + keepTry + "\n  redback keep --repo s3://bucket/redis 20261125T140312.123Z-a1b2c3 --unset",
		Args:    exactArgs(1, keepTry),
		RunE: func(cmd *cobra.Command, args []string) error {
			repo, err := openSource(cmd.Context(), e, o.repo, o.name, "redback keep --repo "+o.repo+" ID")
			if err != nil {
				return err
			}
			defer repo.Close()
			return runKeep(cmd.Context(), e, o, repo, args[0])
		},
	}
	c.Flags().StringVar(&o.repo, "repo", "", "repository URL")
	addNameFlag(c.Flags(), &o.name, false)
	c.Flags().BoolVar(&o.unset, "unset", false, "remove the keep mark")
	return c
}

func runKeep(ctx context.Context, e *env, o *keepOpts, repo storage.Backend, id string) error {
	if !catalog.ValidID(id) {
		return usagef(keepTry, "%q is not a snapshot id (see redback list)", id)
	}
	key := catalog.SnapshotManifestKey(id)
	info, err := repo.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return fmt.Errorf("snapshot %s: %w", id, catalog.ErrNoSnapshot)
	}
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", id, err)
	}
	snap, err := catalog.ReadSnapshot(ctx, repo, id)
	if err != nil {
		return err
	}
	want := !o.unset
	if snap.Keep == want {
		fmt.Fprintf(e.Out, "snapshot %s: keep is already %v\n", id, want)
		return nil
	}
	snap.Keep = want
	data, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	cond := storage.Condition{IfMatch: info.ETag}
	if info.ETag == "" {
		return fmt.Errorf("snapshot %s: the backend gave no ETag; cannot update the manifest safely", id)
	}
	if _, err := repo.PutIf(ctx, key, append(data, '\n'), cond); err != nil {
		if errors.Is(err, storage.ErrPrecondition) || errors.Is(err, storage.ErrNotExist) {
			return fmt.Errorf("snapshot %s changed (or was deleted) while updating it; run the command again", id)
		}
		return fmt.Errorf("update snapshot %s: %w", id, err)
	}
	if want {
		fmt.Fprintf(e.Out, "snapshot %s: marked keep (retention will never delete it)\n", id)
	} else {
		fmt.Fprintf(e.Out, "snapshot %s: keep mark removed (retention applies again)\n", id)
	}
	return nil
}
