package cli

import (
	"cmp"
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
const lifecycleWarning = `warning: lifecycle rules expire objects by age alone. They cannot know
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

// lifecycleExpiry is one "delete what is under prefix after days" rule.
type lifecycleExpiry struct {
	id, prefix string
	days       int
}

// s3Lifecycle is the document for aws s3api put-bucket-lifecycle-configuration.
func s3Lifecycle(prefix string, rules []lifecycleExpiry) any {
	var out []lifecycleRule
	for _, r := range rules {
		out = append(out, lifecycleRule{ID: r.id, Filter: map[string]any{"Prefix": prefix + r.prefix},
			Status: "Enabled", Expiration: &struct{ Days int }{r.days}})
	}
	out = append(out, lifecycleRule{ID: "redback-abort-incomplete-uploads", Filter: map[string]any{"Prefix": prefix},
		Status: "Enabled", AbortIncompleteMultipartUpload: &struct{ DaysAfterInitiation int }{1}})
	return map[string]any{"Rules": out}
}

// gcsLifecycle is the document for gcloud storage buckets update
// --lifecycle-file. Redback uploads with resumable uploads, which GCS
// itself abandons after a week; the abort rule covers XML API multipart
// uploads of other tools under the prefix.
func gcsLifecycle(prefix string, rules []lifecycleExpiry) any {
	type rule struct {
		Action    map[string]string `json:"action"`
		Condition map[string]any    `json:"condition"`
	}
	var out []rule
	for _, r := range rules {
		out = append(out, rule{Action: map[string]string{"type": "Delete"},
			Condition: map[string]any{"age": r.days, "matchesPrefix": []string{prefix + r.prefix}}})
	}
	out = append(out, rule{Action: map[string]string{"type": "AbortIncompleteMultipartUpload"},
		Condition: map[string]any{"age": 1, "matchesPrefix": []string{prefix}}})
	return map[string]any{"rule": out}
}

// azureLifecycle is the document for az storage account management-policy
// create --policy @FILE (prefixes start with the container). Azure has no
// rule for uncommitted blocks: it discards them after a week by itself.
func azureLifecycle(container, prefix string, rules []lifecycleExpiry) any {
	var out []map[string]any
	for _, r := range rules {
		out = append(out, map[string]any{
			"enabled": true, "name": r.id, "type": "Lifecycle",
			"definition": map[string]any{
				"actions": map[string]any{"baseBlob": map[string]any{"delete": map[string]int{"daysAfterModificationGreaterThan": r.days}}},
				"filters": map[string]any{"blobTypes": []string{"blockBlob"}, "prefixMatch": []string{container + "/" + prefix + r.prefix}},
			},
		})
	}
	if out == nil {
		out = []map[string]any{}
	}
	return map[string]any{"rules": out}
}

func newLifecycleCmd(e *env) *cobra.Command {
	o := &lifecycleOpts{}
	c := &cobra.Command{
		Use:   "lifecycle --repo URL [--keep-hourly N ...]",
		Short: "Print the bucket lifecycle rules closest to a retention policy (S3, GCS, Azure; with what they cannot know)",
		Long: `Print, as JSON for the store's own tool, the lifecycle rules closest to the
retention policy given by the same flags as prune: snapshot manifests expire
when older than the oldest snapshot the policy would keep, their data one day
later (so a manifest never outlives its data), and incomplete uploads after a
day. A policy that keeps some bucket forever (-1, the default for monthly)
cannot expire snapshots at all.

  s3://      aws s3api put-bucket-lifecycle-configuration --lifecycle-configuration file://F
  gs://      gcloud storage buckets update gs://BUCKET --lifecycle-file=F
             (resumable uploads, which redback uses, are abandoned by GCS after a week)
  azblob://  az storage account management-policy create --policy @F
             (Azure has no rule for uncommitted blocks; it discards them after a week)

Lifecycle rules know nothing of verification, pins, keep marks or the
point-in-time window: see the warning printed to stderr. Local folders have no
lifecycle rules: use prune.`,
		Example: "  " + lifecycleTry + "\n  aws s3api put-bucket-lifecycle-configuration --bucket bucket --lifecycle-configuration file://lifecycle.json" +
			"\n  redback lifecycle --repo gs://bucket/redis/cache-a > lifecycle.json && gcloud storage buckets update gs://bucket --lifecycle-file=lifecycle.json" +
			"\n  redback lifecycle --repo azblob://backups/cache-a > policy.json && az storage account management-policy create --account-name acct --resource-group rg --policy @policy.json",
		Args: exactArgs(0, lifecycleTry),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runLifecycle(e, o)
		},
	}
	c.Flags().StringVar(&o.repo, "repo", "", "repository URL (s3://bucket/prefix, gs://bucket/prefix or azblob://container/prefix)")
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
	var rules []lifecycleExpiry
	days, ok := lifecycleHorizon(policy)
	if ok {
		rules = []lifecycleExpiry{
			{"redback-snapshot-manifests", catalog.SnapshotPrefix, days},
			{"redback-snapshot-data", catalog.SnapshotDataPrefix, days + 1},
		}
	}
	var doc any
	switch u.Scheme {
	case "s3":
		doc = s3Lifecycle(prefix, rules)
	case "gs":
		doc = gcsLifecycle(prefix, rules)
	case "azblob":
		doc = azureLifecycle(u.Host, prefix, rules)
	default:
		return usagef(lifecycleTry, "--repo %s: lifecycle rules exist for s3://, gs:// and azblob:// repositories; a %s repository has none (use redback prune)", u.Scheme+"://", cmp.Or(u.Scheme, "local"))
	}
	if err := printJSON(e, doc); err != nil {
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
