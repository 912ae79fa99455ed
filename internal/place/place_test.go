package place

import (
	"errors"
	"go/parser"
	"go/token"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/podpin/podpin/internal/balance"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/table"
)

// request is a plain request view, as a front end would fill one.
type request struct {
	host, path string
	method     string
	listener   string
	header     map[string][]string
	cookie     map[string]string
	query      map[string]string
	client     netip.Addr
}

func (q *request) Host() []byte     { return []byte(q.host) }
func (q *request) Listener() string { return q.listener }
func (q *request) Method() []byte {
	if q.method == "" {
		return []byte("GET")
	}
	return []byte(q.method)
}
func (q *request) Path() []byte { return []byte(q.path) }
func (q *request) Header(name string) [][]byte {
	var out [][]byte
	for _, v := range q.header[name] {
		out = append(out, []byte(v))
	}
	return out
}
func (q *request) Cookie(name string) []byte {
	if v, ok := q.cookie[name]; ok {
		return []byte(v)
	}
	return nil
}
func (q *request) Query(name string) []byte {
	if v, ok := q.query[name]; ok {
		return []byte(v)
	}
	return nil
}
func (q *request) ClientAddr() netip.Addr { return q.client }

// testPod is a pod with a fixed state.
type testPod struct {
	name   string
	state  discovery.State
	out    string
	health Health
	tally  Tally
}

func (p *testPod) Name() string           { return p.name }
func (p *testPod) Weight() int            { return 1 }
func (p *testPod) InFlight() int64        { return p.tally.InFlight() }
func (p *testPod) Sessions() int64        { return 0 }
func (p *testPod) State() discovery.State { return p.state }
func (p *testPod) Out() string            { return p.out }
func (p *testPod) Health() *Health        { return &p.health }
func (p *testPod) Tally() *Tally          { return &p.tally }

// testPods is an immutable set of testPods.
type testPods struct {
	byName map[string]*testPod
	fresh  []balance.Pod
}

func newTestPods(pods ...*testPod) *testPods {
	s := &testPods{byName: map[string]*testPod{}}
	for _, p := range pods {
		s.byName[p.name] = p
		if takesNew(p) {
			s.fresh = append(s.fresh, p)
		}
	}
	return s
}

func (s *testPods) Pod(name string) (Pod, bool) {
	if p := s.byName[name]; p != nil {
		return p, true
	}
	return nil, false
}
func (s *testPods) Fresh() []balance.Pod { return s.fresh }
func (s *testPods) All() []Pod {
	var out []Pod
	for _, p := range s.byName {
		out = append(out, p)
	}
	return out
}
func (s *testPods) Without(skip Pod) []balance.Pod {
	var out []balance.Pod
	for _, c := range s.fresh {
		if c != skip {
			out = append(out, c)
		}
	}
	return out
}

// newTestRoute returns a route keyed by X-Session over a real table, with
// its counters in reg.
func newTestRoute(t *testing.T, reg *prometheus.Registry) *Route {
	t.Helper()
	bal, err := balance.New(balance.Hash)
	if err != nil {
		t.Fatal(err)
	}
	tbl := table.New(table.Config{})
	return &Route{
		Name:   "web",
		Key:    KeySource{Header: "X-Session", MaxBytes: 64},
		Digest: table.NewDigester(nil),
		Table:  tbl,
		Placer: Placer{
			Sessions: Local{T: tbl},
			Balancer: bal,
			Fallback: bal,
			Rebinds:  new(RebindCounts),
			Metrics:  metrics.New(reg, nil).Route("web"),
		},
	}
}

// lookups reads podpin_table_lookups_total of route web by result.
func lookups(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "podpin_table_lookups_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func keyed(k string) *request {
	return &request{host: "example.com", path: "/", header: map[string][]string{"X-Session": {k}}}
}

func TestDecideKeepsAKeyOnItsPod(t *testing.T) {
	r := newTestRoute(t, prometheus.NewRegistry())
	pods := newTestPods(&testPod{name: "a"}, &testPod{name: "b"}, &testPod{name: "c"})
	var buf [256]byte
	first := r.Decide(keyed("alice"), pods, buf[:0])
	if first.Err != nil || first.Result != metrics.LookupMiss {
		t.Fatalf("first request: err %v, result %d; want a miss", first.Err, first.Result)
	}
	for range 10 {
		d := r.Decide(keyed("alice"), pods, buf[:0])
		if d.Err != nil || d.Pod != first.Pod || d.Result != metrics.LookupHit {
			t.Fatalf("got pod %v, result %d, err %v; want a hit on %v", d.Pod, d.Result, d.Err, first.Pod)
		}
		if string(d.Raw) != "alice" || d.Key != r.Digest.Key("web", []byte("alice")) {
			t.Fatalf("got raw %q, key %v; want alice and its digest", d.Raw, d.Key)
		}
	}
}

