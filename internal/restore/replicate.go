package restore

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"redback/internal/digest"
	"redback/internal/keysample"
	"redback/internal/pack"
	"redback/internal/primary"
	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/respconn"
)

// Method says how ToRedis writes into a live server (--method).
type Method int

// Methods. The zero value is MethodRestore: callers that do not choose
// (drill, pitr, migrate) keep RESTORE commands; the command line's default
// is MethodAuto.
const (
	// MethodRestore sends RESTORE commands.
	MethodRestore Method = iota
	// MethodAuto replicates when the target allows it (see ToRedis) and
	// restores with RESTORE commands otherwise.
	MethodAuto
	// MethodReplicate feeds the target the RDB as its primary in a full
	// sync, or fails.
	MethodReplicate
)

// ParseMethod parses "auto", "replicate" or "restore".
func ParseMethod(s string) (Method, error) {
	switch s {
	case "auto", "":
		return MethodAuto, nil
	case "replicate":
		return MethodReplicate, nil
	case "restore":
		return MethodRestore, nil
	}
	return 0, fmt.Errorf("unknown method %q: want auto, replicate or restore", s)
}

func (m Method) String() string {
	return [...]string{"restore", "auto", "replicate"}[m]
}

// replicaConnectTimeout bounds the wait for the target's replication
// connection after REPLICAOF (a replica connects within a second or two).
var replicaConnectTimeout = 15 * time.Second

// DigestError means the target's DEBUG DIGEST after a restore by
// replication is not the data's: the target was emptied again (when it
// was empty before).
type DigestError struct {
	Target, Got, Want string
	State             string // what the target holds now
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("target %s: DEBUG DIGEST %s after loading, want %s; %s", e.Target, e.Got, e.Want, e.State)
}

// VerificationFailed marks a DigestError as a failed verification (exit 3).
func (e *DigestError) VerificationFailed() bool { return true }

// replication is one restore by replication.
type replication struct {
	src  Source
	opts Options
	res  *Result
	adm  *respconn.Conn // dialed without ctx's cancellation: it puts the target back
	tgt  Target

	wasEmpty  bool
	saved     []savedConfig // config changed, to put back in reverse
	replicaOf bool          // REPLICAOF sent and not undone
	finished  bool          // the whole payload reached the target
	// sample is offered every key sent, for a check by DUMP when the
	// target refuses DEBUG DIGEST (nil: Options.SampleKeys < 0).
	sample *keysample.Sampler
}

type savedConfig struct{ name, value string }

