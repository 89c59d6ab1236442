package restore

import (
	"context"
	"encoding/binary"
	"time"

	"redback/internal/rdb"
	"redback/internal/redisurl"
	"redback/internal/resp"
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

// RestoreSpooled writes the key of rec, its value spooled in sp (as
// RestoreArgs would write it whole), into the server at u with one
// RESTORE command on a connection of its own: the payload is read from
// the spool's file and its CRC-64 computed as it is sent, so memory holds
// no value. With asking, ASKING goes first (a cluster node importing the
// key's slot answered another with ASK). The server's error reply comes
// back as a resp.Error; timeout bounds the dial, the write and the reply.
func RestoreSpooled(ctx context.Context, u *redisurl.URL, rec *rdb.Record, sp *Spool, footer uint16, replace, asking bool, timeout time.Duration) error {
	body, err := sp.end()
	if err != nil {
		return err
	}
	c, err := dial(ctx, u, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	bw := c.Writer()
	var head []byte
	if asking {
		head = resp.AppendCommandString(head, "ASKING")
	}
	head = appendRestoreHead(head, rec, body.Size()+11, replace)
	pre := len(head)
	head = dumpPrefix(head, nil, rec.Type)
	if _, err := bw.Write(head); err != nil {
		return err
	}
	if err := sendSpooled(bw, body, rdb.CRC64(0, head[pre:]), footer); err != nil {
		return err
	}
	if _, err := bw.Write(appendRestoreOptions(nil, rec, replace)); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	rd := c.Reader()
	if asking {
		if _, err := rd.ReadValue(); err != nil {
			return err
		}
	}
	_, err = rd.ReadValue()
	return err
}
