package cli

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"redback/internal/digest"
	"redback/internal/rdb"
)

// digestOpts are the flags of `redback digest`.
type digestOpts struct {
	json        bool
	perKey      bool
	scoreFormat string
}

func newDigestCmd(e *env) *cobra.Command {
	var o digestOpts
	c := &cobra.Command{
		Use:   "digest FILE",
		Short: "Print the DEBUG DIGEST a server holding the RDB FILE would report",
		Long: `Computes Redis's DEBUG DIGEST offline from FILE, streaming: keys, types,
values and the presence of TTLs of every db. Compare it with DEBUG DIGEST
taken at the snapshot moment on a server of the same version line:
sorted-set scores are hashed as text, whose format changed in Redis 7.2.
By default (--score-format auto) the format follows the file's RDB version,
the server that wrote it: 7.2 from RDB 11 on (Redis 7.2 and later, Valkey),
7.0 before; give --score-format 7.0 or 7.2 to compare with another server.

Keys whose TTL already passed are included, as DEBUG DIGEST counts them; a
primary that loads the file drops them, so a note on stderr says how many
there are. Module values contribute only their type.

Exit 0 on success, 3 when the file is damaged, 1 when it cannot be read.`,
		Example: "  redback digest dump.rdb\n  redback digest --per-key dump.rdb\n  redback digest --score-format 7.0 --json dump.rdb",
		Args:    exactArgs(1, "redback digest dump.rdb"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDigest(cmd.Context(), e, o, args[0])
		},
	}
	c.Flags().BoolVar(&o.json, "json", false, "print JSON instead of text")
	c.Flags().BoolVar(&o.perKey, "per-key", false, "print DEBUG DIGEST-VALUE of every key: \"db key digest\" lines (a JSON array with --json)")
	c.Flags().StringVar(&o.scoreFormat, "score-format", "auto", "sorted-set score text of the server compared with: 7.0 (%.17g), 7.2 (7.2 and later), or auto: the format of the server that wrote FILE (7.2 from RDB version 11 on)")
	return c
}

type keyDigestJSON struct {
	DB        int    `json:"db"`
	Key       string `json:"key"`
	KeyBase64 string `json:"key_base64,omitempty"` // set when the key is not valid UTF-8; Key is then lossy
	Digest    string `json:"digest"`
}

type digestJSON struct {
	File           string `json:"file"`
	Digest         string `json:"digest"`
	ScoreFormat    string `json:"score_format"`
	Keys           int64  `json:"keys"`
	AlreadyExpired int64  `json:"already_expired"`
	Checksum       string `json:"checksum"`
	Bytes          int64  `json:"bytes"`
	DurationMS     int64  `json:"duration_ms"`
}

// rdbFileVersion reads the RDB version from the header of the file at path.
func rdbFileVersion(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rd, err := rdb.NewReader(io.LimitReader(f, 9), rdb.Options{})
	if err != nil {
		return 0, err
	}
	return rd.Version(), nil
}

// digestFileErr is the error of redback digest for path: damage exits 3.
func digestFileErr(path string, err error) error {
	var fe *rdb.FormatError
	if errors.As(err, &fe) {
		dm := damage(fe)
		if dm.Key != "" {
			return &VerifyError{Err: fmt.Errorf("%s damaged: offset %d, key %q: %s", path, dm.Offset, dm.Key, dm.Reason)}
		}
		return &VerifyError{Err: fmt.Errorf("%s damaged: offset %d: %s", path, dm.Offset, dm.Reason)}
	}
	return fmt.Errorf("digest: %w", err)
}

