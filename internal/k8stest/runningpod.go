package k8stest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RunningPod is a pod that a [TestKubelet] runs, as its [PodProgram] sees
// it. It is safe for concurrent use.
type RunningPod struct {
	// Pod is the pod as the kubelet saw it when it started the pod, with
	// status.podIP set to IP. Do not modify it.
	Pod *corev1.Pod

	// IP is the pod's own address in the NetNS.
	IP netip.Addr

	cp    *ControlPlane
	netns *NetNS

	// mu guards the fields below it.
	mu      sync.Mutex
	closers []func()
	stopped bool
	logs    map[string][]logLine // by container name, oldest first
}

// logLine is one line of a container's log.
type logLine struct {
	at   time.Time
	text string
}

// maxLogLines bounds each container's log; older lines go first.
const maxLogLines = 10000

// Logf appends a line to the log of the container named container, which
// the API server's pods/log reads through the kubelet (the last 10,000
// lines of each container are kept).
func (p *RunningPod) Logf(container, format string, args ...any) {
	line := logLine{at: time.Now(), text: strings.TrimRight(fmt.Sprintf(format, args...), "\n")}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.logs == nil {
		p.logs = make(map[string][]logLine)
	}
	lines := append(p.logs[container], line)
	if len(lines) > maxLogLines {
		lines = slices.Delete(lines, 0, len(lines)-maxLogLines)
	}
	p.logs[container] = lines
}

// logLines returns the lines of container's log written at since or later
// (since's whole second, as the kubelet's sinceTime has no finer grain).
func (p *RunningPod) logLines(container string, since time.Time) []logLine {
	since = since.Truncate(time.Second)
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := p.logs[container]
	i, _ := slices.BinarySearchFunc(lines, since, func(l logLine, t time.Time) int { return l.at.Compare(t) })
	return slices.Clone(lines[i:])
}

// Listen opens a TCP listener on the pod's address and port. It is closed
// when the pod stops.
func (p *RunningPod) Listen(port int) (net.Listener, error) {
	l, err := p.netns.Listen("tcp", net.JoinHostPort(p.IP.String(), strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	p.OnStop(func() { l.Close() })
	return l, nil
}

// ListenPacket opens a UDP socket on the pod's address and port. It is
// closed when the pod stops.
func (p *RunningPod) ListenPacket(port int) (net.PacketConn, error) {
	c, err := p.netns.ListenPacket("udp", net.JoinHostPort(p.IP.String(), strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	p.OnStop(func() { c.Close() })
	return c, nil
}

// OnStop registers f to run when the pod stops, such as a server's Close;
// if the pod has stopped already, f runs at once.
func (p *RunningPod) OnStop(f func()) {
	p.mu.Lock()
	if !p.stopped {
		p.closers = append(p.closers, f)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	f()
}

// Stopped reports whether the pod has stopped.
func (p *RunningPod) Stopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// stop runs the OnStop functions, the latest first.
func (p *RunningPod) stop() {
	p.mu.Lock()
	closers := p.closers
	p.closers, p.stopped = nil, true
	p.mu.Unlock()
	for _, f := range slices.Backward(closers) {
		f()
	}
}

// Env returns the environment of container c as its process would see it:
// literal values, and the downward API's metadata.name, metadata.namespace,
// metadata.uid, spec.nodeName, spec.serviceAccountName and status.podIP.
// Other sources (Secrets, ConfigMaps, resources) are an error naming the
// variable.
func (p *RunningPod) Env(c *corev1.Container) (map[string]string, error) {
	env := make(map[string]string, len(c.Env))
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.FieldRef != nil:
			v, ok := p.field(e.ValueFrom.FieldRef.FieldPath)
			if !ok {
				return nil, fmt.Errorf("container %q: env %s: field %q is not supported by the test kubelet",
					c.Name, e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		default:
			return nil, fmt.Errorf("container %q: env %s: only values and fieldRef are supported by the test kubelet",
				c.Name, e.Name)
		}
	}
	return env, nil
}

func (p *RunningPod) field(fieldPath string) (string, bool) {
	switch fieldPath {
	case "metadata.name":
		return p.Pod.Name, true
	case "metadata.namespace":
		return p.Pod.Namespace, true
	case "metadata.uid":
		return string(p.Pod.UID), true
	case "spec.nodeName":
		return DefaultNode, true
	case "spec.serviceAccountName":
		return p.Pod.Spec.ServiceAccountName, true
	case "status.podIP":
		return p.IP.String(), true
	}
	return "", false
}

// ReadFile returns the content of the file name as container c would see
// it, from a Secret or ConfigMap volume mounted in c, read from the API now.
// A missing Secret, ConfigMap or key is an error, as it keeps a real pod
// from starting.
func (p *RunningPod) ReadFile(ctx context.Context, c *corev1.Container, name string) ([]byte, error) {
	name = path.Clean(name)
	var mount *corev1.VolumeMount
	var rel string
	for i, m := range c.VolumeMounts {
		dir := path.Clean(m.MountPath)
		if r, ok := strings.CutPrefix(name, dir+"/"); ok && (mount == nil || len(dir) > len(mount.MountPath)) {
			mount, rel = &c.VolumeMounts[i], r
		}
	}
	if mount == nil {
		return nil, fmt.Errorf("container %q: %s is on no volume mount", c.Name, name)
	}
	if mount.SubPath != "" {
		rel = path.Join(mount.SubPath, rel)
	}
	i := slices.IndexFunc(p.Pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == mount.Name })
	if i < 0 {
		return nil, fmt.Errorf("container %q: volume %q is not in the pod", c.Name, mount.Name)
	}
	vol := p.Pod.Spec.Volumes[i]
	var data map[string][]byte
	var items []corev1.KeyToPath
	var what string
	switch {
	case vol.Secret != nil:
		what = "secret " + vol.Secret.SecretName
		s, err := p.cp.Client.CoreV1().Secrets(p.Pod.Namespace).Get(ctx, vol.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("container %q: volume %q: %w", c.Name, vol.Name, err)
		}
		data, items = s.Data, vol.Secret.Items
	case vol.ConfigMap != nil:
		what = "configmap " + vol.ConfigMap.Name
		cm, err := p.cp.Client.CoreV1().ConfigMaps(p.Pod.Namespace).Get(ctx, vol.ConfigMap.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("container %q: volume %q: %w", c.Name, vol.Name, err)
		}
		data = make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			data[k] = v
		}
		items = vol.ConfigMap.Items
	default:
		return nil, fmt.Errorf("container %q: volume %q: only secret and configMap volumes are supported by the test kubelet",
			c.Name, vol.Name)
	}
	key := rel
	if len(items) > 0 {
		j := slices.IndexFunc(items, func(it corev1.KeyToPath) bool { return path.Clean(it.Path) == rel })
		if j < 0 {
			return nil, fmt.Errorf("container %q: %s: no item of %s has path %q", c.Name, name, what, rel)
		}
		key = items[j].Key
	}
	b, ok := data[key]
	if !ok {
		return nil, fmt.Errorf("container %q: %s: %s has no key %q", c.Name, name, what, key)
	}
	return b, nil
}
