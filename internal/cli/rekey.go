package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"redback/internal/pack"
	"redback/internal/rekey"
	"redback/internal/storage"
)

type rekeyOpts struct {
	repo, name     string
	identity       string
	verifyIdentity string
	encryptTo      []string
	remove         []string
	dryRun, json   bool
}

const rekeyTry = "redback rekey --repo s3://bucket/redis --identity old.key --encrypt-to age1new... --remove-recipient age1old..."

func newRekeyCmd(e *env) *cobra.Command {
	o := &rekeyOpts{}
	c := &cobra.Command{
		Use:   "rekey --repo URL --identity OLD --encrypt-to NEW... [--remove-recipient R...] [--verify-identity NEWKEY]",
		Short: "Change who can decrypt a repository's encrypted objects, without re-encrypting them",
		Long: `Re-wrap the file key in the age header of every encrypted snapshot and log
segment: stanzas are added for the --encrypt-to recipients and left out for
the --remove-recipient ones (an age1... recipient, a recipients file, or a
sha256: fingerprint as manifests and 'redback list' show them); the payload
is copied unchanged. --identity must decrypt the current headers.

Each object is rewritten to KEY.rekey, read back in full (sha256, decryption
with --verify-identity when given (else with the file key), decompression to
its recorded size), its manifest pointed at the copy, the copy written over
KEY and the manifest pointed back: at every moment each manifest names an
object that matches it and that its recorded recipients can decrypt. Run it
again after an interruption: objects already done are skipped, half-done
ones are finished. Objects under an S3 Object Lock retention are left as
they are and listed (exit 1): re-run after the date shown.

rekey takes each source's lease, like prune: stop the agent (and change its
encrypt_to) first. Without --name every source of the repository is rekeyed,
one after the other.`,
		Example: "  " + rekeyTry + "\n  redback rekey --repo file:///var/lib/redback/cache-a --identity old.key --encrypt-to age1new... --verify-identity new.key --dry-run",
		Args:    exactArgs(0, rekeyTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRekey(cmd.Context(), e, o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.repo, "repo", "", "repository URL")
	addNameFlag(f, &o.name, false)
	f.StringVar(&o.identity, "identity", "", "age identity file that decrypts the current headers (or $REDBACK_IDENTITY_FILE, $REDBACK_IDENTITY)")
	f.StringArrayVar(&o.encryptTo, "encrypt-to", nil, "age recipient (age1...) or recipients file to add; repeatable")
	f.StringArrayVar(&o.remove, "remove-recipient", nil, "recipient (age1...), recipients file or sha256: fingerprint to remove; repeatable")
	f.StringVar(&o.verifyIdentity, "verify-identity", "", "age identity file of the new recipient: every rewritten object must decrypt with it")
	f.BoolVar(&o.dryRun, "dry-run", false, "say what would be rekeyed; change nothing")
	f.BoolVar(&o.json, "json", false, "print the outcome as JSON (one object per source)")
	return c
}

func runRekey(ctx context.Context, e *env, o *rekeyOpts) error {
	if len(o.encryptTo) == 0 && len(o.remove) == 0 {
		return usagef(rekeyTry, "give --encrypt-to and/or --remove-recipient")
	}
	add, err := pack.ParseRecipients(o.encryptTo)
	if err != nil {
		return usagef(rekeyTry, "--encrypt-to: %v", err)
	}
	remove, err := rekey.ParseRemove(o.remove)
	if err != nil {
		return usagef(rekeyTry, "--remove-recipient: %v", err)
	}
	ids, err := loadIdentities(e, o.identity, rekeyTry)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return usagef(rekeyTry, "--identity is required: the identity that decrypts the current headers")
	}
	var verifyIDs []age.Identity
	if o.verifyIdentity != "" {
		verifyIDs, err = pack.LoadIdentities(o.verifyIdentity, func(string) string { return "" })
		if err != nil {
			return usagef(rekeyTry, "--verify-identity: %v", err)
		}
	}
	set, err := openSources(ctx, e, o.repo, o.name, rekeyTry)
	if err != nil {
		return err
	}
	defer set.Close()
	opts := rekey.Options{Identities: ids, Add: add, Remove: remove, Verify: verifyIDs, DryRun: o.dryRun, Log: e.log, Step: testStop(e)}
	var errs []error
	for _, src := range set.sources {
		view := set.view(src)
		var res *rekey.Result
		var rerr error
		run := func(ctx context.Context, repo storage.Backend) error {
			res, rerr = rekey.Run(ctx, repo, opts)
			return nil
		}
		if o.dryRun {
			err = run(ctx, view)
		} else {
			err = leased(ctx, e, view, src.Name, run)
		}
		if res == nil {
			errs = append(errs, errors.Join(err, rerr))
			continue
		}
		rerr = errors.Join(rerr, err)
		if err := printRekey(e, o, src.Name, view.Location(), res); err != nil {
			return err
		}
		if rerr != nil {
			errs = append(errs, fmt.Errorf("source %s: %d object(s) not rekeyed: %w", src.Name, len(res.Failed), rerr))
		}
		if len(res.Locked) > 0 {
			errs = append(errs, fmt.Errorf("source %s: %d object(s) under a retention lock were not rekeyed (the last lock ends %s): run rekey again then",
				src.Name, len(res.Locked), lastLock(res).UTC().Format(time.DateTime)))
		}
	}
	return errors.Join(errs...)
}

func lastLock(res *rekey.Result) time.Time {
	var t time.Time
	for _, l := range res.Locked {
		if l.Until.After(t) {
			t = l.Until
		}
	}
	return t
}

func printRekey(e *env, o *rekeyOpts, name, location string, res *rekey.Result) error {
	if o.json {
		return json.NewEncoder(e.Out).Encode(struct {
			Repo       string `json:"repo"`
			SourceName string `json:"source_name"`
			DryRun     bool   `json:"dry_run"`
			*rekey.Result
		}{location, name, o.dryRun, res})
	}
	verb := "rekeyed"
	if o.dryRun {
		verb = "would rekey"
	}
	if name != "" {
		fmt.Fprintf(e.Out, "source %s: ", name)
	}
	fmt.Fprintf(e.Out, "%d object(s): %s %d, already done %d, not encrypted %d, locked %d, failed %d (%s written)\n",
		res.Total, verb, len(res.Rekeyed), res.Already, res.Plain, len(res.Locked), len(res.Failed), humanBytes(res.BytesWritten))
	for _, l := range res.Locked {
		fmt.Fprintf(e.Out, "locked %s until %s (S3 Object Lock): not rekeyed\n", l.Manifest, l.Until.UTC().Format(time.DateTime))
	}
	for _, f := range res.Failed {
		fmt.Fprintf(e.Out, "failed %s: %s\n", f.Manifest, f.Error)
	}
	return nil
}

// testStop is a test hook: with $REDBACK_TEST_REKEY_STOP=STEP, the first
// time a rewrite reaches STEP the process says so on stderr and waits to be
// killed (tests kill -9 it there).
func testStop(e *env) func(step, manifest string) {
	at := e.getenv("REDBACK_TEST_REKEY_STOP")
	if at == "" {
		return nil
	}
	return func(step, manifest string) {
		if step == at {
			fmt.Fprintf(e.Err, "rekey: stopped at %s of %s\n", step, manifest)
			select {}
		}
	}
}
