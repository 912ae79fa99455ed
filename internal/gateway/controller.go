package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwclient "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned"
	gwinformers "sigs.k8s.io/gateway-api/pkg/client/informers/externalversions"
	gwlisters "sigs.k8s.io/gateway-api/pkg/client/listers/apis/v1"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/ingress"
	"github.com/podpin/podpin/internal/k8s"
)

const (
	// ControllerName is the spec.controllerName of the GatewayClasses
	// podpin serves by default.
	ControllerName = "podpin.io/gateway-controller"
	// DefaultDebounce is how long the controller gathers changes before it
	// applies them.
	DefaultDebounce = 100 * time.Millisecond
)

// Options configure a Controller.
type Options struct {
	// Client reads Namespaces, Services and Secrets. Required.
	Client kubernetes.Interface
	// Gateways reads the Gateway API objects and writes their status.
	// Required.
	Gateways gwclient.Interface
	// Apply makes a configuration the running one (its listeners and
	// routes), or fails and leaves the running one as it was. It is
	// called from one goroutine at a time. Required.
	Apply func(*config.Config) error
	// ControllerName selects the GatewayClasses served. Default
	// ControllerName.
	ControllerName string
	// Static is the configuration the Gateway listeners and routes join
	// (its routes keep to its own listeners). It must be defaulted and
	// valid under config.Rules{RoutesOptional: true}. Nil: defaults.
	Static *config.Config
	// Addresses, when valid, gives each Gateway an address of its own
	// from this prefix, to which its listeners bind. Invalid: every
	// Gateway binds the wildcard address, and a port belongs to the
	// oldest Gateway that asks for it.
	Addresses netip.Prefix
	// PublishAddresses are written to the status of Gateways without an
	// address of their own (IPs or host names).
	PublishAddresses []string
	// PublishService, "namespace/name" of podpin's own Service, gives
	// those addresses when PublishAddresses is empty: its load balancer's,
	// else its external IPs, else its cluster IP.
	PublishService string
	// Certificates receives the certificates of each HTTPS listener socket
	// (by its listeners[].address) before the configuration that opens it
	// is applied. Required.
	Certificates func(address string, hosts []certs.HostCert, def *tls.Certificate)
	// Bound reports whether a listener address is bound; nil: every
	// applied listener is taken as bound.
	Bound func(address string) bool
	// Recorder receives the Warning Events on HTTPRoutes podpin cannot
	// serve as written. Nil: they are written to the API server through
	// Client.
	Recorder record.EventRecorder
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
	// Debounce is how long a burst of changes is gathered before one apply.
	// Default 100ms.
	Debounce time.Duration
}

// Controller serves the Gateways of podpin's GatewayClasses: it turns them
// and their HTTPRoutes into listeners and routes, applies them with the
// static configuration, and writes their status.
type Controller struct {
	o   Options
	log *slog.Logger

	gwFactory   gwinformers.SharedInformerFactory
	coreFactory informers.SharedInformerFactory
	secFactory  informers.SharedInformerFactory
	classes     gwlisters.GatewayClassLister
	gateways    gwlisters.GatewayLister
	routes      gwlisters.HTTPRouteLister
	grpcRoutes  gwlisters.GRPCRouteLister
	grants      gwlisters.ReferenceGrantLister
	namespaces  corelisters.NamespaceLister
	services    corelisters.ServiceLister
	secrets     corelisters.SecretLister

	kick       chan struct{}
	synced     chan struct{}
	markSynced func()

	mu      sync.Mutex // guards below; held while applying
	static  *config.Config
	applied *config.Config

	// recorder sends Events; reported are the refused routes' reasons as
	// last sent. Both are used by sync only.
	recorder record.EventRecorder
	reported map[routeKey]string
}

