package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/podpin/podpin/internal/certs"
	"github.com/podpin/podpin/internal/config"
	"github.com/podpin/podpin/internal/metrics"
	"github.com/podpin/podpin/internal/place"
	"github.com/podpin/podpin/internal/redistest"
	"github.com/podpin/podpin/internal/store"
)

// grpcPod is a grpc-go server standing in for a gRPC pod: it speaks h2c
// and serves grpc.testing.TestService (unary, server-streaming,
// client-streaming and full-duplex calls). Every call tells the pod's
// name in its x-pod header and, where the call has payloads, in them
// (padded to the response size asked for); it ends with the trailers
// x-pod-trailer and x-pod-bin (binary).
//
// A server-streaming call whose payload is "header-first" sends its header
// at once, before its first message. A unary call whose payload is "wait"
// blocks until its context ends, and streams from the client end as their
// client leaves; the error that ended such a call is sent on ended. A
// unary call whose payload is "deadline" answers with the time its
// deadline left it in the x-deadline-left header ("none" without a
// deadline).
type grpcPod struct {
	testgrpc.UnimplementedTestServiceServer
	name  string
	addr  string
	srv   *grpc.Server
	ended chan error
}

// startGRPCPod serves a grpcPod on a loopback port until the test ends.
func startGRPCPod(t testing.TB, name string) *grpcPod {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &grpcPod{name: name, addr: ln.Addr().String(), srv: grpc.NewServer(), ended: make(chan error, 16)}
	testgrpc.RegisterTestServiceServer(p.srv, p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		p.srv.Stop()
		<-done
	})
	return p
}

// podTrailerBin is the binary trailer every call of a grpcPod ends with.
var podTrailerBin = string([]byte{0, 1, 0xfe, 0xff})

func (p *grpcPod) marks() (header, trailer metadata.MD) {
	return metadata.Pairs("x-pod", p.name), metadata.Pairs("x-pod-trailer", "end-"+p.name, "x-pod-bin", podTrailerBin)
}

// callEnded reports the error that ended a call from outside.
func (p *grpcPod) callEnded(err error) {
	select {
	case p.ended <- err:
	default:
	}
}

// payload is the pod's name, padded with dots to size bytes.
func (p *grpcPod) payload(size int32) *testgrpc.Payload {
	b := []byte(p.name)
	for len(b) < int(size) {
		b = append(b, '.')
	}
	return &testgrpc.Payload{Body: b}
}

func (p *grpcPod) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	h, tr := p.marks()
	switch string(req.GetPayload().GetBody()) {
	case "deadline":
		left := "none"
		if d, ok := ctx.Deadline(); ok {
			left = time.Until(d).String()
		}
		h.Set("x-deadline-left", left)
	case "wait":
		grpc.SendHeader(ctx, h)
		<-ctx.Done()
		p.callEnded(ctx.Err())
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	grpc.SetHeader(ctx, h)
	grpc.SetTrailer(ctx, tr)
	if st := req.GetResponseStatus(); st != nil {
		return nil, status.Error(codes.Code(st.Code), st.Message)
	}
	return &testgrpc.SimpleResponse{ServerId: p.name, Payload: p.payload(req.GetResponseSize())}, nil
}

func (p *grpcPod) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, s grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	h, tr := p.marks()
	s.SetHeader(h)
	s.SetTrailer(tr)
	if string(req.GetPayload().GetBody()) == "header-first" {
		s.SendHeader(nil)
	}
	for _, rp := range req.GetResponseParameters() {
		time.Sleep(time.Duration(rp.GetIntervalUs()) * time.Microsecond)
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: p.payload(rp.GetSize())}); err != nil {
			return err
		}
	}
	if st := req.GetResponseStatus(); st != nil {
		return status.Error(codes.Code(st.Code), st.Message)
	}
	return nil
}

func (p *grpcPod) StreamingInputCall(s grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	h, tr := p.marks()
	s.SendHeader(h)
	s.SetTrailer(tr)
	n := 0
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(n)})
		}
		if err != nil {
			p.callEnded(s.Context().Err())
			return err
		}
		n += len(req.GetPayload().GetBody())
	}
}

// FullDuplexCall answers each message with one carrying the pod's name, or
// ends the call with the status a message asks for.
func (p *grpcPod) FullDuplexCall(s grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	h, tr := p.marks()
	s.SendHeader(h)
	s.SetTrailer(tr)
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			p.callEnded(s.Context().Err())
			return err
		}
		if st := req.GetResponseStatus(); st != nil {
			return status.Error(codes.Code(st.Code), st.Message)
		}
		var size int32
		if rp := req.GetResponseParameters(); len(rp) > 0 {
			size = rp[0].GetSize()
		}
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: p.payload(size)}); err != nil {
			return err
		}
	}
}

// grpcRoute is a route over gRPC pods written h2c://.
func grpcRoute(pods ...*grpcPod) *config.Config {
	r := config.Route{Name: "default"}
	for _, p := range pods {
		r.Backends = append(r.Backends, config.Backend{Name: p.name, URL: "h2c://" + p.addr})
	}
	return &config.Config{Routes: []config.Route{r}}
}

