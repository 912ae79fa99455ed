package balance

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// testPod is an in-memory Pod whose loads tests set directly.
type testPod struct {
	name     string
	weight   int
	inFlight atomic.Int64
	sessions atomic.Int64
}

func (p *testPod) Name() string    { return p.name }
func (p *testPod) Weight() int     { return p.weight }
func (p *testPod) InFlight() int64 { return p.inFlight.Load() }
func (p *testPod) Sessions() int64 { return p.sessions.Load() }

var _ Pod = (*testPod)(nil)

// newPods returns one weight-1 pod per name.
func newPods(names ...string) []Pod {
	pods := make([]Pod, len(names))
	for i, n := range names {
		pods[i] = &testPod{name: n, weight: 1}
	}
	return pods
}

// weightedPods returns pods named pod-0, pod-1, ... with the given weights.
func weightedPods(weights ...int) []Pod {
	pods := make([]Pod, len(weights))
	for i, w := range weights {
		pods[i] = &testPod{name: fmt.Sprintf("pod-%d", i), weight: w}
	}
	return pods
}

// loadedPods returns weight-1 pods pod-0, pod-1, ... with the given in-flight
// counts and session counts both set to loads.
func loadedPods(loads ...int64) []Pod {
	pods := make([]Pod, len(loads))
	for i, l := range loads {
		p := &testPod{name: fmt.Sprintf("pod-%d", i), weight: 1}
		p.inFlight.Store(l)
		p.sessions.Store(l)
		pods[i] = p
	}
	return pods
}

func mustNew(t testing.TB, name string) Balancer {
	t.Helper()
	b, err := New(name)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return b
}

// countPicks calls b.Pick n times with key 0 and returns how often each index
// was chosen.
func countPicks(t *testing.T, b Balancer, pods []Pod, n int) []int {
	t.Helper()
	counts := make([]int, len(pods))
	for range n {
		i := b.Pick(0, pods)
		if i < 0 || i >= len(pods) {
			t.Fatalf("Pick returned %d, want an index in [0, %d)", i, len(pods))
		}
		counts[i]++
	}
	return counts
}

func TestNames(t *testing.T) {
	got := strings.Join(Names(), ",")
	want := "round-robin,least-conn,least-sessions,random-two,hash"
	if got != want {
		t.Errorf("Names() = %s, want %s", got, want)
	}
	Names()[0] = "changed"
	if got := Names()[0]; got != RoundRobin {
		t.Errorf("after a caller changed the returned slice, Names()[0] = %q, want %q", got, RoundRobin)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Balancer
		wantErr string
	}{
		{name: "empty name means round robin", in: "", want: &roundRobin{}},
		{name: "round-robin builds round robin", in: RoundRobin, want: &roundRobin{}},
		{name: "least-conn builds least in flight", in: LeastConn, want: &leastLoaded{}},
		{name: "least-sessions builds least sessions", in: LeastSessions, want: &leastLoaded{}},
		{name: "random-two builds power of two choices", in: RandomTwo, want: randomTwo{}},
		{name: "hash builds rendezvous hashing", in: Hash, want: rendezvous{}},
		{
			name:    "unknown name is quoted and valid names listed",
			in:      "least_conn",
			wantErr: `unknown balancer "least_conn": want one of round-robin, least-conn, least-sessions, random-two, hash`,
		},
		{
			name:    "names are case sensitive",
			in:      "Hash",
			wantErr: `unknown balancer "Hash": want one of round-robin, least-conn, least-sessions, random-two, hash`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("New(%q) = %T, want error %q", tt.in, got, tt.wantErr)
				}
				if !errors.Is(err, ErrUnknown) {
					t.Errorf("New(%q) error %v does not wrap ErrUnknown", tt.in, err)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("New(%q) error: got %q, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): got error %v, want none", tt.in, err)
			}
			if fmt.Sprintf("%T", got) != fmt.Sprintf("%T", tt.want) {
				t.Errorf("New(%q): got %T, want %T", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewReturnsIndependentState(t *testing.T) {
	a, b := mustNew(t, RoundRobin), mustNew(t, RoundRobin)
	pods := newPods("a", "b", "c")
	a.Pick(0, pods)
	if got := b.Pick(0, pods); got != 0 {
		t.Errorf("first pick of a second round robin: got %d, want 0", got)
	}
}

func TestPickEmptyAndSingle(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			b := mustNew(t, name)
			for _, pods := range [][]Pod{nil, {}} {
				if got := b.Pick(42, pods); got != -1 {
					t.Errorf("Pick over %d pods: got %d, want -1", len(pods), got)
				}
			}
			one := newPods("only")
			for key := range uint64(10) {
				if got := b.Pick(key, one); got != 0 {
					t.Errorf("Pick(%d) over one pod: got %d, want 0", key, got)
				}
			}
		})
	}
}

func TestCompareLoad(t *testing.T) {
	tests := []struct {
		name string
		l1   int64
		w1   int
		l2   int64
		w2   int
		want int
	}{
		{name: "fewer in flight is less", l1: 1, w1: 1, l2: 2, w2: 1, want: -1},
		{name: "equal ratios are equal", l1: 2, w1: 1, l2: 6, w2: 3, want: 0},
		{name: "weight divides the load", l1: 5, w1: 3, l2: 2, w2: 1, want: -1},
		{name: "more per unit of weight is more", l1: 3, w1: 2, l2: 1, w2: 1, want: 1},
		{name: "negative load counts as zero", l1: -5, w1: 1, l2: 0, w2: 7, want: 0},
		{name: "products beyond 64 bits stay exact", l1: math.MaxInt64, w1: math.MaxInt, l2: math.MaxInt64 - 1, w2: math.MaxInt, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compareLoad(tt.l1, tt.w1, tt.l2, tt.w2); got != tt.want {
				t.Errorf("compareLoad(%d/%d, %d/%d): got %d, want %d", tt.l1, tt.w1, tt.l2, tt.w2, got, tt.want)
			}
		})
	}
}

