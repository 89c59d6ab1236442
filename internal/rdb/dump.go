package rdb

import "encoding/binary"

// DumpPayload returns the DUMP/RESTORE payload for a value: type byte, raw
// value bytes, the 2-byte little-endian RDB version, then the CRC-64 of all
// that, little-endian.
func DumpPayload(t Type, raw []byte, version uint16) []byte {
	return AppendDumpPayload(make([]byte, 0, len(raw)+11), t, raw, version)
}

// AppendDumpPayload is DumpPayload appending to dst.
func AppendDumpPayload(dst []byte, t Type, raw []byte, version uint16) []byte {
	start := len(dst)
	dst = append(dst, t.Wire())
	dst = append(dst, raw...)
	dst = binary.LittleEndian.AppendUint16(dst, version)
	return binary.LittleEndian.AppendUint64(dst, CRC64(0, dst[start:]))
}

// ParseDumpPayload checks a DUMP payload's footer (length, CRC) and returns
// its type byte, value bytes and version. It does not check the value; use
// Decode for that.
func ParseDumpPayload(p []byte) (t Type, raw []byte, version uint16, err error) {
	if len(p) < 11 {
		return 0, nil, 0, &FormatError{Offset: 0, Err: truncAt(0, 11, len(p)).(*posError).err}
	}
	n := len(p) - 8
	stored := binary.LittleEndian.Uint64(p[n:])
	if c := CRC64(0, p[:n]); c != stored {
		return 0, nil, 0, &FormatError{Offset: int64(n), Err: checksumErr(stored, c)}
	}
	version = binary.LittleEndian.Uint16(p[n-2:])
	t, _ = TypeOf(p[0], ValkeyNumbering(int(version)))
	return t, p[1 : n-2], version, nil
}

// PayloadType is the Type of a DUMP payload of at least 11 bytes, its type
// byte read in the numbering its footer version says (Valkey's from 80).
func PayloadType(p []byte) Type {
	v := binary.LittleEndian.Uint16(p[len(p)-10:])
	t, _ := TypeOf(p[0], ValkeyNumbering(int(v)))
	return t
}
