package h2

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The clients of these tests: x/net's HTTP/2 Transport speaking h2c with
// prior knowledge, and a raw client that writes and reads frames itself
// for what a well-behaved client does not do.

// wait bounds every wait of these tests: they run under -race on a busy
// machine, so it is generous; no test measures how fast anything is.
const wait = 30 * time.Second

// serve starts srv with h on a loopback listener and returns the
// listener's address; the server is closed when the test ends.
func serve(t *testing.T, srv *Server, h HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Handler = h
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// h2cClient is an HTTP/2 client over cleartext TCP (h2c, prior
// knowledge).
func h2cClient(t *testing.T) (*http.Client, *http2.Transport) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: wait}, tr
}

// answer writes a 200 with body.
func answer(s *Stream, body string) {
	s.WriteHeaders(200, []HeaderField{{Name: "content-type", Value: "text/plain"}}, false)
	s.WriteData([]byte(body), true)
}

// pattern is n bytes whose order shows: a reordered or lost piece does
// not compare equal.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// rawConn is a client connection that writes and reads frames itself.
// It acknowledges the server's SETTINGS, and answers its PINGs unless
// ignorePings is set. Use it from one goroutine.
type rawConn struct {
	t           *testing.T
	nc          net.Conn
	fr          *http2.Framer
	hbuf        bytes.Buffer
	enc         *hpack.Encoder
	ignorePings bool
	// keepWindow: response gives no window back.
	keepWindow bool
	// held are frames of other streams read while response waited for
	// one: response returns them to whoever asks for their stream.
	held []http2.Frame
}

// dialRaw connects to addr and sends the preface with settings.
func dialRaw(t *testing.T, addr string, settings ...http2.Setting) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(wait))
	c := &rawConn{t: t, nc: nc, fr: http2.NewFramer(nc, nc)}
	c.fr.ReadMetaHeaders = hpack.NewDecoder(65536, nil)
	c.enc = hpack.NewEncoder(&c.hbuf)
	if _, err := io.WriteString(nc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := c.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return c
}

// headers opens (or, for trailers, continues) stream id with fields, given
// as name, value, name, value...
func (c *rawConn) headers(id uint32, end bool, fields ...string) {
	c.t.Helper()
	c.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.hbuf.Bytes(), EndStream: end, EndHeaders: true}); err != nil {
		c.t.Fatal(err)
	}
}

// request opens stream id with method and path; end: without a body.
func (c *rawConn) request(id uint32, method, path string, end bool) {
	c.t.Helper()
	c.headers(id, end, ":method", method, ":scheme", "http", ":authority", "example.test", ":path", path)
}

func (c *rawConn) data(id uint32, end bool, p []byte) {
	c.t.Helper()
	if err := c.fr.WriteData(id, end, p); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) rst(id uint32, code http2.ErrCode) {
	c.t.Helper()
	if err := c.fr.WriteRSTStream(id, code); err != nil {
		c.t.Fatal(err)
	}
}

// sync sends a PING and waits for its answer: the server has processed
// every frame sent before it. Frames read meanwhile are returned.
func (c *rawConn) sync() []http2.Frame {
	c.t.Helper()
	data := [8]byte{'s', 'y', 'n', 'c'}
	if err := c.fr.WritePing(false, data); err != nil {
		c.t.Fatal(err)
	}
	var seen []http2.Frame
	for {
		f, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for the answer to a PING: %v", err)
		}
		if p, ok := f.(*http2.PingFrame); ok && p.IsAck() && p.Data == data {
			return seen
		}
		seen = append(seen, f)
	}
}

// next reads the next frame other than the server's SETTINGS (which it
// acknowledges) and, unless ignorePings, its PINGs (which it answers).
// A DATA frame's payload is copied: it stays valid.
func (c *rawConn) next() (http2.Frame, error) {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if err := c.fr.WriteSettingsAck(); err != nil {
					return nil, err
				}
			}
			continue
		case *http2.PingFrame:
			if !f.IsAck() && !c.ignorePings {
				if err := c.fr.WritePing(true, f.Data); err != nil {
					return nil, err
				}
				continue
			}
		case *http2.DataFrame:
			return &dataFrame{DataFrame: f, payload: bytes.Clone(f.Data())}, nil
		}
		return f, nil
	}
}

// dataFrame is a DATA frame whose payload outlives the next read.
type dataFrame struct {
	*http2.DataFrame
	payload []byte
}

// response is what a stream brought back.
type response struct {
	status  string
	header  []hpack.HeaderField
	body    []byte
	trailer []hpack.HeaderField
	// frames: the kinds of the stream's frames in order, "HEADERS",
	// "HEADERS+END", "DATA", "DATA+END", "RST".
	frames []string
	// reset is the code of the stream's RST_STREAM, if any.
	reset *http2.ErrCode
}

// response reads until stream id ends (END_STREAM or RST_STREAM) and
// returns what it carried; the frames of other streams are held for
// their own call. Unless keepWindow, it gives the stream and the
// connection back every DATA byte.
func (c *rawConn) response(id uint32) *response {
	c.t.Helper()
	r := &response{}
	for {
		var f http2.Frame
		if i := slices.IndexFunc(c.held, func(f http2.Frame) bool { return f.Header().StreamID == id }); i >= 0 {
			f = c.held[i]
			c.held = slices.Delete(c.held, i, i+1)
		} else {
			var err error
			if f, err = c.next(); err != nil {
				c.t.Fatalf("reading stream %d: %v (so far: %v)", id, err, r.frames)
			}
		}
		if sid := f.Header().StreamID; sid != id {
			if sid != 0 {
				c.held = append(c.held, f)
			}
			continue
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if r.status == "" {
				r.status = f.PseudoValue("status")
				r.header = f.RegularFields()
			} else {
				r.trailer = f.RegularFields()
			}
			r.frames = append(r.frames, "HEADERS"+plusEnd(f.StreamEnded()))
			if f.StreamEnded() {
				return r
			}
		case *dataFrame:
			r.body = append(r.body, f.payload...)
			r.frames = append(r.frames, "DATA"+plusEnd(f.StreamEnded()))
			if n := f.Length; n > 0 && !c.keepWindow {
				c.fr.WriteWindowUpdate(0, n)
				if !f.StreamEnded() {
					c.fr.WriteWindowUpdate(id, n)
				}
			}
			if f.StreamEnded() {
				return r
			}
		case *http2.RSTStreamFrame:
			code := f.ErrCode
			r.reset = &code
			r.frames = append(r.frames, "RST")
			return r
		}
	}
}

func plusEnd(end bool) string {
	if end {
		return "+END"
	}
	return ""
}

// closed reads until the server closes the connection, and returns the
// GOAWAY it sent first, if any.
func (c *rawConn) closed() *http2.GoAwayFrame {
	c.t.Helper()
	var away *http2.GoAwayFrame
	for {
		f, err := c.next()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatalf("the server did not close the connection within %v", wait)
			}
			return away
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			g := *g
			away = &g
		}
	}
}
