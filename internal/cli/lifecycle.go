package cli

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"redback/internal/catalog"
)

type lifecycleOpts struct {
	repo string
	name string
	keep policyFlags
}

const lifecycleTry = "redback lifecycle --repo s3://bucket/redis/cache-a > lifecycle.json"

// lifecycleWarning says what bucket rules cannot know.
const lifecycleWarning = `warning: S3 lifecycle rules expire objects by age alone. They cannot know
  - which snapshot is the newest verified one: if snapshots stop, the rules
    delete your last good backup;
  - what the point-in-time window depends on (generation bases and the log
    segments between them);
  - snapshots marked with 'redback keep', or pinned by a running restore or drill;
  - GFS thinning: everything younger than the horizon is kept, everything
    older goes, whatever its bucket.
  Prefer 'redback prune' (the agent runs it after every snapshot); use these
  rules, if at all, as a backstop with a longer horizon.`

// lifecycleRule is one rule of an S3 lifecycle configuration, in the shape
// of aws s3api put-bucket-lifecycle-configuration.
type lifecycleRule struct {
	ID                             string              `json:"ID"`
	Filter                         map[string]any      `json:"Filter"`
	Status                         string              `json:"Status"`
	Expiration                     *struct{ Days int } `json:"Expiration,omitempty"`
	AbortIncompleteMultipartUpload *struct {
		DaysAfterInitiation int
	} `json:"AbortIncompleteMultipartUpload,omitempty"`
}

func newLifecycleCmd(e *env) *cobra.Command {
	o := &lifecycleOpts{}
	c := &cobra.Command{
		Use:   "lifecycle --repo URL [--keep-hourly N ...]",
		Short: "Print the S3 lifecycle rules closest to a retention policy (with what they cannot know)",
		Long: `Print, as JSON for 'aws s3api put-bucket-lifecycle-configuration', the S3
lifecycle rules closest to the retention policy given by the same flags as
prune: snapshot manifests expire when older than the oldest snapshot the
policy would keep, their data one day later (so a manifest never outlives its
data), and incomplete multipart uploads after a day. A policy that keeps some
bucket forever (-1, the default for monthly) cannot expire snapshots at all.
Lifecycle rules know nothing of verification, pins, keep marks or the
point-in-time window: see the warning printed to stderr.`,
		Example: "  " + lifecycleTry + "\n  aws s3api put-bucket-lifecycle-configuration --bucket bucket --lifecycle-configuration file://lifecycle.json",
		Args:    exactArgs(0, lifecycleTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLifecycle(e, o)
		},
	}
	c.Flags().StringVar(&o.repo, "repo", "", "repository URL (s3://bucket/prefix)")
	c.Flags().StringVar(&o.name, "name", "", "the source the rules are for (its objects lie under src/NAME/); empty: the top-level source of a repository upgraded from format 1")
	o.keep.addFlags(c.Flags())
	return c
}

// lifecycleHorizon is the age in days beyond which the policy keeps
// nothing (except the newest verified snapshot, pins and keep marks, which
// lifecycle rules cannot see); ok is false when some rule keeps forever.
func lifecycleHorizon(p catalog.Policy) (days int, ok bool) {
	if p.Hourly < 0 || p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
		return 0, false
	}
	span := max(
		time.Duration(p.Hourly)*time.Hour,
		time.Duration(p.Daily)*24*time.Hour,
		time.Duration(p.Weekly)*7*24*time.Hour,
		time.Duration(p.Monthly)*31*24*time.Hour,
		p.Within,
		p.PITR+7*24*time.Hour, // the base before the window: assume one a week at least
	)
	return int((span+24*time.Hour-1)/(24*time.Hour)) + 1, true
}

func runLifecycle(e *env, o *lifecycleOpts) error {
	if o.repo == "" {
		return usagef(lifecycleTry, "--repo is required")
	}
	policy, err := o.keep.policy(lifecycleTry)
	if err != nil {
		return err
	}
	u, err := url.Parse(o.repo)
	if err != nil {
		return usagef(lifecycleTry, "--repo is not a URL")
	}
	if u.Scheme != "s3" {
		fmt.Fprintf(e.Err, "note: %s is not an S3 repository; the rules below apply only to a bucket\n", u.Scheme+"://")
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	if o.name != "" {
		if err := catalog.ValidSourceName(o.name); err != nil {
			return usagef(lifecycleTry+" --name cache-a", "--name: %v", err)
		}
		prefix += catalog.NamedSource(o.name).Root
	}
	var rules []lifecycleRule
	days, ok := lifecycleHorizon(policy)
	if ok {
		rules = append(rules,
			lifecycleRule{ID: "redback-snapshot-manifests", Filter: map[string]any{"Prefix": prefix + catalog.SnapshotPrefix},
				Status: "Enabled", Expiration: &struct{ Days int }{days}},
			lifecycleRule{ID: "redback-snapshot-data", Filter: map[string]any{"Prefix": prefix + catalog.SnapshotDataPref},
				Status: "Enabled", Expiration: &struct{ Days int }{days + 1}},
		)
	}
	rules = append(rules, lifecycleRule{ID: "redback-abort-incomplete-uploads", Filter: map[string]any{"Prefix": prefix},
		Status: "Enabled", AbortIncompleteMultipartUpload: &struct{ DaysAfterInitiation int }{1}})
	enc := json.NewEncoder(e.Out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"Rules": rules}); err != nil {
		return err
	}
	if !ok {
		fmt.Fprintln(e.Err, "note: the policy keeps some snapshots forever (a count of -1), so no expiration rule can express it; only incomplete uploads are cleaned up")
	} else {
		fmt.Fprintf(e.Err, "note: lifecycle cannot thin by hour/day/week/month; these rules keep every snapshot younger than %d days\n", days)
	}
	fmt.Fprintln(e.Err, lifecycleWarning)
	return nil
}