// grpcClient is a grpc-go client of the harness's proxy: over TLS (ALPN
// h2) on a TLS listener, h2c with prior knowledge on a cleartext one. All
// its calls share one connection.
func (h *harness) grpcClient() testgrpc.TestServiceClient {
	h.t.Helper()
	creds := insecure.NewCredentials()
	if h.tls != nil {
		creds = credentials.NewTLS(h.tls.Clone())
	}
	conn, err := grpc.NewClient("passthrough:///"+h.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

// withKey is ctx carrying the session key in the x-session metadata.
func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-session", key)
}

// The four kinds of gRPC call.
const (
	unary = iota
	serverStream
	clientStream
	bidiStream
	callKinds
)

var callNames = [callKinds]string{"unary", "server-streaming", "client-streaming", "full-duplex"}

// grpcCall makes a call of kind with key and returns the pod that served
// it: the pod's x-pod header, which podpin's X-Podpin-Pod, every payload
// and the pod's trailers must agree with.
func grpcCall(ctx context.Context, c testgrpc.TestServiceClient, kind int, key string) (string, error) {
	ctx = withKey(ctx, key)
	var header, trailer metadata.MD
	var bodies []string
	switch kind {
	case unary:
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(key)}}, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil {
			return "", err
		}
		bodies = append(bodies, string(resp.GetPayload().GetBody()), resp.GetServerId())
	case serverStream:
		rp := &testgrpc.ResponseParameters{Size: 1}
		s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{rp, rp, rp}})
		if err != nil {
			return "", err
		}
		for {
			resp, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				return "", err
			}
			bodies = append(bodies, string(resp.GetPayload().GetBody()))
		}
		if len(bodies) != 3 {
			return "", fmt.Errorf("got %d messages, want 3", len(bodies))
		}
		header, _ = s.Header()
		trailer = s.Trailer()
	case clientStream:
		s, err := c.StreamingInputCall(ctx)
		if err != nil {
			return "", err
		}
		for range 3 {
			if err := s.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: []byte("0123456789")}}); err != nil {
				return "", err
			}
		}
		resp, err := s.CloseAndRecv()
		if err != nil {
			return "", err
		}
		if n := resp.GetAggregatedPayloadSize(); n != 30 {
			return "", fmt.Errorf("the pod counted %d bytes, want 30", n)
		}
		header, _ = s.Header()
		trailer = s.Trailer()
	case bidiStream:
		s, err := c.FullDuplexCall(ctx)
		if err != nil {
			return "", err
		}
		for range 3 {
			if err := s.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
				return "", err
			}
			resp, err := s.Recv()
			if err != nil {
				return "", err
			}
			bodies = append(bodies, string(resp.GetPayload().GetBody()))
		}
		s.CloseSend()
		if _, err := s.Recv(); err != io.EOF {
			return "", fmt.Errorf("after the client's last message: %v, want the end of the stream", err)
		}
		header, _ = s.Header()
		trailer = s.Trailer()
	}
	pod := first(header, "x-pod")
	if pod == "" {
		return "", fmt.Errorf("no x-pod header in %v", header)
	}
	if got := first(header, "x-podpin-pod"); got != pod {
		return "", fmt.Errorf("x-podpin-pod %q, but %s answered", got, pod)
	}
	for _, b := range bodies {
		if b != pod {
			return "", fmt.Errorf("payload from %q, header from %s", b, pod)
		}
	}
	if got, bin := first(trailer, "x-pod-trailer"), first(trailer, "x-pod-bin"); got != "end-"+pod || bin != podTrailerBin {
		return "", fmt.Errorf("trailers %v, want x-pod-trailer end-%s and the binary x-pod-bin", trailer, pod)
	}
	return pod, nil
}

