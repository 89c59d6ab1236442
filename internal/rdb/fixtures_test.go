package rdb

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.rdb fixtures")

func bs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// streamEntry is one entry for buildStreamNode.
type streamEntry struct {
	id      StreamID
	deleted bool
	fields  []string // f1 v1 f2 v2 ...
}

// buildStreamNode builds a node listpack with master fields taken from
// the first entry, using SAMEFIELDS where the fields match.
func buildStreamNode(master StreamID, ents []streamEntry) []byte {
	var mf []string
	for i := 0; i < len(ents[0].fields); i += 2 {
		mf = append(mf, ents[0].fields[i])
	}
	live, del := 0, 0
	for _, e := range ents {
		if e.deleted {
			del++
		} else {
			live++
		}
	}
	it := func(v int64) string { return strconv.FormatInt(v, 10) }
	lp := []string{it(int64(live)), it(int64(del)), it(int64(len(mf)))}
	lp = append(lp, mf...)
	lp = append(lp, "0")
	for _, e := range ents {
		same := len(e.fields) == 2*len(mf)
		for i := 0; same && i < len(mf); i++ {
			same = e.fields[2*i] == mf[i]
		}
		flags := int64(0)
		if e.deleted {
			flags |= streamFlagDeleted
		}
		if same {
			flags |= streamFlagSameFields
		}
		lp = append(lp, it(flags), it(int64(e.id.Ms-master.Ms)), it(int64(e.id.Seq-master.Seq)))
		if same {
			for i := 1; i < len(e.fields); i += 2 {
				lp = append(lp, e.fields[i])
			}
			lp = append(lp, it(int64(len(mf))+3))
		} else {
			lp = append(lp, it(int64(len(e.fields)/2)))
			lp = append(lp, e.fields...)
			lp = append(lp, it(int64(len(e.fields))+4))
		}
	}
	return BuildListpack(bs(lp...))
}

// buildStream builds a stream value of type t with one node and one group
// "g1" whose PEL holds the first entry, owned by consumer "alice"; consumer
// "bob" has an empty PEL.
func buildStream(t Type, ents []streamEntry, info StreamInfo) []byte {
	master := ents[0].id
	var key [16]byte
	for i := range 8 {
		key[i] = byte(master.Ms >> (56 - 8*i))
		key[8+i] = byte(master.Seq >> (56 - 8*i))
	}
	b := AppendLen(nil, 1)
	b = AppendRawString(b, key[:])
	b = AppendRawString(b, buildStreamNode(master, ents))
	b = AppendLen(b, info.Length)
	b = AppendLen(AppendLen(b, info.LastID.Ms), info.LastID.Seq)
	if t != TypeStreamListpacks {
		b = AppendLen(AppendLen(b, info.FirstID.Ms), info.FirstID.Seq)
		b = AppendLen(AppendLen(b, info.MaxDeletedID.Ms), info.MaxDeletedID.Seq)
		b = AppendLen(b, info.EntriesAdded)
	}
	b = AppendLen(b, 1)
	b = AppendRawString(b, []byte("g1"))
	b = AppendLen(AppendLen(b, info.LastID.Ms), info.LastID.Seq)
	if t != TypeStreamListpacks {
		b = AppendLen(b, math.MaxUint64) // entries_read -1
	}
	id := key // first entry is the master id
	b = AppendLen(b, 1)
	b = append(b, id[:]...)
	b = append(b, 0x10, 0, 0, 0, 0, 0, 0, 0) // delivery time 16
	b = AppendLen(b, 3)
	b = AppendLen(b, 2)
	b = AppendRawString(b, []byte("alice"))
	b = append(b, 100, 0, 0, 0, 0, 0, 0, 0)
	if t >= TypeStreamListpacks3 {
		b = append(b, 200, 0, 0, 0, 0, 0, 0, 0)
	}
	b = AppendLen(b, 1)
	b = append(b, id[:]...)
	b = AppendRawString(b, []byte("bob"))
	b = append(b, 101, 0, 0, 0, 0, 0, 0, 0)
	if t >= TypeStreamListpacks3 {
		b = append(b, 201, 0, 0, 0, 0, 0, 0, 0)
	}
	b = AppendLen(b, 0)
	if t == TypeStreamListpacks4 {
		// IDMP: duration 200, max entries 50, producer "p1" with IID
		// "i1" -> 1-1, iids added 3, duplicates 1.
		b = AppendLen(AppendLen(b, 200), 50)
		b = AppendLen(b, 1)
		b = AppendRawString(b, []byte("p1"))
		b = AppendLen(b, 1)
		b = AppendRawString(b, []byte("i1"))
		b = AppendLen(AppendLen(b, 1), 1)
		b = AppendLen(AppendLen(b, 3), 1)
	}
	return b
}

