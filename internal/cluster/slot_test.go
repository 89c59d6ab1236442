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