// first is the first value of key in md, or "".
func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// callAll makes one call for each key, of the kind kindOf gives, eight at a
// time over c, and returns the pod each key reached.
func callAll(t *testing.T, c testgrpc.TestServiceClient, keys []string, kindOf func(i int) int) map[string]string {
	t.Helper()
	out := make(map[string]string, len(keys))
	var mu sync.Mutex
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				pod, err := grpcCall(ctx, c, kindOf(i), keys[i])
				cancel()
				if err != nil {
					t.Errorf("key %s, %s call: %v", keys[i], callNames[kindOf(i)], err)
				}
				mu.Lock()
				out[keys[i]] = pod
				mu.Unlock()
			}
		})
	}
	for i := range keys {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// TestGRPCSessionsKeepTheirPodAndAKilledPodMovesOnlyItsOwn sends 1,000
// gRPC sessions, keyed in metadata, over one client connection, over TLS
// (ALPN h2) and h2c: every session keeps its pod across all four kinds of
// call. When one pod is killed, only its sessions move, and the others stay
// exactly where they were.
func TestGRPCSessionsKeepTheirPodAndAKilledPodMovesOnlyItsOwn(t *testing.T) {
	for _, tlsOn := range []bool{true, false} {
		t.Run(map[bool]string{true: "tls", false: "h2c"}[tlsOn], func(t *testing.T) {
			pods := []*grpcPod{startGRPCPod(t, "g-0"), startGRPCPod(t, "g-1"), startGRPCPod(t, "g-2")}
			var h *harness
			if tlsOn {
				h = startTLSProxy(t, grpcRoute(pods...), config.Listener{}, Options{})
			} else {
				h = startProxy(t, grpcRoute(pods...))
			}
			c := h.grpcClient()
			keys := make([]string, 1000)
			for i := range keys {
				keys[i] = fmt.Sprintf("grpc-%d", i)
			}
			pinned := callAll(t, c, keys, func(i int) int { return i % callKinds })
			spread := map[string]int{}
			for _, pod := range pinned {
				spread[pod]++
			}
			if len(spread) != 3 {
				t.Fatalf("1,000 sessions reached %v, want all three pods", spread)
			}
			// Each session again, with each of the other kinds of call.
			for shift := 1; shift < callKinds; shift++ {
				got := callAll(t, c, keys, func(i int) int { return (i + shift) % callKinds })
				for _, k := range keys {
					if got[k] != pinned[k] {
						t.Fatalf("session %s: %s, then %s", k, pinned[k], got[k])
					}
				}
			}

			pods[1].srv.Stop()
			after := callAll(t, c, keys, func(i int) int { return i % callKinds })
			moved := 0
			for _, k := range keys {
				was, now := pinned[k], after[k]
				switch {
				case was == "g-1" && (now == "g-1" || now == ""):
					t.Errorf("session %s of the killed pod: got %q, want another pod", k, now)
				case was == "g-1":
					moved++
				case now != was:
					t.Errorf("session %s moved from %s to %q although its pod lives", k, was, now)
				}
			}
			if moved != spread["g-1"] {
				t.Errorf("%d sessions moved, want the killed pod's %d", moved, spread["g-1"])
			}
			// Each moved as its pod refused the connection, or once passive
			// health had ejected the pod.
			rebinds := h.rebinds("default")
			if n := rebinds[place.ReasonConnectFailed] + rebinds[place.ReasonEjected]; n != uint64(moved) || len(rebinds) > 2 {
				t.Errorf("rebinds %v, want %d for connect-failed or ejected", rebinds, moved)
			}
			again := callAll(t, c, keys, func(i int) int { return (i + 1) % callKinds })
			for _, k := range keys {
				if again[k] != after[k] {
					t.Errorf("session %s: %s after the kill, then %s", k, after[k], again[k])
				}
			}
		})
	}
}

// grpcHarnesses starts the proxy serving cfg twice, on a TLS listener and
// on a cleartext one, and runs check against each.
func grpcHarnesses(t *testing.T, cfg func() *config.Config, check func(t *testing.T, h *harness)) {
	for _, tlsOn := range []bool{true, false} {
		t.Run(map[bool]string{true: "tls", false: "h2c"}[tlsOn], func(t *testing.T) {
			if tlsOn {
				check(t, startTLSProxy(t, cfg(), config.Listener{}, Options{}))
			} else {
				check(t, startProxy(t, cfg()))
			}
		})
	}
}

// TestGRPCStatusesHeadersAndTrailersPassIntact: the status code and
// message a pod ends a call with (percent-encoded text included), its
// headers and its trailers (binary ones included) reach the client as the
// pod sent them, for a unary call, a server stream that fails after its
// messages, and a full-duplex stream the pod ends while the client is
// still sending.
func TestGRPCStatusesHeadersAndTrailersPassIntact(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	grpcHarnesses(t, func() *config.Config { return grpcRoute(pod) }, func(t *testing.T, h *harness) {
		c := h.grpcClient()
		ctx, cancel := context.WithTimeout(withKey(context.Background(), "k"), 10*time.Second)
		defer cancel()
		const msg = "no such thing: 100% ünïcode\tand a tab"
		want := status.New(codes.NotFound, msg)
		checkEnd := func(call string, err error, header, trailer metadata.MD) {
			t.Helper()
			if st, _ := status.FromError(err); st.Code() != want.Code() || st.Message() != msg {
				t.Errorf("%s: status %v %q, want %v %q", call, st.Code(), st.Message(), want.Code(), msg)
			}
			if got := first(header, "x-pod"); got != "g-0" {
				t.Errorf("%s: x-pod header %q, want g-0", call, got)
			}
			if got, bin := first(trailer, "x-pod-trailer"), first(trailer, "x-pod-bin"); got != "end-g-0" || bin != podTrailerBin {
				t.Errorf("%s: trailers %v, want x-pod-trailer end-g-0 and x-pod-bin %q", call, trailer, podTrailerBin)
			}
		}
		echo := &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: msg}

		var header, trailer metadata.MD
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: echo}, grpc.Header(&header), grpc.Trailer(&trailer))
		checkEnd("unary", err, header, trailer)

		rp := &testgrpc.ResponseParameters{Size: 1}
		out, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{rp, rp}, ResponseStatus: echo})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			if _, err = out.Recv(); err != nil {
				break
			}
			n++
		}
		if n != 2 {
			t.Errorf("server stream: %d messages before the status, want 2", n)
		}
		header, _ = out.Header()
		checkEnd("server stream", err, header, out.Trailer())

		duplex, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := duplex.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := duplex.Recv(); err != nil {
			t.Fatalf("full duplex, first answer: %v", err)
		}
		// The pod ends the call; the client has not closed its side.
		if err := duplex.Send(&testgrpc.StreamingOutputCallRequest{ResponseStatus: echo}); err != nil {
			t.Fatal(err)
		}
		_, err = duplex.Recv()
		header, _ = duplex.Header()
		checkEnd("full duplex", err, header, duplex.Trailer())
	})
}

