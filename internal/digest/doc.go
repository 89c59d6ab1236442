// Package digest computes Redis's DEBUG DIGEST and DEBUG DIGEST-VALUE
// offline, from the key records of an RDB file (see redis-formats.md §8.3),
// so a snapshot can be compared with the digest a live server reported.
//
// The algorithm: every key contributes a term t = SHA1-mix of its name, its
// logical type and its elements (order-sensitive for strings, lists and
// streams; order-free for sets, sorted sets and hashes), plus "!!expire!!"
// when the key has a TTL. Each non-empty db j contributes
// final = SHA1(final ⊕ SHA1(BE32(j))) once, in ascending id order, and then
// final ⊕= SHA1(t) for each of its keys. A Digest keeps one accumulator per
// db, so records may arrive in any db order; memory is bounded by the
// number of dbs, never by the number of keys.
//
// Known limits, all shared with what a server reports:
//   - Module values contribute only their type (5): the module's digest
//     callback is not available offline, so a module with a callback gives a
//     different digest here than on a server that loaded the module.
//   - Keys whose TTL already passed are included, as DEBUG DIGEST includes
//     expired keys not yet deleted. A primary that loads the same RDB drops
//     them, so its digest can differ; count them (Record.Expire < now) to
//     explain such a mismatch.
//   - Sorted-set scores are mixed in as text, whose format changed in Redis
//     7.2 (see ScoreFormat): pick the format of the server you compare with.
package digest
