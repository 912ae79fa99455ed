package ingress

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/k8s"
)

const (
	// ControllerName is the spec.controller of the IngressClass podpin
	// implements.
	ControllerName = "podpin.io/ingress-controller"
	// DefaultClass is the IngressClass name podpin serves by default.
	DefaultClass = "podpin"
	// DefaultDebounce is how long the controller gathers changes before it
	// applies them.
	DefaultDebounce = 100 * time.Millisecond

	// classAnnotation is the deprecated way to name an Ingress's class,
	// read when spec.ingressClassName is not set.
	classAnnotation = "kubernetes.io/ingress.class"
)

// Event reasons, on the Ingress concerned.
const (
	// ReasonInvalidAnnotation: a podpin.io/ annotation is unknown or its
	// value is invalid.
	ReasonInvalidAnnotation = "InvalidAnnotation"
	// ReasonInvalidIngress: the Ingress's spec produces an invalid route.
	ReasonInvalidIngress = "InvalidIngress"
	// ReasonUnsupported: a part of the Ingress podpin does not implement
	// (a wildcard host, a resource backend, TLS) is skipped; the rest is
	// served.
	ReasonUnsupported = "Unsupported"
	// ReasonApplyFailed: the Ingress's routes are valid, but the proxy
	// could not run them (Options.Apply failed on them); the other
	// Ingresses apply without them.
	ReasonApplyFailed = "ApplyFailed"
)

// Options configure a Controller.
type Options struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// Apply makes a configuration the running one (proxy.Apply), or fails
	// and leaves the running one as it was. It is called from one goroutine
	// at a time. When it fails, the controller applies again without the
	// Ingresses that changed, then with each of them in turn, to find and
	// refuse the ones at fault. Required.
	Apply func(*config.Config) error
	// Class is the IngressClass name to serve. Default "podpin".
	Class string
	// Static is the configuration the Ingress routes join: its listeners,
	// store and other settings, and its routes, which come first. It must be
	// defaulted and valid under config.Rules{RoutesOptional: true}: it may
	// have no routes. Nil: defaults and no static routes.
	Static *config.Config
	// PublishAddress is the IP or host name written to the status of served
	// Ingresses. Empty: see PublishService.
	PublishAddress string
	// PublishService is "namespace/name" of podpin's Service, whose load
	// balancer address (or else external IPs, or else cluster IP) is
	// written to the status of served Ingresses. Empty with PublishAddress
	// empty: the status is left alone.
	PublishService string
	// WithoutRedis says podpin runs without a Redis connection, which only
	// a restart can add: an Ingress whose podpin.io/store asks for redis is
	// then refused with an Event that names the annotation, without trying
	// to apply it. False: such routes are passed on to Apply, which refuses
	// them (ReasonApplyFailed).
	WithoutRedis bool
	// Recorder receives the Events about Ingresses. Nil: they are written
	// to the API server through Client.
	Recorder record.EventRecorder
	// Metrics counts applies and rejected Ingresses; nil counts nothing.
	Metrics Metrics
	// Logger receives state changes; nil discards.
	Logger *slog.Logger
	// Debounce is how long a burst of changes is gathered before one apply.
	// Default 100ms.
	Debounce time.Duration
	// Certificates, when not nil, receives the certificates of the
	// kubernetes.io/tls Secrets that the served Ingresses name in spec.tls
	// (the Secrets are then watched), and the hosts to redirect to https.
	// Nil: spec.tls is not served.
	Certificates *certs.Source
	// DefaultTLSSecret is "namespace/name" of a kubernetes.io/tls Secret
	// whose certificate is served to names no other certificate serves, in
	// place of the listeners' own default. Needs Certificates.
	DefaultTLSSecret string
	// CertMetrics, when not nil, gets the expiry of the Secrets'
	// certificates.
	CertMetrics CertMetrics
}

