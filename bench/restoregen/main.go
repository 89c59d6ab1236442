// Command restoregen reads an RDB file and writes the equivalent RESP
// commands for `redis-cli --pipe`: FUNCTION LOAD per library, SELECT per db,
// and RESTORE key ttl payload [ABSTTL] per key (keys already expired are
// left out), payloads taken from the RDB as they are. It is the "--pipe"
// baseline of bench/restore.sh.
//
// Usage: go run ./bench/restoregen dump.rdb > restore.resp
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"redback/internal/rdb"
	"redback/internal/resp"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: restoregen dump.rdb > commands.resp")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "restoregen:", err)
		os.Exit(1)
	}
}

func run(path string, w io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rd, err := rdb.NewReader(f, rdb.Options{})
	if err != nil {
		return err
	}
	out := bufio.NewWriterSize(w, 1<<20)
	now := time.Now().UnixMilli()
	db := -1
	var buf, payload []byte
	var keys int64
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		buf = buf[:0]
		switch rec.Kind {
		case rdb.RecordFunction:
			buf = resp.AppendCommand(buf, []byte("FUNCTION"), []byte("LOAD"), []byte("REPLACE"), rec.FunctionCode)
		case rdb.RecordKey:
			if rec.Expire >= 0 && rec.Expire <= now {
				continue
			}
			if rec.DB != db {
				db = rec.DB
				buf = resp.AppendCommand(buf, []byte("SELECT"), []byte(strconv.Itoa(db)))
			}
			payload = rdb.AppendDumpPayload(payload[:0], rec.Type, rec.Value, uint16(rd.Version()))
			if rec.Expire > 0 {
				buf = resp.AppendCommand(buf, []byte("RESTORE"), rec.Key, []byte(strconv.FormatInt(rec.Expire, 10)), payload, []byte("ABSTTL"))
			} else {
				buf = resp.AppendCommand(buf, []byte("RESTORE"), rec.Key, []byte("0"), payload)
			}
			keys++
		}
		if _, err := out.Write(buf); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "restoregen: %d RESTORE commands\n", keys)
	return out.Flush()
}