func runDigest(ctx context.Context, e *env, o digestOpts, path string) error {
	var err error
	var sf digest.ScoreFormat
	if o.scoreFormat == "auto" {
		v, err := rdbFileVersion(path)
		if err != nil {
			return digestFileErr(path, err)
		}
		sf = digest.ScoreFormatFor(v)
	} else if sf, err = digest.ParseScoreFormat(o.scoreFormat); err != nil {
		return usagef("redback digest --score-format 7.2 dump.rdb", "%v", err)
	}
	start := time.Now()
	nowMS := start.UnixMilli()
	opts := digest.Options{ScoreFormat: sf}
	d := digest.New(opts)
	out := bufio.NewWriterSize(e.Out, 64<<10)
	defer out.Flush()
	var expired int64
	first := true
	if o.perKey && o.json {
		out.WriteString("[")
	}
	var (
		rd   *rdb.Reader
		n    int64
		keys int64
	)
	// Every key's value is decoded for the digest (Digest.Add and
	// KeyDigest run rdb.Decode, which checks it completely), so the reader
	// need not walk the values a first time. A big value is streamed into
	// d as it arrives (with --per-key into its value digest: the dataset's
	// digest is not printed then).
	ropts := rdb.Options{SkipValueCheck: true, StreamValues: d.Stream, StreamStrings: true}
	if o.perKey {
		ropts.StreamValues = d.StreamValue
	}
	if workers := digest.Workers(); !o.perKey && workers > 1 {
		err = digest.Parallel(ctx, d, opts, workers, func(ctx context.Context, fn func(*rdb.Record) error) error {
			var err error
			rd, n, err = scanRDB(ctx, e, path, o.json, ropts, func(rec *rdb.Record) error {
				if rec.Kind != rdb.RecordKey {
					return nil
				}
				if rec.Expire >= 0 && rec.Expire < nowMS {
					expired++
				}
				return fn(rec)
			})
			return err
		})
	} else {
		rd, n, err = scanRDB(ctx, e, path, o.json, ropts, func(rec *rdb.Record) error {
			if rec.Kind != rdb.RecordKey {
				return nil
			}
			if rec.Expire >= 0 && rec.Expire < nowMS {
				expired++
			}
			if !o.perKey {
				return d.Add(rec)
			}
			keys++
			err := writeKeyDigest(out, d, rec, o.json, first)
			first = false
			return err
		})
	}
	if !o.perKey {
		keys = d.Keys()
	}
	if o.perKey && o.json {
		out.WriteString("\n]\n")
	}
	if err != nil {
		out.Flush()
		return digestFileErr(path, err)
	}
	if expired > 0 {
		fmt.Fprintf(e.Err, "note: %d of %d keys already expired: included, as DEBUG DIGEST includes them, but a primary loading %s drops them and reports another digest\n", expired, keys, path)
	}
	switch {
	case o.perKey:
	case o.json:
		j := digestJSON{File: path, Digest: d.Sum(), ScoreFormat: sf.String(), Keys: d.Keys(), AlreadyExpired: expired,
			Checksum: rd.Checksum().String(), Bytes: n, DurationMS: time.Since(start).Milliseconds()}
		b, err := json.MarshalIndent(j, "", "  ")
		if err != nil {
			return err
		}
		out.Write(b)
		out.WriteByte('\n')
	default:
		out.WriteString(d.Sum())
		out.WriteByte('\n')
	}
	return out.Flush()
}

// writeKeyDigest prints one --per-key line (or JSON array element).
func writeKeyDigest(out *bufio.Writer, d *digest.Digest, rec *rdb.Record, asJSON, first bool) error {
	kd, err := d.KeyDigest(rec)
	if err != nil {
		return err
	}
	if !asJSON {
		out.WriteString(strconv.Itoa(rec.DB))
		out.WriteByte(' ')
		out.WriteString(strconv.Quote(string(rec.Key)))
		out.WriteByte(' ')
		out.WriteString(kd)
		out.WriteByte('\n')
		return nil
	}
	j := keyDigestJSON{DB: rec.DB, Key: string(rec.Key), Digest: kd}
	if !utf8.Valid(rec.Key) {
		j.KeyBase64 = base64.StdEncoding.EncodeToString(rec.Key)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if !first {
		out.WriteString(",")
	}
	out.WriteString("\n  ")
	out.Write(b)
	return nil
}
