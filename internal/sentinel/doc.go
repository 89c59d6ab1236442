// Package sentinel finds the servers of a Redis set that Sentinel manages,
// for redis+sentinel:// URLs (see package redisurl).
//
// Primary asks the URL's sentinels in turn (SENTINEL GET-MASTER-ADDR-BY-NAME)
// and returns the first answer; Replicas lists the replicas the sentinels
// consider healthy; Resolve turns a Sentinel URL into the URL of one node
// (the primary, or a healthy replica when asked to prefer one) and leaves
// other URLs as they are. Watch subscribes to +switch-master on one sentinel
// at a time and reports each failover of the master, and every
// (re)subscription, so that a follower re-asks after any disconnect.
//
// How sentinels see redback's replica link (from Redis's sentinel.c and
// replication.c): a sentinel learns replicas only from the "slaveN:ip=,port="
// lines of the primary's INFO replication, where port is what the replica
// announced with REPLCONF listening-port. It then connects to ip:port to
// monitor the replica, except when the port is 0, which sentinel.c treats as
// an invalid address (sentinelReconnectInstance returns at once). redback
// announces port 0 (replica.Config.ListeningPort left at 0), so a sentinel lists the link once
// as a replica that is disconnected, never connects to it (no error every
// second), never sends it REPLICAOF, and never selects it for promotion
// (sentinelSelectSlave skips disconnected replicas). Replicas skips such
// entries.
package sentinel