// New returns a controller; Run starts it.
func New(o Options) (*Controller, error) {
	if o.Client == nil || o.Gateways == nil || o.Apply == nil || o.Certificates == nil {
		return nil, errors.New("gateway controller: clients, an apply function and a certificate sink are required")
	}
	if o.ControllerName == "" {
		o.ControllerName = ControllerName
	}
	if ns, name, ok := strings.Cut(o.PublishService, "/"); o.PublishService != "" && (!ok || ns == "" || name == "" || strings.Contains(name, "/")) {
		return nil, fmt.Errorf("gateway controller: publish service %q must be namespace/name", o.PublishService)
	}
	if o.Debounce <= 0 {
		o.Debounce = DefaultDebounce
	}
	c := &Controller{o: o, log: o.Logger, static: o.Static, kick: make(chan struct{}, 1), synced: make(chan struct{}),
		recorder: o.Recorder, reported: map[routeKey]string{}}
	c.markSynced = sync.OnceFunc(func() { close(c.synced) })
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.static == nil {
		c.static = &config.Config{}
		c.static.SetDefaults()
	}
	c.gwFactory = gwinformers.NewSharedInformerFactory(o.Gateways, 0)
	v1 := c.gwFactory.Gateway().V1()
	c.classes, c.gateways = v1.GatewayClasses().Lister(), v1.Gateways().Lister()
	c.routes, c.grants = v1.HTTPRoutes().Lister(), v1.ReferenceGrants().Lister()
	c.grpcRoutes = v1.GRPCRoutes().Lister()
	c.coreFactory = informers.NewSharedInformerFactory(o.Client, 0)
	c.namespaces = c.coreFactory.Core().V1().Namespaces().Lister()
	c.services = c.coreFactory.Core().V1().Services().Lister()
	// Only Secrets of type kubernetes.io/tls are watched and cached.
	c.secFactory = informers.NewSharedInformerFactoryWithOptions(o.Client, 0,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = "type=" + string(corev1.SecretTypeTLS)
		}))
	c.secrets = c.secFactory.Core().V1().Secrets().Lister()
	for _, inf := range []cache.SharedIndexInformer{
		v1.GatewayClasses().Informer(), v1.Gateways().Informer(), v1.HTTPRoutes().Informer(), v1.GRPCRoutes().Informer(),
		v1.ReferenceGrants().Informer(),
		c.coreFactory.Core().V1().Namespaces().Informer(), c.coreFactory.Core().V1().Services().Informer(),
		c.secFactory.Core().V1().Secrets().Informer(),
	} {
		if _, err := inf.AddEventHandler(k8s.OnChange(c.trigger, nil)); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Controller) trigger() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Synced returns a channel closed once the caches have synced and the
// first configuration was applied.
func (c *Controller) Synced() <-chan struct{} { return c.synced }

// Run watches the Gateway API objects and applies them until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	if c.recorder == nil {
		sch := runtime.NewScheme()
		if err := gwv1.Install(sch); err != nil {
			return err
		}
		b := record.NewBroadcaster()
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.o.Client.CoreV1().Events("")})
		defer b.Shutdown()
		c.recorder = b.NewRecorder(sch, corev1.EventSource{Component: "podpin-gateway-controller"})
	}
	c.gwFactory.Start(ctx.Done())
	defer c.gwFactory.Shutdown()
	c.coreFactory.Start(ctx.Done())
	defer c.coreFactory.Shutdown()
	c.secFactory.Start(ctx.Done())
	defer c.secFactory.Shutdown()
	for typ, ok := range c.gwFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("gateway controller: caches of %v did not sync (are the Gateway API CRDs installed?)", typ)
		}
	}
	for _, f := range []informers.SharedInformerFactory{c.coreFactory, c.secFactory} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("gateway controller: caches of %v did not sync", typ)
			}
		}
	}
	c.log.Info("gateway controller synced", "controller", c.o.ControllerName)

	k8s.SyncLoop(ctx, c.kick, c.o.Debounce, c.sync, c.markSynced)
	return nil
}

// Apply replaces the static configuration (a reloaded file) and applies
// it with the Gateways' listeners and routes. When that fails, the
// previous static configuration stays, and Apply returns the error.
func (c *Controller) Apply(cfg *config.Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.static
	c.static = cfg
	if _, err := c.applyLocked(c.plan(), true); err != nil {
		c.static = prev
		return err
	}
	return nil
}

// world reads the caches.
func (c *Controller) world() (*world, error) {
	w := &world{
		controller: c.o.ControllerName,
		namespaces: map[string]labels.Set{},
		services:   map[types.NamespacedName]*corev1.Service{},
		secrets:    map[types.NamespacedName]*corev1.Secret{},
		pool:       c.o.Addresses,
		publish:    c.o.PublishAddresses,
		bound:      c.o.Bound,
	}
	var err error
	if w.classes, err = c.classes.List(labels.Everything()); err != nil {
		return nil, err
	}
	if w.gateways, err = c.gateways.List(labels.Everything()); err != nil {
		return nil, err
	}
	if w.routes, err = c.routes.List(labels.Everything()); err != nil {
		return nil, err
	}
	if w.grpcRoutes, err = c.grpcRoutes.List(labels.Everything()); err != nil {
		return nil, err
	}
	if w.grants, err = c.grants.List(labels.Everything()); err != nil {
		return nil, err
	}
	nss, err := c.namespaces.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, ns := range nss {
		w.namespaces[ns.Name] = ns.Labels
	}
	svcs, err := c.services.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		w.services[key(s)] = s
	}
	if len(w.publish) == 0 && c.o.PublishService != "" {
		ns, name, _ := strings.Cut(c.o.PublishService, "/")
		if svc := w.services[types.NamespacedName{Namespace: ns, Name: name}]; svc != nil {
			w.publish = ingress.ServiceAddresses(svc)
		}
	}
	secs, err := c.secrets.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	for _, s := range secs {
		w.secrets[key(s)] = s
	}
	return w, nil
}

