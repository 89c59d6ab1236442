// Package snapshot takes verified snapshots into a repository. One
// streaming pipeline carries the RDB bytes from the source (a replication
// sync or a BGSAVE file) through the RDB reader (CRC-64, full parse, key
// census, dataset digest) and, at the same time, through zstd and optional
// age encryption into the backend. The manifest that makes a snapshot
// visible is written last, and only when verification passed.
package snapshot
