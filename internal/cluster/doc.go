// Package cluster discovers the shape of a Redis Cluster from one of its
// nodes: the shards (a primary, its replicas, the slot ranges it serves),
// which slots are migrating or importing, and which node of each shard a
// backup should read. It also maps keys to slots (CRC16 with hash tags) and
// slots to shards.
//
// Discovery asks the named node CLUSTER SHARDS (Redis 7.0+), falling back
// to CLUSTER NODES on older servers, then asks every primary CLUSTER NODES
// for its own migrating ([slot->-id]) and importing ([slot-<-id]) slots:
// only the node itself shows them.
package cluster
