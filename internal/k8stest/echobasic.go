package k8stest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"

	"golang.org/x/net/websocket"
)

// EchoBasic is the default [PodProgram]. It serves each container of a pod
// as the Gateway API conformance suite's backend image echo-basic
// (registry.k8s.io/gateway-api/conformance/echo-basic, source in
// github.com/kubernetes-sigs/gateway-api-conformance-images) does, chosen by
// the container's environment as that image chooses:
//
//   - by default, HTTP: every request is answered with a JSON echo of it
//     (path, host, method, proto, headers, httpPort, namespace, ingress,
//     service, pod, and tls when it came over TLS) on HTTP_PORT (3000), over
//     HTTP/1.1 and h2c with prior knowledge; on H2C_PORT (3001) only h2c
//     requests are answered (others get 400); with TLS_SERVER_CERT and
//     TLS_SERVER_PRIVKEY, HTTPS with HTTP/2 on HTTPS_PORT (8443), checking a
//     client certificate against TLS_CLIENT_CACERTS when one is sent.
//     /health answers OK, /status/NNN answers status NNN, /retry/ fails a
//     request uuid until succeedAfter attempts, /ws echoes WebSocket frames,
//     ?delay=D waits D, and X-Echo-Set-Header: Name:value sets response
//     headers.
//   - GRPC_ECHO_SERVER set: the gRPC service
//     gateway_api_conformance.echo_basic.grpcecho.GrpcEcho (Echo and
//     EchoTwo; EchoThree unimplemented) on HTTP_PORT, and over TLS on
//     HTTPS_PORT with TLS_SERVER_CERT and TLS_SERVER_PRIV_KEY.
//   - TCP_ECHO_SERVER set: the line protocol of echo-basic's TCP server on
//     TCP_PORT (3000), and over TLS on TLS_PORT (8443) with TLS_SERVER_CERT
//     and TLS_SERVER_PRIV_KEY.
//   - UDP_ECHO_SERVER set: each datagram answered with a JSON echo on
//     UDP_PORT (8080).
//
// Each echoed HTTP request writes echo-basic's line "Echoing back request
// made to PATH to client (ADDR)" to the container's log, which the suite
// reads through pods/log to see mirrored requests.
//
// File paths in the environment are read from the pod's Secret and
// ConfigMap volumes ([RunningPod.ReadFile]). NAMESPACE, POD_NAME,
// SERVICE_NAME and INGRESS_NAME fill the echo's context; when NAMESPACE or
// POD_NAME is not set, the pod's own namespace and name are used.
//
// A container whose image is not echo-basic gets the HTTP echo on each of
// its TCP containerPorts and the UDP echo on each UDP one, so a test can run
// any Deployment that declares its ports.
func EchoBasic(ctx context.Context, pod *RunningPod) error {
	for i := range pod.Pod.Spec.Containers {
		if err := runEchoContainer(ctx, pod, &pod.Pod.Spec.Containers[i]); err != nil {
			return err
		}
	}
	return nil
}

// echoContext tells where an echo answer comes from.
type echoContext struct {
	Namespace string `json:"namespace"`
	Ingress   string `json:"ingress"`
	Service   string `json:"service"`
	Pod       string `json:"pod"`
}

// echoContainer is one container of a pod as EchoBasic runs it.
type echoContainer struct {
	pod *RunningPod
	c   *corev1.Container
	env map[string]string
	ctx echoContext
}

func runEchoContainer(ctx context.Context, pod *RunningPod, c *corev1.Container) error {
	env, err := pod.Env(c)
	if err != nil {
		return err
	}
	ec := &echoContainer{pod: pod, c: c, env: env, ctx: echoContext{
		Namespace: env["NAMESPACE"],
		Ingress:   env["INGRESS_NAME"],
		Service:   env["SERVICE_NAME"],
		Pod:       env["POD_NAME"],
	}}
	if _, ok := env["NAMESPACE"]; !ok {
		ec.ctx.Namespace = pod.Pod.Namespace
	}
	if _, ok := env["POD_NAME"]; !ok {
		ec.ctx.Pod = pod.Pod.Name
	}

	if !isEchoBasic(c.Image) {
		return ec.serveDeclaredPorts()
	}
	switch {
	case env["GRPC_ECHO_SERVER"] != "":
		return ec.serveGRPC(ctx)
	case env["TCP_ECHO_SERVER"] != "":
		return ec.serveTCP(ctx)
	case env["UDP_ECHO_SERVER"] != "":
		port, err := ec.port("UDP_PORT", 8080)
		if err != nil {
			return err
		}
		return ec.serveUDP(port)
	}
	return ec.serveHTTP(ctx)
}

// isEchoBasic reports whether image is the conformance suite's echo-basic.
func isEchoBasic(image string) bool {
	name, _, _ := strings.Cut(image[strings.LastIndex(image, "/")+1:], ":")
	name, _, _ = strings.Cut(name, "@")
	return name == "echo-basic"
}