// TestGRPCDeadlinesReachThePod: a client's deadline reaches the pod as its
// call's own deadline (grpc-timeout), a call without one has none, and a
// deadline that expires ends the call with DEADLINE_EXCEEDED at the client
// and ends the pod's call too.
func TestGRPCDeadlinesReachThePod(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	grpcHarnesses(t, func() *config.Config { return grpcRoute(pod) }, func(t *testing.T, h *harness) {
		c := h.grpcClient()
		deadlineLeft := func(ctx context.Context) string {
			t.Helper()
			var header metadata.MD
			if _, err := c.UnaryCall(withKey(ctx, "k"), &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("deadline")}}, grpc.Header(&header)); err != nil {
				t.Fatal(err)
			}
			return first(header, "x-deadline-left")
		}
		if got := deadlineLeft(context.Background()); got != "none" {
			t.Errorf("a call without a deadline reached the pod with %s left, want none", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		left, err := time.ParseDuration(deadlineLeft(ctx))
		if err != nil || left <= 59*time.Minute || left > time.Hour {
			t.Errorf("a call with an hour's deadline reached the pod with %v left (%v), want just under an hour", left, err)
		}

		short, cancel := context.WithTimeout(withKey(context.Background(), "k"), 300*time.Millisecond)
		defer cancel()
		_, err = c.UnaryCall(short, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("wait")}})
		if code := status.Code(err); code != codes.DeadlineExceeded {
			t.Errorf("an expired deadline: %v (%v), want DEADLINE_EXCEEDED", code, err)
		}
		// The pod's call ends by its own deadline or by the client's
		// reset, whichever comes first.
		select {
		case err := <-pod.ended:
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Errorf("the pod's call ended with %v, want its deadline or a cancellation", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the pod's call still runs 10s after its deadline")
		}
	})
}

// TestGRPCCancellationReachesThePod: a client that cancels a stream ends
// the pod's stream, whether the client was sending (full duplex) or
// uploading (client streaming).
func TestGRPCCancellationReachesThePod(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	grpcHarnesses(t, func() *config.Config { return grpcRoute(pod) }, func(t *testing.T, h *harness) {
		c := h.grpcClient()
		for _, kind := range []int{bidiStream, clientStream} {
			ctx, cancel := context.WithCancel(withKey(context.Background(), "k"))
			var s grpc.ClientStream
			var err error
			if kind == bidiStream {
				var d grpc.BidiStreamingClient[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]
				if d, err = c.FullDuplexCall(ctx); err == nil {
					s = d
					err = d.Send(&testgrpc.StreamingOutputCallRequest{})
					if err == nil {
						// An answer: the stream reached the pod.
						_, err = d.Recv()
					}
				}
			} else {
				var u grpc.ClientStreamingClient[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]
				if u, err = c.StreamingInputCall(ctx); err == nil {
					s = u
					err = u.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: []byte("x")}})
					if err == nil {
						// Its header: the stream reached the pod.
						_, err = u.Header()
					}
				}
			}
			if err != nil {
				t.Fatalf("%s: %v", callNames[kind], err)
			}
			cancel()
			if err := s.RecvMsg(new(testgrpc.StreamingOutputCallResponse)); status.Code(err) != codes.Canceled {
				t.Errorf("%s: the client's stream ended with %v, want CANCELED", callNames[kind], err)
			}
			select {
			case err := <-pod.ended:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s: the pod's stream ended with %v, want its cancellation", callNames[kind], err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: the pod's stream still runs 10s after its client cancelled it", callNames[kind])
			}
		}
	})
}

// TestGRPCRefusalsAreStatusesTheClientReads: podpin's own refusals reach a
// grpc-go client as gRPC statuses with podpin's reason.
func TestGRPCRefusalsAreStatusesTheClientReads(t *testing.T) {
	live := startGRPCPod(t, "g-live")
	dead := startGRPCPod(t, "g-dead")
	dead.srv.Stop()
	route := func(name string, pods ...*grpcPod) config.Route {
		r := grpcRoute(pods...).Routes[0]
		r.Name = name
		r.Match = config.Match{PathPrefix: "/grpc.testing.TestService", Headers: map[string]string{"x-route": name}}
		return r
	}
	reject := route("reject", live)
	reject.Sticky.Missing = config.MissingReject
	capped := route("capped", live)
	capped.Sticky.NewSessionsPerIP = 0.001 // one new session, then none for a long while
	none := route("none", live)
	none.Backends[0].State = "not-ready"
	down := route("down", dead)
	h := startProxy(t, &config.Config{Routes: []config.Route{reject, capped, none, down}})
	c := h.grpcClient()

	call := func(route string, keys ...string) error {
		t.Helper()
		md := metadata.Pairs("x-route", route)
		for _, k := range keys {
			md.Append("x-session", k)
		}
		ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), 10*time.Second)
		defer cancel()
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		return err
	}
	if err := call("capped", "first"); err != nil {
		t.Fatalf("the first new session under the cap: %v", err)
	}
	for _, c := range []struct {
		name    string
		route   string
		keys    []string
		code    codes.Code
		message string
	}{
		{"a missing key where keys are required", "reject", nil, codes.InvalidArgument, "podpin: request carries no session key"},
		{"a key sent twice", "reject", []string{"a", "b"}, codes.InvalidArgument, "podpin: session key header sent more than once"},
		{"a new session over the cap", "capped", []string{"second"}, codes.ResourceExhausted, "podpin: too many new sessions from this address"},
		{"a route with no ready pod", "none", []string{"k"}, codes.Unavailable, "podpin: no pod can take this request"},
		{"a pod that refuses connections", "down", []string{"k"}, codes.Unavailable, "podpin: pod g-dead failed: connection refused"},
		{"no route", "nowhere", []string{"k"}, codes.Unimplemented, "podpin: no route matches this request"},
	} {
		err := call(c.route, c.keys...)
		st, _ := status.FromError(err)
		if st.Code() != c.code || st.Message() != c.message {
			t.Errorf("%s: %v %q, want %v %q", c.name, st.Code(), st.Message(), c.code, c.message)
		}
	}
	if err := call("capped", "first"); err != nil {
		t.Errorf("the capped route's pinned session after the refusals: %v", err)
	}
}

