package proxy

import (
	"bufio"
	"io"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// tunnel forwards an Upgrade request (WebSocket and the like) to pd. When the
// pod switches protocols, podpin relays its 101 answer and then copies bytes
// both ways until either side closes; otherwise the pod's answer is relayed
// as an ordinary response.
func (p *Proxy) tunnel(ctx *fasthttp.RequestCtx, st *state, r *route, pd *pod) {
	req := &ctx.Request
	if n := req.Header.ContentLength(); n > 0 || n == -1 {
		r.fail(ctx, fasthttp.StatusBadRequest, errUpgradeBody)
		return
	}
	upgrade := append([]byte(nil), req.Header.Peek(fasthttp.HeaderUpgrade)...)
	prepareRequest(ctx)
	setPodHost(req, pd)
	req.Header.Set(fasthttp.HeaderConnection, "Upgrade")
	req.Header.SetBytesV(fasthttp.HeaderUpgrade, upgrade)

	start := time.Now()
	pd.inFlight.Add(1)
	pd.requests.Add(1)
	pd.m.Start()
	conn, resp, err := p.handshake(st, pd, req)
	pd.inFlight.Add(-1)
	if err != nil {
		r.observe(pd, true, 0)
		code := fasthttp.StatusBadGateway
		pd.m.Done(code, time.Since(start).Seconds())
		replyText(ctx, code, "pod "+pd.name+" failed: "+upstreamReason(err))
		return
	}
	r.observe(pd, false, resp.StatusCode())
	pd.m.Done(resp.StatusCode(), time.Since(start).Seconds())
	if st.podHeader != "" {
		resp.Header.Set(st.podHeader, pd.name)
	}
	if resp.StatusCode() != fasthttp.StatusSwitchingProtocols {
		conn.Close()
		stripHopByHop(&resp.Header)
		resp.CopyTo(&ctx.Response)
		fasthttp.ReleaseResponse(resp)
		return
	}
	head := append([]byte(nil), resp.Header.Header()...)
	fasthttp.ReleaseResponse(resp)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(client net.Conn) {
		if _, err := client.Write(head); err != nil {
			conn.Close()
			return
		}
		p.tunnels.splice(client, conn)
	})
}

// handshake dials pd, sends the upgrade request and reads the answer. The
// connection's reader may hold bytes the pod sent after its answer; the
// returned conn yields those first.
func (p *Proxy) handshake(st *state, pd *pod, req *fasthttp.Request) (net.Conn, *fasthttp.Response, error) {
	c, err := net.DialTimeout("tcp", pd.addr, st.upstream.connectTimeout)
	if err != nil {
		return nil, nil, &dialError{err}
	}
	c.SetDeadline(time.Now().Add(st.upstream.readTimeout))
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

// bufferedConn reads through the reader that parsed the pod's answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// tunnels tracks upgraded connections so shutdown can close them.
type tunnels struct {
	// guards open
	mu   sync.Mutex
	open map[net.Conn]net.Conn
	wg   sync.WaitGroup
}

// splice copies both ways between a and b until either direction ends,
// then closes both, as net/http/httputil does for upgraded connections.
func (t *tunnels) splice(a, b net.Conn) {
	t.mu.Lock()
	if t.open == nil {
		t.open = map[net.Conn]net.Conn{}
	}
	t.open[a] = b
	t.wg.Add(1)
	t.mu.Unlock()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	<-done
	a.Close()
	b.Close()
	<-done
	t.mu.Lock()
	delete(t.open, a)
	t.mu.Unlock()
	t.wg.Done()
}

// closeAll closes every tunnel and waits for their copies to end.
func (t *tunnels) closeAll() {
	t.mu.Lock()
	for a, b := range t.open {
		a.Close()
		b.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}