// TestConcurrentPick runs every balancer from many goroutines while loads
// change underneath; run it with -race.
func TestConcurrentPick(t *testing.T) {
	const goroutines, picks = 8, 3000
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			b := mustNew(t, name)
			pods := weightedPods(1, 2, 1, 3)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range picks {
						n := len(pods) - g%2 // the set changes between calls
						j := b.Pick(uint64(i), pods[:n])
						if j < 0 || j >= n {
							t.Errorf("Pick over %d pods returned %d", n, j)
							return
						}
						p := pods[j].(*testPod)
						p.inFlight.Add(1)
						p.sessions.Add(1)
						p.inFlight.Add(-1)
					}
				})
			}
			wg.Wait()
		})
	}
}

// FuzzPick checks every balancer on arbitrary pod sets: the result is always
// an index into pods, -1 only for an empty set, and least-conn,
// least-sessions and random-two respect their load rule. Each three bytes of
// spec describe one pod: weight plus 8 (so bytes below 9 give the invalid
// weights -8 to 0, which count as 1), in-flight count, session count. The
// seed corpus is in testdata/fuzz/FuzzPick, described in
// testdata/fuzz/README.md.
func FuzzPick(f *testing.F) {
	f.Fuzz(func(t *testing.T, key uint64, spec []byte) {
		var pods []Pod
		for i := 0; i+2 < len(spec) && len(pods) < 64; i += 3 {
			p := &testPod{name: fmt.Sprintf("pod-%d", len(pods)), weight: int(spec[i]) - 8}
			p.inFlight.Store(int64(spec[i+1]))
			p.sessions.Store(int64(spec[i+2]))
			pods = append(pods, p)
		}
		for _, name := range Names() {
			b := mustNew(t, name)
			for range 3 {
				got := b.Pick(key, pods)
				if len(pods) == 0 {
					if got != -1 {
						t.Fatalf("%s: Pick over no pods: got %d, want -1", name, got)
					}
					continue
				}
				if got < 0 || got >= len(pods) {
					t.Fatalf("%s: Pick over %d pods: got %d, want an index", name, len(pods), got)
				}
				switch name {
				case LeastConn:
					checkLeast(t, name, pods, got, Pod.InFlight)
				case LeastSessions:
					checkLeast(t, name, pods, got, Pod.Sessions)
				case RandomTwo:
					checkNotStrictMax(t, pods, got)
				}
			}
		}
	})
}

// checkLeast fails unless pods[got] has the lowest load/weight.
func checkLeast(t *testing.T, name string, pods []Pod, got int, load func(Pod) int64) {
	t.Helper()
	for i, p := range pods {
		if compareLoad(load(p), weight(p), load(pods[got]), weight(pods[got])) < 0 {
			t.Fatalf("%s picked %d (load %d, weight %d), but %d has load %d, weight %d",
				name, got, load(pods[got]), weight(pods[got]), i, load(p), weight(p))
		}
	}
}

// checkNotStrictMax fails if pods[got] has strictly more in flight per unit
// of weight than every other pod.
func checkNotStrictMax(t *testing.T, pods []Pod, got int) {
	t.Helper()
	if len(pods) < 2 {
		return
	}
	for i, p := range pods {
		if i != got && compareLoad(pods[got].InFlight(), weight(pods[got]), p.InFlight(), weight(p)) <= 0 {
			return
		}
	}
	t.Fatalf("random-two picked %d, the strictly most loaded of %d pods", got, len(pods))
}
