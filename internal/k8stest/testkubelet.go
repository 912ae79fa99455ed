package k8stest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// A PodProgram is what the [TestKubelet] runs for a pod in place of its
// containers' images. It opens the pod's servers with [RunningPod.Listen]
// and [RunningPod.ListenPacket] and returns; an error means the pod cannot
// start yet (a Secret it mounts does not exist, say), and the kubelet tries
// again later. Everything the program opened through the RunningPod is
// closed when the pod goes.
type PodProgram func(ctx context.Context, pod *RunningPod) error

// KubeletOptions are the settings of [ControlPlane.StartTestKubelet].
type KubeletOptions struct {
	// Namespaces limits the kubelet to pods in these namespaces, so a test
	// can still play the kubelet by hand elsewhere. Empty means every
	// namespace.
	Namespaces []string

	// Program is what runs each pod. Nil means [EchoBasic].
	Program PodProgram
}

// TestKubelet runs pods in the test process: it stands in for a node's
// kubelet and container runtime, and is not one. For each new pod it gives
// the pod its own address in the [NetNS] (from 10.244.0.3 up to
// 10.244.0.254, skipping the namespace's own and those the test added with
// [NetNS.AddAddr]; released addresses are reused last), runs the pod's
// [PodProgram] on it, binds the pod to [DefaultNode] and reports it running
// and ready, as [ControlPlane.RunPod] does. When a pod is being deleted it
// closes the pod's servers at once and removes the pod with grace period 0,
// as a kubelet does once the containers have stopped, so a Deployment's
// replacement pods come up. Probes, restarts and resource limits are not
// modelled: a pod is ready as soon as its program has started.
//
// It also serves the part of a kubelet's API that the API server calls for
// pods/log, so kubectl logs and the conformance suite read what a pod's
// program wrote with [RunningPod.Logf]; [DefaultNode]'s status names its
// address (127.0.0.1 and a free port).
//
// Start it with [ControlPlane.StartTestKubelet]; it stops when the test
// ends. A TestKubelet is safe for concurrent use.
type TestKubelet struct {
	cp         *ControlPlane
	netns      *NetNS
	program    PodProgram
	namespaces []string
	t          testing.TB // for Errorf and Logf only, which are safe from any goroutine
	lister     cacheLister
	queue      workqueue.TypedRateLimitingInterface[types.NamespacedName]

	// mu guards the fields below it.
	mu   sync.Mutex
	pods map[types.NamespacedName]*RunningPod
	used map[netip.Addr]bool
	free []netip.Addr // released addresses, oldest release first
	next netip.Addr   // the lowest address never handed out
	// waiting holds the address of each pod whose program could not start
	// yet, kept for its next attempt.
	waiting map[types.NamespacedName]netip.Addr
	failed  map[types.NamespacedName]bool
}

// cacheLister gets a pod from the informer's cache.
type cacheLister interface {
	GetByKey(key string) (any, bool, error)
}

// Backoff of a pod whose program cannot start yet.
const (
	kubeletRetryMin = 100 * time.Millisecond
	kubeletRetryMax = 2 * time.Second
)

