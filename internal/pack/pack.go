// Package pack turns a raw byte stream (an RDB, an AOF segment) into the
// stored form of a repository object — zstd-compressed, optionally
// age-encrypted — and back, measuring sizes and the stored bytes' sha256 on
// the way. Neither direction buffers more than the codec's window.
package pack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"redback/internal/readahead"
	"redback/internal/storage"
)

// Compression names recorded in manifests.
const (
	CompressionZstd = "zstd"
	EncryptionAge   = "age"
)

// Recipients is a parsed --encrypt-to list plus the fingerprints recorded in
// manifests (never the keys themselves).
type Recipients struct {
	List         []age.Recipient
	Fingerprints []string
}

// ParseRecipients accepts age recipients ("age1...") or paths to recipient
// files (one per line, # comments), as the age CLI does.
func ParseRecipients(specs []string) (*Recipients, error) {
	rs := &Recipients{}
	for _, s := range specs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		var text []byte
		if strings.HasPrefix(s, "age1") {
			text = []byte(s)
		} else {
			b, err := os.ReadFile(s)
			if err != nil {
				return nil, fmt.Errorf("recipient %q is neither an age1... key nor a readable file: %w", s, err)
			}
			text = b
		}
		list, err := age.ParseRecipients(bytes.NewReader(text))
		if err != nil {
			return nil, fmt.Errorf("parse recipients from %q: %w", shorten(s), err)
		}
		rs.List = append(rs.List, list...)
		sc := bufio.NewScanner(bytes.NewReader(text))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			rs.Fingerprints = append(rs.Fingerprints, Fingerprint(line))
		}
	}
	if len(rs.List) == 0 {
		return nil, nil
	}
	return rs, nil
}

// Fingerprint is a short stable identifier of a public recipient string:
// "sha256:" + the first 16 hex digits of its sha256.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(recipient))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

func shorten(s string) string {
	if len(s) > 24 {
		return s[:20] + "..."
	}
	return s
}

// LoadIdentities reads age identities from the file path, or when path is
// empty from $REDBACK_IDENTITY_FILE, or from the key in $REDBACK_IDENTITY.
// It returns nil, nil when none is configured.
func LoadIdentities(path string, getenv func(string) string) ([]age.Identity, error) {
	if path == "" {
		path = getenv("REDBACK_IDENTITY_FILE")
	}
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("open identity file: %w", err)
		}
		defer f.Close()
		ids, err := age.ParseIdentities(f)
		if err != nil {
			return nil, fmt.Errorf("parse identity file %s: %w", path, err)
		}
		return ids, nil
	}
	if key := getenv("REDBACK_IDENTITY"); key != "" {
		ids, err := age.ParseIdentities(strings.NewReader(key))
		if err != nil {
			// never echo the key
			return nil, errors.New("parse identity from $REDBACK_IDENTITY: not a valid age identity")
		}
		return ids, nil
	}
	return nil, nil
}

// Counter counts bytes written through it and hashes them.
type Counter struct {
	W io.Writer
	N int64
	h hash.Hash
}

// NewCounter returns a Counter that forwards to w (which may be nil).
func NewCounter(w io.Writer) *Counter { return &Counter{W: w, h: sha256.New()} }

func (c *Counter) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.N += int64(len(p))
	if c.W == nil {
		return len(p), nil
	}
	return c.W.Write(p)
}

// Sum is the hex sha256 of everything written.
func (c *Counter) Sum() string { return hex.EncodeToString(c.h.Sum(nil)) }

// Writer is the sealing side: raw bytes in, stored bytes out to an
// underlying writer.
type Writer struct {
	Stored *Counter // stored bytes (after compression and encryption)
	Raw    int64    // raw bytes written
	zw     *zstd.Encoder
	aw     io.WriteCloser
}

// Options choose how objects are stored.
type Options struct {
	Level      zstd.EncoderLevel // 0 means zstd.SpeedDefault
	Recipients *Recipients       // nil: no encryption
	// Concurrency of the zstd encoder; 0 means 1 for the fastest level, 2 otherwise.
	Concurrency int
}

