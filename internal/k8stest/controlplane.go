package k8stest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// PodpinUser is the user that [ControlPlane.PodpinToken] authenticates as:
// podpin's service account "podpin" in namespace "podpin-system". RBAC
// bindings to that ServiceAccount subject apply to it.
const PodpinUser = "system:serviceaccount:podpin-system:podpin"

// podpinGroups are the groups a real token of podpin's service account carries.
const podpinGroups = "system:serviceaccounts,system:serviceaccounts:podpin-system,system:authenticated"

// Timeouts for the control plane. They are generous because the API server
// starts in a few seconds on an idle machine but shares two cores with
// parallel builds and tests in CI.
const (
	etcdReadyTimeout      = 60 * time.Second
	apiServerReadyTimeout = 3 * time.Minute
	stopGrace             = 30 * time.Second
)

// ControlPlane is an etcd and kube-apiserver, and optionally a
// kube-controller-manager, running for one test. Create it with [Start].
//
// Its fields are set by Start and must not be changed. Methods taking a
// testing.TB fail the test on error and so must be called from the test's
// goroutine; the clients and configs are safe for concurrent use.
type ControlPlane struct {
	// Client is a clientset authenticated as a cluster administrator
	// (group system:masters).
	Client kubernetes.Interface

	// Config is the administrator's client configuration. Copy it
	// (rest.CopyConfig) before changing it, or use [ControlPlane.ConfigFor].
	Config *rest.Config

	// AdminToken is the administrator's bearer token.
	AdminToken string

	// PodpinToken is the bearer token of podpin's service account,
	// [PodpinUser]. No role is bound to it until a test binds one.
	PodpinToken string

	bin     string // folder holding the binaries
	dir     string // state: etcd data, credentials, logs
	apiPort int    // kube-apiserver's secure port, kept across restarts
	etcdURL string
	caPEM   []byte // CA of the API server's serving certificate

	// mu guards the processes, which Start, RestartAPIServer,
	// StartControllerManager and clean-up replace.
	mu                sync.Mutex
	etcd              *process
	apiServer         *process
	controllerManager *process
}

// BinDir returns the folder [Start] looks in for the control-plane binaries:
// $PODPIN_K8S_BIN, or $HOME/.cache/podpin/k8s-v1.37.2 when it is unset, the
// same default as scripts/k8s-binaries.
func BinDir() string {
	if dir := os.Getenv("PODPIN_K8S_BIN"); dir != "" {
		return dir
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "podpin", "k8s-v1.37.2")
	}
	return filepath.Join(home, ".cache", "podpin", "k8s-v1.37.2")
}

// Start runs etcd and kube-apiserver for the test t, on free loopback ports
// with their state in t.TempDir(), and returns once the API server's /readyz
// answers ok (a few seconds). They are stopped when t ends.
//
// The API server authorizes with RBAC and authenticates the two bearer
// tokens in [ControlPlane.AdminToken] and [ControlPlane.PodpinToken]. It has
// no ServiceAccount admission plugin, so pods need no service account, and it
// publishes no endpoints for the "kubernetes" Service, so the only
// EndpointSlices are the test's own.
//
// When the binaries are not in [BinDir], Start skips the test, or fails it if
// the CI environment variable is set.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	bin := BinDir()
	for _, name := range []string{"etcd", "kube-apiserver"} {
		requireBinary(t, bin, name)
	}

	cp := &ControlPlane{
		bin:         bin,
		dir:         t.TempDir(),
		AdminToken:  randomToken(t),
		PodpinToken: randomToken(t),
	}
	// Registered after t.TempDir, so it runs before the folder is removed.
	t.Cleanup(func() {
		if t.Failed() {
			cp.logTails(t)
		}
		cp.stop()
	})

	if err := cp.writeCredentials(); err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	if err := cp.startEtcd(); err != nil {
		t.Fatalf("k8stest: %v", err)
	}

	if err := cp.startAPIServer(true); err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	return cp
}