// TestGRPCStreamOpenAtShutdownEndsWithAStatus: a full-duplex stream still
// open when podpin shuts down ends at the client with UNAVAILABLE once the
// drain runs out, and the pod's stream ends too: nothing hangs.
func TestGRPCStreamOpenAtShutdownEndsWithAStatus(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	cfg := grpcRoute(pod)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := New(Options{})
	t.Cleanup(p.Close)
	if err := p.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, shutdown := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.ServeListener(ctx, ln, cfg.Listeners[0], 300*time.Millisecond) }()
	h := &harness{t: t, p: p, addr: ln.Addr().String()}
	c := h.grpcClient()

	callCtx, cancel := context.WithTimeout(withKey(context.Background(), "k"), time.Minute)
	defer cancel()
	s, err := c.FullDuplexCall(callCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("the stream's first answer: %v", err)
	}
	shutdown()
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := s.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("the stream ended with %v (%v), want UNAVAILABLE", code, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream still runs 10s after shutdown with a drain of 300ms")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeListener still runs 10s after its context ended")
	}
	select {
	case err := <-pod.ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("the pod's stream ended with %v, want a cancellation", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pod's stream still runs 10s after podpin shut down")
	}
}

// TestGRPCStreamsOutliveTheBodyTimeout: limits.bodyTimeout bounds the
// silence of a client that is sending, not the life of a stream whose
// client has finished sending: a server stream runs past it.
func TestGRPCStreamsOutliveTheBodyTimeout(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	grpcHarnesses(t, func() *config.Config {
		c := grpcRoute(pod)
		c.Limits.BodyTimeout = 500 * time.Millisecond
		return c
	}, func(t *testing.T, h *harness) {
		c := h.grpcClient()
		ctx, cancel := context.WithTimeout(withKey(context.Background(), "k"), 10*time.Second)
		defer cancel()
		rp := &testgrpc.ResponseParameters{Size: 1, IntervalUs: 300_000}
		s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{rp, rp, rp, rp, rp}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			_, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d messages: %v", n, err)
			}
			n++
		}
		if n != 5 {
			t.Errorf("got %d messages, want 5", n)
		}
	})
}

