package restore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"

	"redback/internal/rdb"
)

// Spool keeps the serialized bytes of one value too big to hold (one an
// rdb.Reader streams, rdb.Options.StreamValues) in an unlinked temporary
// file, so the value goes out as a RESTORE payload of known length read
// from the file, its CRC-64 computed as it is sent (or is decoded from it
// again when it must be converted to commands): memory holds a 1 MiB
// buffer, never the value. One file serves every such value in turn:
// Start waits until the restore that received the previous one is done
// with it.
//
// A reader on another goroutine than the restore (a cluster restore's
// router) gives the restore the spool with each Streamed record
// (Records.Spooled).
type Spool struct {
	f       *os.File
	w       *bufio.Writer
	n       int64  // bytes of the current value
	key     []byte // the current value's key, for errors
	version int    // the source's RDB version (to decode from the file)
	active  bool   // the current streamed key was spooled and not yet taken
	free    chan struct{}
}

// NewSpool returns a Spool for the values of an RDB of version (its
// temporary file is made by the first Start).
func NewSpool(version int) *Spool {
	s := &Spool{version: version, free: make(chan struct{}, 1)}
	s.free <- struct{}{}
	return s
}

// Start begins spooling the value of rec (an Options.StreamValues
// callback returns what it returns), once the value before it was
// released; ctx bounds that wait.
func (s *Spool) Start(ctx context.Context, rec *rdb.Record) (*rdb.Visitor, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case <-s.free:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.key = append(s.key[:0], rec.Key...)
	if err := s.reset(); err != nil {
		s.free <- struct{}{}
		return nil, err
	}
	s.n, s.active = 0, true
	return &rdb.Visitor{Raw: s.write}, nil
}

// reset makes the file empty (made by the first call).
func (s *Spool) reset() error {
	if s.f == nil {
		f, err := os.CreateTemp("", "redback-restore-value-*")
		if err != nil {
			return fmt.Errorf("key %q: a temporary file for a value too big to hold: %w", s.key, err)
		}
		_ = os.Remove(f.Name()) // unlinked: gone with the process
		s.f, s.w = f, bufio.NewWriterSize(f, 1<<20)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return s.ioErr(err)
	}
	if err := s.f.Truncate(0); err != nil {
		return s.ioErr(err)
	}
	s.w.Reset(s.f)
	return nil
}

func (s *Spool) write(b []byte) error {
	s.n += int64(len(b))
	if _, err := s.w.Write(b); err != nil {
		return s.ioErr(err)
	}
	return nil
}

func (s *Spool) ioErr(err error) error {
	return fmt.Errorf("key %q: spooling a value too big to hold to a temporary file: %w", s.key, err)
}

// take returns the spool if it holds rec's value and no one took it yet,
// else nil. The taker calls Release once done with the value.
func (s *Spool) take(rec *rdb.Record) *Spool {
	if s == nil || !s.active || !bytes.Equal(s.key, rec.Key) {
		return nil
	}
	s.active = false
	return s
}

// Release says the value spooled last is used (sent, or not needed): Start
// may spool the next one. Whoever has the Streamed record calls it once.
func (s *Spool) Release() { s.active = false; s.free <- struct{}{} }

// Size is the length of the value spooled.
func (s *Spool) Size() int64 { return s.n }

// end makes the value written so far readable: it returns it as a reader
// of s.n bytes.
func (s *Spool) end() (*io.SectionReader, error) {
	if err := s.w.Flush(); err != nil {
		return nil, s.ioErr(err)
	}
	return io.NewSectionReader(s.f, 0, s.n), nil
}

// decode walks the spooled value of rec (type and key as read) with v,
// as rdb.Decode walks a value in memory: it reads it back through an
// rdb.Reader that streams it again, so memory stays bounded.
func (s *Spool) decode(rec *rdb.Record, v *rdb.Visitor) error {
	body, err := s.end()
	if err != nil {
		return err
	}
	// A file of this one key: the header (its first 9 bytes), the type
	// byte, the key, the value, the EOF.
	var empty bytes.Buffer
	w, err := rdb.NewWriter(&empty, s.version)
	if err == nil {
		err = w.Close()
	}
	if err != nil {
		return err
	}
	head := append(empty.Bytes()[:9:9], rec.Type.Wire())
	head = rdb.AppendString(head, rec.Key)
	trailer := []byte{0xFF} // EOF; RDB >= 5: a zero CRC-64, "not computed"
	if s.version >= 5 {
		trailer = append(trailer, make([]byte, 8)...)
	}
	rd, err := rdb.NewReader(io.MultiReader(bytes.NewReader(head), body, bytes.NewReader(trailer)), rdb.Options{
		MaxValueBytes: s.n + 1<<20, // the value passed the limit once
		StreamStrings: true,
		StreamValues:  func(*rdb.Record) (*rdb.Visitor, error) { return v, nil },
	})
	if err != nil {
		return err
	}
	for {
		r, err := rd.Next()
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return fmt.Errorf("the value read back from its temporary file: %w", err)
		case r.Kind == rdb.RecordKey && !r.Streamed:
			// Small enough to come whole after all.
			if err := rdb.Decode(r.Type, r.Value, v); err != nil {
				return err
			}
		}
	}
}

// Close removes the file: call it once no restore reads the value any
// more.
func (s *Spool) Close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

// sendSpooled writes the spooled value body to w, then its payload's end
// (appendPayloadEnd), its CRC-64 computed as the bytes go by from crc, the
// CRC of the payload's prefix.
func sendSpooled(w io.Writer, body io.Reader, crc uint64, footer uint16) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			crc = rdb.CRC64(crc, buf[:n])
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading a spooled value back from its temporary file: %w", err)
		}
	}
	_, err := w.Write(appendPayloadEnd(nil, crc, footer))
	return err
}
