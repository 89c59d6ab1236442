package respconn

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Info is what callers need to know from a server's INFO reply.
type Info struct {
	Version     string        // redis_version
	Valkey      string        // valkey_version ("" on Redis)
	Cluster     bool          // cluster_enabled:1
	Replica     bool          // role:slave
	PrimaryAddr string        // master_host:master_port, on a replica
	Keys        map[int]int64 // keys per db holding any (dbN:keys=...)
	ReplOffset  int64         // master_repl_offset (stays 0 until a replica ever connected)
	Dirty       int64         // rdb_changes_since_last_save: writes since the last save
	// Replication history (INFO replication): the current replication id,
	// and the previous id with the first offset it is not valid for
	// (second_repl_offset, -1 when there is none).
	ReplID           string // master_replid
	ReplID2          string // master_replid2
	SecondReplOffset int64  // second_repl_offset
	// ConnectedReplicas is connected_slaves (replicas attached to it).
	ConnectedReplicas int
	// On a replica: master_link_status:up, master_sync_in_progress:1;
	// on any server: loading:1 (loading a dataset).
	LinkUp, SyncInProgress, Loading bool
}

// Changed reports whether the server took writes between two INFO replies
// b (before) and a (after): its replication offset, its count of changes
// since the last save (a save in between also counts) or a db's key count
// differs. It says what differs, or "" when nothing does.
func (b Info) Changed(a Info) string {
	var d []string
	if a.ReplOffset != b.ReplOffset {
		d = append(d, fmt.Sprintf("master_repl_offset %d -> %d", b.ReplOffset, a.ReplOffset))
	}
	if a.Dirty != b.Dirty {
		d = append(d, fmt.Sprintf("rdb_changes_since_last_save %d -> %d", b.Dirty, a.Dirty))
	}
	dbs := map[int]bool{}
	for db := range b.Keys {
		dbs[db] = true
	}
	for db := range a.Keys {
		dbs[db] = true
	}
	ids := make([]int, 0, len(dbs))
	for db := range dbs {
		ids = append(ids, db)
	}
	sort.Ints(ids)
	for _, db := range ids {
		if a.Keys[db] != b.Keys[db] {
			d = append(d, fmt.Sprintf("db%d keys %d -> %d", db, b.Keys[db], a.Keys[db]))
		}
	}
	return strings.Join(d, ", ")
}

// ParseInfo reads the fields of Info from the text of an INFO reply;
// unknown and malformed lines are skipped.
func ParseInfo(text string) Info {
	in := Info{Keys: map[int]int64{}, SecondReplOffset: -1}
	var port string
	hasPort := false
	for _, line := range strings.Split(text, "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch {
		case k == "redis_version":
			in.Version = val
		case k == "valkey_version":
			in.Valkey = val
		case k == "cluster_enabled":
			in.Cluster = val == "1"
		case k == "role":
			in.Replica = val == "slave"
		case k == "master_host":
			in.PrimaryAddr = val
		case k == "master_port":
			port, hasPort = val, true
		case k == "master_replid":
			in.ReplID = val
		case k == "master_replid2":
			in.ReplID2 = val
		case k == "master_repl_offset":
			in.ReplOffset, _ = strconv.ParseInt(val, 10, 64)
		case k == "connected_slaves":
			in.ConnectedReplicas, _ = strconv.Atoi(val)
		case k == "master_link_status":
			in.LinkUp = val == "up"
		case k == "master_sync_in_progress":
			in.SyncInProgress = val == "1"
		case k == "loading":
			in.Loading = val == "1"
		case k == "rdb_changes_since_last_save":
			in.Dirty, _ = strconv.ParseInt(val, 10, 64)
		case k == "second_repl_offset":
			if n, err := strconv.ParseInt(val, 10, 64); err == nil {
				in.SecondReplOffset = n
			}
		case strings.HasPrefix(k, "db"):
			db, err := strconv.Atoi(k[2:])
			if err != nil {
				continue
			}
			keys, _, _ := strings.Cut(val, ",")
			if n, ok := strings.CutPrefix(keys, "keys="); ok {
				in.Keys[db], _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	if hasPort {
		in.PrimaryAddr += ":" + port
	}
	return in
}

// Info sends INFO (all default sections) and parses the reply.
func (c *Conn) Info() (Info, error) {
	v, err := c.Do("INFO")
	if err != nil {
		return Info{Keys: map[int]int64{}}, err
	}
	return ParseInfo(string(v.Str)), nil
}
