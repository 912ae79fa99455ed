package store

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
}

// Degraded reports whether Redis is out of reach.
func (r *Route) Degraded() bool { return r.s.degraded.Load() }

// Lookup returns the pod k is pinned to: from the local table when it has
// the key (refreshing the key's expiry in Redis once per window of use, in
// the background), else from Redis, whose answer is kept locally. In the
// degraded state only the local table is asked.
func (r *Route) Lookup(k table.Key) (string, bool) {
	pod, prev, ok := r.t.LookupSince(k)
	if ok {
		if now := r.s.now.Load(); prev/r.window != now/r.window {
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
		return pod
	}
	ours := r.encode(now, pod, raw)
	ctx, cancel := r.s.ctx()
	defer cancel()
	v, err := claimScript.Run(ctx, r.s.c, []string{r.key(k)}, prev, ours, r.ttl(now).Milliseconds()).Text()
	if err != nil {
		r.s.fail("claim", err)
		r.t.Store(k, pod, raw)
		return pod
	}
	if v == ours {
		r.t.Store(k, pod, raw)
		if prev != "" {
			r.s.publish(r.name, digestHex(k))
		}
		return pod
	}
	e, ok := decode(v, k)
	if !ok {
		r.t.Store(k, pod, raw)
		return pod
	}
	r.t.Restore(e)
	return e.Pod
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

// Pin points k at pod in Redis and locally, whatever it pointed at, and
// tells the other replicas.
func (r *Route) Pin(k table.Key, pod string, raw []byte) error {
	now := time.Now()
	r.t.Store(k, pod, raw)
	ctx, cancel := r.s.ctx()
	defer cancel()
	if err := r.s.c.Set(ctx, r.key(k), r.encode(now, pod, raw), r.ttl(now)).Err(); err != nil {
		r.s.fail("pin", err)
		return fmt.Errorf("pinned locally only; redis: %w", err)
	}
	r.s.publish(r.name, digestHex(k))
	return nil
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

// writeBack stores local entries in Redis where it has none for the key,
// and adopts locally what Redis has where it differs.
func (r *Route) writeBack(ctx context.Context, entries []table.Entry) error {
	if len(entries) == 0 {
		return nil
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
		return err
	}
	for i, c := range cmds {
		v, err := c.Text()
		if err != nil {
			continue
		}
		if got, ok := decode(v, entries[i].Key); ok && got.Pod != entries[i].Pod {
			r.t.Restore(got)
		}
	}
	return nil
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
