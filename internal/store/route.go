package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/podpin/podpin/internal/table"
)

// Route is one route's shared table: the route's own table in front of its
// keys in Redis. Safe for concurrent use.
type Route struct {
	s         *Redis
	name      string
	t         *table.Table
	idle      time.Duration
	absolute  time.Duration
	keepRaw   bool
	keyPrefix string
	window    int64 // seconds between expiry refreshes of one key

	// nprov is len(prov), read without the lock on every local hit.
	nprov atomic.Int64
	// guards prov
	mu sync.Mutex
	// prov holds the keys placed locally without Redis's answer, up to
	// maxProvisional; past it, overflow asks for a check of the whole
	// table instead, so a long outage costs no memory beyond the table's.
	prov     map[table.Key]mark
	overflow bool
	seq      uint64 // numbers marks, so a check ends only the mark it saw
}

// maxProvisional bounds the provisional keys a route remembers one by one.
const maxProvisional = 1 << 16

// mark is why a key is provisional: the pod it was rebound from ("" for a
// first placement).
type mark struct {
	prev string
	seq  uint64
}

// Degraded reports whether Redis is out of reach.
func (r *Route) Degraded() bool { return r.s.degraded.Load() }

// Lookup returns the pod k is pinned to: from the local table when it has
// the key (refreshing the key's expiry in Redis once per window of use, in
// the background), else from Redis, whose answer is kept locally. A
// provisional local entry is first checked against Redis. In the degraded
// state only the local table is asked.
func (r *Route) Lookup(k table.Key) (string, bool) {
	pod, prev, now, ok := r.t.LookupSince(k)
	if ok && r.nprov.Load() > 0 && !r.s.degraded.Load() {
		if m, isProv := r.provisional(k); isProv {
			pod, ok = r.confirm(k, m)
		}
	}
	if ok {
		if prev/r.window != now/r.window {
			select {
			case r.s.refresh <- touch{r, k}:
			default: // the batcher is behind; the next window refreshes
			}
		}
		return pod, true
	}
	if r.s.degraded.Load() {
		return "", false
	}
	ctx, cancel := r.s.ctx()
	defer cancel()
	v, err := r.s.c.Get(ctx, r.key(k)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return "", false
	case err != nil:
		r.s.fail("get", err)
		return "", false
	}
	e, ok := decode(v, k)
	if !ok || !r.t.Restore(e) {
		return "", false
	}
	return e.Pod, true
}

// Claim pins k to pod unless Redis holds another pod for it: when k was not
// pinned there (prev ""), or is still pinned to prev (a rebind). It returns
// the pod that won, which is also stored locally. A rebind is published so
// other replicas drop their copy. In the degraded state the local table
// decides alone (its entry is written back when Redis returns).
func (r *Route) Claim(k table.Key, prev, pod string, raw []byte) string {
	now := time.Now()
	if r.s.degraded.Load() {
		r.t.Store(k, pod, raw)
		r.markProvisional(k, prev)
		return pod
	}
	ours := r.encode(now, pod, raw)
	ctx, cancel := r.s.ctx()
	defer cancel()
	v, err := claimScript.Run(ctx, r.s.c, []string{r.key(k)}, prev, ours, r.ttl(now).Milliseconds()).Text()
	if err != nil {
		// Redis may have carried the claim out, or kept another's: the
		// entry is provisional until Redis answers.
		r.s.fail("claim", err)
		r.t.Store(k, pod, raw)
		r.markProvisional(k, prev)
		return pod
	}
	if v == ours {
		r.t.Store(k, pod, raw)
		r.unmark(k)
		if prev != "" {
			r.s.publish(r.name, digestHex(k))
		}
		return pod
	}
	e, ok := decode(v, k)
	if !ok {
		r.t.Store(k, pod, raw)
		r.markProvisional(k, prev)
		return pod
	}
	r.t.Restore(e)
	r.unmark(k)
	return e.Pod
}

// markProvisional records that k was placed locally without Redis's
// answer, rebinding from prev ("" for a first placement).
func (r *Route) markProvisional(k table.Key, prev string) {
	r.mu.Lock()
	if r.prov == nil {
		r.prov = map[table.Key]mark{}
	}
	m, ok := r.prov[k]
	switch {
	case !ok && len(r.prov) >= maxProvisional:
		r.overflow = true
	case !ok:
		r.nprov.Add(1)
		m.prev = prev
		fallthrough
	default:
		r.seq++
		m.seq = r.seq
		r.prov[k] = m
	}
	r.mu.Unlock()
	r.s.dirty.Store(true)
}

