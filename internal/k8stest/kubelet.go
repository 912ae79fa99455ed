package k8stest

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// DefaultNode is the node [ControlPlane.RunPod] schedules pods on. RunPod
// creates it when it does not exist yet.
const DefaultNode = "node-1"

// podWaitTimeout bounds how long WaitPods waits for controllers.
const podWaitTimeout = time.Minute

// CreateNode creates a Ready Node object named name, as a kubelet registering
// would. The EndpointSlice controller ignores pods whose node it cannot find.
func (cp *ControlPlane) CreateNode(t testing.TB, name string) *corev1.Node {
	t.Helper()
	node, err := cp.createNode(context.Background(), name)
	if err != nil {
		t.Fatalf("k8stest: creating node %q: %v", name, err)
	}
	return node
}

func (cp *ControlPlane) createNode(ctx context.Context, name string) (*corev1.Node, error) {
	node, err := cp.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{corev1.LabelHostname: name},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, err
	}
	now := metav1.Now()
	node.Status.Conditions = []corev1.NodeCondition{{
		Type:               corev1.NodeReady,
		Status:             corev1.ConditionTrue,
		Reason:             "KubeletReady",
		LastHeartbeatTime:  now,
		LastTransitionTime: now,
	}}
	return cp.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
}

// RunPod does what a kubelet does for the existing pod ns/name: it binds the
// pod to [DefaultNode] if no node was assigned, then reports it running and
// ready at ip with every container started and ready. ip must be an address
// the test owns, such as one of a [NetNS]. It returns the updated pod.
func (cp *ControlPlane) RunPod(t testing.TB, ns, name, ip string) *corev1.Pod {
	t.Helper()
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		t.Fatalf("k8stest: running pod %s/%s: bad pod IP %q", ns, name, ip)
	}
	pod, err := cp.runPod(context.Background(), ns, name, addr)
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	return pod
}

// runPod is [ControlPlane.RunPod] returning its error, for callers that are
// not the test's goroutine, such as [TestKubelet].
func (cp *ControlPlane) runPod(ctx context.Context, ns, name string, addr netip.Addr) (*corev1.Pod, error) {
	pods := cp.Client.CoreV1().Pods(ns)
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("running pod %s/%s: %w", ns, name, err)
	}
	if pod.Spec.NodeName == "" {
		if _, err := cp.createNode(ctx, DefaultNode); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("running pod %s/%s: creating node %q: %w", ns, name, DefaultNode, err)
		}
		err := pods.Bind(ctx, &corev1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: pod.UID},
			Target:     corev1.ObjectReference{Kind: "Node", Name: DefaultNode},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("binding pod %s/%s to %q: %w", ns, name, DefaultNode, err)
		}
	}

	pod, err = cp.updatePodStatus(ctx, ns, name, func(pod *corev1.Pod) {
		now := metav1.Now()
		pod.Status.Phase = corev1.PodRunning
		pod.Status.PodIP = addr.String()
		pod.Status.PodIPs = []corev1.PodIP{{IP: addr.String()}}
		if pod.Status.StartTime == nil {
			pod.Status.StartTime = &now
		}
		pod.Status.ContainerStatuses = nil
		for _, c := range pod.Spec.Containers {
			pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
				Name:        c.Name,
				Image:       c.Image,
				ImageID:     c.Image,
				ContainerID: "containerd://" + string(pod.UID) + "-" + c.Name,
				Started:     new(true),
				State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
		for _, typ := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized} {
			setPodCondition(pod, typ, corev1.ConditionTrue)
		}
		setPodReady(pod, true)
	})
	if err != nil {
		return nil, fmt.Errorf("reporting pod %s/%s running: %w", ns, name, err)
	}
	return pod, nil
}

// SetPodReady reports the running pod ns/name ready or not ready, as a
// kubelet does when a readiness probe passes or fails.
func (cp *ControlPlane) SetPodReady(t testing.TB, ns, name string, ready bool) *corev1.Pod {
	t.Helper()
	pod, err := cp.updatePodStatus(context.Background(), ns, name, func(pod *corev1.Pod) {
		setPodReady(pod, ready)
	})
	if err != nil {
		t.Fatalf("k8stest: setting pod %s/%s ready=%t: %v", ns, name, ready, err)
	}
	return pod
}

// TerminatePod deletes the pod ns/name gracefully. With no kubelet to finish
// the deletion, a pod bound to a node stays terminating until
// [ControlPlane.ForceDeletePod]: its endpoint reads ready false, and serving
// stays true while the pod is still reported ready.
func (cp *ControlPlane) TerminatePod(t testing.TB, ns, name string) {
	t.Helper()
	if err := cp.Client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("k8stest: deleting pod %s/%s: %v", ns, name, err)
	}
}

// ForceDeletePod removes the pod ns/name at once, as a kubelet does when its
// containers have stopped; its endpoint disappears.
func (cp *ControlPlane) ForceDeletePod(t testing.TB, ns, name string) {
	t.Helper()
	err := cp.Client.CoreV1().Pods(ns).Delete(context.Background(), name,
		metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("k8stest: force-deleting pod %s/%s: %v", ns, name, err)
	}
}

// WaitPods waits up to a minute until exactly n pods that are not terminating
// match the label selector in ns, as a controller creates them, and returns
// them sorted by name.
func (cp *ControlPlane) WaitPods(t testing.TB, ns, selector string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, podWaitTimeout, true,
		func(ctx context.Context) (bool, error) {
			list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				return false, nil // the API server may be restarting; keep polling
			}
			pods = slices.DeleteFunc(list.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil })
			return len(pods) == n, nil
		})
	if err != nil {
		t.Fatalf("k8stest: waiting for %d pods matching %q in %q: got %d: %v", n, selector, ns, len(pods), err)
	}
	slices.SortFunc(pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return pods
}

// updatePodStatus applies change to the latest pod ns/name and writes its
// status, retrying when a controller updated the pod in between.
func (cp *ControlPlane) updatePodStatus(ctx context.Context, ns, name string, change func(*corev1.Pod)) (*corev1.Pod, error) {
	pods := cp.Client.CoreV1().Pods(ns)
	var updated *corev1.Pod
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(pod)
		updated, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	return updated, err
}

// setPodReady sets the Ready and ContainersReady conditions and every
// container's ready flag, which is what the EndpointSlice controller reads.
func setPodReady(pod *corev1.Pod, ready bool) {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	setPodCondition(pod, corev1.ContainersReady, status)
	setPodCondition(pod, corev1.PodReady, status)
	for i := range pod.Status.ContainerStatuses {
		pod.Status.ContainerStatuses[i].Ready = ready
	}
}

// setPodCondition sets the pod condition typ to status, moving its
// transition time only when the status changes.
func setPodCondition(pod *corev1.Pod, typ corev1.PodConditionType, status corev1.ConditionStatus) {
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type == typ {
			if c.Status != status {
				c.Status = status
				c.LastTransitionTime = metav1.Now()
			}
			return
		}
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
		Type:               typ,
		Status:             status,
		LastTransitionTime: metav1.Now(),
	})
}