// Metrics receives what the controller did; *metrics.Metrics is one.
type Metrics interface {
	// IngressApplied counts an apply of a merged configuration: ok or
	// failed.
	IngressApplied(ok bool)
	// IngressesRejected sets how many Ingresses are currently rejected.
	IngressesRejected(n int)
}

// Controller turns the Ingresses of one class into routes and applies them
// with the static routes. Its methods are safe for concurrent use.
type Controller struct {
	client   kubernetes.Interface
	apply    func(*config.Config) error
	class    string
	metrics  Metrics
	log      *slog.Logger
	debounce time.Duration
	// withoutRedis: see Options.WithoutRedis
	withoutRedis bool
	// ownEvents is set when the controller sends its Events itself, through
	// a broadcaster that Run owns.
	ownEvents bool
	publisher publisher

	factory    informers.SharedInformerFactory
	svcFactory informers.SharedInformerFactory // nil without PublishService
	ingresses  networkinglisters.IngressLister
	classes    networkinglisters.IngressClassLister

	// TLS: see Options.Certificates. secretFactory is nil without it.
	certSource    *certs.Source
	defaultSecret string
	certMetrics   CertMetrics
	secretFactory informers.SharedInformerFactory
	secrets       corelisters.SecretLister

	kick chan struct{}
	// synced is closed by markSynced after the first sync.
	synced     chan struct{}
	markSynced func()

	// guards everything below; held while configurations are built and
	// applied, so applies happen in order
	mu      sync.Mutex
	static  *config.Config
	gen     int // counts changes of static
	known   map[string]*ingressState
	applied *config.Config // last configuration applied; nil: none yet
	// recorder receives Events; nil until Run starts the controller's own
	recorder record.EventRecorder
	// classConflict is the controller of a same-named IngressClass owned by
	// another controller, as last logged.
	classConflict string
	// secretCache holds the Secrets' certificates as last parsed, by
	// namespace/name; measured are those in the expiry metric;
	// defaultReport is the default Secret's problem as last logged.
	secretCache   map[string]secretCert
	secretsRead   map[string]bool // by the last updateCertificatesLocked
	measured      map[string]*tls.Certificate
	defaultReport string
}

// ingressState is what the controller remembers of one served Ingress.
type ingressState struct {
	uid         types.UID
	spec        spec
	fingerprint string
	gen         int // of the static configuration it was checked against
	// good are the routes of the last valid version; valid is false when
	// there never was one, and then the Ingress is not served.
	good  []ingressRoute
	valid bool
	// rejected is set while the current version has problems.
	rejected bool
	// redirect: the TLS hosts are redirected to https (of the last valid
	// version).
	redirect bool
	// tlsReport is the problems with its TLS Secrets as last reported.
	tlsReport string
	// live are the routes last applied; isLive is false while none of its
	// versions has been applied.
	live   []ingressRoute
	isLive bool
}

