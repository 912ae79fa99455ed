package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/podpin/podpin/internal/h2"
)

// newH2Server returns the server of a listener's HTTP/2 connections, under
// the limits the listener started with; listener names it in metrics.
func (p *Proxy) newH2Server(lim limitSettings, listener string) *h2.Server {
	h2m, h2c := p.metrics.ClientConnections(listener, "h2"), p.metrics.ClientConnections(listener, "h2c")
	return &h2.Server{
		Handler: h2.HandlerFunc(p.serveStream),
		Settings: h2.Settings{
			MaxConcurrentStreams: uint32(lim.maxStreams),
			// HTTP/2 counts 32 bytes per field: ten fields are allowed
			// for on top of maxHeaderBytes.
			MaxHeaderListSize: uint32(lim.maxHeaderBytes + 320),
			// A stream's request body buffers at most 256 KiB, and a
			// connection's bodies together 1 MiB: four streams whose
			// pods take their bodies slowly are needed to hold back the
			// others' bodies.
			WindowSize:     256 << 10,
			ConnWindowSize: 1 << 20,
			PrefaceTimeout: lim.headerTimeout,
			IdleTimeout:    lim.idleTimeout,
			// An idle connection is checked with a PING before it is
			// trusted again.
			PingInterval: lim.idleTimeout / 2,
			PingTimeout:  lim.headerTimeout,
			// A client that reads nothing for this long while podpin has
			// data for it is disconnected (a slow reader).
			WriteTimeout: lim.bodyTimeout,
		},
		Log: p.log,
		ConnContext: func(c net.Conn) context.Context {
			if _, ok := c.(*tls.Conn); ok {
				h2m.Inc()
			} else {
				h2c.Inc()
			}
			cc, _ := connOf(c)
			ctx := context.WithValue(context.Background(), clientConnKey{}, cc)
			return context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
		},
	}
}

// serveStreamHTTP serves an HTTP/2 stream whose route is r through
// serveH2, in net/http's terms: the stream as an *http.Request, its answer
// through an http.ResponseWriter.
func (p *Proxy) serveStreamHTTP(s *h2.Stream, st *state, r *route, cc *clientConn) {
	w := &streamResponse{s: s, header: http.Header{}}
	defer func() {
		// ReverseProxy ends a stream whose answer could not be copied
		// by panicking with http.ErrAbortHandler: the stream is reset.
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			s.Reset(uint32(2)) // INTERNAL_ERROR
		}
	}()
	req, err := streamRequest(s)
	if err != nil {
		streamReply(s, http.StatusBadRequest, err.Error())
		return
	}
	p.serveH2(w, req, s, st, r, cc)
	w.finish()
}

// streamRequest is the *http.Request of a stream.
func streamRequest(s *h2.Stream) (*http.Request, error) {
	req := &http.Request{
		Method:        s.Method,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
		Header:        make(http.Header, len(s.Header)),
		Host:          s.Authority,
		RequestURI:    s.Path,
		RemoteAddr:    s.Conn().RemoteAddr().String(),
		ContentLength: s.ContentLength,
		Body:          http.NoBody,
	}
	if s.Method == http.MethodConnect {
		req.URL = &url.URL{Host: s.Authority}
	} else {
		u, err := url.ParseRequestURI(s.Path)
		if err != nil {
			return nil, errMalformed
		}
		req.URL = u
	}
	for _, f := range s.Header {
		if f.Name == "host" {
			continue
		}
		k := http.CanonicalHeaderKey(f.Name)
		req.Header[k] = append(req.Header[k], f.Value)
	}
	if s.HasBody {
		req.Body = streamBody{s}
	} else {
		req.ContentLength = 0
	}
	if tc, ok := s.Conn().(*tls.Conn); ok {
		cs := tc.ConnectionState()
		req.TLS = &cs
	}
	return req.WithContext(s.Context()), nil
}

// streamBody is a stream's request body as net/http reads it. Close does
// nothing: h2Body, which serveH2 puts in front of it, keeps what was
// closed.
type streamBody struct{ s *h2.Stream }

func (b streamBody) Read(p []byte) (int, error) { return b.s.Read(p) }
func (b streamBody) Close() error               { return nil }

// streamResponse is a stream's answer as an http.ResponseWriter. The
// header goes out with the first byte of the body, a flush or the end;
// trailers are the fields announced in "Trailer" and those named with
// http.TrailerPrefix, as net/http's server has them.
type streamResponse struct {
	s        *h2.Stream
	header   http.Header
	status   int      // the final status, once written
	trailers []string // announced in the header's "Trailer"
	sent     bool     // the header went out
}

func (w *streamResponse) Header() http.Header { return w.header }

func (w *streamResponse) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.s.WriteHeaders(code, fields(w.header), false)
		return
	}
	w.status = code
	for _, v := range w.header["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				w.trailers = append(w.trailers, http.CanonicalHeaderKey(name))
			}
		}
	}
}

func (w *streamResponse) Write(b []byte) (int, error) {
	if err := w.sendHeader(false); err != nil {
		return 0, err
	}
	return w.s.Write(b)
}

func (w *streamResponse) sendHeader(end bool) error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.sent {
		return nil
	}
	w.sent = true
	return w.s.WriteHeaders(w.status, fields(w.header), end)
}

// FlushError sends the header if it has not gone out: the frames written
// go to the socket as soon as it takes them.
func (w *streamResponse) FlushError() error {
	err := w.sendHeader(false)
	w.s.Flush()
	return err
}

func (w *streamResponse) Flush() { w.FlushError() }

func (w *streamResponse) SetReadDeadline(t time.Time) error  { return w.s.SetReadDeadline(t) }
func (w *streamResponse) SetWriteDeadline(t time.Time) error { return w.s.SetWriteDeadline(t) }

// finish ends the answer: with its trailers, or with the header alone
// when nothing else was written.
func (w *streamResponse) finish() {
	var trailers []h2.HeaderField
	for _, name := range w.trailers {
		for _, v := range w.header[name] {
			trailers = append(trailers, h2.HeaderField{Name: name, Value: v})
		}
	}
	for k, vs := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				trailers = append(trailers, h2.HeaderField{Name: name, Value: v})
			}
		}
	}
	if !w.sent && len(trailers) == 0 {
		w.sendHeader(true)
		return
	}
	if w.sendHeader(false) != nil {
		return
	}
	if len(trailers) > 0 {
		w.s.WriteTrailers(trailers)
		return
	}
	w.s.WriteData(nil, true)
}

// fields is a header as HTTP/2 fields, without the trailers named with
// http.TrailerPrefix.
func fields(h http.Header) []h2.HeaderField {
	out := make([]h2.HeaderField, 0, len(h)+1)
	for k, vs := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			out = append(out, h2.HeaderField{Name: k, Value: v})
		}
	}
	return out
}
