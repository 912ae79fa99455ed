package table

import (
	"maps"
	"strings"
	"sync"
	"sync/atomic"
)

// maxPods is how many distinct pod names a table can intern: entries keep
// the pod id in 29 bits beside three flag bits.
const maxPods = 1 << 29

// podRec is one interned pod name and the number of live entries pinned
// to it. A podRec is never freed or reused while its table lives, so
// callers may keep pointers to its counter.
type podRec struct {
	name     string
	id       uint32
	sessions atomic.Int64
}

// podPool interns pod names. Entries store a pod's uint32 id; the hit path
// turns it back into the name with one atomic load and no lock.
//
// Names are looked up through a read-only map snapshot, and under mu in an
// authoritative map when the snapshot lacks them. As in sync.Map, the
// snapshot is replaced by a copy of the full map once the misses since the
// last copy reach its size, so copying costs O(1) per miss amortized while
// a new pod's name soon becomes readable without the lock.
//
// A podPool is safe for concurrent use.
type podPool struct {
	recs  atomic.Pointer[[]*podRec]          // by id; grows by append only
	names atomic.Pointer[map[string]*podRec] // may lack the newest names

	mu sync.Mutex
	// guards all, byName and misses, and the stores to recs and names
	all    []*podRec
	byName map[string]*podRec
	misses int
}

func newPodPool() *podPool {
	p := &podPool{byName: map[string]*podRec{}}
	recs := []*podRec{}
	names := map[string]*podRec{}
	p.recs.Store(&recs)
	p.names.Store(&names)
	return p
}

// name returns the interned name for id. It does not lock or allocate.
func (p *podPool) name(id uint32) string {
	return (*p.recs.Load())[id].name
}

// rec returns the record for id. It does not lock or allocate.
func (p *podPool) rec(id uint32) *podRec {
	return (*p.recs.Load())[id]
}

// lookup returns the record for name, or nil when name was never interned.
func (p *podPool) lookup(name string) *podRec {
	if r := (*p.names.Load())[name]; r != nil {
		return r
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.byName[name]
	if r != nil {
		p.missed()
	}
	return r
}

// intern returns the record for name, creating it on first use. Only the
// first call for a name allocates. It panics after maxPods distinct names.
func (p *podPool) intern(name string) *podRec {
	if r := (*p.names.Load())[name]; r != nil {
		return r
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := p.byName[name]; r != nil {
		p.missed()
		return r
	}
	if len(p.all) >= maxPods {
		panic("table: too many distinct pod names")
	}
	// Clone so that the pool never pins a caller's larger buffer.
	r := &podRec{name: strings.Clone(name), id: uint32(len(p.all))}
	// Appending writes only past the length readers of the old slice see,
	// so publishing a new header is enough.
	p.all = append(p.all, r)
	recs := p.all
	p.recs.Store(&recs)
	p.byName[r.name] = r
	p.missed()
	return r
}

// missed records a name found only under the lock and, once such misses
// reach the map's size, publishes a fresh snapshot.
func (p *podPool) missed() {
	p.misses++
	if p.misses < len(p.byName) {
		return
	}
	names := maps.Clone(p.byName)
	p.names.Store(&names)
	p.misses = 0
}
