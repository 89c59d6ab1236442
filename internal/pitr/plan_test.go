package pitr_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/redis/go-redis/v9"

	"redback/internal/aof"
	"redback/internal/catalog"
	"redback/internal/pack"
	"redback/internal/pitr"
	"redback/internal/pitr/pitrtest"
	"redback/internal/redistest"
	"redback/internal/redisurl"
	"redback/internal/restore"
	"redback/internal/storage"
	"redback/internal/storage/mem"
)

// synth is a generation of synthetic commands over an empty base.
type synth struct {
	b    storage.Backend
	g    pitrtest.Generation
	t0   int64 // ms of command 0
	cmds []pitrtest.Cmd
}

// cmdsOf encodes commands given as space-separated words, one per ms step.
func newSynth(t *testing.T, b storage.Backend, id string, start int64, split []int, lines ...string) *synth {
	t.Helper()
	return newSynthMod(t, b, id, start, split, nil, lines...)
}

// newSynthMod is newSynth with mod applied to the commands before they are
// written.
func newSynthMod(t *testing.T, b storage.Backend, id string, start int64, split []int, mod func([]pitrtest.Cmd), lines ...string) *synth {
	t.Helper()
	ctx := t.Context()
	gen := catalog.NewGenerationID(time.Now(), id)
	base, _, err := pitrtest.EmptyBase(ctx, b, gen, pack.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := base.EndTime.UnixMilli() + 1
	s := &synth{b: b, t0: t0, cmds: pitrtest.Cmds(start, t0, 10, lines...)}
	if mod != nil {
		mod(s.cmds)
	}
	s.g = pitrtest.Generation{ID: gen, ReplID: id, StartOffset: start, BaseSnapshot: base.ID, Cmds: s.cmds, SplitAt: split}
	if _, err := pitrtest.Write(ctx, b, s.g); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *synth) at(i int) time.Time { return time.UnixMilli(s.cmds[i].Ms) }

// dirCommands restores p into a dir and returns the incr file's commands.
func dirCommands(t *testing.T, p *pitr.Plan) []string {
	t.Helper()
	dir := t.TempDir()
	if _, err := p.ToDir(t.Context(), dir, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, pitr.AOFDirName, pitr.IncrFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := aof.NewReader(f, aof.ReaderOptions{})
	var out []string
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		if rec.Kind == aof.RecordCommand {
			out = append(out, string(bytes.Join(rec.Args, []byte(" "))))
		}
	}
	m, err := os.ReadFile(filepath.Join(dir, pitr.AOFDirName, pitr.ManifestName))
	if err != nil || !strings.Contains(string(m), "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n") {
		t.Fatalf("manifest %q %v", m, err)
	}
	return out
}

var txLines = []string{
	"SET a 1", "SET b 2", "MULTI", "SET c 3", "INCR a", "EXEC", "SET d 4", "FLUSHDB", "SELECT 2", "DEL x y", "SET e 5",
}

func TestPlan_Cuts(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	s := newSynth(t, b, "cuts", 100, []int{4, 7}, txLines...)
	tests := []struct {
		name string
		tg   pitr.Target
		want string // commands in the incr file
		note bool
	}{
		{"at first", pitr.AtTime(s.at(0)), "SELECT 0|SET a 1", false},
		{"at MULTI", pitr.AtTime(s.at(2)), "SELECT 0|SET a 1|SET b 2", true},
		{"inside tx, across a segment boundary", pitr.AtTime(s.at(4)), "SELECT 0|SET a 1|SET b 2", true},
		{"at EXEC", pitr.AtTime(s.at(5)), "SELECT 0|SET a 1|SET b 2|MULTI|SET c 3|SELECT 0|INCR a|EXEC", false},
		{"offset inside tx", pitr.AtOffset(s.cmds[3].Offset + 3), "SELECT 0|SET a 1|SET b 2", true},
		{"offset at boundary", pitr.AtOffset(s.cmds[1].Offset + s.cmds[1].Len()), "SELECT 0|SET a 1|SET b 2", false},
		{"before FLUSHDB", pitr.BeforeCommand(pitr.CommandMatch{Name: "flushdb"}), "SELECT 0|SET a 1|SET b 2|MULTI|SET c 3|SELECT 0|INCR a|EXEC|SET d 4|SELECT 0", false},
		{"before INCR in tx", pitr.BeforeCommand(pitr.CommandMatch{Name: "incr"}), "SELECT 0|SET a 1|SET b 2", true},
		{"before DEL y", pitr.BeforeCommand(pitr.CommandMatch{Name: "DEL", KeyPattern: "y"}), "SELECT 0|SET a 1|SET b 2|MULTI|SET c 3|SELECT 0|INCR a|EXEC|SET d 4|SELECT 0|FLUSHDB|SELECT 2", false},
		{"whole log", pitr.AtTime(s.at(10)), "SELECT 0|SET a 1|SET b 2|MULTI|SET c 3|SELECT 0|INCR a|EXEC|SET d 4|SELECT 0|FLUSHDB|SELECT 2|DEL x y|SET e 5", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pitr.NewPlan(ctx, b, tt.tg, pitr.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(dirCommands(t, p), "|"); got != tt.want {
				t.Errorf("replayed\n %s\nwant\n %s", got, tt.want)
			}
			if (len(p.Notes) > 0) != tt.note {
				t.Errorf("notes %q", p.Notes)
			}
		})
	}
	// the DEL match reports its command, db and offset
	p, err := pitr.NewPlan(ctx, b, pitr.BeforeCommand(pitr.CommandMatch{Name: "DEL", KeyPattern: "y"}), pitr.Options{})
	if err != nil || p.Match.DB != 2 || p.Match.Offset != s.cmds[9].Offset || p.Offset != s.cmds[9].Offset || !p.Match.Time.Equal(s.at(9)) {
		t.Errorf("match %+v offset %d: %v", p.Match, p.Offset, err)
	}
}

func TestPlan_Skip(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	s := newSynth(t, b, "skip", 0, []int{6}, txLines...)
	tg := pitr.AtTime(s.at(10))
	tg.Skip = []int64{s.cmds[7].Offset, s.cmds[3].Offset}
	p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := "SELECT 0|SET a 1|SET b 2|MULTI|INCR a|EXEC|SELECT 0|SET d 4|SELECT 2|DEL x y|SET e 5"
	if got := strings.Join(dirCommands(t, p), "|"); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if len(p.Skipped) != 2 || p.Skipped[0].Name != "FLUSHDB" || !p.Skipped[1].InTransaction {
		t.Errorf("skipped %+v", p.Skipped)
	}
	for name, off := range map[string]int64{"MULTI": s.cmds[2].Offset, "SELECT": s.cmds[8].Offset, "no command": s.cmds[3].Offset + 1} {
		tg.Skip = []int64{off}
		if _, err := pitr.NewPlan(ctx, b, tg, pitr.Options{}); err == nil {
			t.Errorf("skip %s: no error", name)
		}
	}
	tg = pitr.AtTime(s.at(1))
	tg.Skip = []int64{s.cmds[7].Offset}
	if _, err := pitr.NewPlan(ctx, b, tg, pitr.Options{}); err == nil || !strings.Contains(err.Error(), "not replayed") {
		t.Errorf("skip past the target: %v", err)
	}
}

func TestPlan_Overlap(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	lines := make([]string, 30)
	for i := range lines {
		lines[i] = "SET k" + strconv.Itoa(i) + " v"
	}
	s := newSynth(t, b, "overlap", 7, []int{10, 20}, lines...)
	// the same log cut elsewhere: segments overlap
	g := s.g
	g.SplitAt = []int{5, 15, 25}
	if _, err := pitrtest.Write(ctx, b, g); err != nil {
		t.Fatal(err)
	}
	p, err := pitr.NewPlan(ctx, b, pitr.AtTime(s.at(29)), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sets []string
	for _, c := range dirCommands(t, p) {
		if strings.HasPrefix(c, "SET") {
			sets = append(sets, c)
		}
	}
	if len(sets) != 30 || sets[29] != "SET k29 v" {
		t.Errorf("replayed %d SETs: %v", len(sets), sets)
	}
	n := 0
	err = pitr.Log(ctx, b, pitr.Filter{From: s.at(3), To: s.at(12)}, pitr.Options{}, func(c *pitr.Command) error {
		if want := "k" + strconv.Itoa(n+3); string(c.Args[1]) != want {
			t.Errorf("log %d: %s, want %s", n, c.Args[1], want)
		}
		n++
		return nil
	})
	if err != nil || n != 10 {
		t.Errorf("log: %d commands, %v", n, err)
	}
}

func TestPlan_Generations(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	s1 := newSynth(t, b, "gen-one", 0, nil, "SET a 1", "SET b 2")
	for i := 0; i < 1000 && time.Now().UnixMilli() <= s1.cmds[1].Ms+1; i++ {
		time.Sleep(time.Millisecond)
	}
	s2 := newSynth(t, b, "gen-two", 0, nil, "SET c 3", "SET d 4")
	p, err := pitr.NewPlan(ctx, b, pitr.AtTime(s2.at(1)), pitr.Options{})
	if err != nil || p.Generation.ID != s2.g.ID {
		t.Fatalf("%v %+v", err, p)
	}
	p, err = pitr.NewPlan(ctx, b, pitr.AtTime(s1.at(1)), pitr.Options{})
	if err != nil || p.Generation.ID != s1.g.ID {
		t.Fatalf("%v %+v", err, p)
	}
	// the same offset in both: ambiguous unless a generation is named
	if _, err := pitr.NewPlan(ctx, b, pitr.AtOffset(5), pitr.Options{}); err == nil || !strings.Contains(err.Error(), "--generation") {
		t.Errorf("ambiguous offset: %v", err)
	}
	tg := pitr.AtOffset(s1.cmds[1].Offset)
	tg.Generation = s1.g.ID
	if p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{}); err != nil || p.Generation.ID != s1.g.ID {
		t.Errorf("named generation: %v", err)
	}
	ws, err := pitr.Windows(ctx, b)
	if err != nil || len(ws) != 2 {
		t.Fatal(err)
	}
	// a target between the windows names both
	if !ws[0].To.Before(ws[1].From) {
		t.Skip("windows overlap on this clock")
	}
	_, err = pitr.NewPlan(ctx, b, pitr.AtTime(ws[0].To.Add(time.Millisecond)), pitr.Options{})
	var ce *pitr.CoverageError
	if !errors.As(err, &ce) || len(ce.Windows) != 2 || !strings.Contains(err.Error(), s1.g.ID) || !strings.Contains(err.Error(), s2.g.ID) {
		t.Errorf("between windows: %v", err)
	}
}

func TestPlan_Damage(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	s := newSynth(t, b, "damage", 0, []int{3}, txLines...)
	segs, err := catalog.ListSegments(ctx, b, s.g.ID)
	if err != nil || len(segs) != 2 {
		t.Fatal(err)
	}
	// a checkpoint moved inside a command
	bad := *segs[1]
	bad.Index = append([]catalog.Checkpoint(nil), bad.Index...)
	bad.Index[len(bad.Index)-1][0]++
	if err := catalog.PutJSON(ctx, b, catalog.SegmentKey(s.g.ID, bad.Start, bad.End), &bad); err != nil {
		t.Fatal(err)
	}
	_, err = pitr.NewPlan(ctx, b, pitr.BeforeCommand(pitr.CommandMatch{Name: "NOSUCH"}), pitr.Options{})
	var se *pitr.SegmentError
	if !errors.As(err, &se) || !se.VerificationFailed() {
		t.Errorf("bad index: %v", err)
	}
	p, err := pitr.NewPlan(ctx, b, pitr.AtTime(s.at(10)), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ToDir(ctx, t.TempDir(), restore.Options{}); !errors.As(err, &se) {
		t.Errorf("bad index, replay: %v", err)
	}
	if err := catalog.PutJSON(ctx, b, catalog.SegmentKey(s.g.ID, bad.Start, bad.End), segs[1]); err != nil {
		t.Fatal(err)
	}
	// stored bytes that do not match the manifest
	if _, err := b.Put(ctx, segs[1].Object.Key, bytes.NewReader([]byte("garbage"))); err != nil {
		t.Fatal(err)
	}
	_, err = pitr.NewPlan(ctx, b, pitr.BeforeCommand(pitr.CommandMatch{Name: "DEL"}), pitr.Options{})
	var vf interface{ VerificationFailed() bool }
	if !errors.As(err, &vf) || !vf.VerificationFailed() {
		t.Errorf("damaged object: %v", err)
	}
}

func TestPlan_Encrypted(t *testing.T) {
	ctx := t.Context()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := pack.ParseRecipients([]string{id.Recipient().String()})
	if err != nil {
		t.Fatal(err)
	}
	b := mem.New()
	gen := catalog.NewGenerationID(time.Now(), "enc")
	base, _, err := pitrtest.EmptyBase(ctx, b, gen, pack.Options{Recipients: rc})
	if err != nil {
		t.Fatal(err)
	}
	cmds := pitrtest.Cmds(0, base.EndTime.UnixMilli()+5, 10, "SET a 1", "FLUSHALL", "SET b 2")
	if _, err := pitrtest.Write(ctx, b, pitrtest.Generation{ID: gen, BaseSnapshot: base.ID, Cmds: cmds, Pack: pack.Options{Recipients: rc}}); err != nil {
		t.Fatal(err)
	}
	tg := pitr.BeforeCommand(pitr.CommandMatch{Name: "FLUSHALL"})
	if _, err := pitr.NewPlan(ctx, b, tg, pitr.Options{}); err == nil || !strings.Contains(err.Error(), "--identity") {
		t.Errorf("no identity: %v", err)
	}
	p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{Identities: []age.Identity{id}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(dirCommands(t, p), "|"); got != "SELECT 0|SET a 1" {
		t.Errorf("got %s", got)
	}
}

func TestKeyArgs(t *testing.T) {
	for in, want := range map[string]string{
		"DEL a b c":        "a b c",
		"mset k1 v1 k2 v2": "k1 k2",
		"RENAME a b":       "a b",
		"FLUSHALL":         "",
		"SWAPDB 0 1":       "",
		"HSET h f v":       "h",
	} {
		var args [][]byte
		for _, w := range strings.Fields(in) {
			args = append(args, []byte(w))
		}
		if got := string(bytes.Join(pitr.KeyArgs(args), []byte(" "))); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

var _ = context.Background

func TestToRedis_NotEmpty(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	s := newSynth(t, b, "notempty", 0, nil, "SET a 1")
	p, err := pitr.NewPlan(ctx, b, pitr.AtTime(s.at(0)), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	dst.Client().Do(ctx, "SELECT", "0")
	c := redis.NewClient(&redis.Options{Addr: dst.Addr(), DB: 5, DisableIdentity: true})
	defer c.Close()
	c.Set(ctx, "other", "x", 0)
	u, _ := redisurl.Parse(dst.URL(), redisurl.Options{})
	if _, err := p.ToRedis(ctx, u, restore.Options{}); !errors.Is(err, pitr.ErrTargetNotEmpty) || !strings.Contains(err.Error(), "db5 1 keys") {
		t.Fatalf("not empty: %v", err)
	}
	if _, err := p.ToRedis(ctx, u, restore.Options{Conflict: restore.ConflictReplace}); err != nil {
		t.Fatal(err)
	}
	if v := dst.Client().Get(ctx, "a").Val(); v != "1" {
		t.Errorf("a = %q", v)
	}
}

func TestToDir_Existing(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	s := newSynth(t, b, "exist", 0, nil, "SET a 1", "SET b 2")
	p, err := pitr.NewPlan(ctx, b, pitr.AtTime(s.at(0)), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := p.ToDir(ctx, dir, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ToDir(ctx, dir, restore.Options{}); !errors.Is(err, restore.ErrExists) {
		t.Errorf("second run: %v", err)
	}
	p2, err := pitr.NewPlan(ctx, b, pitr.AtTime(s.at(1)), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p2.ToDir(ctx, dir, restore.Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	incr, err := os.ReadFile(filepath.Join(dir, pitr.AOFDirName, pitr.IncrFileName))
	if err != nil || !bytes.Contains(incr, []byte("$1\r\nb\r\n")) {
		t.Errorf("forced: %q %v", incr, err)
	}
}