// TestGRPCSessionsInTheTableDrainAndMetrics: gRPC sessions are pinned in
// the table with their pod as the admin API lists them, counted in
// podpin_table_lookups_total; a draining pod keeps its gRPC sessions and
// takes no new ones; a pod that leaves moves its sessions with the reason
// "gone" in podpin_table_rebinds_total.
func TestGRPCSessionsInTheTableDrainAndMetrics(t *testing.T) {
	pods := []*grpcPod{startGRPCPod(t, "g-0"), startGRPCPod(t, "g-1"), startGRPCPod(t, "g-2")}
	reg := prometheus.NewRegistry()
	var p *Proxy
	m := metrics.New(reg, func() []metrics.RouteStats { return p.RouteStats() })
	cfg := func(drained int, keep ...*grpcPod) *config.Config {
		c := grpcRoute(keep...)
		c.Routes[0].Table.KeepRawKeys = true
		for i := range c.Routes[0].Backends {
			if c.Routes[0].Backends[i].Name == fmt.Sprintf("g-%d", drained) {
				c.Routes[0].Backends[i].State = "draining"
			}
		}
		return c
	}
	h := startProxyWith(t, cfg(-1, pods...), Options{Metrics: m})
	p = h.p
	c := h.grpcClient()
	keys := make([]string, 60)
	for i := range keys {
		keys[i] = fmt.Sprintf("grpc-%d", i)
	}
	pinned := callAll(t, c, keys, func(i int) int { return i % callKinds })
	again := callAll(t, c, keys, func(i int) int { return (i + 2) % callKinds })
	onG1 := 0
	for _, k := range keys {
		if again[k] != pinned[k] {
			t.Fatalf("session %s: %s, then %s", k, pinned[k], again[k])
		}
		e, err := p.Session("default", k)
		if err != nil || e.Pod != pinned[k] {
			t.Errorf("the table has session %s on %q (%v), want %s", k, e.Pod, err, pinned[k])
		}
		if pinned[k] == "g-1" {
			onG1++
		}
	}
	page, err := p.Sessions("default", SessionQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Sessions) != len(keys) {
		t.Errorf("the listing has %d sessions, want %d", len(page.Sessions), len(keys))
	}
	for _, e := range page.Sessions {
		if pinned[e.Raw] != e.Pod {
			t.Errorf("the listing has %q on %s, want %q", e.Raw, e.Pod, pinned[e.Raw])
		}
	}
	lookups := metricValues(t, reg, "podpin_table_lookups_total", "result")
	if lookups["miss"] != 60 || lookups["hit"] != 60 {
		t.Errorf("podpin_table_lookups_total %v, want 60 misses and 60 hits", lookups)
	}

	h.apply(cfg(1, pods...))
	during := callAll(t, c, keys, func(i int) int { return (i + 1) % callKinds })
	for _, k := range keys {
		if during[k] != pinned[k] {
			t.Errorf("session %s moved from %s to %s while g-1 drains", k, pinned[k], during[k])
		}
	}
	fresh := make([]string, 30)
	for i := range fresh {
		fresh[i] = fmt.Sprintf("fresh-%d", i)
	}
	for k, pod := range callAll(t, c, fresh, func(i int) int { return i % callKinds }) {
		if pod == "g-1" {
			t.Errorf("new session %s went to the draining pod g-1", k)
		}
	}

	h.apply(cfg(-1, pods[0], pods[2]))
	after := callAll(t, c, keys, func(i int) int { return (i + 3) % callKinds })
	for _, k := range keys {
		if was, now := pinned[k], after[k]; (was == "g-1") == (now == was) {
			t.Errorf("session %s: %s before g-1 left, %s after", k, was, now)
		}
	}
	rebinds := metricValues(t, reg, "podpin_table_rebinds_total", "reason")
	if rebinds["gone"] != float64(onG1) || len(rebinds) != 1 {
		t.Errorf("podpin_table_rebinds_total %v, want gone: %d", rebinds, onG1)
	}
}

// metricValues sums the samples of counter name by the value of label by.
func metricValues(t *testing.T, reg *prometheus.Registry, name, by string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			out[label(s, by)] += s.GetCounter().GetValue()
		}
	}
	return out
}