// New returns a controller; Run starts it.
func New(o Options) (*Controller, error) {
	if o.Client == nil || o.Apply == nil {
		return nil, errors.New("ingress controller: a client and an apply function are required")
	}
	c := &Controller{
		client:       o.Client,
		apply:        o.Apply,
		class:        o.Class,
		metrics:      o.Metrics,
		log:          o.Logger,
		debounce:     o.Debounce,
		withoutRedis: o.WithoutRedis,
		recorder:     o.Recorder,
		static:       o.Static,
		known:        map[string]*ingressState{},
		kick:         make(chan struct{}, 1),
		synced:       make(chan struct{}),
		publisher:    publisher{address: o.PublishAddress},
		certSource:   o.Certificates,
		certMetrics:  o.CertMetrics,
		secretCache:  map[string]secretCert{},
	}
	c.markSynced = sync.OnceFunc(func() { close(c.synced) })
	if c.class == "" {
		c.class = DefaultClass
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.debounce <= 0 {
		c.debounce = DefaultDebounce
	}
	if c.static == nil {
		c.static = &config.Config{}
		c.static.SetDefaults()
	}
	c.ownEvents = c.recorder == nil

	c.factory = informers.NewSharedInformerFactory(o.Client, 0)
	ing := c.factory.Networking().V1().Ingresses()
	cls := c.factory.Networking().V1().IngressClasses()
	c.ingresses, c.classes = ing.Lister(), cls.Lister()
	if _, err := ing.Informer().AddEventHandler(c.handler("ingress")); err != nil {
		return nil, err
	}
	if _, err := cls.Informer().AddEventHandler(c.handler("ingressclass")); err != nil {
		return nil, err
	}
	if o.DefaultTLSSecret != "" {
		if o.Certificates == nil {
			return nil, errors.New("ingress controller: a default TLS Secret needs a certificate source")
		}
		if _, _, err := ParseSecretRef(o.DefaultTLSSecret); err != nil {
			return nil, err
		}
		c.defaultSecret = o.DefaultTLSSecret
	}
	if c.certSource != nil {
		// Only Secrets of type kubernetes.io/tls are watched and cached.
		c.secretFactory = informers.NewSharedInformerFactoryWithOptions(o.Client, 0,
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
				lo.FieldSelector = "type=" + string(corev1.SecretTypeTLS)
			}))
		sec := c.secretFactory.Core().V1().Secrets()
		c.secrets = sec.Lister()
		if _, err := sec.Informer().AddEventHandler(c.handler("secret")); err != nil {
			return nil, err
		}
	}
	if o.PublishAddress == "" && o.PublishService != "" {
		ns, name, err := parsePublishService(o.PublishService)
		if err != nil {
			return nil, err
		}
		c.publisher.namespace, c.publisher.name = ns, name
		// Only podpin's own Service is watched.
		c.svcFactory = informers.NewSharedInformerFactoryWithOptions(o.Client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
				lo.FieldSelector = "metadata.name=" + name
			}))
		svc := c.svcFactory.Core().V1().Services()
		c.publisher.services = svc.Lister()
		if _, err := svc.Informer().AddEventHandler(c.handler("service")); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// handler kicks the controller on every change; kind names the objects
// in the log of deletions.
func (c *Controller) handler(kind string) cache.ResourceEventHandler {
	return k8s.OnChange(c.trigger, func(m metav1.Object) {
		c.log.Debug("deleted", "kind", kind, "namespace", m.GetNamespace(), "name", m.GetName())
	})
}

func (c *Controller) trigger() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Synced returns a channel that is closed once the caches have synced and
// the first set of routes was built and applied: until then podpin is not
// ready.
func (c *Controller) Synced() <-chan struct{} { return c.synced }

// Run watches Ingresses, IngressClasses (and podpin's Service) and applies
// their routes until ctx ends. It returns nil when ctx ends, or an error
// when the caches cannot sync.
func (c *Controller) Run(ctx context.Context) error {
	if c.ownEvents {
		b := record.NewBroadcaster()
		b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
		defer b.Shutdown()
		c.mu.Lock()
		c.recorder = b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "podpin-ingress-controller"})
		c.mu.Unlock()
	}
	factories := []informers.SharedInformerFactory{c.factory}
	if c.svcFactory != nil {
		factories = append(factories, c.svcFactory)
	}
	if c.secretFactory != nil {
		factories = append(factories, c.secretFactory)
	}
	for _, f := range factories {
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	for _, f := range factories {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("ingress controller: caches of %v did not sync", typ)
			}
		}
	}
	c.log.Info("ingress controller synced", "class", c.class)

	k8s.SyncLoop(ctx, c.kick, c.debounce, c.sync, c.markSynced)
	return nil
}

// SetStatic replaces the static configuration (a reloaded configuration
// file) and applies it merged with the Ingress routes. When that apply
// fails, the previous static configuration stays, with the routes it
// served, and SetStatic returns the error: later Ingress changes go on
// applying over the last good file rather than failing on the bad one.
func (c *Controller) SetStatic(cfg *config.Config) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := c.static
	c.static = cfg
	c.gen++
	err := c.rebuildLocked(true)
	if err != nil {
		// Every Ingress is checked again against the restored file.
		c.static = prev
		c.gen++
		if rerr := c.rebuildLocked(false); rerr != nil {
			c.log.Error("applying ingress routes with the last good configuration failed", "error", rerr)
		}
	}
	c.trigger() // statuses
	return err
}

