package pitr_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"redback/internal/catalog"
	"redback/internal/pitr"
	"redback/internal/restore"
	"redback/internal/storage/mem"
)

// Time markers in segments ("#TICK:<ms>" annotations, and a marker PUBLISH
// inside a transaction) are never replayed and never listed as commands;
// the segments check out, and a restore between markers is exact.
func TestPlan_TickMarkersNotReplayed(t *testing.T) {
	ctx := t.Context()
	b := mem.New()
	s := newSynthMod(t, b, "ticks", 0, []int{4}, nil,
		"SET a 1", "PUBLISH __redback__:tick 1700000000100", "SET b 2", "PING",
		"PUBLISH __redback__:tick 1700000000200",
		"MULTI", "PUBLISH __redback__:tick 1700000000300", "SET c 3", "EXEC",
		"SPUBLISH __redback__:tick{x} 1700000000400")
	segs, err := catalog.ListSegments(ctx, b, s.g.ID)
	if err != nil || len(segs) != 2 {
		t.Fatalf("segments %v %v", segs, err)
	}
	for _, sg := range segs {
		if err := pitr.CheckSegment(ctx, b, nil, sg); err != nil {
			t.Fatal(err)
		}
	}
	tg := pitr.Latest()
	tg.Generation = s.g.ID
	p, err := pitr.NewPlan(ctx, b, tg, pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(dirCommands(t, p), "|"), "SELECT 0|SET a 1|SET b 2|SELECT 0|MULTI|SET c 3|EXEC"; got != want {
		t.Errorf("replayed %s, want %s", got, want)
	}
	var listed []string
	if err := pitr.Log(ctx, b, pitr.Filter{Generation: s.g.ID}, pitr.Options{}, func(c *pitr.Command) error {
		listed = append(listed, c.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(listed, " "); got != "SET SET MULTI SET EXEC" {
		t.Errorf("log lists %s", got)
	}
	// Between b and the transaction.
	p, err = pitr.NewPlan(ctx, b, pitr.AtTime(time.UnixMilli(s.cmds[2].Ms+5)), pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(dirCommands(t, p), "|"); got != "SELECT 0|SET a 1|SET b 2|SELECT 0" {
		t.Errorf("--at between: replayed %s", got)
	}
}

// The incr file a --to-dir restore writes holds no marker annotation.
func TestPlan_TickMarkersNotInDir(t *testing.T) {
	b := mem.New()
	s := newSynthMod(t, b, "ticks2", 0, nil, nil, "SET a 1", "PUBLISH __redback__:tick 1700000000100", "SET b 2")
	tg := pitr.Latest()
	tg.Generation = s.g.ID
	p, err := pitr.NewPlan(t.Context(), b, tg, pitr.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := p.ToDir(t.Context(), dir, restore.Options{}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, pitr.AOFDirName, pitr.IncrFileName))
	if err != nil || strings.Contains(string(raw), "TICK") || strings.Contains(string(raw), "PUBLISH") || !strings.Contains(string(raw), "#TS:") {
		t.Fatalf("incr file %q %v", raw, err)
	}
}