// replicate restores src into u by replication when the target allows it.
// done is false when it wrote and changed nothing and, with MethodAuto,
// the caller restores with RESTORE commands instead (res.Notes say why).
func replicate(ctx context.Context, src Source, u *redisurl.URL, opts Options) (res *Result, done bool, err error) {
	res = &Result{maxListed: opts.MaxListed, Method: "replicate"}
	if u.DB != 0 {
		return res, false, nil // the RESTORE path says why not
	}
	start := opts.Now()
	defer func() { res.Duration = opts.Now().Sub(start) }()
	adm, err := dial(context.WithoutCancel(ctx), u, opts.Timeout)
	if err != nil {
		return res, true, err
	}
	defer adm.Close()
	r := &replication{src: src, opts: opts, res: res, adm: adm}
	if r.tgt, err = probe(adm); err != nil {
		return res, true, err
	}
	if reason := r.eligible(); reason != "" {
		return r.fallback(reason)
	}
	if msg, err := mapCollision(ctx, src, opts); err != nil {
		return res, true, err
	} else if msg != "" {
		return r.fallback(msg)
	}
	precheck := src.Precheck != nil && !opts.NoPrecheck
	if precheck {
		if err := src.Precheck(ctx); err != nil {
			return res, true, sourceErr(src, 0, err)
		}
	}
	rc, err := src.Open(ctx)
	if err != nil {
		return res, true, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	hdr, err := br.Peek(9)
	if err != nil && len(hdr) == 0 {
		return res, true, sourceErr(src, 0, err)
	}
	hr, err := rdb.NewReader(bytes.NewReader(hdr), rdb.Options{})
	if err != nil {
		return res, true, sourceErr(src, 0, err)
	}
	if v := hr.Version(); !r.tgt.Loads(v) {
		return r.fallback(fmt.Sprintf("the target (%s) does not load RDB version %d", r.serverName(), v))
	}
	if _, err := NewPlan(hr.Version(), src.DBs, r.tgt, opts.Filter, ConflictReplace); err != nil {
		return r.fallback(err.Error())
	}

	l, adv, err := r.listen()
	if err != nil {
		return res, true, err
	}
	defer l.Close()
	var tok [16]byte
	_, _ = rand.Read(tok[:])
	token := hex.EncodeToString(tok[:])
	if reason, err := r.attach(token, adv); err != nil || reason != "" {
		if err != nil {
			return res, true, r.fail(err)
		}
		return r.fallback(reason)
	}
	actx, cancel := context.WithTimeout(ctx, replicaConnectTimeout)
	s, err := primary.Accept(actx, l, primary.Options{Token: token, Timeout: opts.Timeout})
	cancel()
	l.Close()
	if err != nil {
		if ctx.Err() != nil {
			return res, true, r.fail(fmt.Errorf("restore interrupted: %w", ctx.Err()))
		}
		state := r.undo()
		reason := fmt.Sprintf("the target did not connect to redback at %s within %s (%v); give --advertise HOST:PORT (and --listen) with an address the target reaches; %s",
			adv, replicaConnectTimeout, err, state)
		if r.opts.Method == MethodReplicate || r.dirty() {
			return res, true, errors.New("restore by replication: " + reason)
		}
		res.note("not restored by replication: %s; restoring with RESTORE commands", reason)
		return res, false, nil
	}
	defer s.Close()

	want, err := r.stream(ctx, br, s)
	if err != nil {
		if isVerification(err) {
			state := r.undo()
			return res, true, &DamagedSourceError{Source: src.damageLabel(), Err: fmt.Errorf("%w; %s", err, state)}
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("restore interrupted: %w", ctx.Err())
		}
		return res, true, r.fail(err)
	}
	r.finished = true
	if err := r.waitLoaded(ctx, s); err != nil {
		return res, true, r.fail(err)
	}
	sampleOnly := opts.VerifySample && r.sample != nil
	var got string
	var derr error
	if !sampleOnly {
		dstart := time.Now()
		got, derr = r.digest()
		res.DigestSeconds = time.Since(dstart).Seconds()
	}
	if err := r.detach(); err != nil {
		return res, true, r.fail(err)
	}
	s.Close()
	switch {
	case sampleOnly || derr != nil && r.sample != nil:
		why := "--verify sample: DEBUG DIGEST not asked"
		if derr != nil {
			why = fmt.Sprintf("the target refused DEBUG DIGEST: %v", derr)
		}
		err := verifyBySample(ctx, u, r.sample, opts, res, true, why)
		var se *SampleError
		if errors.As(err, &se) {
			se.State = r.undo()
			return res, true, se
		}
	case derr != nil:
		res.note("the digest was not compared: DEBUG DIGEST on the target: %v (enable-debug-command); the target checked the RDB's CRC-64 as it loaded", derr)
	case got != want:
		state := r.undo()
		return res, true, &DigestError{Target: adm.Addr(), Got: got, Want: want, State: state}
	default:
		res.Digest, res.VerifiedBy = got, "digest"
	}
	if res.KeysExpired > 0 {
		res.note("%d keys had already expired: the target loaded them as a replica and, now a primary, deletes them", res.KeysExpired)
	}
	return res, true, nil
}

func isVerification(err error) bool {
	var fe *rdb.FormatError
	return errors.As(err, &fe) || pack.VerificationFailed(err)
}

func (r *replication) serverName() string {
	if r.tgt.Valkey != "" {
		return "valkey " + r.tgt.Valkey
	}
	return "redis " + r.tgt.RedisVersion
}

// eligible says why the target cannot be restored by replication ("" when
// it can).
func (r *replication) eligible() string {
	t := &r.tgt
	switch {
	case t.Cluster:
		return "the target runs in cluster mode"
	case t.Replica:
		return fmt.Sprintf("the target is a replica of %s", t.PrimaryAddr)
	case t.Replicas > 0:
		return fmt.Sprintf("the target has %d replicas of its own (they would resync from it)", t.Replicas)
	}
	var keys int64
	for _, n := range t.Keys {
		keys += n
	}
	functions := false
	if v, err := r.adm.Do("FUNCTION", "LIST"); err == nil && len(v.Array) > 0 {
		functions = true
	}
	r.wasEmpty = keys == 0 && !functions
	if !r.wasEmpty {
		what := fmt.Sprintf("%d keys", keys)
		if functions {
			what += " and function libraries"
		}
		if r.opts.Method == MethodReplicate && r.opts.Conflict == ConflictReplace && r.opts.Filter.IsZero() {
			return "" // said explicitly: the whole dataset is replaced
		}
		return fmt.Sprintf("the target holds %s, and replication replaces the whole dataset (give --method replicate --conflict replace, without filters, to do that)", what)
	}
	if v, err := r.adm.Do("CONFIG", "GET", "tls-replication"); err == nil && len(v.Array) == 2 && v.Array[1].Text() == "yes" {
		return "the target replicates over TLS (tls-replication yes), which redback does not serve"
	}
	return ""
}

// fallback gives up before anything was written or changed: with
// MethodReplicate it is an error, with MethodAuto a note.
func (r *replication) fallback(reason string) (*Result, bool, error) {
	if r.opts.Method == MethodReplicate {
		return r.res, true, fmt.Errorf("cannot restore by replication (--method replicate): %s; nothing was written", reason)
	}
	r.res.note("not restored by replication: %s; restoring with RESTORE commands", reason)
	return r.res, false, nil
}

// listen opens the port the target connects to and returns the address
// to tell it.
func (r *replication) listen() (net.Listener, string, error) {
	local := "127.0.0.1" // a unix socket target is on this host
	if a, ok := r.adm.LocalAddr().(*net.TCPAddr); ok {
		local = a.IP.String()
	}
	laddr := r.opts.Listen
	if laddr == "" {
		port := "0"
		if r.opts.Advertise != "" {
			if _, p, err := net.SplitHostPort(r.opts.Advertise); err == nil {
				port = p
			}
		}
		laddr = net.JoinHostPort(local, port)
	}
	l, err := net.Listen("tcp", laddr)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s for the target's replication connection: %w", laddr, err)
	}
	adv := r.opts.Advertise
	if adv == "" {
		a := l.Addr().(*net.TCPAddr)
		host := a.IP.String()
		if a.IP.IsUnspecified() {
			host = local
		}
		adv = net.JoinHostPort(host, strconv.Itoa(a.Port))
	}
	return l, adv, nil
}

