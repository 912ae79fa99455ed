package ingress

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/discovery"
	"github.com/podpin/podpin/internal/k8stest"
	"github.com/podpin/podpin/internal/proxy"
)

// applied records the configurations a controller applies.
type applied struct {
	mu   sync.Mutex
	cfgs []*config.Config
}

func (a *applied) apply(c *config.Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cfgs = append(a.cfgs, c)
	return nil
}

func (a *applied) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cfgs)
}

// routes names the routes of the last configuration applied.
func (a *applied) routes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cfgs) == 0 {
		return nil
	}
	var out []string
	for _, r := range a.cfgs[len(a.cfgs)-1].Routes {
		out = append(out, r.Name)
	}
	return out
}

// runController runs a controller for class until the test ends.
func runController(t *testing.T, client kubernetes.Interface, o Options) (*Controller, *applied) {
	t.Helper()
	a := &applied{}
	o.Client, o.Apply = client, a.apply
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	return c, a
}

// run runs c until the test ends.
func run(t *testing.T, c *Controller) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// runOverProxy runs a controller until the test ends whose Apply is a real
// proxy's, without a Redis connection: a route whose table lives in Redis
// is refused. a records the configurations the proxy accepted.
func runOverProxy(t *testing.T, cp *k8stest.ControlPlane, static *config.Config) (c *Controller, p *proxy.Proxy, a *applied) {
	t.Helper()
	kube := discovery.NewKubernetes(cp.Client, nil)
	go kube.Run(t.Context())
	p = proxy.New(proxy.Options{Discoverer: &discovery.Factory{Kube: kube}})
	t.Cleanup(p.Close)
	a = &applied{}
	c, err := New(Options{Client: cp.Client, Static: static, Apply: func(cfg *config.Config) error {
		if err := p.Apply(cfg); err != nil {
			return err
		}
		return a.apply(cfg)
	}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	return c, p, a
}

// annotate adds ann to the annotations of Ingress shop/name.
func annotate(t *testing.T, client kubernetes.Interface, name string, ann map[string]string) {
	t.Helper()
	ctx := t.Context()
	ing, err := client.NetworkingV1().Ingresses("shop").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	maps.Copy(ing.Annotations, ann)
	if _, err := client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closed returns a condition for waitFor: c is closed.
func closed(c <-chan struct{}) func() bool {
	return func() bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
}

func create(t *testing.T, client kubernetes.Interface, objs ...any) {
	t.Helper()
	ctx := t.Context()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.Namespace:
			_, err = client.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
		case *networkingv1.IngressClass:
			_, err = client.NetworkingV1().IngressClasses().Create(ctx, o, metav1.CreateOptions{})
		case *networkingv1.Ingress:
			_, err = client.NetworkingV1().Ingresses(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Secret:
			_, err = client.CoreV1().Secrets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *corev1.Service:
			_, err = client.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("creating %T: %v", o, err)
		}
	}
}

func ingressClass(name, controller string) *networkingv1.IngressClass {
	return &networkingv1.IngressClass{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       networkingv1.IngressClassSpec{Controller: controller},
	}
}

// classed is an Ingress in namespace shop with host <name>.example, of
// class (nil: none) and annotations.
func classed(name string, class *string, ann map[string]string) *networkingv1.Ingress {
	i := ing(name, ann, rule(name+".example", path("/", prefix, "web", 80)))
	i.Spec.IngressClassName = class
	return i
}

func TestIngressClassDecidesWhatIsServed(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	create(t, cp.Client,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		ingressClass("podpin", ControllerName),
		ingressClass("nginx", "k8s.io/ingress-nginx"),
		classed("mine", new("podpin"), nil),
		classed("theirs", new("nginx"), nil),
		classed("unclassed", nil, nil),
		classed("annotated", nil, map[string]string{"kubernetes.io/ingress.class": "podpin"}),
		classed("annotated-other", nil, map[string]string{"kubernetes.io/ingress.class": "nginx"}),
	)
	c, a := runController(t, cp.Client, Options{})
	waitFor(t, "the first sync", closed(c.Synced()))
	waitFor(t, "mine and annotated served", func() bool {
		return slices.Equal(slices.Sorted(slices.Values(a.routes())), []string{"shop-annotated-0", "shop-mine-0"})
	})

	// Marked default, the class takes the Ingresses that name none.
	cls, err := cp.Client.NetworkingV1().IngressClasses().Get(ctx, "podpin", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cls.Annotations = map[string]string{networkingv1.AnnotationIsDefaultIngressClass: "true"}
	if _, err := cp.Client.NetworkingV1().IngressClasses().Update(ctx, cls, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unclassed served too", func() bool {
		return slices.Equal(slices.Sorted(slices.Values(a.routes())), []string{"shop-annotated-0", "shop-mine-0", "shop-unclassed-0"})
	})

	// A controller told to serve a class that another controller owns
	// serves nothing.
	c2, a2 := runController(t, cp.Client, Options{Class: "nginx"})
	waitFor(t, "the second controller's first sync", closed(c2.Synced()))
	if got := a2.routes(); len(got) != 0 {
		t.Errorf("routes of a class owned by another controller: got %v, want none", got)
	}
}

func TestIngressChangesAreDebouncedAndStatusWrittenOnce(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName))
	c, a := runController(t, cp.Client, Options{PublishAddress: "lb.podpin.example", Debounce: 300 * time.Millisecond})
	waitFor(t, "the first sync", closed(c.Synced()))
	before := a.count()

	const n = 10
	for i := range n {
		create(t, cp.Client, classed(fmt.Sprintf("app-%d", i), new("podpin"), nil))
	}
	waitFor(t, "every Ingress served", func() bool { return len(a.routes()) == n })
	if got := a.count() - before; got >= n {
		t.Errorf("applies for %d Ingresses created in a burst: got %d, want fewer", n, got)
	}

	for i := range n {
		name := fmt.Sprintf("app-%d", i)
		waitFor(t, "the status of "+name, func() bool {
			ing, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, name, metav1.GetOptions{})
			lb := ing.Status.LoadBalancer.Ingress
			return err == nil && len(lb) == 1 && lb[0].Hostname == "lb.podpin.example" && lb[0].IP == ""
		})
	}
	// A status write is a change the controller sees; it must not write
	// again or apply again.
	ing, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "app-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv, applies := ing.ResourceVersion, a.count()
	time.Sleep(time.Second)
	ing, err = cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "app-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ing.ResourceVersion != rv {
		t.Errorf("the status was written again: resource version %s, then %s", rv, ing.ResourceVersion)
	}
	if got := a.count(); got != applies {
		t.Errorf("applies after the status writes: got %d more, want none", got-applies)
	}
}

