package restore

import (
	"encoding/binary"

	"redback/internal/rdb"
)

// Payload returns the DUMP payload of the key in rec as RESTORE takes it:
// the type byte, the value, the 2-byte RDB version footer and the CRC-64 of
// all three (the same bytes the pipelined restore writes in place).
func Payload(rec *rdb.Record, footer uint16) []byte {
	p := make([]byte, 0, len(rec.Value)+11)
	p = append(p, rec.Type.Wire())
	p = append(p, rec.Value...)
	p = binary.LittleEndian.AppendUint16(p, footer)
	return binary.LittleEndian.AppendUint64(p, rdb.CRC64(0, p))
}

// RestoreArgs is the RESTORE command for the key in rec (ABSTTL when it
// expires, IDLETIME or FREQ when the RDB had them, REPLACE when replace).
func RestoreArgs(rec *rdb.Record, footer uint16, replace bool) []any {
	ttl := int64(0)
	if rec.Expire > 0 {
		ttl = rec.Expire
	}
	args := []any{"RESTORE", rec.Key, ttl, Payload(rec, footer)}
	if ttl > 0 {
		args = append(args, "ABSTTL")
	}
	if rec.Idle >= 0 {
		args = append(args, "IDLETIME", rec.Idle)
	} else if rec.Freq >= 0 {
		args = append(args, "FREQ", rec.Freq)
	}
	if replace {
		args = append(args, "REPLACE")
	}
	return args
}