var testEntries = []streamEntry{
	{id: StreamID{1, 1}, fields: []string{"f1", "v1", "f2", "v2"}},
	{id: StreamID{1, 2}, deleted: true, fields: []string{"f1", "x", "f2", "y"}},
	{id: StreamID{2, 0}, fields: []string{"other", "-7"}},
}

var testStreamInfo = StreamInfo{Length: 2, LastID: StreamID{2, 0}, FirstID: StreamID{1, 1}, MaxDeletedID: StreamID{1, 2}, EntriesAdded: 3}

// fixture is an RDB file built byte by byte, and what reading it must give.
type fixture struct {
	name     string
	version  int
	noCRC    bool
	build    func(w *Writer) error
	checksum ChecksumStatus
	want     []string
}

func fixtures() []fixture {
	modID, _ := ModuleID("testmod-A", 3)
	modBody := AppendModuleTag(nil, moduleOpUInt, 42, nil)
	modBody = AppendModuleTag(modBody, moduleOpSInt, 7, nil)
	modBody = AppendModuleTag(modBody, moduleOpFloat, uint64(math.Float32bits(1.5)), nil)
	modBody = AppendModuleTag(modBody, moduleOpDouble, math.Float64bits(2.5), nil)
	modBody = AppendModuleTag(modBody, moduleOpString, 0, []byte("payload"))
	modBody = AppendModuleTag(modBody, moduleOpEOF, 0, nil)
	q14 := AppendLen(nil, 2)
	q14 = AppendRawString(q14, BuildZiplist(bs("a", "b", "300")))
	q14 = AppendLZFString(q14, BuildZiplist(bs(strings.Repeat("c", 40), "-2")))
	q18 := AppendLen(nil, 3)
	q18 = AppendLen(q18, 2)
	q18 = AppendRawString(q18, BuildListpack(bs("a", "1", "-4000")))
	q18 = AppendLen(q18, 1)
	q18 = AppendRawString(q18, []byte("plain element"))
	q18 = AppendLen(q18, 2)
	q18 = AppendLZFString(q18, BuildListpack(bs("z", "70000", "-9000000000")))
	h22 := AppendLen(nil, 2)
	h22 = AppendLen(h22, 1700000000000)
	h22 = AppendString(AppendString(h22, []byte("a")), []byte("1"))
	h22 = AppendLen(h22, 0)
	h22 = AppendString(AppendString(h22, []byte("b")), []byte("2"))
	h24 := binaryLE(1700000000000)
	h24 = AppendLen(h24, 3)
	h24 = AppendLen(h24, 1)
	h24 = AppendString(AppendString(h24, []byte("a")), []byte("1"))
	h24 = AppendLen(h24, 5001)
	h24 = AppendString(AppendString(h24, []byte("b")), []byte("2"))
	h24 = AppendLen(h24, 0)
	h24 = AppendString(AppendString(h24, []byte("c")), []byte("3"))
	h25 := append(binaryLE(1700000000000), EncodeBlob(BuildListpack(bs("a", "1", "1700000000000", "b", "2", "0")))...)
	fnPreGA := []byte{opFunctionPreGA}
	fnPreGA = AppendRawString(fnPreGA, []byte("oldlib"))
	fnPreGA = AppendRawString(fnPreGA, []byte("LUA"))
	fnPreGA = AppendLen(fnPreGA, 1)
	fnPreGA = AppendRawString(fnPreGA, []byte("desc"))
	fnPreGA = AppendRawString(fnPreGA, []byte("return 1"))

	return []fixture{
		{name: "v2", version: 2, checksum: ChecksumAbsent, build: func(w *Writer) error {
			w.SelectDB(0)
			w.WriteKey([]byte("s"), TypeString, EncodeString([]byte("hello")), 1300000000000, -1, -1)
			w.WriteKey([]byte("l"), TypeList, EncodeList(bs("a", "12", "b")), -1, -1, -1)
			w.WriteKey([]byte("set"), TypeSet, EncodeSet(bs("x", "y")), -1, -1, -1)
			w.WriteKey([]byte("z"), TypeZSet, EncodeZSet(bs("a", "b", "c", "d"), []float64{1.5, math.Inf(1), math.Inf(-1), -2}), -1, -1, -1)
			w.WriteKey([]byte("h"), TypeHash, EncodeHash(bs("f", "v", "n", "-5")), -1, -1, -1)
			w.SelectDB(3)
			return w.WriteKey([]byte("7"), TypeString, EncodeString([]byte("-300")), -1, -1, -1)
		}, want: []string{
			"selectdb 0",
			"key db=0 \"s\" type=0 exp=1300000000000", "  hello",
			"key db=0 \"l\" type=1", "  a", "  12", "  b",
			"key db=0 \"set\" type=2", "  x", "  y",
			"key db=0 \"z\" type=3", "  a=1.5", "  b=+Inf", "  c=-Inf", "  d=-2",
			"key db=0 \"h\" type=4", "  f=v", "  n=-5",
			"selectdb 3",
			"key db=3 \"7\" type=0", "  -300",
		}},
		{name: "v6", version: 6, checksum: ChecksumOK, build: func(w *Writer) error {
			w.SelectDB(0)
			w.WriteKey([]byte("zm"), TypeHashZipmap, EncodeBlob(BuildZipmap(bs("f1", "v1", "long", strings.Repeat("v", 300)))), 1400000000123, -1, -1)
			w.WriteKey([]byte("zl"), TypeListZiplist, EncodeBlob(BuildZiplist(bs("a", "5", "-100", "70000", "5000000000", "b"))), -1, -1, -1)
			w.WriteKey([]byte("is"), TypeSetIntset, EncodeBlob(BuildIntset([]int64{-5, 3, 70000})), -1, -1, -1)
			w.WriteKey([]byte("zz"), TypeZSetZiplist, EncodeBlob(BuildZiplist(bs("m1", "1", "m2", "2.5"))), -1, -1, -1)
			w.WriteKey([]byte("hz"), TypeHashZiplist, EncodeBlob(BuildZiplist(bs("f", "v", "g", "12"))), -1, -1, -1)
			return w.WriteKey([]byte("lzf"), TypeString, AppendLZFString(nil, []byte(strings.Repeat("ab", 30))), -1, -1, -1)
		}, want: []string{
			"selectdb 0",
			"key db=0 \"zm\" type=9 exp=1400000000123", "  f1=v1", "  long=" + strings.Repeat("v", 300),
			"key db=0 \"zl\" type=10", "  a", "  5", "  -100", "  70000", "  5000000000", "  b",
			"key db=0 \"is\" type=11", "  -5", "  3", "  70000",
			"key db=0 \"zz\" type=12", "  m1=1", "  m2=2.5",
			"key db=0 \"hz\" type=13", "  f=v", "  g=12",
			"key db=0 \"lzf\" type=0", "  " + strings.Repeat("ab", 30),
		}},
		{name: "v9", version: 9, checksum: ChecksumOK, build: func(w *Writer) error {
			w.WriteAux([]byte("redis-ver"), []byte("5.0.14"))
			w.WriteAux([]byte("redis-bits"), []byte("64"))
			w.WriteModuleAux(modID, 1, modBody)
			w.SelectDB(0)
			w.ResizeDB(4, 1)
			w.WriteKey([]byte("ql"), TypeListQuicklist, q14, -1, 30, -1)
			w.WriteKey([]byte("z2"), TypeZSet2, EncodeZSet2(bs("a", "b"), []float64{0.25, -1e300}), -1, -1, 7)
			w.WriteKey([]byte("st"), TypeStreamListpacks, buildStream(TypeStreamListpacks, testEntries, testStreamInfo), 1500000000000, -1, -1)
			return w.WriteKey([]byte("mod"), TypeModule2, append(AppendLen(nil, modID), modBody...), -1, -1, -1)
		}, want: []string{
			"aux redis-ver=5.0.14", "aux redis-bits=64",
			"moduleaux testmod-A",
			"selectdb 0", "resizedb 4 1",
			"key db=0 \"ql\" type=14 idle=30", "  a", "  b", "  300", "  " + strings.Repeat("c", 40), "  -2",
			"key db=0 \"z2\" type=5 freq=7", "  a=0.25", "  b=-1e+300",
			"key db=0 \"st\" type=15 exp=1500000000000", "  1-1 f1 v1 f2 v2", "  2-0 other -7",
			"  stream len=2 last=2-0 first=1-1 maxdel=0-0 added=2",
			"  group g1 last=2-0 read=-1 pel=[1-1@16#3]", "  consumer alice seen=100 active=100 pel=[1-1]", "  consumer bob seen=101 active=101 pel=[]",
			"key db=0 \"mod\" type=7 module=testmod-A",
		}},
		{name: "v10", version: 10, checksum: ChecksumOK, build: func(w *Writer) error {
			w.WriteAux([]byte("redis-ver"), []byte("7.0.15"))
			w.WriteFunction([]byte("#!lua name=lib1\nredis.register_function('f', function() return 1 end)"))
			w.WriteRaw(fnPreGA)
			w.SelectDB(0)
			w.WriteKey([]byte("q2"), TypeListQuicklist2, q18, -1, -1, -1)
			w.WriteKey([]byte("hl"), TypeHashListpack, EncodeBlob(BuildListpack(bs("f", "v", "n", "100"))), -1, -1, -1)
			w.WriteKey([]byte("zl"), TypeZSetListpack, EncodeBlob(BuildListpack(bs("a", "-1", "b", "3.5"))), -1, -1, -1)
			return w.WriteKey([]byte("st"), TypeStreamListpacks2, buildStream(TypeStreamListpacks2, testEntries, testStreamInfo), -1, -1, -1)
		}, want: []string{
			"aux redis-ver=7.0.15",
			"function #!lua name=lib1\nredis.register_function('f', function() return 1 end)",
			"function return 1",
			"selectdb 0",
			"key db=0 \"q2\" type=18", "  a", "  1", "  -4000", "  plain element", "  z", "  70000", "  -9000000000",
			"key db=0 \"hl\" type=16", "  f=v", "  n=100",
			"key db=0 \"zl\" type=17", "  a=-1", "  b=3.5",
			"key db=0 \"st\" type=19", "  1-1 f1 v1 f2 v2", "  2-0 other -7",
			"  stream len=2 last=2-0 first=1-1 maxdel=1-2 added=3",
			"  group g1 last=2-0 read=-1 pel=[1-1@16#3]", "  consumer alice seen=100 active=100 pel=[1-1]", "  consumer bob seen=101 active=101 pel=[]",
		}},
		{name: "v11", version: 11, checksum: ChecksumOK, build: func(w *Writer) error {
			w.SelectDB(0)
			w.WriteKey([]byte("sl"), TypeSetListpack, EncodeBlob(BuildListpack(bs("m", "-1", "n"))), -1, -1, -1)
			return w.WriteKey([]byte("st"), TypeStreamListpacks3, buildStream(TypeStreamListpacks3, testEntries, testStreamInfo), -1, -1, -1)
		}, want: []string{
			"selectdb 0",
			"key db=0 \"sl\" type=20", "  -1", "  m", "  n",
			"key db=0 \"st\" type=21", "  1-1 f1 v1 f2 v2", "  2-0 other -7",
			"  stream len=2 last=2-0 first=1-1 maxdel=1-2 added=3",
			"  group g1 last=2-0 read=-1 pel=[1-1@16#3]", "  consumer alice seen=100 active=200 pel=[1-1]", "  consumer bob seen=101 active=201 pel=[]",
		}},
		{name: "v12", version: 12, checksum: ChecksumOK, build: func(w *Writer) error {
			w.SelectDB(0)
			w.WriteSlotInfo(866, 4, 1)
			w.WriteKey([]byte("h22"), TypeHashMetadataPreGA, h22, -1, -1, -1)
			w.WriteKey([]byte("h23"), TypeHashListpackExPreGA, EncodeBlob(BuildListpack(bs("a", "1", "1700000000000", "b", "2", "0"))), -1, -1, -1)
			w.WriteKey([]byte("h24"), TypeHashMetadata, h24, -1, -1, -1)
			return w.WriteKey([]byte("h25"), TypeHashListpackEx, h25, 1800000000000, -1, -1)
		}, want: []string{
			"selectdb 0", "slot 866 4 1",
			"key db=0 \"h22\" type=22", "  a=1@1700000000000", "  b=2",
			"key db=0 \"h23\" type=23", "  a=1@1700000000000", "  b=2",
			"key db=0 \"h24\" type=24", "  a=1@1700000000000", "  b=2@1700000005000", "  c=3",
			"key db=0 \"h25\" type=25 exp=1800000000000", "  a=1@1700000000000", "  b=2",
		}},
		// Redis 8.6: a stream of type 26 (IDMP state after the groups)
		// and a key with module key metadata (KEY_META between its
		// EXPIRETIME_MS and its type byte: one class, spec 4 bytes, a
		// UINT value, the module EOF tag).
		{name: "v13", version: 13, checksum: ChecksumOK, build: func(w *Writer) error {
			w.WriteAux([]byte("redis-ver"), []byte("8.6.3"))
			w.SelectDB(0)
			w.WriteKey([]byte("st"), TypeStreamListpacks4, buildStream(TypeStreamListpacks4, testEntries, testStreamInfo), -1, -1, -1)
			w.WriteRaw(append([]byte{opExpireTimeMS}, binaryLE(1900000000000)...))
			w.WriteRaw(keyMetaBody(true))
			return w.WriteKey([]byte("m"), TypeString, EncodeString([]byte("with meta")), -1, -1, -1)
		}, want: []string{
			"aux redis-ver=8.6.3", "selectdb 0",
			"key db=0 \"st\" type=26", "  1-1 f1 v1 f2 v2", "  2-0 other -7",
			"  stream len=2 last=2-0 first=1-1 maxdel=1-2 added=3",
			"  group g1 last=2-0 read=-1 pel=[1-1@16#3]", "  consumer alice seen=100 active=200 pel=[1-1]", "  consumer bob seen=101 active=201 pel=[]",
			"  idmp duration=200 max=50 producers=1 iids=1 added=3 duplicates=1",
			"key db=0 \"m\" type=0 exp=1900000000000 meta=0101020304020500", "  with meta",
		}},
		// Valkey 9 on a cluster node importing slots (atomic slot
		// migration): SLOT_IMPORT, byte 243 under "VALKEY" (Redis's
		// KEY_META): job name, range count, start/end per range.
		{name: "valkey81-slotimport", version: 81, checksum: ChecksumOK, build: func(w *Writer) error {
			w.WriteAux([]byte("valkey-ver"), []byte("9.2.0"))
			si := AppendRawString([]byte{0xF3}, []byte(strings.Repeat("j", 40)))
			si = AppendLen(si, 2)
			si = AppendLen(AppendLen(si, 0), 100)
			si = AppendLen(AppendLen(si, 5000), 5460)
			w.WriteRaw(si)
			w.SelectDB(0)
			return w.WriteKey([]byte("k"), TypeString, EncodeString([]byte("v")), -1, -1, -1)
		}, want: []string{"aux valkey-ver=9.2.0", "slotimport", "selectdb 0", "key db=0 \"k\" type=0", "  v"}},
		{name: "valkey80", version: 80, checksum: ChecksumOK, build: func(w *Writer) error {
			w.WriteAux([]byte("valkey-ver"), []byte("9.0.0"))
			w.SelectDB(0)
			return w.WriteKey([]byte("k"), TypeString, EncodeString([]byte("v")), -1, -1, -1)
		}, want: []string{"aux valkey-ver=9.0.0", "selectdb 0", "key db=0 \"k\" type=0", "  v"}},
		// Valkey 9's hash with field TTLs: byte 22, which Redis gives
		// TYPE_HASH_METADATA_PRE_GA; field, value, expire ms (LE, -1 none).
		{name: "valkey80-hash2", version: 80, checksum: ChecksumOK, build: func(w *Writer) error {
			w.WriteAux([]byte("valkey-ver"), []byte("9.1.2"))
			w.SelectDB(0)
			v := AppendLen(nil, 2)
			v = append(AppendString(AppendString(v, []byte("a")), []byte("1")), binaryLE(1700000000000)...)
			v = append(AppendString(AppendString(v, []byte("b")), []byte("2")), binaryLE(-1)...)
			if err := w.WriteKey([]byte("h"), TypeValkeyHash2, v, -1, -1, -1); err != nil {
				return err
			}
			return w.WriteKey([]byte("s"), TypeSetListpack, EncodeBlob(BuildListpack(bs("m"))), -1, -1, -1)
		}, want: []string{"aux valkey-ver=9.1.2", "selectdb 0", "key db=0 \"h\" type=150", "  a=1@1700000000000", "  b=2",
			"key db=0 \"s\" type=20", "  m"}},
		{name: "zero-crc", version: 10, noCRC: true, checksum: ChecksumNotComputed, build: func(w *Writer) error {
			w.SelectDB(1)
			return w.WriteKey([]byte("k"), TypeString, EncodeString([]byte("12")), -1, -1, -1)
		}, want: []string{"selectdb 1", "key db=1 \"k\" type=0", "  12"}},
	}
}

