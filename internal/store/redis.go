// Package store shares stick tables between podpin replicas through Redis
// (or Valkey; one node, Sentinel or Cluster). Each replica keeps its own
// table as a near cache: hits are served from it without a round trip, and
// Redis is asked only on a local miss, to claim a new key, and to refresh a
// key's expiry once per period of use.
//
// Consistency: the first placement of a key is a claim (a compare-and-set
// script: set if absent, else return the stored pod), so two replicas never
// pin one key to two pods; a rebind replaces the stored pod only if it is
// still the one the replica saw. Rebinds, pins, unpins and clears are
// published on a channel and every other replica drops its copy (within
// milliseconds; within a second of reconnecting when a replica lost its
// subscription, by a reconcile pass over its table).
//
// Failure: a Redis call that fails or outlasts its timeout marks the store
// degraded. The proxy then serves from the local tables only and places new
// keys with the deterministic hash balancer, so replicas still agree. A
// probe notices Redis again (within 250ms; or a restarted or failed-over
// Redis, by its run id) and writes the local entries back where Redis has
// none, adopting what Redis has where it differs, before leaving the
// degraded state: Redis stays the authority, so an entry placed while one
// replica was cut off never replaces one another replica claimed meanwhile.
// No request fails because of Redis.
//
// Convergence: an entry a replica placed without Redis's answer (degraded,
// or a claim that timed out, which Redis may still have carried out) is
// provisional. It is checked against Redis on its next request and by a
// background pass every 250ms once Redis answers; where Redis holds another
// pod, Redis's wins. The expiry refresh of keys in use compares the local
// pod with Redis's too. So after a fault every replica agrees with Redis
// again within about a second of Redis answering it (the probe, then one
// pass). Background calls (write-backs, refreshes, checks) get at least
// BackgroundTimeout, however short the request-path Timeout is.
//
// Keys are PREFIX + route + ":" + the key digest in hex; values are
// "created-unix-ms|pod|raw-key" (raw key only when the route keeps them),
// with the route's idle timeout as TTL.
//
// Settings are Options: the connection (URL or Addrs, MasterName for
// Sentinel, Cluster, credentials, TLS, Dialer), KeyPrefix (default
// "podpin:"), Timeout on the request path (default 50ms; calls off it get
// at least BackgroundTimeout, 2s) and DialTimeout (default 500ms). The store reports errors, the degraded state, invalidations and
// write-backs through Metrics (podpin_store_*).
//
//	s, err := store.New(store.Options{URL: "redis://redis:6379"})
//	go s.Run(ctx)
package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/podpin/podpin/internal/table"
)

// Redis is the connection shared by every route whose store is redis. Safe
// for concurrent use.
type Redis struct {
	c       redis.UniversalClient
	cluster bool
	prefix  string
	timeout time.Duration
	channel string
	id      string // this replica, to skip its own invalidations
	log     *slog.Logger
	m       Metrics

	degraded atomic.Bool
	runID    atomic.Value // string: the server last seen, to notice restarts

	refresh chan touch
	// dirty is set when some route holds provisional entries.
	dirty atomic.Bool

	// guards routes
	mu     sync.Mutex
	routes map[string]*Route
}

// Metrics counts what the store does; nil methods are not allowed, use
// NopMetrics.
type Metrics interface {
	StoreError(op string)
	StoreDegraded(bool)
	StoreInvalidation()
	StoreWriteBack(n int)
}

// NopMetrics counts nothing.
type NopMetrics struct{}

func (NopMetrics) StoreError(string)  {}
func (NopMetrics) StoreDegraded(bool) {}
func (NopMetrics) StoreInvalidation() {}
func (NopMetrics) StoreWriteBack(int) {}

type touch struct {
	r *Route
	k table.Key
}

