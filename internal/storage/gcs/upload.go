package gcs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// errDamagedInFlight: the object the service stored does not have the
// CRC32C of the bytes sent (transient: sending them again may work).
var errDamagedInFlight = errors.New("damaged in flight")

// fill reads r into buf (reusing its capacity) until it holds size bytes
// or r ends (eof). It grows buf as it goes, so a small object never costs
// a whole chunk of memory.
func fill(r io.Reader, buf []byte, size int) (_ []byte, eof bool, _ error) {
	buf = buf[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(size, max(2*cap(buf), 64<<10)))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			return buf, false, err
		}
	}
	return buf, false, nil
}

// insert writes data as object name in one multipart request (metadata
// and bytes), declaring its CRC32C: the service refuses it if the bytes
// it received differ. q holds the preconditions.
func (b *Backend) insert(ctx context.Context, name string, data []byte, q url.Values, retry bool) (*object, error) {
	crc := crc32.Checksum(data, castagnoli)
	meta, err := json.Marshal(map[string]string{"name": name, "crc32c": encodeCRC(crc)})
	if err != nil {
		return nil, err
	}
	boundary := randomHex(16)
	head := "--" + boundary + "\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" + string(meta) +
		"\r\n--" + boundary + "\r\nContent-Type: application/octet-stream\r\n\r\n"
	tail := "\r\n--" + boundary + "--\r\n"
	uq := url.Values{"uploadType": {"multipart"}}
	for k, v := range q {
		uq[k] = v
	}
	u := b.uploadURL(uq)
	resp, err := b.do(ctx, retry, func() (*http.Request, error) {
		body := io.MultiReader(strings.NewReader(head), bytes.NewReader(data), strings.NewReader(tail))
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
		if err != nil {
			return nil, err
		}
		req.ContentLength = int64(len(head) + len(data) + len(tail))
		req.Header.Set("Content-Type", "multipart/related; boundary="+boundary)
		return req, nil
	})
	if err != nil {
		return nil, err
	}
	return b.stored(ctx, resp, crc)
}

// stored decodes the object an upload created and checks that it has the
// CRC32C of the bytes sent. The service checks the CRC32C declared with
// the upload before it finalizes; this catches one that did not. A
// damaged object is deleted (if nobody replaced it since).
func (b *Backend) stored(ctx context.Context, resp *http.Response, crc uint32) (*object, error) {
	var o object
	if err := decode(resp, &o); err != nil {
		return nil, err
	}
	if got, ok := decodeCRC(o.CRC32C); ok && got != crc {
		_ = b.delete(context.WithoutCancel(ctx), o.Name, url.Values{"ifGenerationMatch": {strconv.FormatInt(o.Generation, 10)}})
		return nil, fmt.Errorf("%w: the service stored CRC32C %s, the bytes sent have %s (the object was deleted)", errDamagedInFlight, o.CRC32C, encodeCRC(crc))
	}
	return &o, nil
}

func randomHex(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}

// resumable writes object name with a resumable upload: first (one full
// chunk) and then the rest of r, chunk by chunk. The object becomes
// visible only when the last chunk finalizes the upload; on any failure
// the session is cancelled. Only one chunk is held in memory.
func (b *Backend) resumable(ctx context.Context, key, name string, first []byte, r io.Reader) (*object, error) {
	session, err := b.startSession(ctx, name)
	if err != nil {
		return nil, err
	}
	finished := false
	defer func() {
		if !finished {
			b.cancelSession(ctx, session)
		}
	}()
	h := crc32.New(castagnoli)
	buf, off := first, int64(0)
	for {
		h.Write(buf)
		if _, err := b.sendChunk(ctx, session, buf, off, false, 0); err != nil {
			return nil, err
		}
		off += int64(len(buf))
		var eof bool
		if buf, eof, err = fill(r, buf, b.cfg.ChunkSize); err != nil {
			return nil, fmt.Errorf("reading the data of %s at offset %d: %w", key, off, err)
		}
		if eof {
			h.Write(buf)
			o, err := b.sendChunk(ctx, session, buf, off, true, h.Sum32())
			if err != nil {
				return nil, err
			}
			finished = true
			return o, nil
		}
	}
}

// startSession starts a resumable upload and returns its session URL.
func (b *Backend) startSession(ctx context.Context, name string) (string, error) {
	meta, err := json.Marshal(map[string]string{"name": name})
	if err != nil {
		return "", err
	}
	u := b.uploadURL(url.Values{"uploadType": {"resumable"}, "name": {name}})
	resp, err := b.do(ctx, true, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(meta))
		if err == nil {
			req.Header.Set("Content-Type", "application/json; charset=UTF-8")
			req.Header.Set("X-Upload-Content-Type", "application/octet-stream")
		}
		return req, err
	})
	if err != nil {
		return "", err
	}
	drain(resp)
	loc, err := url.Parse(resp.Header.Get("Location"))
	// Credentials go with every request: the session must be on the
	// service's own host.
	if err != nil || resp.Header.Get("Location") == "" || loc.Scheme != b.base.Scheme || loc.Host != b.base.Host {
		return "", errors.New("starting a resumable upload: the service answered no upload session URL on its own host")
	}
	return loc.String(), nil
}