// TestDecideRebindsWithReason pins a key, changes its pod, and checks the
// key moves with the reason counted.
func TestDecideRebindsWithReason(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(p *testPod) *testPod // nil result: the pod is gone
		drain  bool
		reason string // "" when the key stays
	}{
		{"a pod that left moves its keys", func(*testPod) *testPod { return nil }, false, ReasonGone},
		{"a not-ready pod moves its keys", func(p *testPod) *testPod { return &testPod{name: p.name, state: discovery.NotReady} }, false, ReasonUnready},
		{"an ejected pod moves its keys", func(p *testPod) *testPod { return &testPod{name: p.name, out: ReasonEjected} }, false, ReasonEjected},
		{"a draining pod moves its keys when the route does not drain", func(p *testPod) *testPod { return &testPod{name: p.name, state: discovery.Draining} }, false, ReasonDraining},
		{"a draining pod keeps its keys when the route drains", func(p *testPod) *testPod { return &testPod{name: p.name, state: discovery.Draining} }, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			r := newTestRoute(t, reg)
			r.Drain = tc.drain
			all := []*testPod{{name: "a"}, {name: "b"}, {name: "c"}}
			var buf [256]byte
			first := r.Decide(keyed("bob"), newTestPods(all...), buf[:0])
			var now []*testPod
			for _, p := range all {
				if p.name != first.Pod.Name() {
					now = append(now, p)
				} else if c := tc.change(p); c != nil {
					now = append(now, c)
				}
			}
			d := r.Decide(keyed("bob"), newTestPods(now...), buf[:0])
			if d.Err != nil {
				t.Fatalf("got %v, want a pod", d.Err)
			}
			if tc.reason == "" {
				if d.Pod.Name() != first.Pod.Name() || d.Result != metrics.LookupHit {
					t.Fatalf("got %s (result %d), want a hit on %s", d.Pod.Name(), d.Result, first.Pod.Name())
				}
				return
			}
			if d.Pod.Name() == first.Pod.Name() || d.Result != metrics.LookupRebind || d.From != first.Pod.Name() || d.Reason != tc.reason {
				t.Fatalf("got %s from %q for %q (result %d), want a rebind off %s for %q", d.Pod.Name(), d.From, d.Reason, d.Result, first.Pod.Name(), tc.reason)
			}
			if got := r.Rebinds.ByReason(first.Pod.Name())[tc.reason]; got != 1 {
				t.Errorf("rebinds off %s for %q: got %d, want 1", first.Pod.Name(), tc.reason, got)
			}
			if got := lookups(t, reg)["rebind"]; got != 1 {
				t.Errorf("rebind lookups: got %v, want 1", got)
			}
			again := r.Decide(keyed("bob"), newTestPods(now...), buf[:0])
			if again.Pod.Name() != d.Pod.Name() || again.Result != metrics.LookupHit {
				t.Errorf("after the rebind got %s (result %d), want a hit on %s", again.Pod.Name(), again.Result, d.Pod.Name())
			}
		})
	}
}

func TestDecideRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(r *Route)
		req   *request
		pods  *testPods
		want  error
		class RefusalClass
	}{
		{"a key sent twice", nil, &request{header: map[string][]string{"X-Session": {"a", "b"}}}, newTestPods(&testPod{name: "a"}), ErrDupKey, ClassBadRequest},
		{"a key too long", nil, keyed(strings.Repeat("k", 65)), newTestPods(&testPod{name: "a"}), ErrKeyTooLong, ClassBadRequest},
		{"a key with a space", nil, keyed("a b"), newTestPods(&testPod{name: "a"}), ErrKeyBytes, ClassBadRequest},
		{"no key on a route that rejects it", func(r *Route) { r.Missing = MissingReject }, &request{}, newTestPods(&testPod{name: "a"}), ErrMissingKey, ClassBadRequest},
		{"no pod for a key", nil, keyed("k"), newTestPods(), ErrNoPod, ClassUnavailable},
		{"no pod for a request without a key", nil, &request{}, newTestPods(&testPod{name: "a", state: discovery.Draining}), ErrNoPod, ClassUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRoute(t, prometheus.NewRegistry())
			if tc.setup != nil {
				tc.setup(r)
			}
			var buf [256]byte
			d := r.Decide(tc.req, tc.pods, buf[:0])
			if !errors.Is(d.Err, tc.want) || d.Pod != nil {
				t.Fatalf("got %v, pod %v; want %v and no pod", d.Err, d.Pod, tc.want)
			}
			if got := Class(d.Err); got != tc.class {
				t.Errorf("class: got %d, want %d", got, tc.class)
			}
		})
	}
}

