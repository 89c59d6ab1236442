package rdb

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"strconv"
	"sync"
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

// The Fanout's batches stay small whatever the values: a value of 1 MiB
// or more is handed to a worker uncopied, so 40 values of 3 MiB allocate
// the batches' first arenas and nothing per value (before, each of the
// 2×workers+1 batches grew an arena to hold one: 15 MiB more). Measured as
// bytes allocated, which does not depend on timing.
func TestFanout_BoundedMemory(t *testing.T) {
	val := bytes.Repeat([]byte("v"), 3<<20)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	var seen, bytesSeen int
	var mu sync.Mutex
	fan := NewFanout(context.Background(), 2, func(w int, recs []Record) error {
		mu.Lock()
		defer mu.Unlock()
		for i := range recs {
			seen++
			bytesSeen += len(recs[i].Value)
		}
		return nil
	})
	var err error
	for i := range 40 {
		rec := Record{Kind: RecordKey, Type: TypeString, Key: []byte("k" + strconv.Itoa(i)), Value: val}
		if i%2 == 1 {
			rec.Value = val[:100] // small ones between them are copied into a batch
		}
		if err = fan.Add(&rec); err != nil {
			break
		}
	}
	if err := fan.Wait(err); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms)
	alloc := ms.TotalAlloc - before
	if seen != 40 || bytesSeen != 20*(len(val)+100) {
		t.Fatalf("%d records, %d bytes seen", seen, bytesSeen)
	}
	t.Logf("40 records (20 of 3 MiB): %.2f MiB allocated", float64(alloc)/(1<<20))
	if limit := uint64(5*fanoutBatchBytes + 1<<20); alloc > limit {
		t.Errorf("%.2f MiB allocated by the Fanout, want at most %.2f MiB", float64(alloc)/(1<<20), float64(limit)/(1<<20))
	}
}
