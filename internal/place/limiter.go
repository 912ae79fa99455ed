package place

import (
	"net/netip"
	"sync"
	"time"
)

// SessionLimiter caps how fast one client address may create stick table
// entries: a token bucket per address (rate per second, burst), kept in a
// bounded map so a flood from many addresses cannot grow it without end.
// Safe for concurrent use.
type SessionLimiter struct {
	rate  float64 // tokens per second
	burst float64
	max   int // addresses tracked per shard

	shards [16]limiterShard
}

type limiterShard struct {
	// guards buckets
	mu      sync.Mutex
	buckets map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// limiterAddrs bounds the addresses a SessionLimiter tracks. When a shard
// is full, addresses whose bucket has refilled (they are as good as new) are
// dropped; if none has, an arbitrary one is, which only ever lets that
// address create entries sooner, never later.
const limiterAddrs = 1 << 16

// NewSessionLimiter returns a limiter, or nil when perSecond is zero (no
// cap).
func NewSessionLimiter(perSecond float64, burst int) *SessionLimiter {
	if perSecond <= 0 {
		return nil
	}
	l := &SessionLimiter{rate: perSecond, burst: float64(max(burst, 1)), max: limiterAddrs / 16}
	for i := range l.shards {
		l.shards[i].buckets = map[netip.Addr]*bucket{}
	}
	return l
}

// Allow takes one token from addr's bucket, reporting whether there was one.
func (l *SessionLimiter) Allow(addr netip.Addr, now time.Time) bool {
	b16 := addr.As16()
	s := &l.shards[(b16[15]^b16[13]^b16[11])&15]
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[addr]
	if b == nil {
		if len(s.buckets) >= l.max {
			s.shrink(l, now)
		}
		b = &bucket{tokens: l.burst, last: now}
		s.buckets[addr] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// shrink makes room in a full shard. s.mu must be held.
func (s *limiterShard) shrink(l *SessionLimiter, now time.Time) {
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for a, b := range s.buckets {
		if now.Sub(b.last) >= full {
			delete(s.buckets, a)
		}
	}
	for a := range s.buckets {
		if len(s.buckets) < l.max {
			return
		}
		delete(s.buckets, a)
	}
}