// StartTestKubelet starts a [TestKubelet] that runs the pods of the control
// plane in netns, including pods that exist already, and returns once its
// pod cache has synced. It stops when t ends, closing every pod's servers;
// the pods stay in the API as they were. Addresses the test wants for
// itself must be added to netns ([NetNS.AddAddr]) before, or a pod may get
// one of them.
//
// Failures the kubelet cannot retry (no pod address left, an API error on
// binding) fail t with t.Errorf; a program that cannot start yet is retried
// with backoff and logged once per pod.
func (cp *ControlPlane) StartTestKubelet(t testing.TB, netns *NetNS, opts KubeletOptions) *TestKubelet {
	t.Helper()
	if _, err := cp.createNode(t.Context(), DefaultNode); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("k8stest: test kubelet: creating node %q: %v", DefaultNode, err)
	}
	k := &TestKubelet{
		cp:         cp,
		netns:      netns,
		program:    opts.Program,
		namespaces: slices.Clone(opts.Namespaces),
		t:          t,
		queue: workqueue.NewTypedRateLimitingQueue(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.NamespacedName](kubeletRetryMin, kubeletRetryMax)),
		pods:    make(map[types.NamespacedName]*RunningPod),
		used:    make(map[netip.Addr]bool),
		next:    podAddr,
		waiting: make(map[types.NamespacedName]netip.Addr),
		failed:  make(map[types.NamespacedName]bool),
	}
	if k.program == nil {
		k.program = EchoBasic
	}
	// Addresses the test took for itself (NetNS.IP, AddAddr) are not given
	// to pods.
	for _, a := range netns.Addrs() {
		k.used[a] = true
	}

	ctx, cancel := context.WithCancel(context.Background())
	factory := informers.NewSharedInformerFactory(cp.Client, 0)
	informer := factory.Core().V1().Pods().Informer()
	enqueue := func(obj any) {
		if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		if pod, ok := obj.(*corev1.Pod); ok && k.watches(pod.Namespace) {
			k.queue.Add(types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name})
		}
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	})
	if err != nil {
		cancel()
		t.Fatalf("k8stest: test kubelet: %v", err)
	}
	k.lister = informer.GetIndexer()

	stopAPI, err := k.serveAPI(t.Context())
	if err != nil {
		cancel()
		t.Fatalf("k8stest: test kubelet: %v", err)
	}

	done := make(chan struct{})
	factory.Start(ctx.Done())
	go func() {
		defer close(done)
		for k.work(ctx) {
		}
	}()
	t.Cleanup(func() {
		cancel()
		k.queue.ShutDown()
		factory.Shutdown()
		<-done
		k.mu.Lock()
		pods := k.pods
		k.pods = nil
		k.mu.Unlock()
		for _, p := range pods {
			p.stop()
		}
		stopAPI()
	})
	if !cache.WaitForCacheSync(t.Context().Done(), informer.HasSynced) {
		t.Fatal("k8stest: test kubelet: pod cache did not sync")
	}
	return k
}

// Pod returns the running pod ns/name, or nil if the kubelet does not run
// it (yet).
func (k *TestKubelet) Pod(ns, name string) *RunningPod {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.pods[types.NamespacedName{Namespace: ns, Name: name}]
}

func (k *TestKubelet) watches(ns string) bool {
	return len(k.namespaces) == 0 || slices.Contains(k.namespaces, ns)
}

// work handles one queued pod; it returns false once the queue is shut down.
func (k *TestKubelet) work(ctx context.Context) bool {
	key, quit := k.queue.Get()
	if quit {
		return false
	}
	defer k.queue.Done(key)
	retry, err := k.sync(ctx, key)
	switch {
	case ctx.Err() != nil:
		k.queue.Forget(key)
	case err != nil && retry:
		k.mu.Lock()
		first := !k.failed[key]
		k.failed[key] = true
		k.mu.Unlock()
		if first {
			k.t.Logf("k8stest: test kubelet: pod %s cannot start yet, retrying: %v", key, err)
		}
		k.queue.AddRateLimited(key)
	case err != nil:
		k.t.Errorf("k8stest: test kubelet: pod %s: %v", key, err)
		k.queue.Forget(key)
	default:
		k.queue.Forget(key)
	}
	return true
}

