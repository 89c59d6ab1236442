// Command bigdata writes the ten-times dataset of bench/dataset10.sh: the
// keys of an RDB copied N times (copy i's db d becomes db d+i), then, in db
// N, a string of -string MiB of pseudo-random bytes, a list of -list
// elements and a hash of -hash fields (plain RDB types 0, 1 and 4; the
// server re-encodes them when it loads and SAVEs the file).
//
// Usage: go run ./bench/bigdata [-copies 10] dump.rdb > big.rdb
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"

	"redback/internal/rdb"
)

func main() {
	copies := flag.Int("copies", 10, "copies of the input's keys")
	strMiB := flag.Int("string", 512, "MiB of the big string")
	listN := flag.Int("list", 10_000_000, "elements of the big list")
	hashN := flag.Int("hash", 5_000_000, "fields of the big hash")
	flag.Parse()
	if flag.NArg() != 1 || *copies < 1 || *copies > 15 {
		fmt.Fprintln(os.Stderr, "usage: bigdata [-copies 1..15] dump.rdb > big.rdb")
		os.Exit(2)
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	if err := run(flag.Arg(0), out, *copies, *strMiB, *listN, *hashN); err != nil {
		fmt.Fprintln(os.Stderr, "bigdata:", err)
		os.Exit(1)
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "bigdata:", err)
		os.Exit(1)
	}
}

func run(path string, out io.Writer, copies, strMiB, listN, hashN int) error {
	var w *rdb.Writer
	db := -1
	selectDB := func(d int) error {
		if d == db {
			return nil
		}
		db = d
		return w.SelectDB(d)
	}
	for i := range copies {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		rd, err := rdb.NewReader(bufio.NewReaderSize(f, 1<<20), rdb.Options{SkipValueCheck: true})
		if err != nil {
			f.Close()
			return err
		}
		if w == nil {
			if w, err = rdb.NewWriter(out, rd.Version()); err != nil {
				f.Close()
				return err
			}
		}
		for {
			rec, err := rd.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				f.Close()
				return err
			}
			switch {
			case rec.Kind == rdb.RecordAux && i == 0:
				err = w.WriteAux(rec.AuxKey, rec.AuxValue)
			case rec.Kind == rdb.RecordFunction && i == 0:
				err = w.WriteFunction(rec.FunctionCode)
			case rec.Kind == rdb.RecordKey:
				if err = selectDB(rec.DB + i); err == nil {
					err = w.WriteKey(rec.Key, rec.Type, rec.Value, rec.Expire, -1, -1)
				}
			}
			if err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	if err := selectDB(copies); err != nil {
		return err
	}
	rnd := rand.New(rand.NewChaCha8([32]byte{17}))
	big := make([]byte, strMiB<<20)
	for i := 0; i+8 <= len(big); i += 8 {
		v := rnd.Uint64()
		for j := range 8 {
			big[i+j] = byte(v >> (8 * j))
		}
	}
	if err := w.WriteKey([]byte("big:string"), rdb.TypeString, rdb.AppendRawString(nil, big), -1, -1, -1); err != nil {
		return err
	}
	big = nil
	v := rdb.AppendLen(nil, uint64(listN))
	for i := range listN {
		v = rdb.AppendRawString(v, []byte("element:"+strconv.Itoa(i)))
	}
	if err := w.WriteKey([]byte("big:list"), rdb.TypeList, v, -1, -1, -1); err != nil {
		return err
	}
	v = rdb.AppendLen(v[:0], uint64(hashN))
	for i := range hashN {
		v = rdb.AppendRawString(v, []byte("field:"+strconv.Itoa(i)))
		v = rdb.AppendRawString(v, []byte("value:"+strconv.Itoa(i*7)))
	}
	if err := w.WriteKey([]byte("big:hash"), rdb.TypeHash, v, -1, -1, -1); err != nil {
		return err
	}
	return w.Close()
}
