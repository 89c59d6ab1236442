package restore

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"redback/internal/rdb"
)

// spool keeps the serialized bytes of one value too big to hold (one the
// Reader streams, rdb.Options.StreamValues) in an unlinked temporary
// file, with the CRC-64 of the DUMP payload they start, so the value goes
// out as a RESTORE payload of known length read from the file (or is
// decoded from it again when it must be converted to commands): memory
// holds a 1 MiB buffer, never the value. One file serves every such value
// in turn, each written once the previous one was sent.
type spool struct {
	f       *os.File
	w       *bufio.Writer
	n       int64  // bytes of the current value
	crc     uint64 // CRC-64 of the payload's prefix and the value so far
	prefix  []byte // the payload before the value: KEY_META, the type byte
	key     []byte // the current value's key, for errors
	version int    // the source's RDB version (to decode from the file)
	active  bool   // the current streamed key was spooled
}

// start begins the value of rec: its payload starts with prefix.
func (s *spool) start(rec *rdb.Record, prefix []byte) (*rdb.Visitor, error) {
	if s.f == nil {
		f, err := os.CreateTemp("", "redback-restore-value-*")
		if err != nil {
			return nil, fmt.Errorf("key %q: a temporary file for a value too big to hold: %w", rec.Key, err)
		}
		_ = os.Remove(f.Name()) // unlinked: gone with the process
		s.f, s.w = f, bufio.NewWriterSize(f, 1<<20)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, s.ioErr(err)
	}
	if err := s.f.Truncate(0); err != nil {
		return nil, s.ioErr(err)
	}
	s.w.Reset(s.f)
	s.n, s.active = 0, true
	s.prefix = append(s.prefix[:0], prefix...)
	s.key = append(s.key[:0], rec.Key...)
	s.crc = rdb.CRC64(0, prefix)
	return &rdb.Visitor{Raw: s.write}, nil
}

func (s *spool) write(b []byte) error {
	s.crc = rdb.CRC64(s.crc, b)
	s.n += int64(len(b))
	if _, err := s.w.Write(b); err != nil {
		return s.ioErr(err)
	}
	return nil
}

func (s *spool) ioErr(err error) error {
	return fmt.Errorf("key %q: spooling a value too big to hold to a temporary file: %w", s.key, err)
}

// end makes the value written so far readable: it returns it as a reader
// of s.n bytes.
func (s *spool) end() (*io.SectionReader, error) {
	if err := s.w.Flush(); err != nil {
		return nil, s.ioErr(err)
	}
	return io.NewSectionReader(s.f, 0, s.n), nil
}

// decode walks the spooled value of rec (type and key as read) with v,
// as rdb.Decode walks a value in memory: it reads it back through an
// rdb.Reader that streams it again, so memory stays bounded.
func (s *spool) decode(rec *rdb.Record, v *rdb.Visitor) error {
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

// close removes the file.
func (s *spool) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}