// TestGRPCProxiesSharingRedisPlaceAKeyOnOnePod: two proxies sharing one
// real Redis send each gRPC session to the same pod, whichever proxy the
// session reaches first.
func TestGRPCProxiesSharingRedisPlaceAKeyOnOnePod(t *testing.T) {
	pods := []*grpcPod{startGRPCPod(t, "g-0"), startGRPCPod(t, "g-1"), startGRPCPod(t, "g-2")}
	srv := redistest.Start(t)
	replica := func() *harness {
		s, err := store.New(store.Options{URL: "redis://" + srv.Addr, Timeout: 2 * time.Second, DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		cfg := grpcRoute(pods...)
		cfg.Store.Type = config.StoreRedis
		cfg.Store.Redis.URL = "redis://" + srv.Addr
		return startProxyWith(t, cfg, Options{Shared: s})
	}
	a, b := replica(), replica()
	ca, cb := a.grpcClient(), b.grpcClient()
	keys := make([]string, 90)
	for i := range keys {
		keys[i] = fmt.Sprintf("shared-%d", i)
	}
	// Some sessions start on each replica, then each reaches the other. The
	// split leaves the replicas' round-robin turns apart, so without the
	// shared table most sessions would land on another pod.
	firstA := callAll(t, ca, keys[:40], func(i int) int { return i % callKinds })
	firstB := callAll(t, cb, keys[40:], func(i int) int { return i % callKinds })
	thenB := callAll(t, cb, keys[:40], func(i int) int { return (i + 1) % callKinds })
	thenA := callAll(t, ca, keys[40:], func(i int) int { return (i + 1) % callKinds })
	for _, c := range []struct{ first, then map[string]string }{{firstA, thenB}, {firstB, thenA}} {
		for k, pod := range c.first {
			if c.then[k] != pod {
				t.Errorf("session %s: %s on the replica it reached first, %s on the other", k, pod, c.then[k])
			}
		}
	}
	if n := srv.Do("DBSIZE"); n != ":90" {
		t.Errorf("redis holds %s keys, want 90", n)
	}
}

// TestGRPCPodSilentPastTheResponseTimeout: upstream.responseTimeout bounds
// the wait for a pod's response headers, for gRPC as for HTTP: a pod that
// sends nothing for that long ends the call with DEADLINE_EXCEEDED and
// podpin's reason. Once its headers are sent, a stream may be silent
// between messages for longer.
func TestGRPCPodSilentPastTheResponseTimeout(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	cfg := grpcRoute(pod)
	cfg.Upstream.ResponseTimeout = 500 * time.Millisecond
	h := startProxy(t, cfg)
	c := h.grpcClient()
	slow := &testgrpc.ResponseParameters{Size: 1, IntervalUs: 1_500_000}
	stream := func(body string) (int, error) {
		ctx, cancel := context.WithTimeout(withKey(context.Background(), "k"), 10*time.Second)
		defer cancel()
		s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{
			Payload:            &testgrpc.Payload{Body: []byte(body)},
			ResponseParameters: []*testgrpc.ResponseParameters{slow, slow},
		})
		if err != nil {
			return 0, err
		}
		for n := 0; ; n++ {
			if _, err := s.Recv(); err != nil {
				if err == io.EOF {
					err = nil
				}
				return n, err
			}
		}
	}
	n, err := stream("")
	st, _ := status.FromError(err)
	if n != 0 || st.Code() != codes.DeadlineExceeded || st.Message() != "podpin: pod g-0 failed: no response in time" {
		t.Errorf("a pod silent for 1.5s past a 500ms response timeout: %d messages, then %v %q; want none, then DEADLINE_EXCEEDED and podpin's reason", n, st.Code(), st.Message())
	}
	if n, err := stream("header-first"); n != 2 || err != nil {
		t.Errorf("a stream that sent its header first, then messages 1.5s apart: %d messages, then %v; want 2 and its end", n, err)
	}
}

// TestGRPCLargeAndCompressedMessagesPass: messages of a megabyte each way,
// compressed or not, pass intact through a full-duplex stream and a unary
// call (HTTP/2 flow control on both sides of podpin).
func TestGRPCLargeAndCompressedMessagesPass(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	grpcHarnesses(t, func() *config.Config { return grpcRoute(pod) }, func(t *testing.T, h *harness) {
		c := h.grpcClient()
		big := make([]byte, 1<<20)
		for i := range big {
			big[i] = byte(i * 7)
		}
		for _, opts := range [][]grpc.CallOption{nil, {grpc.UseCompressor(gzip.Name)}} {
			ctx, cancel := context.WithTimeout(withKey(context.Background(), "k"), 20*time.Second)
			s, err := c.StreamingInputCall(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := s.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: big}}); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := s.CloseAndRecv()
			if err != nil || resp.GetAggregatedPayloadSize() != 2<<20 {
				t.Errorf("compressed %v: 2 MiB uploaded, the pod counted %d (%v)", opts != nil, resp.GetAggregatedPayloadSize(), err)
			}
			d, err := c.FullDuplexCall(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			// A megabyte each way: the pod answers with its name padded
			// to the size asked for.
			want := string(pod.payload(1 << 20).Body)
			for range 2 {
				req := &testgrpc.StreamingOutputCallRequest{
					Payload:            &testgrpc.Payload{Body: big},
					ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1 << 20}},
				}
				if err := d.Send(req); err != nil {
					t.Fatal(err)
				}
				resp, err := d.Recv()
				if err != nil {
					t.Fatalf("compressed %v: full duplex: %v", opts != nil, err)
				}
				if got := string(resp.GetPayload().GetBody()); got != want {
					t.Fatalf("compressed %v: full duplex answer of %d bytes, want the pod's %d", opts != nil, len(got), len(want))
				}
			}
			d.CloseSend()
			if _, err := d.Recv(); err != io.EOF {
				t.Errorf("compressed %v: full duplex ended with %v, want its end", opts != nil, err)
			}
			cancel()
		}
	})
}

// TestGRPCAssignedKeyComesBackInTheHeader: on a route that assigns keys, a
// call without one gets the minted key in its x-session header metadata,
// and calls that send it back reach the same pod.
func TestGRPCAssignedKeyComesBackInTheHeader(t *testing.T) {
	pods := []*grpcPod{startGRPCPod(t, "g-0"), startGRPCPod(t, "g-1"), startGRPCPod(t, "g-2")}
	cfg := grpcRoute(pods...)
	cfg.Routes[0].Sticky.Missing = config.MissingAssign
	h := startProxy(t, cfg)
	c := h.grpcClient()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 3 {
		var header metadata.MD
		if _, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		key, pod := first(header, "x-session"), first(header, "x-pod")
		if key == "" {
			t.Fatalf("no key assigned in the header %v", header)
		}
		for kind := range callKinds {
			if got, err := grpcCall(ctx, c, kind, key); got != pod || err != nil {
				t.Errorf("the assigned key on a %s call: %q (%v), want %s", callNames[kind], got, err, pod)
			}
		}
	}
}

// BenchmarkGRPCUnary measures a unary gRPC call with a session key from a
// grpc-go client to a grpc-go pod, straight and through podpin over h2c,
// one call at a time over one connection.
func BenchmarkGRPCUnary(b *testing.B) {
	pod := startGRPCPod(b, "g-0")
	run := func(b *testing.B, addr string) {
		conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		c := testgrpc.NewTestServiceClient(conn)
		ctx := withKey(context.Background(), "bench")
		req := &testgrpc.SimpleRequest{ResponseSize: 64}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := c.UnaryCall(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, pod.addr) })
	b.Run("podpin", func(b *testing.B) {
		cfg := grpcRoute(pod)
		cfg.SetDefaults()
		p := New(Options{})
		defer p.Close()
		if err := p.Apply(cfg); err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.ServeListener(ctx, ln, cfg.Listeners[0], time.Second) }()
		defer func() {
			cancel()
			<-done
		}()
		run(b, ln.Addr().String())
	})
}

