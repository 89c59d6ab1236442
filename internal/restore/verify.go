package restore

import (
	"context"
	"fmt"
	"time"

	"redback/internal/keysample"
	"redback/internal/rdb"
	"redback/internal/redisurl"
)

// SampleKeys is how many keys, chosen by hash, a restore into a server
// reads back by DUMP and PEXPIRETIME when it does not compare DEBUG DIGEST
// (the drill's default sample too).
const SampleKeys = 100

// SampleError means keys read back from the target differ from the
// source's.
type SampleError struct {
	Target string
	Detail string // keysample.Result.Summary
	State  string // what the target holds now, when it was put back
}

func (e *SampleError) Error() string {
	msg := fmt.Sprintf("target %s: verification by sample failed: %s", e.Target, e.Detail)
	if e.State != "" {
		msg += "; " + e.State
	}
	return msg
}

// VerificationFailed marks a SampleError as a failed verification (exit 3).
func (e *SampleError) VerificationFailed() bool { return true }

// verifyBySample reads s's keys back from u over a new connection and
// records the outcome in res (VerifiedBy "sample"); counts compares key
// counts per db too. A check that cannot run (the target refuses DUMP,
// say) leaves the restore unverified with a note, and no error; keys that
// differ give a *SampleError.
func verifyBySample(ctx context.Context, u *redisurl.URL, s *keysample.Sampler, opts Options, res *Result, counts bool, why string) error {
	c, err := dial(ctx, u, opts.Timeout)
	if err == nil {
		defer c.Close()
		var r *keysample.Result
		// The server expires keys by its own clock: a key whose TTL ended
		// by the later of ours and opts.Now may be gone.
		now := func() int64 { return max(opts.Now().UnixMilli(), time.Now().UnixMilli()) }
		if r, err = s.Check(c, opts.Timeout, now, counts); err == nil {
			res.SampleChecked, res.SampleMismatches = r.Checked, r.Mismatched
			if r.Mismatched > 0 {
				return &SampleError{Target: u.Redacted(), Detail: r.Summary()}
			}
			res.VerifiedBy = "sample"
			res.note("verified by sample (%s): %s", why, r.Summary())
			return nil
		}
	}
	res.note("the restored data was not verified (%s, and the sample could not be read back: %v)", why, err)
	return nil
}

// offerSample offers rec to s (nil: nothing), or only counts it when its
// value was streamed: a value too big to hold has no offline digest, and
// reading it back by DUMP would hold it whole.
func offerSample(s *keysample.Sampler, db int, rec *rdb.Record) error {
	if rec.Streamed {
		s.Count(db, rec)
		return nil
	}
	return s.Offer(db, rec)
}