// NewWriter seals into dst.
func NewWriter(dst io.Writer, opts Options) (*Writer, error) {
	w := &Writer{Stored: NewCounter(dst)}
	var next io.Writer = w.Stored
	if opts.Recipients != nil {
		aw, err := age.Encrypt(w.Stored, opts.Recipients.List...)
		if err != nil {
			return nil, fmt.Errorf("start encryption: %w", err)
		}
		w.aw = aw
		next = aw
	}
	level := opts.Level
	if level == 0 {
		level = zstd.SpeedDefault
	}
	conc := opts.Concurrency
	if conc <= 0 {
		// The fastest level keeps up with a replication stream on one
		// goroutine; more would only compete with verification for CPU.
		conc = 2
		if level == zstd.SpeedFastest {
			conc = 1
		}
	}
	zw, err := zstd.NewWriter(next, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(conc), zstd.WithWindowSize(1<<20))
	if err != nil {
		return nil, fmt.Errorf("start compression: %w", err)
	}
	w.zw = zw
	return w, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.zw.Write(p)
	w.Raw += int64(n)
	return n, err
}

// Close flushes the compressor and the encryption; the stored stream is then complete.
func (w *Writer) Close() error {
	if err := w.zw.Close(); err != nil {
		return fmt.Errorf("finish compression: %w", err)
	}
	if w.aw != nil {
		if err := w.aw.Close(); err != nil {
			return fmt.Errorf("finish encryption: %w", err)
		}
	}
	return nil
}

// ErrIntegrity is wrapped when stored bytes do not match their manifest.
var ErrIntegrity = errors.New("stored object does not match its manifest")

// IntegrityError reports a size or sha256 mismatch of a stored object.
type IntegrityError struct {
	Key  string
	What string
}

func (e *IntegrityError) Error() string {
	return fmt.Sprintf("object %s: %s", e.Key, e.What)
}
func (e *IntegrityError) Unwrap() error            { return ErrIntegrity }
func (e *IntegrityError) VerificationFailed() bool { return true }

// verifying checks size and sha256 of the stored stream when it reaches EOF.
type verifying struct {
	r        io.Reader
	key      string
	size     int64
	sha      string
	n        int64
	h        hash.Hash
	finished bool
}

func (v *verifying) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if err != nil && err != io.EOF {
		// Not the bytes' fault unless the store says so: mark it, so that
		// classify does not take it for a decoding failure.
		err = &readError{key: v.key, err: err}
	}
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.size >= 0 && v.n > v.size {
		return n, &IntegrityError{Key: v.key, What: fmt.Sprintf("longer than the recorded %d bytes", v.size)}
	}
	if err == io.EOF && !v.finished {
		v.finished = true
		if v.size >= 0 && v.n != v.size {
			return n, &IntegrityError{Key: v.key, What: fmt.Sprintf("size %d, manifest says %d (truncated?)", v.n, v.size)}
		}
		if got := hex.EncodeToString(v.h.Sum(nil)); v.sha != "" && got != v.sha {
			return n, &IntegrityError{Key: v.key, What: fmt.Sprintf("sha256 %s, manifest says %s", got, v.sha)}
		}
	}
	return n, err
}

// readError is a failure of the store to serve an object's bytes (a cut
// connection, an I/O error), as opposed to bytes that fail to decode.
type readError struct {
	key string
	err error
}

func (e *readError) Error() string { return fmt.Sprintf("read %s: %v", e.key, e.err) }
func (e *readError) Unwrap() error { return e.err }

// VerificationFailure is implemented by errors that may say the data is
// bad (exit code 3) rather than that an operation failed.
type VerificationFailure interface{ VerificationFailed() bool }

// VerificationFailed reports whether err says the data is bad: an error
// in its chain has VerificationFailed() true (an *IntegrityError, an RDB
// or AOF that does not parse, a damaged segment, ...). Exit code 3.
func VerificationFailed(err error) bool {
	var v VerificationFailure
	return errors.As(err, &v) && v.VerificationFailed()
}

// ReadFailure reports whether err is a failure of the store to serve the
// bytes (not damage): what Classify passes through unchanged.
func ReadFailure(err error) bool {
	var re *readError
	return errors.As(err, &re)
}

