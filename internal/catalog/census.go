package catalog

import (
	"bytes"
	"sort"

	"redback/internal/rdb"
)

// Counter builds a Census from RDB records as they stream by.
type Counter struct {
	c   Census
	dbs map[int]*DBCount
	now int64 // unix ms used to decide "already expired"
}

// NewCounter starts an empty census; keys whose expire is before nowMs count
// as already expired.
func NewCounter(nowMs int64) *Counter {
	return &Counter{c: Census{Types: map[string]int64{}}, dbs: map[int]*DBCount{}, now: nowMs}
}

// Add accounts for one record.
func (k *Counter) Add(rec *rdb.Record) {
	switch rec.Kind {
	case rdb.RecordFunction:
		k.c.Functions = append(k.c.Functions, LibraryName(rec.FunctionCode))
	case rdb.RecordKey:
		d := k.dbs[rec.DB]
		if d == nil {
			d = &DBCount{DB: rec.DB, Types: map[string]int64{}}
			k.dbs[rec.DB] = d
		}
		kind, _ := rdb.KindOf(rec.Type)
		name := kind.String()
		d.Keys++
		d.Types[name]++
		k.c.Keys++
		k.c.Types[name]++
		if rec.Expire >= 0 {
			d.Expires++
			k.c.Expires++
			if rec.Expire < k.now {
				k.c.AlreadyExpired++
			}
		}
		if kind == rdb.KindModule {
			if k.c.Modules == nil {
				k.c.Modules = map[string]int64{}
			}
			k.c.Modules[rec.Module]++
		}
	}
}

// Census returns the totals so far, dbs in ascending order.
func (k *Counter) Census() Census {
	c := k.c
	c.DBs = c.DBs[:0:0]
	for _, d := range k.dbs {
		c.DBs = append(c.DBs, *d)
	}
	sort.Slice(c.DBs, func(i, j int) bool { return c.DBs[i].DB < c.DBs[j].DB })
	return c
}

// LibraryName extracts NAME from a function library's "#!lua name=NAME"
// first line, or returns "?" when there is none.
func LibraryName(code []byte) string {
	line := code
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	// As Redis reads it (functionExtractLibMetaData): the first line is
	// "#!<engine> key=value ...", the engine first.
	rest, ok := bytes.CutPrefix(line, []byte("#!"))
	if !ok {
		return "?"
	}
	fields := bytes.Fields(rest)
	if len(fields) == 0 {
		return "?"
	}
	for _, f := range fields[1:] {
		if name, ok := bytes.CutPrefix(f, []byte("name=")); ok && len(name) > 0 {
			return string(name)
		}
	}
	return "?"
}