func (r *Route) provisional(k table.Key) (mark, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.prov[k]
	return m, ok
}

// confirm checks k's provisional entry against Redis on the request path
// and returns the pod that holds: Redis's where it has one, else the local
// one, now written to Redis. If Redis does not answer in time the entry
// stays provisional and the local pod serves.
func (r *Route) confirm(k table.Key, m mark) (string, bool) {
	e, ok := r.t.Peek(k)
	if !ok {
		return "", false
	}
	ctx, cancel := r.s.ctx()
	defer cancel()
	if err := r.settle(ctx, map[table.Key]mark{k: m}, []table.Entry{e}); err != nil {
		r.s.fail("confirm", err)
		return e.Pod, true
	}
	return r.t.Lookup(k)
}

// confirmAll checks every provisional entry against Redis, in batches; after
// an overflow, every entry of the table.
func (r *Route) confirmAll(ctx context.Context) error {
	r.mu.Lock()
	if r.overflow {
		r.overflow = false
		r.prov = nil
		r.nprov.Store(0)
		r.mu.Unlock()
		_, err := r.writeBackAll(ctx)
		if err != nil {
			r.mu.Lock()
			r.overflow = true
			r.mu.Unlock()
		}
		return err
	}
	batch := make(map[table.Key]mark, min(len(r.prov), 512))
	for k, m := range r.prov {
		batch[k] = m
		if len(batch) == 512 {
			break
		}
	}
	r.mu.Unlock()
	for len(batch) > 0 {
		entries := make([]table.Entry, 0, len(batch))
		for k := range batch {
			if e, ok := r.t.Peek(k); ok {
				entries = append(entries, e)
			}
		}
		if err := r.settle(ctx, batch, entries); err != nil {
			return err
		}
		if r.s.degraded.Load() {
			return nil
		}
		r.mu.Lock()
		clear(batch)
		for k, m := range r.prov {
			batch[k] = m
			if len(batch) == 512 {
				break
			}
		}
		r.mu.Unlock()
	}
	return nil
}

// settle writes provisional entries to Redis where it has none and adopts
// Redis's pod where it differs; then the keys of batch are no longer
// provisional, unless marked again meanwhile. A rebind that Redis holds
// (the claim was carried out though its answer was lost) is published, as
// a claim that answered would have been, so other replicas drop the pod it
// replaced.
func (r *Route) settle(ctx context.Context, batch map[table.Key]mark, entries []table.Entry) error {
	held, err := r.writeBackHeld(ctx, entries)
	if err != nil {
		return err
	}
	r.mu.Lock()
	for k, m := range batch {
		if r.prov[k] == m {
			delete(r.prov, k)
			r.nprov.Add(-1)
		}
	}
	r.mu.Unlock()
	for _, k := range held {
		if batch[k].prev != "" {
			r.s.publish(r.name, digestHex(k))
		}
	}
	return nil
}

// Get returns k's entry as Redis holds it, or as the local table does when
// Redis is out of reach.
func (r *Route) Get(k table.Key) (table.Entry, bool, error) {
	if r.s.degraded.Load() {
		e, ok := r.t.Peek(k)
		return e, ok, nil
	}
	ctx, cancel := r.s.ctx()
	defer cancel()
	v, err := r.s.c.Get(ctx, r.key(k)).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return table.Entry{}, false, nil
	case err != nil:
		r.s.fail("get", err)
		return table.Entry{}, false, err
	}
	e, ok := decode(v, k)
	return e, ok, nil
}

// Pin points k at pod in Redis, then locally, whatever it pointed at, and
// tells the other replicas. Redis goes first so that no check of a local
// entry can find Redis still holding the old pod and bring it back. When
// Redis fails the pin holds locally, provisionally: if Redis turns out to
// hold another pod once it answers, Redis's wins.
func (r *Route) Pin(k table.Key, pod string, raw []byte) error {
	now := time.Now()
	ctx, cancel := r.s.ctx()
	defer cancel()
	if err := r.s.c.Set(ctx, r.key(k), r.encode(now, pod, raw), r.ttl(now)).Err(); err != nil {
		r.s.fail("pin", err)
		r.t.Store(k, pod, raw)
		r.markProvisional(k, "")
		return fmt.Errorf("pinned locally only until redis answers; redis: %w", err)
	}
	r.t.Store(k, pod, raw)
	r.unmark(k)
	r.s.publish(r.name, digestHex(k))
	return nil
}

