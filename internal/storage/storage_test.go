package storage_test

import (
	"errors"
	"testing"

	"go.uber.org/goleak"

	"redback/internal/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		key      string
		keyOK    bool
		prefixOK bool
	}{
		{"a", true, true},
		{"gen/0001/snap/00000000000000ff.rdb.zst", true, true},
		{"a/b-c.d_e", true, true},
		{".hidden/x", true, true},
		{"a/", false, true},
		{"", false, true},
		{"/abs", false, false},
		{"../x", false, false},
		{"a/../x", false, false},
		{"a/./x", false, false},
		{".", false, false},
		{"a//b", false, false},
		{"a\\b", false, false},
		{"a\x00b", false, false},
		{"\xff", false, false},
	} {
		if err := storage.ValidateKey(tc.key); (err == nil) != tc.keyOK || err != nil && !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tc.key, err, tc.keyOK)
		}
		if err := storage.ValidatePrefix(tc.key); (err == nil) != tc.prefixOK || err != nil && !errors.Is(err, storage.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q) = %v, want ok=%v", tc.key, err, tc.prefixOK)
		}
	}
}

func TestTransient(t *testing.T) {
	base := errors.New("boom")
	err := storage.Transient(base)
	if !storage.IsTransient(err) || !errors.Is(err, base) || err.Error() != "boom" {
		t.Errorf("Transient(boom) = %v", err)
	}
	if storage.Transient(nil) != nil || storage.IsTransient(base) {
		t.Error("Transient(nil) != nil or plain error reported transient")
	}
}