func TestDecideStrictRouteNeverRebinds(t *testing.T) {
	r := newTestRoute(t, prometheus.NewRegistry())
	r.Strict = true
	var buf [256]byte
	first := r.Decide(keyed("k"), newTestPods(&testPod{name: "a"}, &testPod{name: "b"}), buf[:0])
	var other string
	if first.Pod.Name() == "a" {
		other = "b"
	} else {
		other = "a"
	}
	d := r.Decide(keyed("k"), newTestPods(&testPod{name: other}), buf[:0])
	if d.Err != ErrStrict || Class(d.Err) != ClassUnavailable {
		t.Fatalf("got %v (class %d), want %v (unavailable)", d.Err, Class(d.Err), ErrStrict)
	}
	if got := r.Rebind(newTestPods(&testPod{name: other}), &first, first.Pod); got != nil {
		t.Errorf("Rebind on a strict route: got %s, want nil", got.Name())
	}
}

func TestDecideWithoutKey(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newTestRoute(t, reg)
	pods := newTestPods(&testPod{name: "a"})
	var buf [256]byte
	d := r.Decide(&request{}, pods, buf[:0])
	if d.Err != nil || d.Pod == nil || d.Raw != nil || d.Result != metrics.LookupNone {
		t.Fatalf("balanced: got pod %v, raw %q, result %d, err %v; want a pod, no key, none", d.Pod, d.Raw, d.Result, d.Err)
	}
	if n := r.Table.Len(); n != 0 {
		t.Errorf("balanced request left %d entries, want 0", n)
	}

	r.Missing = MissingAssign
	d = r.Decide(&request{}, pods, buf[:0])
	if d.Err != nil || !d.Assigned || len(d.Raw) != 32 {
		t.Fatalf("assigned: got raw %q, assigned %v, err %v; want 32 hex digits", d.Raw, d.Assigned, d.Err)
	}
	if pod, ok := r.Table.Lookup(d.Key); !ok || pod != "a" {
		t.Errorf("minted key: pinned to %q (%v), want a", pod, ok)
	}
	if got := lookups(t, reg); got["none"] != 1 || got["miss"] != 1 {
		t.Errorf("lookups: got %v, want none 1 and miss 1", got)
	}
}

func TestDecideCapsNewSessionsPerClient(t *testing.T) {
	r := newTestRoute(t, prometheus.NewRegistry())
	r.NewSessions = NewSessionLimiter(1, 2)
	pods := newTestPods(&testPod{name: "a"})
	client := netip.MustParseAddr("192.0.2.7")
	var buf [256]byte
	for i := range 3 {
		q := keyed("k" + strconv.Itoa(i))
		q.client = client
		d := r.Decide(q, pods, buf[:0])
		if i < 2 && d.Err != nil {
			t.Fatalf("session %d: got %v, want a pod within the burst", i, d.Err)
		}
		if i == 2 && (d.Err != ErrNewSessions || Class(d.Err) != ClassTooMany) {
			t.Fatalf("session %d: got %v, want %v", i, d.Err, ErrNewSessions)
		}
	}
	q := keyed("k0")
	q.client = client
	if d := r.Decide(q, pods, buf[:0]); d.Err != nil || d.Result != metrics.LookupHit {
		t.Errorf("a known key over the cap: got %v (result %d), want a hit", d.Err, d.Result)
	}
}

