package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
	"redback/internal/config"
	"redback/internal/ops"
	"redback/internal/pitr"
	"redback/internal/storage/cache"
	"redback/internal/ui"
)

type uiOpts struct {
	repo     string
	name     string
	listen   string
	token    string
	identity string
}

const uiTry = "redback ui --repo file:///var/lib/redback/cache-a --listen 127.0.0.1:9478"

func newUICmd(e *env) *cobra.Command {
	o := &uiOpts{}
	c := &cobra.Command{
		Use:   "ui --repo URL [--name NAME] [--listen ADDR] [--token TOKEN]",
		Short: "Serve the recovery timeline of a repository (a page and GET /api/v1/timeline), read-only",
		Long: `Serve the recovery timeline of a repository without an agent: at / a page
that draws, per source, the restorable windows, their gaps, snapshots,
drills and marked events of the shipped log (FLUSHALL, FLUSHDB, SWAPDB,
bursts of DEL/UNLINK), and for any moment or event the exact restore
command; at /api/v1/timeline the same as JSON (?name=SOURCE, ?from=, ?to=
in RFC 3339). The agent serves the same on its listen address.

It runs nothing and writes nothing. It listens on loopback by default; on
any other address it requires --token (or $REDBACK_UI_TOKEN), which API
requests carry as "Authorization: Bearer TOKEN" (open the page as
http://ADDR/#token=TOKEN). Passwords in source URLs are never shown.`,
		Example: "  " + uiTry + "\n  REDBACK_UI_TOKEN=s3cret redback ui --repo s3://backups/redis --listen 10.0.0.5:9478",
		Args:    exactArgs(0, uiTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUI(cmd.Context(), e, o, nil)
		},
	}
	f := c.Flags()
	f.StringVar(&o.repo, "repo", "", "repository URL")
	f.StringVar(&o.name, "name", "", "show only this source")
	f.StringVar(&o.listen, "listen", ui.DefaultListen, "HTTP address")
	f.StringVar(&o.token, "token", "", "bearer token required off loopback (or $REDBACK_UI_TOKEN)")
	f.StringVar(&o.identity, "identity", "", "age identity file to read encrypted logs' events (or $REDBACK_IDENTITY_FILE, $REDBACK_IDENTITY)")
	return c
}

// runUI serves until ctx ends; ready, when set, gets the bound address.
func runUI(ctx context.Context, e *env, o *uiOpts, ready func(addr string)) error {
	if o.token == "" {
		o.token = e.getenv("REDBACK_UI_TOKEN")
	}
	if err := ui.CheckListen(o.listen, o.token); err != nil {
		return usagef(uiTry, "--listen %s: %v", o.listen, err)
	}
	repo, err := openRepo(ctx, e, o.repo)
	if err != nil {
		return err
	}
	defer repo.Close()
	ids, err := loadIdentities(e, o.identity, "redback ui --repo URL --identity key.txt")
	if err != nil {
		return err
	}
	cached := cache.New(repo, cache.Options{})
	repoURL := config.Redact(o.repo)
	if r, err := catalog.OpenRepository(ctx, cached); err != nil {
		return err
	} else if _, ok := r.Source(o.name); o.name != "" && !ok {
		return usagef(tryWithName(uiTry, r.Names()), "no source %q in %s (its sources: %s)", o.name, repo.Location(), namesText(r.Names()))
	}
	// The sources are read again per request: a writer may add one.
	sources := func() []ops.Source {
		r, err := catalog.OpenRepository(ctx, cached)
		if err != nil {
			return nil
		}
		var out []ops.Source
		for _, ref := range r.Sources {
			if o.name == "" || ref.Name == o.name {
				out = append(out, ops.Source{Name: ref.Name, Repo: ref.Backend(cached), RepoURL: repoURL})
			}
		}
		if len(r.Sources) == 0 && o.name == "" {
			out = append(out, ops.Source{Repo: cached, RepoURL: repoURL})
		}
		return out
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.listen, err)
	}
	srv := &http.Server{Handler: ui.Handler(ui.Options{Sources: sources, Listen: o.listen, Token: o.token,
		Events: &ops.EventScanner{Options: pitr.Options{Identities: ids}}}), ReadHeaderTimeout: 10 * time.Second}
	e.log.Info("serving the recovery timeline", "url", "http://"+ln.Addr().String()+"/", "repo", repo.Location())
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
