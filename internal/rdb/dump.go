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
// its type byte, value bytes and version. A payload of Redis 8.6 (version
// 13 and up) may start with key metadata (the KEY_META opcode, then its
// body: see Record.Meta); it is returned as meta, nil when absent. It does
// not check the value; use Decode for that.
func ParseDumpPayload(p []byte) (t Type, meta, raw []byte, version uint16, err error) {
	if len(p) < 11 {
		return 0, nil, nil, 0, &FormatError{Offset: 0, Err: truncAt(0, 11, len(p)).(*posError).err}
	}
	n := len(p) - 8
	stored := binary.LittleEndian.Uint64(p[n:])
	if c := CRC64(0, p[:n]); c != stored {
		return 0, nil, nil, 0, &FormatError{Offset: int64(n), Err: checksumErr(stored, c)}
	}
	version = binary.LittleEndian.Uint16(p[n-2:])
	body := p[:n-2]
	m, err := payloadMeta(body, version)
	if err != nil {
		return 0, nil, nil, 0, err
	}
	if m > 0 {
		meta, body = body[1:m], body[m:]
	}
	if len(body) == 0 {
		return 0, nil, nil, 0, &FormatError{Offset: int64(m), Err: truncAt(m, 1, 0).(*posError).err}
	}
	t, _ = TypeOf(body[0], ValkeyNumbering(int(version)))
	return t, meta, body[1:], version, nil
}

// payloadMeta returns the length of the KEY_META opcode and body at the
// start of a payload body (type byte, value) of DUMP version v, 0 when
// there is none.
func payloadMeta(body []byte, v uint16) (int, error) {
	if len(body) == 0 || body[0] != opKeyMeta || ValkeyNumbering(int(v)) {
		return 0, nil
	}
	var d decoder
	d.b, d.p = body, 1
	n, err := d.count("key metadata class count", 5)
	if err == nil {
		for range n {
			if _, err = d.fixed(4); err != nil {
				break
			}
			if err = d.moduleTags(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return 0, toFormatError(err, 0, nil, 0)
	}
	return d.p, nil
}

// AppendMetaPayload is AppendDumpPayload for a key with key metadata
// (Record.Meta): the KEY_META opcode and meta come before the type byte.
// Only servers reading DUMP version 13 and up (Redis 8.6) load it.
func AppendMetaPayload(dst []byte, meta []byte, t Type, raw []byte, version uint16) []byte {
	if len(meta) == 0 {
		return AppendDumpPayload(dst, t, raw, version)
	}
	start := len(dst)
	dst = append(dst, opKeyMeta)
	dst = append(dst, meta...)
	dst = append(dst, t.Wire())
	dst = append(dst, raw...)
	dst = binary.LittleEndian.AppendUint16(dst, version)
	return binary.LittleEndian.AppendUint64(dst, CRC64(0, dst[start:]))
}

// SplitPayload returns the Type, the key metadata (nil when absent) and
// the value bytes of a DUMP payload of at least 11 bytes whose CRC the
// server vouched for (a DUMP reply); ok is false when its start is not a
// type byte or well-formed key metadata.
func SplitPayload(p []byte) (t Type, meta, raw []byte, ok bool) {
	v := binary.LittleEndian.Uint16(p[len(p)-10:])
	body := p[:len(p)-10]
	m, err := payloadMeta(body, v)
	if err != nil || m >= len(body) {
		return 0, nil, nil, false
	}
	if m > 0 {
		meta = body[1:m]
	}
	t, ok = TypeOf(body[m], ValkeyNumbering(int(v)))
	return t, meta, body[m+1:], ok
}

// PayloadType is the Type of a DUMP payload of at least 11 bytes, its type
// byte read in the numbering its footer version says (Valkey's from 80),
// after the key metadata when there is some.
func PayloadType(p []byte) Type {
	t, _, _, _ := SplitPayload(p)
	return t
}
