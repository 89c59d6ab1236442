package rekey

import (
	"bufio"
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"filippo.io/age"
)

// The age v1 header (https://age-encryption.org/v1): a version line, one
// stanza per recipient ("-> TYPE ARGS..." then its body in base64 lines of
// 64 columns, the last one shorter), then "--- MAC", where MAC is the
// HMAC-SHA256, under HKDF-SHA256(file key, info "header"), of the header up
// to and including "---". The payload that follows depends only on the
// file key, so a header rebuilt for the same file key leaves it valid.
//
// filippo.io/age exposes reading a header's file key (DecryptHeader) and
// wrapping a file key for a recipient (Recipient.Wrap) but not writing a
// header for a given file key: header writes the text and its MAC, and
// every rebuilt header is checked by age's own parser and MAC check
// (age.DecryptHeader) before it is stored.

const (
	versionLine = "age-encryption.org/v1\n"
	// maxHeader bounds what a header read may take (a post-quantum stanza
	// is about 1.5 KiB; this allows hundreds of recipients).
	maxHeader = 1 << 20
	macPrefix = "---"
)

// parsedHeader is an age header split into its text parts: each stanza's
// text exactly as stored, so kept stanzas are copied byte for byte.
type parsedHeader struct {
	raw     []byte   // the whole header, through the MAC line's newline
	stanzas [][]byte // each "-> ..." line with its body lines
}

// readHeader reads an age header from br, leaving br at the payload's
// first byte.
func readHeader(br *bufio.Reader) (*parsedHeader, error) {
	h := &parsedHeader{}
	var cur []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, errors.New("age header: line too long")
			}
			return nil, fmt.Errorf("age header: %w", err)
		}
		if len(h.raw)+len(line) > maxHeader {
			return nil, fmt.Errorf("age header: longer than %d bytes", maxHeader)
		}
		h.raw = append(h.raw, line...)
		switch {
		case len(h.raw) == len(line):
			if string(line) != versionLine {
				return nil, errors.New("not an age v1 file")
			}
		case bytes.HasPrefix(line, []byte("-> ")):
			if cur != nil {
				h.stanzas = append(h.stanzas, cur)
			}
			cur = append([]byte(nil), line...)
		case bytes.HasPrefix(line, []byte(macPrefix+" ")):
			if cur != nil {
				h.stanzas = append(h.stanzas, cur)
			}
			if len(h.stanzas) == 0 {
				return nil, errors.New("age header: no recipient stanza")
			}
			return h, nil
		default:
			if cur == nil {
				return nil, errors.New("age header: body line before any stanza")
			}
			cur = append(cur, line...)
		}
	}
}

// marshalStanza writes s as the header text of one stanza.
func marshalStanza(s *age.Stanza) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("-> " + s.Type)
	for _, a := range s.Args {
		if a == "" || strings.ContainsAny(a, " \n") {
			return nil, fmt.Errorf("age stanza %s: bad argument", s.Type)
		}
		b.WriteString(" " + a)
	}
	b.WriteByte('\n')
	body := base64.RawStdEncoding.EncodeToString(s.Body)
	for len(body) >= 64 {
		b.WriteString(body[:64] + "\n")
		body = body[64:]
	}
	b.WriteString(body + "\n") // the last line is shorter than 64 columns, maybe empty
	return b.Bytes(), nil
}

// header writes an age header holding stanzas, with the MAC under fileKey.
func header(fileKey []byte, stanzas [][]byte) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(versionLine)
	for _, s := range stanzas {
		b.Write(s)
	}
	b.WriteString(macPrefix)
	key, err := hkdf.Key(sha256.New, fileKey, nil, "header", sha256.Size)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(b.Bytes())
	b.WriteString(" " + base64.RawStdEncoding.EncodeToString(m.Sum(nil)) + "\n")
	return b.Bytes(), nil
}