// Classify is the one place that decides whether an error met while
// unsealing the object key means its stored bytes are damaged. Damage
// comes back as an *IntegrityError (exit 3, naming the object and what was
// wrong): a size or sha256 mismatch, a checksum the store itself keeps
// (storage.ErrCorrupt, the S3 SDK's "checksum did not match"), a stream
// that does not decrypt (age header or payload MAC) or decompress. A
// failure to read (network, I/O, canceled) comes back unchanged and is not
// damage. Errors of the layers above (an RDB or AOF that does not parse)
// carry their own VerificationFailed.
func Classify(key string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var ie *IntegrityError
	if errors.As(err, &ie) {
		return ie
	}
	var ce *storage.CorruptError
	if errors.As(err, &ce) {
		return &IntegrityError{Key: key, What: ce.What}
	}
	var re *readError
	if errors.As(err, &re) {
		return re
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrClosedPipe) {
		return err
	}
	var v VerificationFailure
	if errors.As(err, &v) {
		return err
	}
	return &IntegrityError{Key: key, What: "cannot decode: " + err.Error()}
}

// CheckStored reads the stored bytes from src to the end and checks their
// size and sha256 against exp, without decrypting or decompressing (an
// *IntegrityError when they differ, classified as Classify does). It is
// the cheap proof a restore into a live server makes before its first
// write.
func CheckStored(src io.Reader, exp Expect) error {
	v := &verifying{r: src, key: exp.Key, size: exp.Size, sha: exp.SHA256, h: sha256.New()}
	buf := make([]byte, 256<<10)
	for {
		_, err := v.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return Classify(exp.Key, err)
		}
	}
}

// Verify returns a reader of src's bytes that checks their size and sha256
// against exp when it reaches EOF, returning an *IntegrityError instead of
// io.EOF when they differ (and as soon as more than exp.Size bytes come).
// It neither decrypts nor decompresses: for copying stored objects as they
// are.
func Verify(src io.Reader, exp Expect) io.Reader {
	return &verifying{r: src, key: exp.Key, size: exp.Size, sha: exp.SHA256, h: sha256.New()}
}

// Expect describes what a stored object should be.
type Expect struct {
	Key       string // for messages
	Size      int64  // stored size, -1 unknown
	SHA256    string // hex, "" unknown
	Encrypted bool
}

// NewReader unseals stored bytes from src: it checks size and sha256 at EOF
// (an *IntegrityError instead of io.EOF when they differ), decrypts with ids
// when the object is encrypted, and decompresses. For objects of
// readAheadMin and more (or of unknown size) the unsealing runs on its own
// goroutine a few MiB ahead of the reader (internal/readahead), on another
// core than the caller's parsing. Close stops it and releases
// the decoder; close src first when a read from it might block.
func NewReader(src io.Reader, exp Expect, ids []age.Identity) (io.ReadCloser, error) {
	r := Verify(src, exp)
	if exp.Encrypted {
		if len(ids) == 0 {
			return nil, fmt.Errorf("object %s is encrypted: give --identity FILE (or $REDBACK_IDENTITY_FILE)", exp.Key)
		}
		dr, err := age.Decrypt(r, ids...)
		if err != nil {
			var nm *age.NoIdentityMatchError
			if errors.As(err, &nm) {
				return nil, fmt.Errorf("object %s: none of the given identities can decrypt it (wrong --identity? if it is the right one, the object's header is damaged: see redback verify)", exp.Key)
			}
			return nil, Classify(exp.Key, fmt.Errorf("decrypt: %w", err))
		}
		r = dr
	}
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", exp.Key, err)
	}
	u := &unsealed{zr: zr, key: exp.Key}
	if exp.Size < 0 || exp.Size >= readAheadMin {
		u.ra = readahead.New(readFunc(u.read))
	}
	return u, nil
}

// readAheadMin is the stored size from which unsealing runs ahead on its
// own goroutine; smaller objects (most log segments) are read inline.
const readAheadMin = 4 << 20

type unsealed struct {
	zr  *zstd.Decoder
	ra  *readahead.Reader
	key string
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

func (u *unsealed) Read(p []byte) (int, error) {
	if u.ra == nil {
		return u.read(p)
	}
	return u.ra.Read(p)
}

// read decompresses, on the read-ahead goroutine.
func (u *unsealed) read(p []byte) (int, error) {
	n, err := u.zr.Read(p)
	return n, Classify(u.key, err)
}

func (u *unsealed) Close() error {
	if u.ra != nil {
		u.ra.Close()
	}
	u.zr.Close()
	return nil
}