// plan builds the plan from the caches; nil when they cannot be read.
func (c *Controller) plan() *plan {
	w, err := c.world()
	if err != nil {
		c.log.Error("reading the gateway caches failed", "error", err)
		return nil
	}
	return build(w)
}

// applyLocked applies the static configuration with p's listeners and
// routes, when that changes the running one (or always, with force). A
// Gateway listener socket that cannot be bound (its port is taken) is left
// out with its routes, and the rest applied; its listeners' status says
// so. It reports whether it applied. c.mu must be held.
func (c *Controller) applyLocked(p *plan, force bool) (bool, error) {
	if p == nil {
		return false, errors.New("gateway caches unreadable")
	}
	// Certificates first, and always: a rotated Secret changes no
	// configuration.
	for addr, sc := range p.certs {
		c.o.Certificates(addr, sc.hosts, sc.def)
	}
	left := map[string]bool{}
	for {
		cfg, err := merge(c.static, without(p, left))
		if err != nil {
			return false, err
		}
		if !force && reflect.DeepEqual(cfg, c.applied) {
			return false, nil
		}
		err = c.o.Apply(cfg)
		var le interface{ ListenerAddress() string }
		if errors.As(err, &le) && ownSocket(p, le.ListenerAddress()) && !left[le.ListenerAddress()] {
			left[le.ListenerAddress()] = true
			c.log.Error("gateway listener not bound; its routes are left out", "address", le.ListenerAddress(), "error", err)
			continue
		}
		if err != nil {
			return false, err
		}
		c.applied = cfg
		c.log.Info("gateway routes applied", "listeners", len(cfg.Listeners), "routes", len(cfg.Routes))
		return true, nil
	}
}

// ownSocket reports whether address is one of p's listener sockets.
func ownSocket(p *plan, address string) bool {
	return slices.ContainsFunc(p.listeners, func(l config.Listener) bool { return l.Address == address })
}

// without is p without the listener sockets of left and their routes.
func without(p *plan, left map[string]bool) *plan {
	if len(left) == 0 {
		return p
	}
	q := *p
	q.listeners = slices.DeleteFunc(slices.Clone(p.listeners), func(l config.Listener) bool { return left[l.Address] })
	q.routes = slices.DeleteFunc(slices.Clone(p.routes), func(r config.Route) bool {
		return len(r.Match.Listeners) == 1 && left[r.Match.Listeners[0]]
	})
	return &q
}

// merge is the static configuration with p's listeners and routes. The
// static routes that name no listener keep to the static listeners, so
// that a Gateway's listeners serve its routes only.
func merge(static *config.Config, p *plan) (*config.Config, error) {
	cfg := *static
	cfg.Listeners = slices.Clone(static.Listeners)
	cfg.Routes = make([]config.Route, 0, len(static.Routes)+len(p.routes))
	own := make([]string, len(static.Listeners))
	taken := map[string]bool{}
	for i, l := range static.Listeners {
		own[i] = l.Address
		taken[l.Address] = true
	}
	for _, r := range static.Routes {
		if len(r.Match.Listeners) == 0 && len(p.listeners) > 0 {
			r.Match.Listeners = own
		}
		cfg.Routes = append(cfg.Routes, r)
	}
	for _, l := range p.listeners {
		if !taken[l.Address] {
			cfg.Listeners = append(cfg.Listeners, l)
		}
	}
	cfg.Routes = append(cfg.Routes, p.routes...)
	cfg.SetDefaults()
	if err := (config.Rules{RoutesOptional: true}).Validate(&cfg); err != nil {
		return nil, fmt.Errorf("gateway configuration is invalid: %w", err)
	}
	return &cfg, nil
}

// sync applies the Gateways and writes their status. It reports whether
// something failed and should be tried again.
func (c *Controller) sync(ctx context.Context) (retry bool) {
	c.mu.Lock()
	p := c.plan()
	_, err := c.applyLocked(p, false)
	c.mu.Unlock()
	if err != nil {
		c.log.Error("applying gateway routes failed; the running routes stay", "error", err)
		retry = true
	}
	if p == nil {
		return true
	}
	c.report(p)
	if c.o.Bound != nil {
		// Listener status tells whether the sockets are bound now.
		if p2 := c.plan(); p2 != nil {
			p = p2
		}
	}
	return c.writeStatus(ctx, p) || retry
}

// ReasonUnsupportedValue is the reason of the Warning Event on an
// HTTPRoute podpin cannot serve as written, as of its Accepted condition.
const ReasonUnsupportedValue = "UnsupportedValue"