// Options say how to reach Redis (or Valkey): one node, Sentinel or
// Cluster, and what the store reports to.
type Options struct {
	// URL is redis://[user:password@]host:port[/db], or rediss:// for TLS:
	// one node. Give URL or Addrs.
	URL string
	// Addrs are host:port. With MasterName they are Sentinels; with
	// Cluster they are cluster nodes; otherwise exactly one node.
	Addrs []string
	// MasterName selects Sentinel mode: the name of the monitored master.
	// Empty: not Sentinel.
	MasterName string
	// Cluster selects Redis Cluster mode.
	Cluster bool
	// Username for Redis ACLs. Empty: the default user, or the URL's.
	Username string
	// Password authenticates the connection. Empty: the URL's, or none.
	Password string
	// DB is the database number (not in Cluster mode). Default 0, or the
	// URL's.
	DB int
	// TLS turns on TLS to Redis; a rediss:// URL does too.
	TLS bool
	// RootCAs verify Redis's certificate. Nil: the system's roots.
	RootCAs *x509.CertPool
	// TLSServerName is the name checked in Redis's certificate. Empty: the
	// host connected to.
	TLSServerName string
	// KeyPrefix starts every key the store writes, and names its
	// invalidation channel (KeyPrefix + "invalidate"). Default "podpin:".
	KeyPrefix string
	// Timeout bounds each call on the request path; past it the request is
	// served from the local table. Calls off it get at least
	// BackgroundTimeout. Default 50ms.
	Timeout time.Duration
	// DialTimeout bounds connecting. Default 500ms.
	DialTimeout time.Duration
	// Dialer connects to one Redis node (addr as Redis names it, e.g. from
	// CLUSTER SLOTS). Nil: TCP.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives state changes (Redis lost and back); nil discards.
	Logger *slog.Logger
	// Metrics counts errors, degraded state, invalidations and write-backs;
	// nil counts nothing.
	Metrics Metrics
}

// Defaults of Options.
const (
	DefaultKeyPrefix   = "podpin:"
	DefaultTimeout     = 50 * time.Millisecond
	DefaultDialTimeout = 500 * time.Millisecond
	// BackgroundTimeout is the least time a call off the request path
	// (write-back, expiry refresh, the check of a provisional entry) is
	// given: these must finish for replicas to agree, whatever Timeout is.
	BackgroundTimeout = 2 * time.Second
)

// New connects to Redis as o says. It does not wait for Redis: a store
// that cannot reach it starts degraded.
func New(o Options) (*Redis, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NopMetrics{}
	}
	o.KeyPrefix = cmp.Or(o.KeyPrefix, DefaultKeyPrefix)
	o.Timeout = cmp.Or(o.Timeout, DefaultTimeout)
	o.DialTimeout = cmp.Or(o.DialTimeout, DefaultDialTimeout)
	uo, err := universalOptions(o)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	rand.Read(id[:])
	s := &Redis{
		c:       redis.NewUniversalClient(uo),
		cluster: o.Cluster,
		prefix:  o.KeyPrefix,
		timeout: o.Timeout,
		channel: o.KeyPrefix + "invalidate",
		id:      hex.EncodeToString(id[:]),
		log:     o.Logger,
		m:       o.Metrics,
		refresh: make(chan touch, 4096),
		routes:  map[string]*Route{},
	}
	s.runID.Store("")
	return s, nil
}

// universalOptions turns the options into go-redis options, with no
// retries: a slow Redis must cost a request at most one timeout, after
// which the local table serves. The connection's own read and write
// timeouts are the longest a call may take (BackgroundTimeout, or Timeout
// if longer); each call's context sets its own, shorter, deadline on the
// request path.
func universalOptions(o Options) (*redis.UniversalOptions, error) {
	uo := &redis.UniversalOptions{
		Addrs:         o.Addrs,
		MasterName:    o.MasterName,
		IsClusterMode: o.Cluster,
		DB:            o.DB,
		Username:      o.Username,
		DialTimeout:   o.DialTimeout,
		ReadTimeout:   max(o.Timeout, BackgroundTimeout),
		WriteTimeout:  max(o.Timeout, BackgroundTimeout),
		Dialer:        o.Dialer,
		MaxRetries:    -1,
		PoolSize:      64,
		// Context deadlines bound each call on the request path.
		ContextTimeoutEnabled: true,
	}
	tlsOn := o.TLS
	if o.URL != "" {
		u, err := redis.ParseURL(o.URL)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		uo.Addrs, uo.DB, uo.Username, uo.Password = []string{u.Addr}, u.DB, u.Username, u.Password
		tlsOn = tlsOn || u.TLSConfig != nil
	}
	if o.Password != "" {
		uo.Password = o.Password
	}
	if o.MasterName != "" {
		// Sentinels hold no ACL of the data nodes' by default.
		uo.SentinelUsername, uo.SentinelPassword = "", ""
	}
	if tlsOn {
		uo.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName, RootCAs: o.RootCAs}
	}
	return uo, nil
}

