// Package redisurl parses the addresses of the Redis servers redback reads
// from and writes to, and turns them into go-redis options or raw (optionally
// TLS) connections.
//
// Accepted forms:
//
//	redis://[user:pass@]host:port[/db]
//	rediss://[user:pass@]host:port[/db]      (TLS)
//	unix:///path/redis.sock[?db=N]
//	host:port                                (plain TCP, no TLS)
//
// When the URL carries no password, REDISCLI_AUTH and then REDIS_PASSWORD
// are consulted through the getenv function the caller passes.
//
// Passwords never appear in Redacted, String, or in any error this package
// returns.
package redisurl