func (r *replication) configGet(name string) (string, bool) {
	v, err := r.adm.Do("CONFIG", "GET", name)
	if err != nil || len(v.Array) != 2 {
		return "", false
	}
	return v.Array[1].Text(), true
}

// attach sets the token as the target's masterauth (and, on an empty
// target, loads straight from the socket), then sends REPLICAOF adv. A
// refusal gives a reason with everything put back; err is a lost
// connection.
func (r *replication) attach(token, adv string) (reason string, err error) {
	_ = r.adm.SetDeadline(time.Now().Add(r.opts.Timeout))
	defer r.adm.SetDeadline(time.Time{})
	auth, ok := r.configGet("masterauth")
	if !ok {
		return "the target refuses CONFIG GET masterauth", nil
	}
	if _, err := r.adm.Do("CONFIG", "SET", "masterauth", token); err != nil {
		var re resp.Error
		if errors.As(err, &re) {
			return "the target refuses CONFIG SET masterauth: " + re.Error(), nil
		}
		return "", &respconn.ServerError{Role: respconn.RoleTarget, Addr: r.adm.Addr(), Msg: "CONFIG SET masterauth", Err: err}
	}
	r.saved = append(r.saved, savedConfig{"masterauth", auth})
	if load, ok := r.configGet("repl-diskless-load"); ok && load == "disabled" && r.wasEmpty {
		// Load while the payload arrives instead of after it was on disk.
		if _, err := r.adm.Do("CONFIG", "SET", "repl-diskless-load", "on-empty-db"); err == nil {
			r.saved = append(r.saved, savedConfig{"repl-diskless-load", load})
		}
	}
	host, port, err := net.SplitHostPort(adv)
	if err != nil {
		r.undo()
		return "", fmt.Errorf("--advertise %q: want HOST:PORT", adv)
	}
	if _, err := r.adm.Do("REPLICAOF", host, port); err != nil {
		var re resp.Error
		if errors.As(err, &re) {
			return "the target refuses REPLICAOF: " + re.Error() + " (" + r.undo() + ")", nil
		}
		r.replicaOf = true // it may have taken it
		return "", &respconn.ServerError{Role: respconn.RoleTarget, Addr: r.adm.Addr(), Msg: "REPLICAOF", Err: err}
	}
	r.replicaOf = true
	return "", nil
}