func TestIngressWithABadAnnotationKeepsItsLastGoodRoutes(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName),
		classed("app", new("podpin"), map[string]string{AnnotationStickyHeader: "X-Cart"}))
	c, a := runController(t, cp.Client, Options{})
	waitFor(t, "the first sync", closed(c.Synced()))
	header := func() string {
		a.mu.Lock()
		defer a.mu.Unlock()
		rs := a.cfgs[len(a.cfgs)-1].Routes
		if len(rs) != 1 {
			return ""
		}
		return rs[0].Sticky.Header
	}
	waitFor(t, "app served with X-Cart", func() bool { return header() == "X-Cart" })

	ing, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing.Annotations[AnnotationStickyHeader] = "X Cart"
	if _, err := cp.Client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, cp.Client, "app", ReasonInvalidAnnotation)
	want := `podpin.io/sticky-header: "X Cart" is not a valid header name; the Ingress keeps its last good configuration`
	if ev.Type != corev1.EventTypeWarning || ev.Message != want {
		t.Errorf("event: got %s %q, want Warning %q", ev.Type, ev.Message, want)
	}
	if ev.InvolvedObject.Kind != "Ingress" || ev.InvolvedObject.Namespace != "shop" {
		t.Errorf("event about %+v, want the Ingress shop/app", ev.InvolvedObject)
	}
	time.Sleep(300 * time.Millisecond)
	if got := header(); got != "X-Cart" {
		t.Errorf("header after the bad change: got %q, want the last good X-Cart", got)
	}

	// Fixed, it applies.
	ing, err = cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing.Annotations[AnnotationStickyHeader] = "X-Basket"
	if _, err := cp.Client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "app served with X-Basket", func() bool { return header() == "X-Basket" })
	list, err := cp.Client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=app"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list.Items {
		if !strings.Contains(e.Message, `"X Cart"`) {
			t.Errorf("unexpected event: %s %s %q", e.Type, e.Reason, e.Message)
		}
	}
}

