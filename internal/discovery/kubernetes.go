package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Kubernetes finds the pods of Services from their EndpointSlices. It shares
// informers between every route that names a Service: per Service, one
// EndpointSlice informer filtered by the label kubernetes.io/service-name in
// the Service's namespace, and one informer on the Service itself (for its
// ports), started when the first source of the Service runs and stopped when
// the last one stops. Informers list, then watch; when a watch breaks (the
// API server restarts) they list and watch again, so no change is missed.
//
// Kubernetes is safe for concurrent use.
type Kubernetes struct {
	client kubernetes.Interface
	log    *slog.Logger

	// guards ctx and watches, and each watch's refs and stop
	mu sync.Mutex
	// ctx is Run's context while Run runs; nil otherwise.
	ctx     context.Context
	watches map[serviceKey]*serviceWatch
}

// NewKubernetes returns a Kubernetes that reads Services and EndpointSlices
// through client. It needs get, list and watch on both. Its informers run
// only while Run does. A nil log discards.
func NewKubernetes(client kubernetes.Interface, log *slog.Logger) *Kubernetes {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Kubernetes{client: client, log: log, watches: map[serviceKey]*serviceWatch{}}
}

// Run owns the informer goroutines until ctx ends: it starts the informers
// of the Services that sources already asked for, and those of Services
// asked for later, and stops them all when ctx ends. Sources report nothing
// while Run is not running. Run returns nil when ctx ends, or an error at
// once if it is already running.
func (k *Kubernetes) Run(ctx context.Context) error {
	k.mu.Lock()
	if k.ctx != nil {
		k.mu.Unlock()
		return errors.New("kubernetes discovery is already running")
	}
	k.ctx = ctx
	for _, w := range k.watches {
		w.start(ctx, k.client)
	}
	k.mu.Unlock()

	<-ctx.Done()

	k.mu.Lock()
	k.ctx = nil
	var stops []func()
	for _, w := range k.watches {
		if w.stop != nil {
			stops = append(stops, w.stop)
			w.stop = nil
		}
	}
	k.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	return nil
}

// Service returns the source of the pods behind the Service
// namespace/name's port, a Service port name or number. Its target port,
// named or numeric, resolves per endpoint. An endpoint's name is its pod's
// name (targetRef), or its IP when it names no pod, so a pod that comes back
// with a new IP keeps its sessions.
//
// The source's first report comes once the Service's caches have synced,
// complete; later reports come on every change. A missing Service or port
// reports no endpoints.
func (k *Kubernetes) Service(namespace, name, port string) Source {
	key := serviceKey{namespace: namespace, name: name}
	return &serviceSource{
		k:    k,
		key:  key,
		port: port,
		log:  k.log.With("service", key.String(), "port", port),
	}
}

// acquire returns the watch of key, creating it (and starting it when Run
// runs) for its first user.
func (k *Kubernetes) acquire(key serviceKey) *serviceWatch {
	k.mu.Lock()
	defer k.mu.Unlock()
	w := k.watches[key]
	if w == nil {
		w = newServiceWatch(key, k.log.With("service", key.String()))
		k.watches[key] = w
		if k.ctx != nil {
			w.start(k.ctx, k.client)
		}
	}
	w.refs++
	return w
}

// release gives up a use of w, stopping its informers after the last one.
func (k *Kubernetes) release(w *serviceWatch) {
	k.mu.Lock()
	w.refs--
	if w.refs > 0 {
		k.mu.Unlock()
		return
	}
	delete(k.watches, w.key)
	stop := w.stop
	w.stop = nil
	k.mu.Unlock()
	if stop != nil {
		stop()
	}
}

type serviceKey struct{ namespace, name string }

func (k serviceKey) String() string { return k.namespace + "/" + k.name }

// serviceWatch is the informers of one Service and the slim copy of what
// they hold, shared by the sources of that Service.
type serviceWatch struct {
	key serviceKey
	log *slog.Logger

	// refs counts the sources using the watch; guarded by Kubernetes.mu.
	refs int
	// stop ends the informers; nil while they do not run. Guarded by
	// Kubernetes.mu.
	stop func()

	// guards the fields below
	mu sync.Mutex
	// synced is set once both informers have delivered their initial lists.
	synced bool
	// svc is the Service; nil when it does not exist.
	svc    *service
	slices map[string]slice // by slice name
	// subs are the sources' wake-up channels, each with room for one signal.
	subs map[chan struct{}]struct{}
}

func newServiceWatch(key serviceKey, log *slog.Logger) *serviceWatch {
	return &serviceWatch{key: key, log: log, slices: map[string]slice{}, subs: map[chan struct{}]struct{}{}}
}