// TestGRPCCleartextCallForATLSHostIsRedirected: a host whose Ingress lists
// it in spec.tls is redirected to https on a cleartext listener, gRPC
// calls included; grpc-go does not follow the 308 and fails the call with
// UNKNOWN, naming the status, and the pod sees nothing.
func TestGRPCCleartextCallForATLSHostIsRedirected(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	src := certs.NewSource()
	src.SetRedirects(map[string]bool{"chat.example.com": true})
	h := startProxyWith(t, grpcRoute(pod), Options{Certificates: src})
	conn, err := grpc.NewClient("passthrough:///"+h.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("chat.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(withKey(context.Background(), "k"), 10*time.Second)
	defer cancel()
	_, err = testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if st, _ := status.FromError(err); st.Code() != codes.Unknown || !strings.Contains(st.Message(), "308") {
		t.Errorf("a cleartext call for a TLS host: %v %q, want UNKNOWN naming the 308", st.Code(), st.Message())
	}
	if n := h.p.Routes()[0].Pods[0].Requests; n != 0 {
		t.Errorf("the pod served %d requests, want none", n)
	}
}

// TestGRPCStreamOfAPodThatDiesEndsUnavailable: a full-duplex stream whose
// pod goes away mid-stream ends at the client with UNAVAILABLE, which
// gRPC clients retry, and podpin's reason; the session then moves to
// another pod.
func TestGRPCStreamOfAPodThatDiesEndsUnavailable(t *testing.T) {
	var pods []*grpcPod
	grpcHarnesses(t, func() *config.Config {
		pods = []*grpcPod{startGRPCPod(t, "g-0"), startGRPCPod(t, "g-1")}
		return grpcRoute(pods...)
	}, func(t *testing.T, h *harness) {
		c := h.grpcClient()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A key of each pod.
		keys := map[string]string{}
		for i := 0; len(keys) < 2; i++ {
			k := fmt.Sprintf("k%d", i)
			pod, err := grpcCall(ctx, c, unary, k)
			if err != nil {
				t.Fatal(err)
			}
			keys[pod] = k
		}
		victim, other := pods[0], pods[1]
		s, err := c.FullDuplexCall(withKey(ctx, keys[victim.name]))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		victim.srv.Stop()
		_, err = s.Recv()
		st, _ := status.FromError(err)
		if want := "podpin: pod " + victim.name + " failed mid-stream"; st.Code() != codes.Unavailable || st.Message() != want {
			t.Errorf("the stream of a pod that died: %v %q, want UNAVAILABLE %q", st.Code(), st.Message(), want)
		}
		if pod, err := grpcCall(ctx, c, bidiStream, keys[victim.name]); pod != other.name || err != nil {
			t.Errorf("the session of the pod that died, called again: %q (%v), want %s", pod, err, other.name)
		}
		if pod, err := grpcCall(ctx, c, bidiStream, keys[other.name]); pod != other.name || err != nil {
			t.Errorf("the session of the pod that lives: %q (%v), want %s", pod, err, other.name)
		}
	})
}

// TestGRPCTimeoutValues reads grpc-timeout values as gRPC's HTTP/2
// protocol writes them, and refuses the rest.
func TestGRPCTimeoutValues(t *testing.T) {
	for _, c := range []struct {
		value string
		want  time.Duration
		ok    bool
	}{
		{"1H", time.Hour, true},
		{"2M", 2 * time.Minute, true},
		{"3S", 3 * time.Second, true},
		{"300m", 300 * time.Millisecond, true},
		{"99999999u", 99999999 * time.Microsecond, true},
		{"5n", 5, true},
		{"", 0, false},
		{"S", 0, false},
		{"10", 0, false},
		{"10s", 0, false},
		{"-1S", 0, false},
		{"123456789S", 0, false},
	} {
		got, ok := grpcTimeout(c.value)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("grpcTimeout(%q) = %v, %v; want %v, %v", c.value, got, ok, c.want, c.ok)
		}
	}
}

// TestGRPCStreamOverTheBodyLimitEndsResourceExhausted: a full-duplex
// stream whose client sends more than limits.maxBodyBytes after the
// answer began ends with RESOURCE_EXHAUSTED, a status the client reads,
// and the pod's stream is cancelled; a message within the limit passes.
func TestGRPCStreamOverTheBodyLimitEndsResourceExhausted(t *testing.T) {
	pod := startGRPCPod(t, "g-0")
	grpcHarnesses(t, func() *config.Config {
		c := grpcRoute(pod)
		c.Limits.MaxBodyBytes = 64 << 10
		return c
	}, func(t *testing.T, h *harness) {
		c := h.grpcClient()
		ctx, cancel := context.WithTimeout(withKey(context.Background(), "k"), 10*time.Second)
		defer cancel()
		s, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		small := &testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}},
			Payload:            &testgrpc.Payload{Body: make([]byte, 1<<10)},
		}
		if err := s.Send(small); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("a message within the limit: %v", err)
		}
		big := &testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, 100<<10)}}
		// The send may fail once the call ended: what the client reads
		// is the status.
		s.Send(big)
		for {
			_, err = s.Recv()
			if err != nil {
				break
			}
		}
		if st, _ := status.FromError(err); st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "too large") {
			t.Errorf("past the limit: %v %q, want RESOURCE_EXHAUSTED saying the body is too large", st.Code(), st.Message())
		}
	})
}