// sync brings the pod key to its state in the API: running if it exists
// and is not being deleted, gone otherwise. retry says whether an error may
// pass by itself.
func (k *TestKubelet) sync(ctx context.Context, key types.NamespacedName) (retry bool, err error) {
	obj, exists, err := k.lister.GetByKey(key.String())
	if err != nil {
		return true, err
	}
	k.mu.Lock()
	running := k.pods[key]
	k.mu.Unlock()

	var pod *corev1.Pod
	if exists {
		pod = obj.(*corev1.Pod)
	}
	// A pod of the same name but another UID is a new pod: the old one's
	// servers go first.
	if running != nil && (pod == nil || pod.UID != running.Pod.UID || pod.DeletionTimestamp != nil) {
		k.release(key, running)
	}
	if pod == nil || pod.DeletionTimestamp != nil {
		k.unwait(key)
	}
	switch {
	case pod == nil:
		return false, nil
	case pod.DeletionTimestamp != nil:
		return k.remove(ctx, pod)
	case running != nil && pod.UID == running.Pod.UID:
		return false, nil // already running
	case pod.Spec.NodeName != "" && pod.Spec.NodeName != DefaultNode:
		return false, nil // another node's pod
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		return false, nil
	}
	return k.start(ctx, key, pod)
}

// start gives pod an address, runs its program and reports it running.
func (k *TestKubelet) start(ctx context.Context, key types.NamespacedName, pod *corev1.Pod) (bool, error) {
	k.mu.Lock()
	addr, ok := k.waiting[key]
	k.mu.Unlock()
	if !ok {
		var err error
		if addr, err = k.allocate(); err != nil {
			return false, err
		}
		if err := k.netns.addAddr(addr); err != nil {
			k.releaseAddr(addr)
			return false, err
		}
	}
	rp := &RunningPod{Pod: pod.DeepCopy(), IP: addr, cp: k.cp, netns: k.netns}
	rp.Pod.Status.PodIP = addr.String()
	err := k.program(ctx, rp)
	if err == nil {
		_, err = k.cp.runPod(ctx, pod.Namespace, pod.Name, addr)
		// The pod may have been deleted meanwhile; its next event says so.
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			rp.stop()
			k.releaseAddr(addr)
			return false, err
		}
	}
	if err != nil {
		rp.stop()
		k.mu.Lock()
		k.waiting[key] = addr
		k.mu.Unlock()
		return true, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.waiting, key)
	if k.pods == nil { // stopped meanwhile
		rp.stop()
		return false, nil
	}
	k.pods[key] = rp
	if k.failed[key] {
		delete(k.failed, key)
		k.t.Logf("k8stest: test kubelet: pod %s started at %s", key, addr)
	}
	return false, nil
}

// remove deletes the terminating pod with grace period 0, as a kubelet does
// once its containers have stopped.
func (k *TestKubelet) remove(ctx context.Context, pod *corev1.Pod) (bool, error) {
	if pod.Spec.NodeName == "" && len(pod.Finalizers) == 0 {
		return false, nil // never scheduled: the API server removes it itself
	}
	err := k.cp.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return true, fmt.Errorf("removing terminated pod: %w", err)
	}
	return false, nil
}

// unwait frees the address kept for the pod key, if any.
func (k *TestKubelet) unwait(key types.NamespacedName) {
	k.mu.Lock()
	addr, ok := k.waiting[key]
	delete(k.waiting, key)
	delete(k.failed, key)
	k.mu.Unlock()
	if ok {
		k.releaseAddr(addr)
	}
}

// release stops the running pod and frees its address.
func (k *TestKubelet) release(key types.NamespacedName, rp *RunningPod) {
	rp.stop()
	k.mu.Lock()
	if k.pods[key] == rp {
		delete(k.pods, key)
	}
	k.mu.Unlock()
	k.releaseAddr(rp.IP)
}

// allocate returns an unused pod address: a new one while any is left, then
// the one released longest ago.
func (k *TestKubelet) allocate() (netip.Addr, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for podAddrUsable(k.next) {
		a := k.next
		k.next = k.next.Next()
		if !k.used[a] {
			k.used[a] = true
			return a, nil
		}
	}
	if len(k.free) > 0 {
		a := k.free[0]
		k.free = k.free[1:]
		k.used[a] = true
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("no pod address left: all %d addresses of %s other than %s are in use, "+
		"by running pods and by the test itself", podAddrCount, podNet, hostAddr)
}

func (k *TestKubelet) releaseAddr(a netip.Addr) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.used[a] {
		delete(k.used, a)
		k.free = append(k.free, a)
	}
}