// requireBinary ends the test through unavailable unless dir/name exists.
func requireBinary(t testing.TB, dir, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
		unavailable(t, "k8stest: %s not found in %s: build the control plane with "+
			"scripts/k8s-binaries (about 5 minutes the first time) and run the tests with "+
			"PODPIN_K8S_BIN set to the folder it prints", name, dir)
	}
}

// ConfigFor returns a client configuration for the API server that
// authenticates with the bearer token, for example [ControlPlane.PodpinToken].
// The caller owns the result.
func (cp *ControlPlane) ConfigFor(token string) *rest.Config {
	return &rest.Config{
		Host:            cp.host(),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.caPEM},
		// Tests create objects in bursts; the default 5 QPS only slows them.
		QPS:   100,
		Burst: 200,
	}
}

// Kubeconfig writes a kubeconfig file that reaches the API server with the
// bearer token and returns its path, in a folder removed when t ends.
func (cp *ControlPlane) Kubeconfig(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := cp.writeKubeconfig(path, token); err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	return path
}

func (cp *ControlPlane) writeKubeconfig(path, token string) error {
	const name = "podpin-test"
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: cp.host(), CertificateAuthorityData: cp.caPEM}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	cfg.CurrentContext = name
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// StartControllerManager runs kube-controller-manager with the endpointslice,
// replicaset, deployment, statefulset, namespace and garbagecollector
// controllers, authenticated as the administrator. It stops when t or the
// test that started the control plane ends, whichever is first. It does not
// wait for the controllers' caches; poll for their effects.
func (cp *ControlPlane) StartControllerManager(t testing.TB) {
	t.Helper()
	requireBinary(t, cp.bin, "kube-controller-manager")

	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.controllerManager != nil && !cp.controllerManager.exited() {
		t.Fatal("k8stest: the controller manager is already running")
	}
	kubeconfig := filepath.Join(cp.dir, "controller-manager.kubeconfig")
	if err := cp.writeKubeconfig(kubeconfig, cp.AdminToken); err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	p, err := startProcess("kube-controller-manager",
		filepath.Join(cp.dir, "kube-controller-manager.log"),
		filepath.Join(cp.bin, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--controllers=endpointslice,replicaset,deployment,statefulset,namespace,garbagecollector",
		"--leader-elect=false",
		"--secure-port=0",
		"--v=1",
	)
	if err != nil {
		t.Fatalf("k8stest: %v", err)
	}
	cp.controllerManager = p
	t.Cleanup(func() {
		cp.mu.Lock()
		defer cp.mu.Unlock()
		p.stop(stopGrace)
	})
}

// RestartAPIServer stops kube-apiserver and starts it again on the same port
// with the same etcd data, as a control-plane upgrade or crash would, and
// returns once it is ready. Clients see their watches end and their requests
// refused meanwhile; objects and resource versions survive.
func (cp *ControlPlane) RestartAPIServer(t testing.TB) {
	t.Helper()
	cp.mu.Lock()
	old := cp.apiServer
	cp.mu.Unlock()
	if old != nil {
		old.stop(stopGrace)
	}
	if err := cp.startAPIServer(false); err != nil {
		t.Fatalf("k8stest: restarting kube-apiserver: %v", err)
	}
}

func (cp *ControlPlane) host() string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(cp.apiPort))
}

// startEtcd runs etcd on fresh ports, trying again with others if a port it
// was given was taken between choosing it and binding it.
func (cp *ControlPlane) startEtcd() error {
	for attempt := 1; ; attempt++ {
		clientPort, err := freePort()
		if err != nil {
			return err
		}
		peerPort, err := freePort()
		if err != nil {
			return err
		}
		clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
		peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
		p, err := startProcess("etcd", filepath.Join(cp.dir, "etcd.log"), filepath.Join(cp.bin, "etcd"),
			"--name=podpin-test",
			"--data-dir="+filepath.Join(cp.dir, "etcd"),
			"--listen-client-urls="+clientURL,
			"--advertise-client-urls="+clientURL,
			"--listen-peer-urls="+peerURL,
			"--initial-advertise-peer-urls="+peerURL,
			"--initial-cluster=podpin-test="+peerURL,
			// The data is thrown away with the test; durability only costs time.
			"--unsafe-no-fsync",
			"--log-level=warn",
		)
		if err != nil {
			return err
		}
		cp.mu.Lock()
		cp.etcd = p
		cp.mu.Unlock()

		err = waitReady(p, etcdReadyTimeout, func(ctx context.Context) error {
			return etcdHealthy(ctx, clientURL)
		})
		if err == nil {
			cp.etcdURL = clientURL
			return nil
		}
		p.stop(stopGrace)
		if attempt < 3 && p.logContains("address already in use") {
			continue
		}
		return err
	}
}

