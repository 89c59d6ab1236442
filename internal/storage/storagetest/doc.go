// Package storagetest is the conformance suite every storage.Backend runs:
//
//	func TestBackend(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Backend { return mem.New() })
//	}
//
// newBackend must return an empty store (a fresh directory, bucket or
// prefix) each time it is called; the suite closes it when the subtest ends.
package storagetest