// Close closes the connections.
func (s *Redis) Close() error { return s.c.Close() }

// Degraded reports whether the store is serving from local tables only.
func (s *Redis) Degraded() bool { return s.degraded.Load() }

// Route returns the handle of one route's shared table, with t as its near
// cache. Calling it again for a name replaces the previous handle (a reload
// that rebuilt the route's table).
func (s *Redis) Route(name string, t *table.Table, idle, absolute time.Duration, keepRaw bool) *Route {
	r := &Route{s: s, name: name, t: t, idle: idle, absolute: absolute, keepRaw: keepRaw,
		keyPrefix: s.prefix + name + ":", window: refreshWindow(idle)}
	s.mu.Lock()
	s.routes[name] = r
	s.mu.Unlock()
	return r
}

// refreshWindow is how often one key's expiry in Redis is pushed forward
// while the key is in use: a quarter of the idle timeout, between 1s and 5m.
func refreshWindow(idle time.Duration) int64 {
	return int64(min(max(idle/4, time.Second), 5*time.Minute) / time.Second)
}

func (s *Redis) route(name string) *Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routes[name]
}

func (s *Redis) allRoutes() []*Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Route, 0, len(s.routes))
	for _, r := range s.routes {
		out = append(out, r)
	}
	return out
}

// fail records a failed call and enters the degraded state.
func (s *Redis) fail(op string, err error) {
	s.m.StoreError(op)
	if !s.degraded.Swap(true) {
		s.m.StoreDegraded(true)
		s.log.Warn("redis unavailable: serving from local tables, new keys placed by hash", "op", op, "error", err)
	}
}

func (s *Redis) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// Run owns the store's goroutines until ctx ends: the probe that
// notices Redis coming back, the invalidation subscriber and the batcher of
// expiry refreshes.
func (s *Redis) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { s.probe(ctx) })
	wg.Go(func() { s.subscribe(ctx) })
	wg.Go(func() { s.batch(ctx) })
	wg.Wait()
	return nil
}

// probe checks Redis every second (every 250ms while degraded). When Redis
// answers after an outage, or answers with another run id (restarted, or a
// replica promoted by Sentinel), the local tables are written back before
// the degraded state ends.
func (s *Redis) probe(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !s.degraded.Load() && s.dirty.Load() {
				s.confirmAll(ctx)
			}
			if !s.degraded.Load() && now.Sub(last) < time.Second {
				continue
			}
			last = now
		}
		id, err := s.serverID(ctx)
		if err != nil {
			s.fail("probe", err)
			continue
		}
		prev := s.runID.Swap(id).(string)
		restarted := prev != "" && prev != id
		if s.degraded.Load() || restarted {
			if restarted {
				s.log.Warn("redis server changed (restart or failover): writing local entries back", "run_id", id)
			}
			n, err := s.writeBackAll(ctx)
			if err != nil {
				s.fail("write-back", err)
				continue
			}
			s.m.StoreWriteBack(n)
			if s.degraded.Swap(false) {
				s.m.StoreDegraded(false)
				s.log.Info("redis available again: local entries written back", "entries", n)
			}
		}
	}
}

// serverID returns the run id of the server podpin writes to (for Cluster,
// of the nodes together).
func (s *Redis) serverID(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, BackgroundTimeout))
	defer cancel()
	if cc, ok := s.c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		var ids []string
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			id, err := runID(ctx, c)
			mu.Lock()
			ids = append(ids, id)
			mu.Unlock()
			return err
		})
		slices.Sort(ids)
		return strings.Join(ids, ","), err
	}
	return runID(ctx, s.c)
}