func TestRebindMovesAKeyOffAFailedPod(t *testing.T) {
	r := newTestRoute(t, prometheus.NewRegistry())
	pods := newTestPods(&testPod{name: "a"}, &testPod{name: "b"})
	var buf [256]byte
	d := r.Decide(keyed("k"), pods, buf[:0])
	next := r.Rebind(pods, &d, d.Pod)
	if next == nil || next == d.Pod {
		t.Fatalf("got %v, want the other pod than %s", next, d.Pod.Name())
	}
	if pod, _ := r.Table.Lookup(d.Key); pod != next.Name() {
		t.Errorf("key pinned to %q, want %q", pod, next.Name())
	}
	if got := r.Rebinds.ByReason(d.Pod.Name())[ReasonConnectFailed]; got != 1 {
		t.Errorf("connect-failed rebinds: got %d, want 1", got)
	}
	if last := r.Rebind(newTestPods(next.(*testPod)), &d, next); last != nil {
		t.Errorf("with no other pod got %s, want nil", last.Name())
	}
}

func TestLearnPinsTheKeyAnAnswerSets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		learn bool
		value string
		want  bool
	}{
		{"a new key is learned", true, "fresh", true},
		{"nothing is learned when the route does not learn", false, "fresh", false},
		{"an invalid key is not learned", true, "bad key", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRoute(t, prometheus.NewRegistry())
			r.LearnKeys = tc.learn
			var buf [256]byte
			d := r.Decide(&request{}, newTestPods(&testPod{name: "a"}), buf[:0])
			r.Learn(&d, "a", []byte(tc.value))
			pod, ok := r.Table.Lookup(r.Digest.Key("web", []byte(tc.value)))
			if ok != tc.want || (ok && pod != "a") {
				t.Errorf("got %q (%v), want pinned %v to a", pod, ok, tc.want)
			}
		})
	}
}

