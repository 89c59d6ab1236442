// Package mem is an in-memory storage.Backend for unit tests. It follows
// every contract of storage.Backend (checked by storagetest.Run) but keeps
// whole objects in memory, so it is not meant for large data.
package mem
