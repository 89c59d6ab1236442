package mem_test

import (
	"testing"

	"go.uber.org/goleak"

	"redback/internal/storage"
	"redback/internal/storage/mem"
	"redback/internal/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBackend(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend { return mem.New() })
}