// etcdHealthy returns nil once etcd at url reports itself healthy.
func etcdHealthy(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd /health: %s", resp.Status)
	}
	return nil
}

// startAPIServer runs kube-apiserver and waits for /readyz. On the first
// start it picks the port, and picks another if that one was taken before the
// server bound it; restarts keep the port, retrying briefly while it is busy.
func (cp *ControlPlane) startAPIServer(first bool) error {
	for attempt := 1; ; attempt++ {
		if first {
			port, err := freePort()
			if err != nil {
				return err
			}
			cp.apiPort = port
			cfg := cp.ConfigFor(cp.AdminToken)
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return fmt.Errorf("creating client: %w", err)
			}
			cp.Config, cp.Client = cfg, client
		}
		p, err := startProcess("kube-apiserver", filepath.Join(cp.dir, "kube-apiserver.log"),
			filepath.Join(cp.bin, "kube-apiserver"), cp.apiServerArgs()...)
		if err != nil {
			return err
		}
		cp.mu.Lock()
		cp.apiServer = p
		cp.mu.Unlock()

		err = waitReady(p, apiServerReadyTimeout, cp.apiServerReady)
		if err == nil {
			return nil
		}
		p.stop(stopGrace)
		if attempt < 3 && p.logContains("address already in use") {
			if !first {
				time.Sleep(time.Second)
			}
			continue
		}
		return err
	}
}

func (cp *ControlPlane) apiServerArgs() []string {
	return []string{
		"--etcd-servers=" + cp.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(cp.apiPort),
		"--tls-cert-file=" + filepath.Join(cp.dir, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(cp.dir, "serving.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(cp.dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(cp.dir, "sa.key"),
		"--token-auth-file=" + filepath.Join(cp.dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		// With no grace period for watches, shutdown waits on open watches
		// until stop kills the server; with one, it ends them and exits.
		"--shutdown-watch-termination-grace-period=5s",
	}
}

// apiServerReady returns nil once /readyz answers ok.
func (cp *ControlPlane) apiServerReady(ctx context.Context) error {
	body, err := cp.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("kube-apiserver /readyz: %w", err)
	}
	if string(body) != "ok" {
		return fmt.Errorf("kube-apiserver /readyz: %q", body)
	}
	return nil
}

// waitReady polls ready until it returns nil, the process exits or timeout
// passes.
func waitReady(p *process, timeout time.Duration, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v) before it was ready; its log ends:\n%s", p.name, p.err, p.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w; its log ends:\n%s", p.name, timeout, err, p.tail(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop ends every process, clients' first.
func (cp *ControlPlane) stop() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, p := range []*process{cp.controllerManager, cp.apiServer, cp.etcd} {
		if p != nil {
			p.stop(stopGrace)
		}
	}
}

// logTails writes the end of each component's log to the test log, since
// the logs themselves go with t.TempDir().
func (cp *ControlPlane) logTails(t testing.TB) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, p := range []*process{cp.etcd, cp.apiServer, cp.controllerManager} {
		if p != nil {
			t.Logf("k8stest: end of %s log:\n%s", p.name, p.tail(40))
		}
	}
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("finding a free port: listener has no TCP address")
	}
	return addr.Port, nil
}

func randomToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("k8stest: generating a token: %v", err)
	}
	return hex.EncodeToString(b)
}