// keyMetaBody is a KEY_META opcode (with op) or body: one class, its
// 4-byte spec 01 02 03 04, a module UINT 5, the module EOF tag.
func keyMetaBody(op bool) []byte {
	b := []byte{}
	if op {
		b = append(b, OpKeyMeta)
	}
	b = AppendLen(b, 1)
	b = append(b, 1, 2, 3, 4)
	b = AppendModuleTag(b, moduleOpUInt, 5, nil)
	return AppendModuleTag(b, moduleOpEOF, 0, nil)
}

func binaryLE(v int64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
	return b
}

func (f fixture) bytes(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, f.version)
	if err != nil {
		t.Fatal(err)
	}
	w.NoChecksum = f.noCRC
	if err := f.build(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fmtPEL(ids []StreamID) string {
	var s []string
	for _, id := range ids {
		s = append(s, fmt.Sprintf("%d-%d", id.Ms, id.Seq))
	}
	return "[" + strings.Join(s, ",") + "]"
}

// readAll renders every record of an RDB file as text lines.
func readAll(t *testing.T, data []byte) ([]string, ChecksumStatus, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), Options{})
	if err != nil {
		return nil, 0, err
	}
	var out []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out, r.Checksum(), nil
		}
		if err != nil {
			return out, 0, err
		}
		switch rec.Kind {
		case RecordAux:
			out = append(out, fmt.Sprintf("aux %s=%s", rec.AuxKey, rec.AuxValue))
		case RecordSelectDB:
			out = append(out, fmt.Sprintf("selectdb %d", rec.DB))
		case RecordResizeDB:
			out = append(out, fmt.Sprintf("resizedb %d %d", rec.DBSize, rec.ExpiresSize))
		case RecordFunction:
			out = append(out, "function "+string(rec.FunctionCode))
		case RecordModuleAux:
			out = append(out, "moduleaux "+rec.Module)
		case RecordSlotInfo:
			out = append(out, fmt.Sprintf("slot %d %d %d", rec.Slot, rec.SlotKeys, rec.SlotExpires))
		case RecordSlotImport:
			out = append(out, "slotimport")
		case RecordKey:
			l := fmt.Sprintf("key db=%d %q type=%d", rec.DB, rec.Key, rec.Type)
			if rec.Expire >= 0 {
				l += fmt.Sprintf(" exp=%d", rec.Expire)
			}
			if rec.Idle >= 0 {
				l += fmt.Sprintf(" idle=%d", rec.Idle)
			}
			if rec.Freq >= 0 {
				l += fmt.Sprintf(" freq=%d", rec.Freq)
			}
			if rec.Module != "" {
				l += " module=" + rec.Module
			}
			if rec.Meta != nil {
				l += fmt.Sprintf(" meta=%x", rec.Meta)
			}
			out = append(out, l)
			elems, info := decodeText(t, rec.Type, rec.Value)
			for _, e := range elems {
				out = append(out, "  "+e)
			}
			if info != nil {
				out = append(out, fmt.Sprintf("  stream len=%d last=%d-%d first=%d-%d maxdel=%d-%d added=%d", info.Length,
					info.LastID.Ms, info.LastID.Seq, info.FirstID.Ms, info.FirstID.Seq, info.MaxDeletedID.Ms, info.MaxDeletedID.Seq, info.EntriesAdded))
				for _, g := range info.Groups {
					var pel []string
					for _, p := range g.PEL {
						pel = append(pel, fmt.Sprintf("%d-%d@%d#%d", p.ID.Ms, p.ID.Seq, p.DeliveryTime, p.DeliveryCount))
					}
					out = append(out, fmt.Sprintf("  group %s last=%d-%d read=%d pel=[%s]", g.Name, g.LastDeliveredID.Ms, g.LastDeliveredID.Seq, g.EntriesRead, strings.Join(pel, ",")))
					for _, c := range g.Consumers {
						out = append(out, fmt.Sprintf("  consumer %s seen=%d active=%d pel=%s", c.Name, c.SeenTime, c.ActiveTime, fmtPEL(c.PEL)))
					}
				}
				if m := info.IDMP; m != (StreamIDMP{}) {
					out = append(out, fmt.Sprintf("  idmp duration=%d max=%d producers=%d iids=%d added=%d duplicates=%d", m.Duration, m.MaxSize, m.Producers, m.IIDs, m.Added, m.Duplicates))
				}
			}
		}
	}
}

func TestReader_Fixtures(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			data := f.bytes(t)
			path := filepath.Join("testdata", f.name+".rdb")
			if *update {
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			committed, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go generate ./internal/rdb)", err)
			}
			if !bytes.Equal(committed, data) {
				t.Errorf("%s differs from the generated fixture; run go generate ./internal/rdb", path)
			}
			got, status, err := readAll(t, committed)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if diff := cmp.Diff(f.want, got); diff != "" {
				t.Errorf("records differ (-want +got):\n%s", diff)
			}
			if status != f.checksum {
				t.Errorf("Checksum = %v, want %v", status, f.checksum)
			}
		})
	}
}