// stream sends the RDB (as it is, or rewritten by the filters) while
// checking it, and returns the digest the target must show. The end mark
// goes out only once everything was checked (to the stored object's
// sha256): a payload found damaged is never loaded.
//
// The bytes go straight into the connection's buffer: the target loads
// slower than the stream is read, so the socket's own buffer already lets
// reading run ahead of it.
func (r *replication) stream(ctx context.Context, br *bufio.Reader, s *primary.Sync) (want string, err error) {
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	filtered := !r.opts.Filter.IsZero()
	var in io.Reader = br
	if !filtered {
		in = io.TeeReader(br, s)
	}
	// Values are checked beside the reader: by the digest when it is
	// computed here, else by CheckValues unless the precheck proved the
	// bytes of a verified snapshot. A big value (aggregate or string) is
	// decoded as it streams and never held whole: unfiltered, as it goes
	// to the target (into the digest, or only checked); filtered, a kept
	// one is copied into the rewritten RDB and the digest piece by piece,
	// one filtered out only checked.
	sf := digest.Score70
	if v, _ := RDBVersionFor(r.tgt.RedisVersion); v >= 11 {
		sf = digest.Score72
	}
	manifest := r.src.Digest != "" && !filtered
	useManifest := manifest && (sf == digest.Score70 || !r.src.ZSets)
	var dg *digest.Digest
	ropts := rdb.Options{MaxValueBytes: r.opts.MaxValueBytes, SkipValueCheck: true}
	if useManifest {
		ropts.StreamValues = rdb.CheckStreamed
	} else {
		dg = digest.New(digest.Options{ScoreFormat: sf})
		ropts.StreamValues = dg.Stream
	}
	ropts.StreamStrings = true
	var rw *rewriter
	if filtered {
		rw = newRewriter(r.res, r.opts, dg.Stream)
		ropts = rw.readerOptions(ropts)
	}
	rd, err := rdb.NewReader(in, ropts)
	if err != nil {
		return "", err
	}
	if r.opts.SampleKeys >= 0 {
		// Read back by DUMP only when the target refuses DEBUG DIGEST.
		r.sample = keysample.New(cmp.Or(r.opts.SampleKeys, SampleKeys), digest.Score70)
	}
	scan := func(ctx context.Context, add func(*rdb.Record) error) error {
		if r.sample != nil {
			// Every key the target loads, in its target db.
			next := add
			add = func(rec *rdb.Record) error {
				if err := offerSample(r.sample, rec.DB, rec); err != nil {
					return err
				}
				if next != nil {
					return next(rec)
				}
				return nil
			}
		}
		if filtered {
			return rw.run(ctx, rd, s, add)
		}
		return countRecords(ctx, rd, add, r.res, r.opts)
	}
	workers := digest.Workers()
	switch {
	case useManifest:
		want = r.src.Digest
		if r.src.Verified && r.src.Precheck != nil && !r.opts.NoPrecheck {
			err = scan(ctx, nil)
		} else {
			fan := rdb.NewFanout(ctx, workers, rdb.CheckValues(workers))
			err = fan.Wait(scan(ctx, fan.Add))
		}
	default:
		if workers > 1 {
			err = digest.Parallel(ctx, dg, digest.Options{ScoreFormat: sf}, workers, scan)
		} else {
			err = scan(ctx, dg.Add)
		}
		want = dg.Sum()
		if err == nil && manifest && sf == digest.Score70 && want != r.src.Digest {
			err = &rdb.FormatError{Offset: rd.Offset(), Err: fmt.Errorf("the data's digest %s is not the manifest's %s", want, r.src.Digest)}
		}
	}
	if err != nil {
		return "", err
	}
	// Read to the end so a stored object's size and sha256 are checked.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return "", err
	}
	if !filtered && s.Written() > rd.Offset() {
		return "", &rdb.FormatError{Offset: rd.Offset(), Err: fmt.Errorf("%d bytes follow the RDB's end", s.Written()-rd.Offset())}
	}
	return want, s.Finish()
}