func TestAFileThatCannotApplyDoesNotBlockLaterIngressChanges(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName),
		classed("app", new("podpin"), map[string]string{AnnotationStickyHeader: "X-Cart"}))
	static := func(route config.Route) *config.Config {
		c := &config.Config{Routes: []config.Route{route}}
		c.SetDefaults()
		return c
	}
	pods := []config.Backend{{Name: "web-0", URL: "http://127.0.0.1:9001"}}
	c, p, a := runOverProxy(t, cp, static(config.Route{Name: "file", Backends: pods}))
	header := func() string {
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, r := range a.cfgs[len(a.cfgs)-1].Routes {
			if r.Name != "file" {
				return r.Sticky.Header
			}
		}
		return ""
	}
	waitFor(t, "app served with X-Cart", func() bool { return a.count() > 0 && header() == "X-Cart" })

	bad := static(config.Route{Name: "file", Backends: pods, Store: config.StoreRedis})
	bad.Store.Redis.URL = "redis://127.0.0.1:1"
	err := c.SetStatic(bad)
	if err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Fatalf("SetStatic with a route podpin cannot run: got %v, want an error saying it needs a restart", err)
	}

	ing, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing.Annotations[AnnotationStickyHeader] = "X-Basket"
	if _, err := cp.Client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "app served with X-Basket over the last good file", func() bool { return header() == "X-Basket" })
	got := p.Routes()
	if len(got) != 2 || got[0].Name != "file" {
		t.Errorf("running routes: got %+v, want the file's route and the Ingress's", got)
	}
}

// twoIngressesAndRedis starts a control plane with the Ingresses app
// (header X-Cart) and other (X-Other) of class podpin in namespace shop. It
// returns it with a configuration that names a Redis server but has no
// route on it, so podpin starts without a Redis connection, and a route
// that asks for one is valid.
func twoIngressesAndRedis(t *testing.T) (*k8stest.ControlPlane, *config.Config) {
	t.Helper()
	cp := k8stest.Start(t)
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName),
		classed("app", new("podpin"), map[string]string{AnnotationStickyHeader: "X-Cart"}),
		classed("other", new("podpin"), map[string]string{AnnotationStickyHeader: "X-Other"}))
	static := &config.Config{Store: config.Store{Redis: config.Redis{URL: "redis://127.0.0.1:1"}}}
	static.SetDefaults()
	return cp, static
}