// Apply is SetStatic: it lets the controller stand where a reload applies a
// configuration.
func (c *Controller) Apply(cfg *config.Config) error { return c.SetStatic(cfg) }

// sync rebuilds and applies the routes and writes the Ingresses' status. It
// reports whether something failed and should be tried again.
func (c *Controller) sync(ctx context.Context) (retry bool) {
	c.mu.Lock()
	err := c.rebuildLocked(false)
	served := make([]*networkingv1.Ingress, 0, len(c.known))
	for key, st := range c.known {
		if !st.valid {
			continue
		}
		ns, name := st.spec.namespace, st.spec.name
		ing, gerr := c.ingresses.Ingresses(ns).Get(name)
		if gerr == nil {
			served = append(served, ing)
		} else {
			c.log.Debug("served ingress gone from cache", "ingress", key)
		}
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Error("applying ingress routes failed; the running routes stay", "error", err)
		retry = true
	}
	if !c.publisher.enabled() {
		return retry
	}
	want, ok := c.publisher.addresses()
	if !ok {
		return retry
	}
	for _, ing := range served {
		wrote, err := writeStatus(ctx, c.client, ing, want)
		switch {
		case err != nil && apierrors.IsNotFound(err):
		case err != nil:
			c.log.Warn("ingress status not written", "error", err)
			retry = true
		case wrote:
			c.log.Info("ingress status written", "ingress", ing.Namespace+"/"+ing.Name, "address", addressList(want))
		}
	}
	return retry
}

// rebuildLocked evaluates the Ingresses of the class, reports their
// problems as Events, and applies the merged configuration when it changed
// (or always, when force is set). It counts what it did in the metrics.
// c.mu must be held.
func (c *Controller) rebuildLocked(force bool) error {
	applied, err := c.rebuildAndApplyLocked(force)
	if c.metrics != nil {
		rejected := 0
		for _, st := range c.known {
			if st.rejected {
				rejected++
			}
		}
		c.metrics.IngressesRejected(rejected)
		if applied || err != nil {
			c.metrics.IngressApplied(err == nil)
		}
	}
	return err
}

