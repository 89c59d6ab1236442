package pitr

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"redback/internal/resp"
)

func TestSegReader(t *testing.T) {
	big := bytes.Repeat([]byte{'x'}, 3<<20) // read in several chunks
	var in []byte
	in = resp.AppendCommandString(in, "SELECT", "0")
	in = append(in, "#TS:1795520462\r\n"...)
	in = resp.AppendCommand(in, []byte("SET"), []byte("k"), big)
	in = resp.AppendCommandString(in, "DEL", "k")
	r := &segReader{br: bufio.NewReader(bytes.NewReader(in))}
	var got []string
	var pos int64
	for {
		ann, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.raw, in[pos:pos+int64(len(r.raw))]) {
			t.Fatalf("raw bytes at %d differ", pos)
		}
		pos = r.off
		if ann {
			got = append(got, "#")
			continue
		}
		got = append(got, string(r.args[0])+":"+string(rune('0'+len(r.args))))
	}
	if strings.Join(got, " ") != "SELECT:2 # SET:3 DEL:2" || pos != int64(len(in)) {
		t.Errorf("got %v at %d", got, pos)
	}

	for name, bad := range map[string]string{
		"hostile length": "*1\r\n$4000000000\r\nabc",
		"truncated":      "*2\r\n$3\r\nSET\r\n$5\r\nab",
		"no crlf":        "*1\r\n$3\r\nSETxx",
		"not resp":       "SET a b\r\n",
		"zero args":      "*0\r\n",
		"long line":      "#" + strings.Repeat("a", 2000) + "\r\n",
		"too many args":  "*99999999\r\n",
	} {
		r := &segReader{br: bufio.NewReaderSize(strings.NewReader(bad), 4096)}
		if _, err := r.next(); err == nil || err == io.EOF {
			t.Errorf("%s: %v", name, err)
		}
	}
}