func TestAnIngressAskingForRedisWithoutAConnectionIsRefusedAlone(t *testing.T) {
	cp, static := twoIngressesAndRedis(t)
	c, a := runController(t, cp.Client, Options{Static: static, WithoutRedis: true})
	waitFor(t, "the first sync", closed(c.Synced()))
	waitFor(t, "both Ingresses served", func() bool { return len(lastRoutes(a)) == 2 })

	annotate(t, cp.Client, "app", map[string]string{AnnotationStore: "redis", AnnotationStickyHeader: "X-Basket"})
	ev := waitEvent(t, cp.Client, "app", ReasonInvalidAnnotation)
	if !strings.Contains(ev.Message, "podpin.io/store: redis needs a restart") {
		t.Errorf("event: got %q, want it to say the store needs a restart", ev.Message)
	}
	// The other Ingress still changes.
	annotate(t, cp.Client, "other", map[string]string{AnnotationStickyHeader: "X-Changed"})
	waitFor(t, "the other Ingress's change applied", func() bool {
		for _, r := range lastRoutes(a) {
			if r.Sticky.Header == "X-Changed" {
				return true
			}
		}
		return false
	})
	for _, r := range lastRoutes(a) {
		if r.Store == config.StoreRedis || r.Sticky.Header == "X-Basket" {
			t.Errorf("route %s: store %s, header %s; want app's last good routes on memory", r.Name, r.Store, r.Sticky.Header)
		}
	}
}

// waitEvent waits for the first Event with reason on Ingress shop/name.
func waitEvent(t *testing.T, client kubernetes.Interface, name, reason string) corev1.Event {
	t.Helper()
	var ev corev1.Event
	waitFor(t, "the "+reason+" event on "+name, func() bool {
		list, err := client.CoreV1().Events("shop").List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=" + reason})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		ev = list.Items[0]
		return true
	})
	return ev
}

// TestAnIngressTheProxyCannotApplyIsRefusedAlone runs the controller over a
// real proxy that has no Redis connection, without telling the controller
// so: the proxy's Apply is what refuses a route whose table lives in Redis.
// The Ingress that asks for one, changed or new, gets an ApplyFailed Event
// with the proxy's reason; the running routes stay, and the other
// Ingresses go on applying.
func TestAnIngressTheProxyCannotApplyIsRefusedAlone(t *testing.T) {
	cp, static := twoIngressesAndRedis(t)
	_, p, a := runOverProxy(t, cp, static)
	running := func() []string {
		var names []string
		for _, r := range p.Routes() {
			names = append(names, r.Name)
		}
		return names
	}
	header := func(route string) string {
		for _, r := range lastRoutes(a) {
			if r.Name == route {
				return r.Sticky.Header + " on " + r.Store
			}
		}
		return "not applied"
	}
	waitFor(t, "both Ingresses running", func() bool { return slices.Equal(running(), []string{"shop-app-0", "shop-other-0"}) })

	annotate(t, cp.Client, "app", map[string]string{AnnotationStore: "redis", AnnotationStickyHeader: "X-Basket"})
	ev := waitEvent(t, cp.Client, "app", ReasonApplyFailed)
	want := `routes not applied: route "shop-app-0": store redis needs a restart`
	if ev.Type != corev1.EventTypeWarning || !strings.HasPrefix(ev.Message, want) || !strings.HasSuffix(ev.Message, "; the Ingress keeps its last good configuration") {
		t.Errorf("event: got %s %q, want Warning %q...; the Ingress keeps its last good configuration", ev.Type, ev.Message, want)
	}

	// The other Ingress still changes, and a new one that asks for Redis
	// is refused alone too.
	annotate(t, cp.Client, "other", map[string]string{AnnotationStickyHeader: "X-Changed"})
	create(t, cp.Client, classed("late", new("podpin"), map[string]string{AnnotationStore: "redis"}))
	ev = waitEvent(t, cp.Client, "late", ReasonApplyFailed)
	if !strings.HasSuffix(ev.Message, "; the Ingress is not served until this is fixed") {
		t.Errorf("event on the new Ingress: got %q, want it to say it is not served", ev.Message)
	}
	waitFor(t, "the other Ingress's change applied", func() bool { return header("shop-other-0") == "X-Changed on memory" })
	if got := header("shop-app-0"); got != "X-Cart on memory" {
		t.Errorf("app's route: got %s, want its last good X-Cart on memory", got)
	}
	if got := running(); !slices.Equal(got, []string{"shop-app-0", "shop-other-0"}) {
		t.Errorf("running routes: got %v, want app's and other's, not late's", got)
	}

	// Fixed, the Ingress applies.
	annotate(t, cp.Client, "app", map[string]string{AnnotationStore: "memory"})
	waitFor(t, "app's fixed version applied", func() bool { return header("shop-app-0") == "X-Basket on memory" })
}