// logf writes a line to the container's log.
func (ec *echoContainer) logf(format string, args ...any) {
	ec.pod.Logf(ec.c.Name, format, args...)
}

// port returns the port in the environment variable name, or def.
func (ec *echoContainer) port(name string, def int) (int, error) {
	v, ok := ec.env[name]
	if !ok || v == "" {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("container %q: %s: want a port number, got %q", ec.c.Name, name, v)
	}
	return p, nil
}

// serveDeclaredPorts serves the HTTP echo on each TCP containerPort and the
// UDP echo on each UDP one.
func (ec *echoContainer) serveDeclaredPorts() error {
	for _, p := range ec.c.Ports {
		var err error
		switch p.Protocol {
		case corev1.ProtocolTCP, "":
			h := newEchoHandler(ec.ctx, strconv.Itoa(int(p.ContainerPort)), ec.logf)
			err = ec.serveHTTPPort(int(p.ContainerPort), h, nil)
		case corev1.ProtocolUDP:
			err = ec.serveUDP(int(p.ContainerPort))
		default:
			err = fmt.Errorf("container %q: port %d: protocol %s is not supported by the test kubelet",
				ec.c.Name, p.ContainerPort, p.Protocol)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// serveHTTP runs echo-basic's HTTP, h2c and HTTPS servers.
func (ec *echoContainer) serveHTTP(ctx context.Context) error {
	httpPort, err := ec.port("HTTP_PORT", 3000)
	if err != nil {
		return err
	}
	h2cPort, err := ec.port("H2C_PORT", 3001)
	if err != nil {
		return err
	}
	httpsPort, err := ec.port("HTTPS_PORT", 8443)
	if err != nil {
		return err
	}
	// Every server of the container reports HTTP_PORT, as echo-basic does.
	h := newEchoHandler(ec.ctx, strconv.Itoa(httpPort), ec.logf)
	if err := ec.serveHTTPPort(httpPort, h, nil); err != nil {
		return err
	}
	if err := ec.serveHTTPPort(h2cPort, h2cOnly(h), nil); err != nil {
		return err
	}
	if ec.env["TLS_SERVER_CERT"] == "" || ec.env["TLS_SERVER_PRIVKEY"] == "" {
		return nil
	}
	cfg, err := ec.tlsConfig(ctx, "TLS_SERVER_CERT", "TLS_SERVER_PRIVKEY")
	if err != nil {
		return err
	}
	if ca := ec.env["TLS_CLIENT_CACERTS"]; ca != "" {
		pem, err := ec.pod.ReadFile(ctx, ec.c, ca)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("container %q: TLS_CLIENT_CACERTS: no PEM certificate in %s", ec.c.Name, ca)
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = pool
	}
	return ec.serveHTTPPort(httpsPort, h, cfg)
}

// serveHTTPPort serves h on port until the pod stops: over TLS with HTTP/1.1
// and HTTP/2 when cfg is not nil, else over HTTP/1.1 and h2c with prior
// knowledge.
func (ec *echoContainer) serveHTTPPort(port int, h http.Handler, cfg *tls.Config) error {
	l, err := ec.pod.Listen(port)
	if err != nil {
		return err
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	if cfg != nil {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{Handler: h, Protocols: protocols, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second}
	ec.pod.OnStop(func() { srv.Close() })
	go func() {
		if cfg != nil {
			_ = srv.ServeTLS(l, "", "")
		} else {
			_ = srv.Serve(l)
		}
	}()
	return nil
}

// tlsConfig returns a server configuration with the certificate and key in
// the files named by the environment variables certVar and keyVar.
func (ec *echoContainer) tlsConfig(ctx context.Context, certVar, keyVar string) (*tls.Config, error) {
	certPEM, err := ec.pod.ReadFile(ctx, ec.c, ec.env[certVar])
	if err != nil {
		return nil, err
	}
	keyPEM, err := ec.pod.ReadFile(ctx, ec.c, ec.env[keyVar])
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("container %q: %s and %s: %w", ec.c.Name, certVar, keyVar, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// h2cOnly answers 400 to requests that are neither HTTP/2 nor ask to
// upgrade to h2c, as echo-basic's h2c port does.
func h2cOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 && r.Header.Get("Upgrade") != "h2c" {
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, "Expected h2c request")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// echoHandler answers HTTP requests as echo-basic does.
type echoHandler struct {
	ctx      echoContext
	httpPort string
	logf     func(format string, args ...any)
	mux      *http.ServeMux

	// mu guards attempts: the failed attempts of /retry/ per request uuid.
	mu       sync.Mutex
	attempts map[string]int
}

func newEchoHandler(ctx echoContext, httpPort string, logf func(string, ...any)) *echoHandler {
	h := &echoHandler{ctx: ctx, httpPort: httpPort, logf: logf, attempts: make(map[string]int)}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "OK") })
	h.mux.HandleFunc("/status/", statusCode)
	h.mux.HandleFunc("/retry/", h.retry)
	h.mux.Handle("/ws", websocket.Handler(func(ws *websocket.Conn) { _, _ = io.Copy(ws, ws) }))
	h.mux.HandleFunc("/", h.echo)
	return h
}

// ServeHTTP folds double slashes in the path before routing, so that
// //status/500 reaches /status/, as echo-basic does.
func (h *echoHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.URL.Path = strings.ReplaceAll(r.URL.Path, "//", "/")
	h.mux.ServeHTTP(w, r)
}

// echoAnswer is the JSON body of an echo.
type echoAnswer struct {
	Path     string              `json:"path"`
	Host     string              `json:"host"`
	Method   string              `json:"method"`
	Proto    string              `json:"proto"`
	Headers  map[string][]string `json:"headers"`
	HTTPPort string              `json:"httpPort"`
	echoContext
	TLS *echoTLS `json:"tls,omitempty"`
}

// echoTLS describes the TLS connection a request came over.
type echoTLS struct {
	Version            string   `json:"version"`
	PeerCertificates   []string `json:"peerCertificates,omitempty"`
	ServerName         string   `json:"serverName"`
	NegotiatedProtocol string   `json:"negotiatedProtocol,omitempty"`
	CipherSuite        string   `json:"cipherSuite"`
}

func (h *echoHandler) echo(w http.ResponseWriter, r *http.Request) {
	// The line the suite looks for in a mirror's log (HTTPRouteRequestMirror).
	h.logf("Echoing back request made to %s to client (%s)", r.RequestURI, r.RemoteAddr)
	if err := sleepFor(r, "delay"); err != nil {
		echoError(w, err)
		return
	}
	body, err := json.MarshalIndent(echoAnswer{
		Path:        r.RequestURI,
		Host:        r.Host,
		Method:      r.Method,
		Proto:       r.Proto,
		Headers:     r.Header,
		HTTPPort:    h.httpPort,
		echoContext: h.ctx,
		TLS:         tlsState(r.TLS),
	}, "", " ")
	if err != nil {
		echoError(w, err)
		return
	}
	// X-Echo-Set-Header: "Name:value, Other:value" sets response headers,
	// keeping the names' case.
	for _, list := range r.Header.Values("X-Echo-Set-Header") {
		for kv := range strings.SplitSeq(list, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(kv), ":")
			if cur := w.Header()[name]; len(cur) > 0 {
				cur[0] += "," + strings.TrimSpace(value)
			} else {
				w.Header()[name] = []string{value}
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(body)
}

var statusPath = regexp.MustCompile(`^/status/(\d\d\d)$`)

// statusCode answers /status/NNN with status NNN, anything else with 400.
func statusCode(w http.ResponseWriter, r *http.Request) {
	code := http.StatusBadRequest
	if m := statusPath.FindStringSubmatch(r.RequestURI); m != nil {
		code, _ = strconv.Atoi(m[1])
	}
	w.WriteHeader(code)
}

// retry fails the first succeedAfter requests with a given uuid, by
// resetting the connection or, with responseCode, by answering that status
// (after delayRetry, if given); later ones get the echo.
func (h *echoHandler) retry(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	uuid := q.Get("uuid")
	if uuid == "" {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "uuid is required")
		return
	}
	succeedAfter, err := strconv.Atoi(q.Get("succeedAfter"))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "succeedAfter is required")
		return
	}
	h.mu.Lock()
	fail := h.attempts[uuid] < succeedAfter
	if fail {
		h.attempts[uuid]++
	}
	h.mu.Unlock()
	if !fail {
		h.echo(w, r)
		return
	}
	if err := sleepFor(r, "delayRetry"); err != nil {
		echoError(w, err)
		return
	}
	if code, err := strconv.Atoi(q.Get("responseCode")); err == nil {
		w.WriteHeader(code)
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		echoError(w, err)
		return
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		tcp.SetLinger(0) // close with a reset
	}
	conn.Close()
}

// sleepFor waits for the duration in the query parameter name, if any.
func sleepFor(r *http.Request, name string) error {
	v := r.URL.Query().Get(name)
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	select {
	case <-time.After(d):
		return nil
	case <-r.Context().Done():
		return r.Context().Err()
	}
}

func echoError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusInternalServerError)
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{err.Error()})
	w.Write(body)
}

// tlsVersions names TLS versions as echo-basic does.
var tlsVersions = map[uint16]string{
	tls.VersionTLS10: "TLSv1.0",
	tls.VersionTLS11: "TLSv1.1",
	tls.VersionTLS12: "TLSv1.2",
	tls.VersionTLS13: "TLSv1.3",
}

func tlsState(cs *tls.ConnectionState) *echoTLS {
	if cs == nil {
		return nil
	}
	return &echoTLS{
		Version:            tlsVersions[cs.Version],
		PeerCertificates:   pemCertificates(cs.PeerCertificates),
		ServerName:         cs.ServerName,
		NegotiatedProtocol: cs.NegotiatedProtocol,
		CipherSuite:        tls.CipherSuiteName(cs.CipherSuite),
	}
}

func pemCertificates(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})))
	}
	return out
}