// waitLoaded waits until the target reports its link to redback up and
// the payload loaded; it fails when the target drops the link, or shows
// no loading for opts.Timeout.
func (r *replication) waitLoaded(ctx context.Context, s *primary.Sync) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	dropped := false
	for {
		_ = r.adm.SetDeadline(time.Now().Add(r.opts.Timeout))
		in, err := r.adm.Info()
		if err != nil {
			return &respconn.ServerError{Role: respconn.RoleTarget, Addr: r.adm.Addr(), Msg: "INFO while loading", Err: err}
		}
		switch {
		case in.LinkUp && !in.SyncInProgress && !in.Loading:
			return nil
		case dropped:
			return &respconn.ServerError{Role: respconn.RoleTarget, Addr: r.adm.Addr(), Msg: "the target dropped its replication link to redback before it had loaded the payload (see its log)"}
		case in.Loading || in.SyncInProgress:
			last = time.Now()
		case time.Since(last) > r.opts.Timeout:
			return &respconn.ServerError{Role: respconn.RoleTarget, Addr: r.adm.Addr(), Msg: fmt.Sprintf("the target did not load the payload within %s", r.opts.Timeout)}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restore interrupted: %w", ctx.Err())
		case <-s.Done():
			dropped = true // look once more: it may have loaded
		case <-tick.C:
		}
	}
}

// digest asks the target, still a replica (nothing expires), for DEBUG
// DIGEST.
func (r *replication) digest() (string, error) {
	_ = r.adm.SetDeadline(time.Now().Add(r.opts.Timeout))
	defer r.adm.SetDeadline(time.Time{})
	v, err := r.adm.Do("DEBUG", "DIGEST")
	if err != nil {
		return "", err
	}
	return v.Text(), nil
}

// detach makes the target a primary again and puts its config back.
func (r *replication) detach() error {
	_ = r.adm.SetDeadline(time.Now().Add(r.opts.Timeout))
	defer r.adm.SetDeadline(time.Time{})
	if r.replicaOf {
		if _, err := r.adm.Do("REPLICAOF", "NO", "ONE"); err != nil {
			return &respconn.ServerError{Role: respconn.RoleTarget, Addr: r.adm.Addr(), Msg: "REPLICAOF NO ONE", Err: err}
		}
		r.replicaOf = false
	}
	for i := len(r.saved) - 1; i >= 0; i-- {
		c := r.saved[i]
		if _, err := r.adm.Do("CONFIG", "SET", c.name, c.value); err != nil {
			return &respconn.ServerError{Role: respconn.RoleTarget, Addr: r.adm.Addr(), Msg: "put back " + c.name, Err: err}
		}
		r.saved = r.saved[:i]
	}
	return nil
}

// dirty reports whether the target may have been changed by the payload.
func (r *replication) dirty() bool { return r.finished }

// fail puts the target back and adds what it holds to err.
func (r *replication) fail(err error) error {
	return fmt.Errorf("restore by replication failed: %w; %s", err, r.undo())
}

// undo makes the target a primary again, puts its config back and, when
// it was empty before, empties it; it returns what the target holds now.
func (r *replication) undo() string {
	var problems []string
	if err := r.detach(); err != nil {
		problems = append(problems, err.Error())
	}
	state := ""
	switch {
	case r.wasEmpty:
		_ = r.adm.SetDeadline(time.Now().Add(r.opts.Timeout))
		_, err := r.adm.Do("FLUSHALL", "SYNC")
		if err == nil {
			if _, ferr := r.adm.Do("FUNCTION", "FLUSH", "SYNC"); ferr != nil && !strings.Contains(ferr.Error(), "unknown command") {
				err = ferr
			}
		}
		if err != nil {
			problems = append(problems, "emptying it again: "+err.Error())
		} else {
			state = "the target is empty again"
		}
	case r.finished:
		state = "the target's previous data was replaced by the payload"
	default:
		state = "the target's data is as it was (it never got the whole payload)"
	}
	if len(problems) == 0 {
		return state + ", a primary, with its config as before"
	}
	if state != "" {
		state += "; "
	}
	return state + "could not put the target back: " + strings.Join(problems, "; ") +
		" (run REPLICAOF NO ONE on it, and CONFIG SET masterauth to its previous value)"
}
