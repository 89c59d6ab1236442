// Package clusterset backs up and restores a Redis Cluster as a unit: a
// backup set is one snapshot per shard (each in a repository source of its
// own, named catalog.ShardSourceName) plus a set manifest
// (catalog.Set) written last, naming each shard's snapshot, node ids, slot
// ranges and replication offset, and the union digest of all shards.
//
// Take discovers the shards from one node (package cluster), waits while
// slots migrate (bounded, then refuses), snapshots the shards in parallel
// (bounded) through a callback the caller provides (the CLI's snapshot
// path, under each source's lease), checks the topology did not change
// meanwhile, and publishes the set.
//
// Restore reads a set's shard snapshots and writes every key into a
// target: a cluster of any shape (keys routed by slot, one pipelined
// restore per target primary, keys answered MOVED/ASK/TRYAGAIN/CLUSTERDOWN
// retried through a cluster client that follows redirects with a fresh
// slot map) or a standalone server (every key into db 0).
package clusterset
