// Package table is podpin's stick table: a bounded, sharded map from a
// session key's digest to the pod the session is pinned to, like HAProxy's
// stick tables.
//
// A Digester turns a route and a raw header value into a 128-bit Key with
// keyed SipHash-2-4, so the table never needs the raw value, which may be a
// credential, and every entry has the same size. Replicas that share the
// Digester secret agree on every Key.
//
// A Table maps Keys to pod names. Lookup is the request path: it takes one
// shard lock, reads a coarse Clock (one atomic load), touches one cache
// line (an open-addressing slot that holds the entry itself) and does not
// allocate. Store pins a key to a pod, or rebinds it to another one.
// Entries expire after IdleTimeout without use and, optionally, after
// AbsoluteTimeout since they were created or rebound. When the table is
// full, Store evicts with a segmented LRU: new keys wait in a probation
// segment and only keys hit again reach the protected segment, so a flood
// of one-time keys cannot push out sessions in use.
//
// Pod names are interned: an entry holds a 32-bit id, and the table keeps
// an exact count of live entries per pod (Sessions, SessionCounter) for
// least-sessions balancing and metrics. A slot takes 40 bytes, 32 for the
// entry and 8 for its list links, and at most 3/4 of the slots are used:
// a full table takes about 54 bytes per entry (a million entries in 52
// MiB, ten million in 510 MiB), a growing one 54 to 80.
//
// # Budget
//
// A Budget bounds the entries of several tables together, as podpin bounds
// all its routes' tables by one total derived from its memory limit
// (EntriesFor). When it is full, a new entry first evicts one from its own
// table when that table holds at least the average per member, else from
// the member that holds the most, in the order capacity evictions follow.
// SetTables changes the members; Lookup never touches the budget.
//
// # Settings
//
// Config fields, with defaults:
//
//	MaxEntries       1,000,000  most entries; a full shard evicts its least recently used
//	IdleTimeout      30m        dropped this long after the last use (whole seconds)
//	AbsoluteTimeout  0 (none)   dropped this long after creation or rebind, even in use
//	Shards           64         power of two; fewer so that each holds at least 256 entries
//	KeepRawKeys      false      keep raw header values, for listing sessions by value
//	Clock            nil        a coarse clock, one atomic load per operation; its owner stops it
//	Now              time.Now   read on every operation when Clock is nil; tests inject a fake one
//
// Times are kept in whole seconds since 2020-01-01 UTC, so snapshots keep
// their meaning across restarts; timeouts may run up to two seconds long.
//
// # Counters
//
// Stats reports entries, hits, misses, inserts, rebinds, and removals by
// reason: capacity evictions, budget evictions, idle expiries and absolute
// expiries. Len and
// Sessions count expired entries that no Lookup, Store or Expire has
// removed yet; the owner calls Expire periodically to remove them.
//
// # Clock
//
// Whoever creates tables owns their Clock: NewClock starts its goroutine,
// which reads the wall clock every 100ms, and Stop ends it once the tables
// are no longer used. A table created alone, without a Clock, reads the
// wall clock on every operation and needs no goroutine.
//
// # Example
//
//	clock := table.NewClock()
//	defer clock.Stop()
//	d := table.NewDigester(secret)
//	t := table.New(table.Config{MaxEntries: 500_000, IdleTimeout: time.Hour, Clock: clock})
//
//	k := d.Key("shop", []byte(r.Header.Get("X-Session")))
//	pod, ok := t.Lookup(k)
//	if !ok || !canServe(pod) {
//		pod = pick()
//		t.Store(k, pod, nil)
//	}
package table