// report sends a Warning Event for each HTTPRoute refused for a new
// reason.
func (c *Controller) report(p *plan) {
	for rk, why := range p.refused {
		if c.reported[rk] == why {
			continue
		}
		c.reported[rk] = why
		var obj runtime.Object
		var err error
		if rk.kind == kindGRPCRoute {
			obj, err = c.grpcRoutes.GRPCRoutes(rk.Namespace).Get(rk.Name)
		} else {
			obj, err = c.routes.HTTPRoutes(rk.Namespace).Get(rk.Name)
		}
		if err == nil {
			c.recorder.Event(obj, corev1.EventTypeWarning, ReasonUnsupportedValue, "not served: "+why)
		}
		c.log.Warn("route refused", "kind", rk.kind, "route", rk.String(), "reason", why)
	}
	for nn := range c.reported {
		if _, ok := p.refused[nn]; !ok {
			delete(c.reported, nn)
		}
	}
}

// writeStatus writes every status that differs from the plan's.
func (c *Controller) writeStatus(ctx context.Context, p *plan) (retry bool) {
	api := c.o.Gateways.GatewayV1()
	fail := func(kind string, o metav1.Object, err error) {
		if apierrors.IsNotFound(err) {
			return
		}
		if !apierrors.IsConflict(err) {
			c.log.Warn("status not written", "kind", kind, "namespace", o.GetNamespace(), "name", o.GetName(), "error", err)
		}
		retry = true
	}
	for name, want := range p.classes {
		cur, err := c.classes.Get(name)
		if err != nil || sameConditions(cur.Status.Conditions, want.Conditions) && sameList(cur.Status.SupportedFeatures, want.SupportedFeatures) {
			continue
		}
		obj := cur.DeepCopy()
		obj.Status = want
		if _, err := api.GatewayClasses().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
			fail("GatewayClass", obj, err)
		}
	}
	for nn, want := range p.gateways {
		cur, err := c.gateways.Gateways(nn.Namespace).Get(nn.Name)
		if err != nil || sameGatewayStatus(cur.Status, want) {
			continue
		}
		obj := cur.DeepCopy()
		obj.Status = want
		if _, err := api.Gateways(nn.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
			fail("Gateway", obj, err)
		}
	}
	routes, err := c.routes.List(labels.Everything())
	if err != nil {
		return true
	}
	for _, r := range routes {
		next, changed := c.parentsOf(p, routeKey{kindHTTPRoute, key(r)}, r.Status.Parents)
		if !changed {
			continue
		}
		obj := r.DeepCopy()
		obj.Status.Parents = next
		if _, err := api.HTTPRoutes(r.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
			fail(kindHTTPRoute, obj, err)
		}
	}
	grpcRoutes, err := c.grpcRoutes.List(labels.Everything())
	if err != nil {
		return true
	}
	for _, r := range grpcRoutes {
		next, changed := c.parentsOf(p, routeKey{kindGRPCRoute, key(r)}, r.Status.Parents)
		if !changed {
			continue
		}
		obj := r.DeepCopy()
		obj.Status.Parents = next
		if _, err := api.GRPCRoutes(r.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
			fail(kindGRPCRoute, obj, err)
		}
	}
	return retry
}

// parentsOf is a route's parent statuses with this controller's as the
// plan has them and every other controller's kept; changed says whether
// they differ from cur.
func (c *Controller) parentsOf(p *plan, rk routeKey, cur []gwv1.RouteParentStatus) ([]gwv1.RouteParentStatus, bool) {
	var next []gwv1.RouteParentStatus
	for _, ps := range cur {
		if string(ps.ControllerName) != c.o.ControllerName {
			next = append(next, ps)
		}
	}
	next = append(next, p.parents[rk]...)
	return next, !sameParents(cur, next)
}

func sameGatewayStatus(a, b gwv1.GatewayStatus) bool {
	if !sameList(a.Addresses, b.Addresses) || !sameConditions(a.Conditions, b.Conditions) || len(a.Listeners) != len(b.Listeners) {
		return false
	}
	for i := range a.Listeners {
		x, y := a.Listeners[i], b.Listeners[i]
		if x.Name != y.Name || x.AttachedRoutes != y.AttachedRoutes || !sameList(x.SupportedKinds, y.SupportedKinds) ||
			!sameConditions(x.Conditions, y.Conditions) {
			return false
		}
	}
	return true
}

func sameParents(a, b []gwv1.RouteParentStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ControllerName != b[i].ControllerName || !reflect.DeepEqual(a[i].ParentRef, b[i].ParentRef) ||
			!sameConditions(a[i].Conditions, b[i].Conditions) {
			return false
		}
	}
	return true
}

// sameList is reflect.DeepEqual that takes a nil list and an empty one as
// equal, as the API server does.
func sameList[T any](a, b []T) bool {
	return len(a) == 0 && len(b) == 0 || reflect.DeepEqual(a, b)
}