// lastRoutes are the routes of the last configuration applied.
func lastRoutes(a *applied) []config.Route {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cfgs) == 0 {
		return nil
	}
	return a.cfgs[len(a.cfgs)-1].Routes
}

// The new-session cap reaches the routes of its Ingress; a bad value is a
// Warning Event that names the annotation, and the routes keep their cap.
func TestNewSessionAnnotationsCapTheIngressRoutes(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName),
		classed("app", new("podpin"), map[string]string{AnnotationNewSessionsPerIP: "5", AnnotationNewSessionsBurst: "10"}))
	c, a := runController(t, cp.Client, Options{})
	waitFor(t, "the first sync", closed(c.Synced()))
	capOf := func() config.Sticky {
		a.mu.Lock()
		defer a.mu.Unlock()
		rs := a.cfgs[len(a.cfgs)-1].Routes
		if len(rs) != 1 {
			return config.Sticky{}
		}
		return rs[0].Sticky
	}
	waitFor(t, "app capped at 5 per second, 10 at once", func() bool {
		s := capOf()
		return s.NewSessionsPerIP == 5 && s.NewSessionsBurst == 10
	})

	ing, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing.Annotations[AnnotationNewSessionsPerIP] = "fast"
	if _, err := cp.Client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, cp.Client, "app", ReasonInvalidAnnotation)
	want := `podpin.io/new-sessions-per-ip: "fast" must be a number of new sessions per second; the Ingress keeps its last good configuration`
	if ev.Type != corev1.EventTypeWarning || ev.Message != want {
		t.Errorf("event: got %s %q, want Warning %q", ev.Type, ev.Message, want)
	}
	if s := capOf(); s.NewSessionsPerIP != 5 {
		t.Errorf("cap after the bad change: got %v per second, want the last good 5", s.NewSessionsPerIP)
	}
}

func TestBackendProtocolAnnotationSetsThePodsProtocol(t *testing.T) {
	cp := k8stest.Start(t)
	ctx := t.Context()
	create(t, cp.Client, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, ingressClass("podpin", ControllerName),
		classed("app", new("podpin"), map[string]string{AnnotationBackendProtocol: "GRPC"}))
	c, a := runController(t, cp.Client, Options{})
	waitFor(t, "the first sync", closed(c.Synced()))
	protocol := func() string {
		a.mu.Lock()
		defer a.mu.Unlock()
		rs := a.cfgs[len(a.cfgs)-1].Routes
		if len(rs) != 1 {
			return "(no route)"
		}
		return rs[0].Pods.Protocol
	}
	waitFor(t, "app's pods spoken to in h2c", func() bool { return protocol() == config.PodH2C })

	ing, err := cp.Client.NetworkingV1().Ingresses("shop").Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ing.Annotations[AnnotationBackendProtocol] = "FCGI"
	if _, err := cp.Client.NetworkingV1().Ingresses("shop").Update(ctx, ing, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var ev corev1.Event
	waitFor(t, "the InvalidAnnotation event", func() bool {
		list, err := cp.Client.CoreV1().Events("shop").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=app,reason=" + ReasonInvalidAnnotation})
		if err != nil || len(list.Items) == 0 {
			return false
		}
		ev = list.Items[0]
		return true
	})
	want := `podpin.io/backend-protocol: "FCGI" must be one of HTTP, H2C, GRPC, HTTPS, GRPCS; the Ingress keeps its last good configuration`
	if ev.Type != corev1.EventTypeWarning || ev.Message != want {
		t.Errorf("event: got %s %q, want Warning %q", ev.Type, ev.Message, want)
	}
	if p := protocol(); p != config.PodH2C {
		t.Errorf("after the bad change: got pods.protocol %q, want the last good h2c", p)
	}
}