// unmark ends k's provisional state: Redis holds what the local table does.
func (r *Route) unmark(k table.Key) {
	if r.nprov.Load() == 0 {
		return
	}
	r.mu.Lock()
	if _, ok := r.prov[k]; ok {
		delete(r.prov, k)
		r.nprov.Add(-1)
	}
	r.mu.Unlock()
}

// Unpin removes k everywhere; it reports whether k was pinned.
func (r *Route) Unpin(k table.Key) (bool, error) {
	local := r.t.Delete(k)
	ctx, cancel := r.s.ctx()
	defer cancel()
	n, err := r.s.c.Del(ctx, r.key(k)).Result()
	if err != nil {
		r.s.fail("unpin", err)
		return local, fmt.Errorf("unpinned locally only; redis: %w", err)
	}
	r.s.publish(r.name, digestHex(k))
	return local || n > 0, nil
}

// ClearPod removes every key pinned to pod, in Redis (by SCAN over the
// route's keys, never KEYS) and in every replica's local table.
func (r *Route) ClearPod(pod string) (int, error) {
	local := r.t.DeletePod(pod)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	err := r.scanKeys(ctx, func(c redis.Cmdable, keys []string) error {
		for _, key := range keys {
			d, err := clearScript.Run(ctx, c, []string{key}, pod).Int()
			if err != nil {
				return err
			}
			n += d
		}
		return nil
	})
	if err != nil {
		r.s.fail("clear", err)
		return local, fmt.Errorf("cleared locally only; redis: %w", err)
	}
	r.s.publish(r.name, "*"+pod)
	return max(n, local), nil
}

// List calls fn for the route's entries in Redis, up to limit entries from
// cur (a Redis SCAN cursor; 0 starts), and returns the next cursor, 0 at
// the end. Redis Cluster cannot be listed page by page: there the local
// table is listed instead (ErrClusterList).
func (r *Route) List(cur uint64, limit int, fn func(table.Entry)) (uint64, error) {
	if r.s.cluster {
		return 0, ErrClusterList
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	seen := 0
	for seen < limit {
		keys, next, err := r.s.c.Scan(ctx, cur, r.keyPrefix+"*", int64(min(limit, 1000))).Result()
		if err != nil {
			r.s.fail("list", err)
			return 0, err
		}
		if len(keys) > 0 {
			vals, err := r.s.c.MGet(ctx, keys...).Result()
			if err != nil {
				r.s.fail("list", err)
				return 0, err
			}
			for i, v := range vals {
				str, ok := v.(string)
				k, kok := parseDigest(strings.TrimPrefix(keys[i], r.keyPrefix))
				if !ok || !kok {
					continue
				}
				if e, ok := decode(str, k); ok {
					fn(e)
					seen++
				}
			}
		}
		cur = next
		if cur == 0 {
			return 0, nil
		}
	}
	return cur, nil
}

// scanKeys calls fn with batches of the route's keys, on every master.
func (r *Route) scanKeys(ctx context.Context, fn func(redis.Cmdable, []string) error) error {
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, r.keyPrefix+"*", 1000).Iterator()
		var batch []string
		for it.Next(ctx) {
			batch = append(batch, it.Val())
			if len(batch) == 1000 {
				if err := fn(c, batch); err != nil {
					return err
				}
				batch = batch[:0]
			}
		}
		if err := it.Err(); err != nil {
			return err
		}
		return fn(c, batch)
	}
	if cc, ok := r.s.c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, r.s.c)
}

// writeBackAll writes back every entry of the route's table, in batches,
// and returns how many it examined.
func (r *Route) writeBackAll(ctx context.Context) (int, error) {
	n := 0
	var cursor uint64
	for {
		batch := make([]table.Entry, 0, 512)
		cursor = r.t.Scan(cursor, func(e table.Entry) bool {
			batch = append(batch, e)
			return len(batch) < cap(batch)
		})
		if err := r.writeBack(ctx, batch); err != nil {
			return n, err
		}
		n += len(batch)
		if cursor == 0 {
			return n, nil
		}
	}
}