func runID(ctx context.Context, c redis.Cmdable) (string, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(line, "run_id:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", errors.New("no run_id in INFO server")
}

// subscribe applies other replicas' invalidations to the local tables. A
// subscription made again after a lost connection may have missed some, so
// it triggers a reconcile pass.
func (s *Redis) subscribe(ctx context.Context) {
	ps := s.c.Subscribe(ctx, s.channel)
	// Receive does not return on ctx alone; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	defer ps.Close()
	subscribed := 0
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			subscribed++
			if subscribed > 1 {
				s.log.Info("invalidation channel subscribed again: reconciling local tables")
				go func() {
					if n, err := s.writeBackAll(ctx); err != nil {
						s.fail("reconcile", err)
					} else {
						s.m.StoreWriteBack(n)
					}
				}()
			}
		case *redis.Message:
			s.invalidate(m.Payload)
		}
	}
}

// Invalidation messages: "sender|route|digest-hex" drops one key,
// "sender|route|*pod" drops every key pinned to pod.
func (s *Redis) publish(route, what string) {
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.c.Publish(ctx, s.channel, s.id+"|"+route+"|"+what).Err(); err != nil {
		s.fail("publish", err)
	}
}

func (s *Redis) invalidate(payload string) {
	sender, rest, ok := strings.Cut(payload, "|")
	if !ok || sender == s.id {
		return
	}
	route, what, ok := strings.Cut(rest, "|")
	if !ok {
		return
	}
	r := s.route(route)
	if r == nil {
		return
	}
	s.m.StoreInvalidation()
	if pod, ok := strings.CutPrefix(what, "*"); ok {
		r.t.DeletePod(pod)
		return
	}
	if k, ok := parseDigest(what); ok {
		r.t.Delete(k)
	}
}

// batch collects expiry refreshes and sends them once a second, one
// pipeline for all. A key gone from Redis (expired there, or Redis
// restarted empty) is written back from the local table.
func (s *Redis) batch(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	pending := map[touch]struct{}{}
	for {
		select {
		case <-ctx.Done():
			return
		case tc := <-s.refresh:
			pending[tc] = struct{}{}
		case <-t.C:
			if len(pending) == 0 || s.degraded.Load() {
				continue
			}
			s.flush(ctx, pending)
			clear(pending)
		}
	}
}

// flush pushes the expiry of the keys in use forward, and compares each
// with Redis on the way: where Redis holds another pod (a rebind whose
// invalidation this replica missed), Redis's is adopted; where Redis has
// none (expired there, or Redis restarted empty), the local entry is
// written back.
func (s *Redis) flush(ctx context.Context, pending map[touch]struct{}) {
	ctx, cancel := context.WithTimeout(ctx, max(s.timeout, 5*time.Second))
	defer cancel()
	batch := make([]touch, 0, len(pending))
	saw := make([]string, 0, len(pending)) // the local pod before asking
	gets := make([]*redis.StringCmd, 0, len(pending))
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for tc := range pending {
			e, _ := tc.r.t.Peek(tc.k)
			batch = append(batch, tc)
			saw = append(saw, e.Pod)
			gets = append(gets, p.Get(ctx, tc.r.key(tc.k)))
			p.PExpire(ctx, tc.r.key(tc.k), tc.r.ttl(time.Now()))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		s.fail("refresh", err)
		return
	}
	for i, c := range gets {
		tc := batch[i]
		local, found := tc.r.t.Peek(tc.k)
		if !found || local.Pod != saw[i] {
			continue // changed meanwhile: what Redis said may be older
		}
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			tc.r.writeBack(ctx, []table.Entry{local})
			continue
		}
		if e, ok := decode(v, tc.k); ok && e.Pod != local.Pod {
			tc.r.adopt(e, local.Pod)
		}
	}
}

// confirmAll checks every provisional entry of every route against Redis.
// Each batch is bounded as write-backs are.
func (s *Redis) confirmAll(ctx context.Context) {
	s.dirty.Store(false)
	for _, r := range s.allRoutes() {
		err := r.confirmAll(ctx)
		if r.nprov.Load() > 0 {
			s.dirty.Store(true)
		}
		if err != nil {
			s.fail("confirm", err)
			return
		}
	}
}

// writeBackAll writes every local entry of every route to Redis where Redis
// has none for the key, and adopts what Redis has where it differs. It returns how many entries it examined.
func (s *Redis) writeBackAll(ctx context.Context) (int, error) {
	n := 0
	for _, r := range s.allRoutes() {
		m, err := r.writeBackAll(ctx)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
