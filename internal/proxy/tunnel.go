package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/podpin/podpin/internal/place"
)

// tunnel forwards an Upgrade request (WebSocket and the like) to pd. When the
// pod switches protocols, podpin relays its 101 answer and then copies bytes
// both ways until either side closes; otherwise the pod's answer is relayed
// as an ordinary response.
func (p *Proxy) tunnel(ctx *fasthttp.RequestCtx, st *state, r *route, scan headerScan, pd *pod) {
	req := &ctx.Request
	if n := req.Header.ContentLength(); n > 0 || n == -1 {
		r.fail(ctx, fasthttp.StatusBadRequest, errUpgradeBody)
		return
	}
	upgrade := append([]byte(nil), req.Header.Peek(fasthttp.HeaderUpgrade)...)
	r.preparePodRequest(ctx, scan, pd)
	req.Header.Set(fasthttp.HeaderConnection, "Upgrade")
	req.Header.SetBytesV(fasthttp.HeaderUpgrade, upgrade)

	start := time.Now()
	pd.tally.Start()
	conn, resp, err := p.handshake(r.handshakeDeadline(start), pd, req)
	pd.tally.Stop()
	if err != nil {
		code := fasthttp.StatusBadGateway
		if !isDialError(err) && isTimeout(err) {
			code = fasthttp.StatusGatewayTimeout
		}
		r.Done(r.pods.Load(), pd, place.Outcome{Failed: true, Status: code, Seconds: time.Since(start).Seconds()})
		replyText(ctx, code, "pod "+pd.name+" failed: "+upstreamReason(err))
		return
	}
	r.Done(r.pods.Load(), pd, place.Outcome{Status: resp.StatusCode(), Seconds: time.Since(start).Seconds()})
	if st.podHeader != nil {
		resp.Header.SetCanonical(st.podHeader, pd.nameV)
	}
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		conn.Close()
		stripHopByHop(&resp.Header)
		if r.filters != nil {
			r.filters.response.applyFast(&resp.Header)
		}
		resp.CopyTo(&ctx.Response)
		fasthttp.ReleaseResponse(resp)
		return
	}
	head := append([]byte(nil), resp.Header.Header()...)
	fasthttp.ReleaseResponse(resp)
	ctx.HijackSetNoResponse(true)
	// Registered while the request is still in flight, so a shutdown that
	// waits for requests sees the tunnel before its copying starts.
	p.tunnels.add(conn)
	ctx.Hijack(func(client net.Conn) {
		client = closable(client)
		if _, err := client.Write(head); err != nil {
			p.tunnels.remove(conn)
			conn.Close()
			return
		}
		p.tunnels.splice(client, conn)
	})
}

// handshakeDeadline is when the pod's answer to an upgrade that starts at
// start must have come: the route's wait for a pod's answer
// (upstream.responseTimeout, or its timeouts.backendRequest) and its
// timeouts; zero when nothing bounds it. The tunnel after a 101 has no
// deadline.
func (r *route) handshakeDeadline(start time.Time) time.Time {
	until := r.deadline(start, start)
	if t := r.upstream.readTimeout; t > 0 {
		if d := start.Add(t); until.IsZero() || d.Before(until) {
			until = d
		}
	}
	return until
}

// handshake dials pd (with TLS for an https pod), sends the upgrade request
// and reads the answer by until (zero: no bound). The connection's reader
// may hold bytes the pod sent after its answer; the returned conn yields
// those first.
func (p *Proxy) handshake(until time.Time, pd *pod, req *fasthttp.Request) (net.Conn, *fasthttp.Response, error) {
	c, err := pd.client.dial()
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(until)
	if _, err := c.Write(req.Header.Header()); err != nil {
		c.Close()
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp := fasthttp.AcquireResponse()
	resp.Header.SetNoDefaultContentType(true)
	if err := resp.Read(br); err != nil {
		fasthttp.ReleaseResponse(resp)
		c.Close()
		return nil, nil, err
	}
	c.SetDeadline(time.Time{})
	return &bufferedConn{Conn: c, r: br}, resp, nil
}

// closable returns a hijacked client connection whose Close really closes
// it: fasthttp's hijacked connection ignores Close (it closes the socket
// itself once the hijack handler returns), but shutdown must be able to end
// a tunnel from outside.
func closable(c net.Conn) net.Conn {
	if u, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		return &hijacked{Conn: c, raw: u.UnsafeConn()}
	}
	return c
}

// hijacked reads and writes through fasthttp's connection (which holds
// bytes it already read) and closes the socket beneath it.
type hijacked struct {
	net.Conn
	raw net.Conn
}

func (h *hijacked) Close() error { return h.raw.Close() }

// bufferedConn reads through the reader that parsed the pod's answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// tunnels tracks upgraded connections so shutdown can close them.
type tunnels struct {
	// guards open
	mu sync.Mutex
	// open maps each tunnel's pod connection to its client connection (nil
	// until the client connection is hijacked).
	open map[net.Conn]net.Conn
}

// add registers the pod connection of a tunnel about to start.
func (t *tunnels) add(pod net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.open == nil {
		t.open = map[net.Conn]net.Conn{}
	}
	t.open[pod] = nil
}

func (t *tunnels) remove(pod net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.open, pod)
}

// splice copies both ways between client and pod until either direction
// ends, then closes both, as net/http/httputil does for upgraded
// connections. pod must have been added.
func (t *tunnels) splice(client, pod net.Conn) {
	t.mu.Lock()
	t.open[pod] = client
	t.mu.Unlock()
	defer t.remove(pod)
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(client, pod)
	go cp(pod, client)
	<-done
	client.Close()
	pod.Close()
	<-done
}

// drain waits until every tunnel has ended or ctx is done, then closes the
// tunnels still open and returns how many it closed. It polls rather than
// waiting on the group, since a request still in flight may open a tunnel
// meanwhile.
func (t *tunnels) drain(ctx context.Context) int {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		n := len(t.open)
		t.mu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			t.closeAll()
			return n
		case <-tick.C:
		}
	}
}

// closeAll closes every tunnel; their copies then end and unregister. A
// tunnel whose client connection is not spliced yet ends as soon as it
// tries to copy from its closed pod connection.
func (t *tunnels) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pod, client := range t.open {
		pod.Close()
		if client != nil {
			client.Close()
		}
	}
}
