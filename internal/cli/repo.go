package cli

import (
	"context"
	"errors"
	"fmt"

	"redback/internal/storage"
	"redback/internal/storage/backends"
)

// openRepo opens the repository at url (file:///path, a plain path,
// s3://bucket/prefix?...), wrapped with retries of transient errors.
func openRepo(ctx context.Context, e *env, url string) (storage.Backend, error) {
	if url == "" {
		return nil, usagef("--repo file:///var/lib/redback/cache-a", "--repo is required")
	}
	b, err := backends.Open(ctx, url)
	if errors.Is(err, storage.ErrInvalidLocation) {
		return nil, usagef("--repo file:///var/lib/redback/cache-a (or s3://bucket/prefix?region=R)", "--repo: %v", err)
	}
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	return b, nil
}
