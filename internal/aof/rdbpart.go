package aof

import (
	"errors"
	"io"

	"redback/internal/rdb"
)

// rdbPreambleEnd validates the RDB at the start of r (every record and
// the CRC-64 trailer) and returns the offset just after it, where the RESP
// tail starts. All RDB handling of this package goes through here.
func rdbPreambleEnd(r io.Reader) (int64, error) {
	rd, err := rdb.NewReader(r, rdb.Options{})
	if err != nil {
		return 0, err
	}
	for {
		_, err := rd.Next()
		if err == io.EOF {
			return rd.Offset(), nil
		}
		if err != nil {
			return rd.Offset(), err
		}
	}
}

// rdbErrOffset is the offset of an RDB error (the FormatError's, else the
// reader's position).
func rdbErrOffset(err error, pos int64) int64 {
	var fe *rdb.FormatError
	if errors.As(err, &fe) {
		return fe.Offset
	}
	return pos
}