func TestKeySourceOrder(t *testing.T) {
	ks := KeySource{Header: "X-Session", Cookie: "sid", Query: "session", ClientIP: true, MaxBytes: 64}
	for _, tc := range []struct {
		name string
		req  *request
		want string
	}{
		{"the header comes first", &request{header: map[string][]string{"X-Session": {"h"}}, cookie: map[string]string{"sid": "c"}}, "h"},
		{"an empty header falls to the cookie", &request{header: map[string][]string{"X-Session": {""}}, cookie: map[string]string{"sid": "c"}}, "c"},
		{"the cookie comes before the query", &request{cookie: map[string]string{"sid": "c"}, query: map[string]string{"session": "q"}}, "c"},
		{"the query comes before the address", &request{query: map[string]string{"session": "q"}, client: netip.MustParseAddr("192.0.2.1")}, "q"},
		{"the client address is last", &request{client: netip.MustParseAddr("192.0.2.1")}, "192.0.2.1"},
		{"an unknown address reads as unknown", &request{}, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf [256]byte
			got, err := ks.Read(tc.req, buf[:0])
			if err != nil || string(got) != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	m := NewMatch(config.Match{Host: "*.Example.com", PathPrefix: "/api", Headers: map[string]string{"X-Env": "blue"}})
	for _, tc := range []struct {
		name string
		req  *request
		want bool
	}{
		{"host, prefix and header match", &request{host: "a.example.com:8080", path: "/api/v1", header: map[string][]string{"X-Env": {"blue"}}}, true},
		{"the header's first value decides", &request{host: "a.example.com", path: "/api", header: map[string][]string{"X-Env": {"green", "blue"}}}, false},
		{"a path prefix matches whole elements", &request{host: "a.example.com", path: "/apis", header: map[string][]string{"X-Env": {"blue"}}}, false},
		{"the wildcard needs a label", &request{host: "example.com", path: "/api", header: map[string][]string{"X-Env": {"blue"}}}, false},
		{"a missing header does not match", &request{host: "a.example.com", path: "/api"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.Matches(tc.req); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Gateway API's other matches: a path by regular expression, methods,
	// headers and query parameters by value or regular expression.
	m = NewMatch(config.Match{
		PathRegex:   "/v[0-9]+/items",
		Methods:     []string{"GET", "HEAD"},
		HeaderRegex: map[string]string{"X-Version": "v[12]"},
		Query:       map[string]string{"env": "blue"},
		QueryRegex:  map[string]string{"shard": "[a-f]"},
	})
	ok := func() *request {
		return &request{host: "x", path: "/v2/items", header: map[string][]string{"X-Version": {"v1"}}, query: map[string]string{"env": "blue", "shard": "c"}}
	}
	for _, tc := range []struct {
		name   string
		change func(*request)
		want   bool
	}{
		{"every condition holds", func(*request) {}, true},
		{"the path regex matches whole paths", func(q *request) { q.path = "/v2/items/1" }, false},
		{"another method", func(q *request) { q.method = "POST" }, false},
		{"HEAD is listed", func(q *request) { q.method = "HEAD" }, true},
		{"a header regex matches the whole value", func(q *request) { q.header["X-Version"] = []string{"v12"} }, false},
		{"a header regex needs the header", func(q *request) { delete(q.header, "X-Version") }, false},
		{"a query value is exact", func(q *request) { q.query["env"] = "Blue" }, false},
		{"a query regex needs the parameter", func(q *request) { delete(q.query, "shard") }, false},
		{"a query regex matches the whole value", func(q *request) { q.query["shard"] = "cc" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := ok()
			tc.change(q)
			if got := m.Matches(q); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	// Gateway API's wildcard hostname: one or more labels before the
	// suffix, any case, any port.
	m = NewMatch(config.Match{HostSuffix: ".Example.com"})
	for host, want := range map[string]bool{
		"a.example.com":        true,
		"a.b.example.com":      true,
		"A.EXAMPLE.COM:8443":   true,
		"example.com":          false,
		".example.com":         false,
		"aexample.com":         false,
		"a.example.com.evil":   false,
		"a.example.org":        false,
		"[::1]:80":             false,
		"x.example.com:":       true,
		"":                     false,
		"foo.bar.example.com":  true,
		"foo.bar.example.comm": false,
	} {
		if got := m.Matches(&request{host: host, path: "/"}); got != want {
			t.Errorf("hostSuffix .example.com, host %q: got %v, want %v", host, got, want)
		}
	}

	m = NewMatch(config.Match{Listeners: []string{"0.0.0.0:80", "0.0.0.0:8080"}})
	if !m.Matches(&request{path: "/", listener: "0.0.0.0:8080"}) || m.Matches(&request{path: "/", listener: "0.0.0.0:443"}) {
		t.Error("a route of two listeners: want requests of those, and only those")
	}

	var zero Match
	if !zero.Matches(&request{host: "x", path: "/"}) {
		t.Error("the zero Match refused a request")
	}
}

// TestDecideHitAllocatesNothing holds the hit path to no allocation.
func TestDecideHitAllocatesNothing(t *testing.T) {
	r := newTestRoute(t, prometheus.NewRegistry())
	pods := newTestPods(&testPod{name: "a"}, &testPod{name: "b"})
	hdr := [][]byte{[]byte("alice")}
	view := &fixedRequest{key: hdr}
	var buf [256]byte
	r.Decide(view, pods, buf[:0])
	if n := testing.AllocsPerRun(100, func() {
		if d := r.Decide(view, pods, buf[:0]); d.Result != metrics.LookupHit {
			t.Fatalf("result %d, want a hit", d.Result)
		}
	}); n != 0 {
		t.Errorf("got %v allocations per hit, want 0", n)
	}
}

// fixedRequest answers every header with the same values, without
// allocating.
type fixedRequest struct{ key [][]byte }

func (q *fixedRequest) Host() []byte           { return nil }
func (q *fixedRequest) Path() []byte           { return nil }
func (q *fixedRequest) Method() []byte         { return nil }
func (q *fixedRequest) Listener() string       { return "" }
func (q *fixedRequest) Header(string) [][]byte { return q.key }
func (q *fixedRequest) Cookie(string) []byte   { return nil }
func (q *fixedRequest) Query(string) []byte    { return nil }
func (q *fixedRequest) ClientAddr() netip.Addr { return netip.Addr{} }

// TestNoHTTPLibrary keeps placement apart from every protocol front end.
func TestNoHTTPLibrary(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if p == "net/http" || strings.HasPrefix(p, "net/http/") || strings.Contains(p, "fasthttp") || strings.Contains(p, "grpc") {
				t.Errorf("%s imports %s", f, p)
			}
		}
	}
}

func TestSessionLimiterRefills(t *testing.T) {
	l := NewSessionLimiter(2, 1)
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1000, 0)
	if !l.Allow(a, now) || l.Allow(a, now) {
		t.Fatal("burst of 1: want one allowed, then refused")
	}
	if !l.Allow(a, now.Add(500*time.Millisecond)) {
		t.Error("after half a second at 2/s: refused, want allowed")
	}
	if l.Allow(netip.MustParseAddr("192.0.2.2"), now) != true {
		t.Error("another address was refused")
	}
	if NewSessionLimiter(0, 5) != nil {
		t.Error("a zero rate gave a limiter, want nil (no cap)")
	}
}
