package rdb

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strconv"
	"testing"
)

// A big string is held once: the Reader makes room for it in one step
// (not by doubling its buffer as it arrives) and the Fanout hands it to a
// worker without a copy. Measured as bytes allocated while reading, which
// does not depend on timing: doubling alone allocated about 4× the value.
func TestBigValueAllocatedOnce(t *testing.T) {
	const size = 64 << 20
	var file bytes.Buffer
	w, err := NewWriter(&file, 10)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.SelectDB(0)
	for i := range 1000 {
		_ = w.WriteKey([]byte("small"+strconv.Itoa(i)), TypeString, EncodeString([]byte("v"+strconv.Itoa(i))), -1, -1, -1)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	_ = w.WriteKey([]byte("big"), TypeString, AppendRawString(nil, big), -1, -1, -1)
	for i := range 1000 {
		_ = w.WriteKey([]byte("after"+strconv.Itoa(i)), TypeString, EncodeString([]byte("v")), -1, -1, -1)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	big = nil
	data := file.Bytes()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rd, err := NewReader(bytes.NewReader(data), Options{SkipValueCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	var keys int
	check := CheckValues(2)
	fan := NewFanout(context.Background(), 2, func(w int, recs []Record) error {
		for i := range recs {
			if len(recs[i].Value) > size && !bytes.HasSuffix(recs[i].Value, []byte("0123456789abcdef")) {
				t.Error("the big value's bytes changed")
			}
		}
		return check(w, recs)
	})
	var readErr error
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		if rec.Kind == RecordKey {
			keys++
			if readErr = fan.Add(rec); readErr != nil {
				break
			}
		}
	}
	if err := fan.Wait(readErr); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if keys != 2001 {
		t.Fatalf("%d keys, want 2001", keys)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d MiB value: %.1f MiB allocated while reading", size>>20, float64(alloc)/(1<<20))
	if alloc > size*3/2 {
		t.Errorf("%.1f MiB allocated for a %d MiB value: want it held once", float64(alloc)/(1<<20), size>>20)
	}
}