// cancelSession ends an upload that will not be finished, so that its
// bytes are dropped now rather than when the session expires (a week).
func (b *Backend) cancelSession(ctx context.Context, session string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, session, nil)
	if err != nil {
		return
	}
	if resp, err := b.client.Do(req); err == nil {
		drain(resp) // 499 "client closed request" is the expected answer
	}
}

// sendChunk sends data, the bytes at offset off of the upload; final
// marks the last chunk (possibly empty), which carries the whole
// object's CRC32C and returns the finalized object. A transient failure
// asks the session how much it kept and sends the rest again, up to
// maxAttempts; a service that keeps part of a chunk gets the rest.
func (b *Backend) sendChunk(ctx context.Context, session string, data []byte, off int64, final bool, crc uint32) (*object, error) {
	end := off + int64(len(data)) // the offset after data
	sent := off                   // what the session has
	failures := 0
	for round := 0; ; round++ {
		if round > 8*maxAttempts {
			return nil, fmt.Errorf("upload chunk at offset %d: the session keeps no progress", off)
		}
		resp, err := b.putChunk(ctx, session, data[sent-off:], sent, end, final, crc)
		if err == nil {
			var done bool
			done, sent, err = b.progress(resp, off, end)
			switch {
			case err != nil:
			case done:
				return b.finalized(ctx, resp, off, final, crc)
			case sent == end && !final:
				return nil, nil
			default:
				continue // the service kept part of the chunk: send the rest
			}
		}
		if !isTransient(err) {
			return nil, uploadError(off, err)
		}
		failures++
		if failures >= maxAttempts || pause(ctx, failures) != nil {
			return nil, uploadError(off, err)
		}
		// Ask what the session kept before sending again.
		resp, serr := b.putChunk(ctx, session, nil, -1, 0, false, 0)
		if serr != nil {
			err = serr
			if !isTransient(err) {
				return nil, uploadError(off, err)
			}
			continue // the same offset again
		}
		var done bool
		if done, sent, err = b.progress(resp, off, end); err != nil {
			return nil, uploadError(off, err)
		}
		if done {
			return b.finalized(ctx, resp, off, final, crc)
		}
	}
}

// finalized reads the answer that finalized an upload: the object, if
// the chunk at off was the last one.
func (b *Backend) finalized(ctx context.Context, resp *http.Response, off int64, final bool, crc uint32) (*object, error) {
	if final {
		return b.stored(ctx, resp, crc)
	}
	drain(resp)
	return nil, fmt.Errorf("upload chunk at offset %d: the service finalized the upload before its last chunk", off)
}

// uploadError names the chunk of a failed upload; a session that ended
// (404, 410: it expired or was cancelled) says so.
func uploadError(off int64, err error) error {
	if st := status(err); st == http.StatusNotFound || st == http.StatusGone {
		// Not the object's or the bucket's absence: no %w.
		return fmt.Errorf("upload chunk at offset %d: the upload session ended (expired or cancelled): %v", off, err)
	}
	return fmt.Errorf("upload chunk at offset %d: %w", off, err)
}

// putChunk PUTs data at offset at of the session; at < 0 asks only for
// the session's state. The last chunk declares the total size and the
// object's CRC32C.
func (b *Backend) putChunk(ctx context.Context, session string, data []byte, at, end int64, final bool, crc uint32) (*http.Response, error) {
	return b.do(ctx, false, func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, session, bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		req.ContentLength = int64(len(data))
		total := "*"
		if final {
			total = strconv.FormatInt(end, 10)
			req.Header.Set("X-Goog-Hash", "crc32c="+encodeCRC(crc))
		}
		switch {
		case at < 0:
			req.Header.Set("Content-Range", "bytes */*")
		case len(data) == 0:
			req.Header.Set("Content-Range", "bytes */"+total)
		default:
			req.Header.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%s", at, at+int64(len(data))-1, total))
		}
		return req, nil
	})
}

// progress reads an upload response: done when the service finalized the
// object (the body is left for the caller), else how much of the object
// the session holds (the "Range: bytes=0-N" of a 308), which must lie
// within the chunk [off, end) the caller still holds.
func (b *Backend) progress(resp *http.Response, off, end int64) (done bool, have int64, err error) {
	if resp.StatusCode != http.StatusPermanentRedirect && resp.Header.Get("X-Http-Status-Code-Override") != "308" {
		return true, end, nil
	}
	drain(resp)
	if rng := resp.Header.Get("Range"); rng != "" {
		last, perr := strconv.ParseInt(rng[strings.LastIndexByte(rng, '-')+1:], 10, 64)
		if perr != nil || !strings.HasPrefix(rng, "bytes=0-") {
			return false, 0, fmt.Errorf("the service answered Range %q", rng)
		}
		have = last + 1
	}
	if have < off || have > end {
		return false, 0, fmt.Errorf("the session holds %d bytes, outside the chunk at %d-%d this upload still has", have, off, end)
	}
	return false, have, nil
}