// start runs the informers until ctx ends or w.stop is called. Its state
// starts empty and unsynced, so a restarted watch reports nothing stale.
// Kubernetes.mu must be held.
func (w *serviceWatch) start(ctx context.Context, client kubernetes.Interface) {
	w.mu.Lock()
	w.synced, w.svc, w.slices = false, nil, map[string]slice{}
	w.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(w.key.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.Set{discoveryv1.LabelServiceName: w.key.name}.String()
		}))
	serviceFactory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(w.key.namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", w.key.name).String()
		}))

	sliceReg, err1 := sliceFactory.Discovery().V1().EndpointSlices().Informer().AddEventHandler(
		cache.ResourceEventHandlerFuncs{
			AddFunc:    w.setSlice,
			UpdateFunc: func(_, obj any) { w.setSlice(obj) },
			DeleteFunc: w.deleteSlice,
		})
	serviceReg, err2 := serviceFactory.Core().V1().Services().Informer().AddEventHandler(
		cache.ResourceEventHandlerFuncs{
			AddFunc:    w.setService,
			UpdateFunc: func(_, obj any) { w.setService(obj) },
			DeleteFunc: func(any) { w.update(func() { w.svc = nil }) },
		})
	if err := errors.Join(err1, err2); err != nil {
		// Only a stopped informer refuses a handler, and these are new.
		w.log.Error("watching service", "error", err)
		cancel()
		return
	}
	sliceFactory.Start(ctx.Done())
	serviceFactory.Start(ctx.Done())

	var wg sync.WaitGroup
	wg.Go(func() {
		// Each registration is synced once its handler has seen the initial
		// list; waiting on both is what makes the first report complete.
		for _, reg := range []cache.ResourceEventHandlerRegistration{sliceReg, serviceReg} {
			select {
			case <-reg.HasSyncedChecker().Done():
			case <-ctx.Done():
				return
			}
		}
		w.log.Debug("caches synced")
		w.update(func() { w.synced = true })
	})
	w.stop = func() {
		cancel()
		sliceFactory.Shutdown()
		serviceFactory.Shutdown()
		wg.Wait()
	}
}

// setSlice stores an added or updated EndpointSlice.
func (w *serviceWatch) setSlice(obj any) {
	es, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		w.log.Error("endpoint slice informer delivered an unexpected object", "type", typeName(obj))
		return
	}
	s := newSlice(es)
	w.update(func() { w.slices[s.name] = s })
}

// deleteSlice forgets a deleted EndpointSlice. obj may be a tombstone
// (cache.DeletedFinalStateUnknown) when the watch missed the deletion and a
// re-list found the slice gone; its key still names the slice.
func (w *serviceWatch) deleteSlice(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		w.log.Error("endpoint slice informer delivered an unexpected deletion", "type", typeName(obj), "error", err)
		return
	}
	_, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		w.log.Error("endpoint slice informer delivered an unexpected key", "key", key, "error", err)
		return
	}
	w.update(func() { delete(w.slices, name) })
}

// setService stores the added or updated Service.
func (w *serviceWatch) setService(obj any) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		w.log.Error("service informer delivered an unexpected object", "type", typeName(obj))
		return
	}
	s := newService(svc)
	w.update(func() { w.svc = s })
}

// update applies change under the lock and wakes every source.
func (w *serviceWatch) update(change func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	change()
	for c := range w.subs {
		select {
		case c <- struct{}{}:
		default: // a wake-up is already pending; it will read this change
		}
	}
}

// subscribe returns a channel that receives a signal after every change,
// and one at once.
func (w *serviceWatch) subscribe() chan struct{} {
	c := make(chan struct{}, 1)
	c <- struct{}{}
	w.mu.Lock()
	w.subs[c] = struct{}{}
	w.mu.Unlock()
	return c
}

func (w *serviceWatch) unsubscribe(c chan struct{}) {
	w.mu.Lock()
	delete(w.subs, c)
	w.mu.Unlock()
}

// snapshot returns the Service and its slices, sorted by name, or false
// before the caches synced. The slim structs are never changed once stored,
// so sharing them is safe.
func (w *serviceWatch) snapshot() (*service, []slice, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.synced {
		return nil, nil, false
	}
	ss := make([]slice, 0, len(w.slices))
	for _, name := range slices.Sorted(maps.Keys(w.slices)) {
		ss = append(ss, w.slices[name])
	}
	return w.svc, ss, true
}

// serviceSource is the Source of one port of one Service.
type serviceSource struct {
	k    *Kubernetes
	key  serviceKey
	port string
	log  *slog.Logger
}

var _ Source = (*serviceSource)(nil)

// Start reports the Service's endpoints once its caches synced, then after
// every change that alters them, from a goroutine of its own, until stop.
// It takes its share of the Service's watch before it returns, so a source
// started before another of the same Service stops keeps the informers
// running across the handover.
func (s *serviceSource) Start(update func([]Endpoint)) (stop func()) {
	w := s.k.acquire(s.key)
	wake := w.subscribe()
	stopLoop := startLoop(func(ctx context.Context) { s.run(ctx, w, wake, update) })
	return func() {
		stopLoop()
		w.unsubscribe(wake)
		s.k.release(w)
	}
}

// run reports the endpoints of w on every wake-up that changes them, until
// ctx ends.
func (s *serviceSource) run(ctx context.Context, w *serviceWatch, wake <-chan struct{}, update func([]Endpoint)) {
	var (
		last     []Endpoint
		reported bool
		problem  string
	)
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
		}
		svc, ss, ok := w.snapshot()
		if !ok {
			continue
		}
		eps, why := translate(svc, ss, s.port)
		if why != problem {
			if why != "" {
				s.log.Warn("no endpoints", "reason", why)
			}
			problem = why
		}
		if reported && slices.Equal(eps, last) {
			continue
		}
		if !reported {
			s.log.Info("service synced", "endpoints", len(eps))
		}
		update(slices.Clone(eps))
		last, reported = eps, true
	}
}

func typeName(obj any) string { return fmt.Sprintf("%T", obj) }
