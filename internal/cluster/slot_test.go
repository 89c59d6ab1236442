package cluster

import "testing"

func TestSlot(t *testing.T) {
	// Values from CLUSTER KEYSLOT on Redis 7.0.
	cases := map[string]int{
		"123456789":    12739, // 0x31C3, the CRC16/XMODEM check value
		"{user1000}.a": Slot([]byte("user1000")),
		"foo{}{bar}":   Slot([]byte("foo{}{bar}")),
	}
	for k, want := range cases {
		if got := Slot([]byte(k)); got != want {
			t.Errorf("Slot(%q) = %d, want %d", k, got, want)
		}
	}
	if Slot([]byte("foo{bar}{zap}")) != Slot([]byte("bar")) || Slot([]byte("foo{{bar}}zap")) != Slot([]byte("{bar")) {
		t.Error("hash tag not used")
	}
}

// Every slot has a tag, and a key holding it (after any prefix without
// braces) hashes to that slot.
func TestTag(t *testing.T) {
	for slot := range Slots {
		tag := Tag(slot)
		if got := Slot([]byte("redback:restore-tmp:0a1b2c3d:17" + tag)); tag == "" || got != slot {
			t.Fatalf("Tag(%d) = %q: a key holding it is in slot %d", slot, tag, got)
		}
	}
}
