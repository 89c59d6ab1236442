package restore

import (
	"context"
	"strconv"
	"time"

	"redback/internal/redisurl"
	"redback/internal/resp"
	"redback/internal/respconn"
	"redback/internal/serverver"
)

// dial connects to the target, authenticates and checks the server
// answers; its errors are *respconn.ServerError (RoleTarget). The connection is closed when ctx
// ends.
func dial(ctx context.Context, u *redisurl.URL, timeout time.Duration) (*respconn.Conn, error) {
	return respconn.Dial(ctx, u, respconn.Options{Timeout: timeout, Role: respconn.RoleTarget})
}

// fatalReply turns an error reply that means "every further write fails
// too" into a target *respconn.ServerError; per-key errors give nil.
func fatalReply(addr string, re resp.Error) error {
	switch re.Code() {
	case "READONLY":
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: addr, Msg: "the server is a read-only replica: restore into its primary, or run REPLICAOF NO ONE on it first", Err: re}
	case "OOM":
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: addr, Msg: "the server is out of memory (maxmemory reached): raise maxmemory or free memory, then restore again with --conflict replace", Err: re}
	case "NOAUTH", "WRONGPASS":
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: addr, Msg: "authentication required", Err: re}
	case "NOPERM":
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: addr, Msg: "the user lacks a permission restore needs (RESTORE, SELECT, FUNCTION LOAD, and for converted keys the data commands)", Err: re}
	case "LOADING":
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: addr, Msg: "the server is loading its dataset: wait until INFO persistence shows loading:0", Err: re}
	case "MISCONF":
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: addr, Msg: "the server refuses writes (its last background save failed)", Err: re}
	case "MASTERDOWN", "MOVED", "ASK", "CROSSSLOT", "CLUSTERDOWN", "TRYAGAIN":
		return &respconn.ServerError{Role: respconn.RoleTarget, Addr: addr, Msg: "the server refused the write", Err: re}
	}
	return nil
}

// probe reads what a Plan needs from INFO and CONFIG GET.
func probe(c *respconn.Conn) (Target, error) {
	t := Target{Address: c.Addr(), Keys: map[int]int64{}, MaxBulkLen: 512 << 20, Databases: 16}
	in, err := c.Info()
	if err != nil {
		return t, &respconn.ServerError{Role: respconn.RoleTarget, Addr: c.Addr(), Msg: "INFO", Err: err}
	}
	t.RedisVersion, t.Cluster, t.Replica, t.PrimaryAddr, t.Keys = in.Version, in.Cluster, in.Replica, in.PrimaryAddr, in.Keys
	t.Replicas = in.ConnectedReplicas
	if t.RDBVersion, err = RDBVersionFor(t.RedisVersion); err != nil {
		return t, &respconn.ServerError{Role: respconn.RoleTarget, Addr: c.Addr(), Msg: "INFO server", Err: err}
	}
	if in.Valkey != "" {
		t.Valkey = in.Valkey
		t.RDBVersion, t.ValkeyRDB = serverver.RDBVersions("valkey", in.Valkey)
	}
	// CONFIG may be renamed or forbidden (managed services): keep defaults.
	if v, err := c.Do("CONFIG", "GET", "proto-max-bulk-len"); err == nil && len(v.Array) == 2 {
		if n, err := strconv.ParseInt(v.Array[1].Text(), 10, 64); err == nil && n > 0 {
			t.MaxBulkLen = n
		}
	}
	if v, err := c.Do("CONFIG", "GET", "databases"); err == nil && len(v.Array) == 2 {
		if n, err := strconv.Atoi(v.Array[1].Text()); err == nil && n > 0 {
			t.Databases = n
		}
	}
	return t, nil
}
