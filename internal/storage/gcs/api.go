package gcs

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"redback/internal/storage"
)

// Retries inside one call (the chunks of an upload, a Put's single
// request): bounded by count and by the context.
const (
	maxAttempts  = 5
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 4 * time.Second
	userAgent    = "redback"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeCRC is the JSON API's form of a CRC32C: base64 of its 4 bytes,
// big-endian.
func encodeCRC(c uint32) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, c))
}

func decodeCRC(s string) (uint32, bool) {
	p, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(p) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(p), true
}

// storedCRC32C returns the crc32c of a download's X-Goog-Hash headers
// ("crc32c=...,md5=..." in one or several headers).
func storedCRC32C(h http.Header) (uint32, bool) {
	for _, v := range h.Values("X-Goog-Hash") {
		for _, f := range strings.Split(v, ",") {
			if s, ok := strings.CutPrefix(strings.TrimSpace(f), "crc32c="); ok {
				return decodeCRC(s)
			}
		}
	}
	return 0, false
}

// apiError is a request the service refused: its HTTP status and its
// own message (never the request's URL or headers).
type apiError struct {
	Status  int
	Message string
}

func (e *apiError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

func (e *apiError) bucketMissing() bool {
	return e != nil && strings.Contains(strings.ToLower(e.Message), "bucket does not exist")
}

// checksumRejected reports the service's refusal of an upload whose
// declared CRC32C does not match the bytes it received: damage in flight.
func (e *apiError) checksumRejected() bool {
	m := strings.ToLower(e.Message)
	return e.Status == http.StatusBadRequest && (strings.Contains(m, "crc32c") || strings.Contains(m, "md5")) && strings.Contains(m, "match")
}

// readError turns a failed response into an *apiError and closes it.
// The message is the service's JSON error message, or the start of the
// body, on one line.
func readError(resp *http.Response) error {
	defer drain(resp)
	p, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	var doc struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	msg := string(p)
	if json.Unmarshal(p, &doc) == nil && doc.Error.Message != "" {
		msg = doc.Error.Message
	}
	msg = strings.Join(strings.FieldsFunc(msg, unicode.IsControl), " ")
	msg = strings.TrimSpace(msg)
	if r := []rune(msg); len(r) > 300 {
		msg = string(r[:300]) + "…"
	}
	return &apiError{Status: resp.StatusCode, Message: msg}
}

// drain reads what is left of a response (a little) and closes it, so
// that its connection is reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

// status is the HTTP status of a refused request, 0 for other errors.
func status(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func isTransient(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status == http.StatusRequestTimeout || ae.Status == http.StatusTooManyRequests || ae.Status >= 500 || ae.checksumRejected()
	}
	return storage.IsConnectionError(err) || errors.Is(err, errDamagedInFlight)
}

// transportError strips the *url.Error the HTTP client wraps around a
// failure: its URL may hold an upload session's id, which lets anyone
// write to the object.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if err == io.EOF {
		// The connection closed before an answer: retrying may work.
		return fmt.Errorf("connection closed before the answer: %w", io.ErrUnexpectedEOF)
	}
	return err
}

// do sends the request newReq makes and returns a response of status 2xx
// or 308; other statuses are an *apiError. With retry, transient failures
// are sent again (a fresh request each time) up to maxAttempts.
func (b *Backend) do(ctx context.Context, retry bool, newReq func() (*http.Request, error)) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		req, err := newReq()
		if err != nil {
			return nil, err
		}
		req.Header.Set("User-Agent", userAgent)
		resp, err := b.client.Do(req)
		switch {
		case err != nil:
			err = transportError(err)
		case resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusPermanentRedirect:
			return resp, nil
		default:
			err = readError(resp)
		}
		if !retry || attempt >= maxAttempts || !isTransient(err) || pause(ctx, attempt) != nil {
			return nil, err
		}
	}
}

// pause waits before attempt+1: a jittered back-off doubling from
// firstBackoff up to maxBackoff, or until ctx ends.
func pause(ctx context.Context, attempt int) error {
	d := min(firstBackoff<<(attempt-1), maxBackoff)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// getJSON GETs u and decodes its JSON body into v.
func (b *Backend) getJSON(ctx context.Context, u string, v any) error {
	resp, err := b.do(ctx, false, func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	})
	if err != nil {
		return err
	}
	return decode(resp, v)
}

// decode decodes a response's JSON body (at most 64 MiB) and closes it.
func decode(resp *http.Response, v any) error {
	defer drain(resp)
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("decoding the service's answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return nil
}

func (b *Backend) apiURL(path string) string { return b.base.String() + path }

// objectURL is the JSON API URL of object name (its slashes escaped).
func (b *Backend) objectURL(name string, q url.Values) string {
	u := b.apiURL("/storage/v1/b/" + url.PathEscape(b.cfg.Bucket) + "/o/" + url.PathEscape(name))
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// uploadURL is the JSON API's upload URL of the bucket.
func (b *Backend) uploadURL(q url.Values) string {
	return b.apiURL("/upload/storage/v1/b/"+url.PathEscape(b.cfg.Bucket)+"/o") + "?" + q.Encode()
}