// rebuildAndApplyLocked is rebuildLocked without the metrics; it reports
// whether it applied a configuration.
func (c *Controller) rebuildAndApplyLocked(force bool) (applied bool, err error) {
	list, err := c.ingresses.List(labels.Everything())
	if err != nil {
		return false, fmt.Errorf("listing ingresses: %w", err)
	}
	classOK := c.classUsable()
	defaultClass := classOK && c.isDefaultClass()
	seen := map[string]bool{}
	for _, ing := range list {
		if !classOK || !c.serves(ing, defaultClass) {
			continue
		}
		s := specOf(ing)
		key := s.key()
		seen[key] = true
		fp := s.fingerprint()
		st := c.known[key]
		if st != nil && st.fingerprint == fp && st.gen == c.gen {
			continue
		}
		if st == nil || st.uid != ing.UID {
			// New, or deleted and created again under the same name: the
			// old one's routes are not its last good ones.
			st = &ingressState{uid: ing.UID}
			c.known[key] = st
		}
		changed := st.fingerprint != fp
		st.spec, st.fingerprint, st.gen = s, fp, c.gen
		t := c.translate(s)
		st.rejected = len(t.problems) > 0
		if changed && c.recorder != nil {
			for _, p := range t.skipped {
				c.recorder.Event(ing, corev1.EventTypeWarning, ReasonUnsupported, p.String())
			}
		}
		if len(t.problems) == 0 {
			if !st.valid || changed {
				c.log.Info("ingress accepted", "ingress", key, "routes", len(t.routes))
			}
			st.good, st.valid, st.redirect = t.routes, true, t.redirect
			continue
		}
		if !changed {
			// Only the static configuration changed: the last good routes
			// may no longer fit it (a store that is gone).
			if st.valid && len(validate(st.good, c.static)) > 0 {
				st.good, st.valid = nil, false
				c.log.Warn("ingress no longer valid with the new configuration; not served", "ingress", key)
			}
			if !st.valid {
				c.report(ing, t.problems, false)
			}
			continue
		}
		c.report(ing, t.problems, st.valid)
		c.log.Warn("ingress rejected", "ingress", key, "problems", len(t.problems), "keeps_last_good", st.valid)
	}
	for key := range c.known {
		if !seen[key] {
			delete(c.known, key)
			c.log.Info("ingress no longer served", "ingress", key)
		}
	}

	c.updateCertificatesLocked(list)

	cfg, err := c.mergeLocked(func(st *ingressState) []ingressRoute { return st.good })
	if err != nil {
		return false, err
	}
	if !force && reflect.DeepEqual(cfg, c.applied) {
		return false, nil
	}
	if err := c.apply(cfg); err != nil {
		if cfg, err = c.applyEachLocked(list, err); err != nil {
			return false, err
		}
	}
	n := 0
	for _, st := range c.known {
		st.live, st.isLive = st.good, st.valid
		if st.valid {
			n++
		}
	}
	c.applied = cfg
	c.log.Info("ingress routes applied", "routes", len(cfg.Routes), "ingresses", n)
	return true, nil
}

// mergeLocked is the static configuration with the routes routesOf gives
// each valid Ingress. c.mu must be held.
func (c *Controller) mergeLocked(routesOf func(*ingressState) []ingressRoute) (*config.Config, error) {
	specs := make([]*spec, 0, len(c.known))
	routes := map[string][]ingressRoute{}
	for key, st := range c.known {
		if st.valid {
			specs = append(specs, &st.spec)
			routes[key] = routesOf(st)
		}
	}
	cfg := merge(c.static, specs, routes)
	cfg.SetDefaults()
	// No static routes and no Ingress yet is a configuration with no routes.
	if err := (config.Rules{RoutesOptional: true}).Validate(cfg); err != nil {
		// Each Ingress was validated alone and names are made unique,
		// so this is a bug; keep serving what runs.
		return nil, fmt.Errorf("merged configuration is invalid: %w", err)
	}
	return cfg, nil
}