// writeBack stores local entries in Redis where it has none for the key,
// and adopts locally what Redis has where it differs.
func (r *Route) writeBack(ctx context.Context, entries []table.Entry) error {
	_, err := r.writeBackHeld(ctx, entries)
	return err
}

// writeBackHeld is writeBack; it also returns the keys whose local pod
// Redis holds afterwards.
func (r *Route) writeBackHeld(ctx context.Context, entries []table.Entry) ([]table.Key, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now := time.Now()
	cmds := make([]*redis.Cmd, len(entries))
	// EVAL, not EVALSHA: a pipeline cannot fall back when the server lost
	// its scripts (a restart), and write-backs are rare.
	_, err := r.s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, e := range entries {
			ours := r.encode(e.Created, e.Pod, []byte(e.Raw))
			cmds[i] = writeBackScript.Eval(ctx, p, []string{r.key(e.Key)}, ours, r.ttlOf(e, now).Milliseconds())
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var held []table.Key
	for i, c := range cmds {
		v, err := c.Text()
		if err != nil {
			continue
		}
		got, ok := decode(v, entries[i].Key)
		switch {
		case !ok:
		case got.Pod != entries[i].Pod:
			r.adopt(got, entries[i].Pod)
		default:
			held = append(held, entries[i].Key)
		}
	}
	return held, nil
}

// adopt stores Redis's entry e locally in place of the local one, unless
// the local pod is no longer saw (a claim or an invalidation changed it
// since Redis was asked, so Redis's answer may be the older one).
func (r *Route) adopt(e table.Entry, saw string) {
	if cur, ok := r.t.Peek(e.Key); ok && cur.Pod == saw {
		r.t.Restore(e)
	}
}

func (r *Route) key(k table.Key) string { return r.keyPrefix + digestHex(k) }

// ttl is a new entry's expiry in Redis: the idle timeout, at least 1ms.
func (r *Route) ttl(time.Time) time.Duration { return max(r.idle, time.Millisecond) }

// ttlOf is an existing entry's remaining life: idle from now, bounded by
// its absolute timeout.
func (r *Route) ttlOf(e table.Entry, now time.Time) time.Duration {
	d := r.idle
	if r.absolute > 0 {
		d = min(d, e.Created.Add(r.absolute).Sub(now))
	}
	return max(d, time.Millisecond)
}

func (r *Route) encode(created time.Time, pod string, raw []byte) string {
	var b strings.Builder
	b.WriteString(strconv.FormatInt(created.UnixMilli(), 10))
	b.WriteByte('|')
	b.WriteString(pod)
	b.WriteByte('|')
	if r.keepRaw {
		b.Write(raw)
	}
	return b.String()
}

// decode parses a stored value into the entry of k, last used now.
func decode(v string, k table.Key) (table.Entry, bool) {
	created, rest, ok := strings.Cut(v, "|")
	if !ok {
		return table.Entry{}, false
	}
	pod, raw, ok := strings.Cut(rest, "|")
	ms, err := strconv.ParseInt(created, 10, 64)
	if !ok || err != nil || pod == "" {
		return table.Entry{}, false
	}
	return table.Entry{Key: k, Pod: pod, Raw: raw, Created: time.UnixMilli(ms).UTC(), LastUsed: time.Now().UTC()}, true
}

func digestHex(k table.Key) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.Hi)
	binary.BigEndian.PutUint64(b[8:], k.Lo)
	return hex.EncodeToString(b[:])
}

func parseDigest(s string) (table.Key, bool) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return table.Key{}, false
	}
	return table.Key{Hi: binary.BigEndian.Uint64(b[:8]), Lo: binary.BigEndian.Uint64(b[8:])}, true
}

// claimScript sets KEYS[1] to ARGV[2] (TTL ARGV[3] ms) when it is absent or
// still names pod ARGV[1] (a rebind from it); otherwise it returns the
// stored value, which the caller adopts.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  local pod = string.match(v, '^%d+|([^|]*)|')
  if pod ~= ARGV[1] then return v end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return ARGV[2]
`)

// writeBackScript stores ARGV[1] (TTL ARGV[2] ms) unless the key exists;
// it returns the stored value. Redis stays the authority: an entry placed
// while a replica was cut off never replaces one another replica claimed.
var writeBackScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`)

// clearScript deletes KEYS[1] if it names pod ARGV[1]; returns 1 if so.
var clearScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.match(v, '^%d+|([^|]*)|') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)