// applyEachLocked finds the Ingresses whose routes made an apply fail with
// err, refuses them, and applies the rest. The Ingresses whose routes
// changed since the last apply are put back to their running routes (a new
// one is left out); if that applies, each is applied again with its new
// routes in turn, oldest first. One that fails gets a Warning Event naming
// the error and keeps its running routes (a new one is not served). If the
// running routes fail too, the fault is no Ingress's: err is returned and
// nothing changes. It costs an apply for each changed Ingress, and runs
// only after a failure. It returns the configuration applied last. c.mu
// must be held.
func (c *Controller) applyEachLocked(list []*networkingv1.Ingress, err error) (*config.Config, error) {
	var changed []string
	for key, st := range c.known {
		if st.valid && (!st.isLive || !reflect.DeepEqual(st.good, st.live)) {
			changed = append(changed, key)
		}
	}
	if len(changed) == 0 {
		return nil, err
	}
	slices.SortFunc(changed, func(a, b string) int {
		if d := c.known[a].spec.created.Compare(c.known[b].spec.created); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	pending := map[*ingressState]bool{}
	for _, key := range changed {
		pending[c.known[key]] = true
	}
	routesOf := func(st *ingressState) []ingressRoute {
		if pending[st] {
			return st.live
		}
		return st.good
	}
	cfg, merr := c.mergeLocked(routesOf)
	if merr != nil {
		return nil, merr
	}
	if aerr := c.apply(cfg); aerr != nil {
		return nil, err
	}
	byKey := map[string]*networkingv1.Ingress{}
	for _, ing := range list {
		byKey[ing.Namespace+"/"+ing.Name] = ing
	}
	refused := false
	for _, key := range changed {
		st := c.known[key]
		delete(pending, st)
		next, aerr := c.mergeLocked(routesOf)
		if aerr == nil {
			aerr = c.apply(next)
		}
		if aerr == nil {
			cfg = next
			continue
		}
		refused = true
		st.good, st.valid, st.rejected = st.live, st.isLive, true
		if ing := byKey[key]; ing != nil && c.recorder != nil {
			c.recorder.Eventf(ing, corev1.EventTypeWarning, ReasonApplyFailed, "routes not applied: %v; %s", aerr, outcome(st.valid))
		}
		c.log.Warn("ingress refused: its routes did not apply", "ingress", key, "error", aerr, "keeps_last_good", st.valid)
	}
	if refused {
		// A refused Ingress's certificates and redirects go with its routes.
		c.updateCertificatesLocked(list)
	}
	return cfg, nil
}

// translate is translate against the static configuration, with the
// routes that need a Redis connection podpin lacks counted as problems.
// c.mu must be held.
func (c *Controller) translate(s spec) translation {
	t := translate(s, c.static)
	if !c.withoutRedis {
		return t
	}
	for _, r := range t.routes {
		if r.route.Store == config.StoreRedis {
			t.problems = append(t.problems, Problem{Annotation: AnnotationStore,
				Msg: "redis needs a restart: podpin started without a Redis connection (store.type redis or a static route on redis, with store.redis)"})
			break
		}
	}
	return t
}

// report records a Warning Event on ing for each problem. c.mu must be
// held.
func (c *Controller) report(ing *networkingv1.Ingress, problems []Problem, keepsLastGood bool) {
	if c.recorder == nil {
		return
	}
	for _, p := range problems {
		reason := ReasonInvalidIngress
		if p.Annotation != "" {
			reason = ReasonInvalidAnnotation
		}
		c.recorder.Eventf(ing, corev1.EventTypeWarning, reason, "%s; %s", p, outcome(keepsLastGood))
	}
}

// outcome says what becomes of a refused Ingress, for its Events.
func outcome(keepsLastGood bool) string {
	if keepsLastGood {
		return "the Ingress keeps its last good configuration"
	}
	return "the Ingress is not served until this is fixed"
}

// classUsable reports whether the class may be served: the IngressClass of
// that name is podpin's, or does not exist (an Ingress may name a class
// before it is created). One owned by another controller is not served.
func (c *Controller) classUsable() bool {
	ic, err := c.classes.Get(c.class)
	owner := ""
	if err == nil && ic.Spec.Controller != ControllerName {
		owner = ic.Spec.Controller
	}
	if owner != c.classConflict {
		c.classConflict = owner
		if owner != "" {
			c.log.Error("the IngressClass belongs to another controller; its Ingresses are not served", "class", c.class, "controller", owner)
		}
	}
	return owner == ""
}

// isDefaultClass reports whether the class's IngressClass is marked as the
// cluster's default.
func (c *Controller) isDefaultClass() bool {
	ic, err := c.classes.Get(c.class)
	return err == nil && ic.Annotations[networkingv1.AnnotationIsDefaultIngressClass] == "true"
}

// serves reports whether ing belongs to the class: by spec.ingressClassName,
// else by the older kubernetes.io/ingress.class annotation, else (no class
// at all) when the class is the cluster's default.
func (c *Controller) serves(ing *networkingv1.Ingress, defaultClass bool) bool {
	if n := ing.Spec.IngressClassName; n != nil {
		return *n == c.class
	}
	if a, ok := ing.Annotations[classAnnotation]; ok {
		return a == c.class
	}
	return defaultClass
}

func addressList(es []networkingv1.IngressLoadBalancerIngress) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.IP + e.Hostname
	}
	return out
}
