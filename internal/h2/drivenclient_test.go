package h2

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The driven client's tests play the connection's owner from the test's
// goroutine alone, as an event loop does: it writes what Take gives to
// the socket, reads the socket, and feeds what comes. No other goroutine
// moves the connection's bytes, and the package starts none: a call of
// the client that waited for the server would never return, and the test
// would fail on its timeout.

// clientOwner owns a driven client connection in a test.
type clientOwner struct {
	t  *testing.T
	nc net.Conn
	c  *ClientConn
	// notes counts the calls of the connection's note.
	notes atomic.Int64
	buf   []byte
	// cut, when not 0, feeds what is read in pieces of 1 to cut bytes,
	// so that frames come cut anywhere.
	cut, pieces int
	// fed counts the bytes fed; ended: Feed returned false; sockErr:
	// the socket failed (io.EOF: the server closed it).
	fed     int
	ended   bool
	sockErr error
}

// driveClient dials addr and drives a client connection on the socket.
func driveClient(t *testing.T, addr string, set ClientSettings) *clientOwner {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	o := &clientOwner{t: t, nc: nc, buf: make([]byte, 32<<10)}
	o.c = DriveClient(nc, set, func() { o.notes.Add(1) })
	return o
}

// flush writes what the connection has for the server; it reports
// whether the connection is over once that is sent.
func (o *clientOwner) flush() bool {
	out, over := o.c.Take(nil)
	if len(out) > 0 && o.sockErr == nil {
		o.nc.SetWriteDeadline(time.Now().Add(wait))
		if _, err := o.nc.Write(out); err != nil {
			o.sockErr = err
		}
	}
	return over
}

// feed gives b to the connection, in pieces when cut is set.
func (o *clientOwner) feed(b []byte) {
	for len(b) > 0 && !o.ended {
		n := len(b)
		if o.cut > 0 {
			n = min(n, 1+o.pieces*7%o.cut)
			o.pieces++
		}
		o.fed += n
		if !o.c.Feed(b[:n]) {
			o.ended = true
		}
		b = b[n:]
	}
}

// turn is one turn of the owner's loop: what waits is written, then what
// the socket has within a few milliseconds is fed.
func (o *clientOwner) turn() {
	o.flush()
	if o.ended || o.sockErr != nil {
		return
	}
	o.nc.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	n, err := o.nc.Read(o.buf)
	o.feed(o.buf[:n])
	var ne net.Error
	if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
		o.sockErr = err
	}
}

// until turns the owner's loop until cond holds, and fails the test when
// the connection ends first or when it does not hold within wait. cond
// runs on the owner's goroutine between turns: it may serve the streams.
func (o *clientOwner) until(what string, cond func() bool) {
	o.t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if o.ended || o.sockErr != nil {
			o.t.Fatalf("%s: the connection ended first (Feed over %v, socket %v, connection %v)", what, o.ended, o.sockErr, o.c.Err())
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("%s: not so within %v", what, wait)
		}
		o.turn()
	}
}

// drivenReply is what the owner read of a stream's answer so far.
type drivenReply struct {
	s       *ClientStream
	status  int
	header  []HeaderField
	body    []byte
	trailer []HeaderField
	// err ends the answer: io.EOF at its end, or the stream's error.
	err error
}

// poll reads what came of the answer, without waiting; it reports
// whether the answer is over.
func (r *drivenReply) poll() bool {
	if r.err != nil {
		return true
	}
	if r.status == 0 {
		status, header, err := r.s.Answer()
		if err != nil {
			r.err = err
			return true
		}
		if status == 0 {
			return false
		}
		r.status, r.header = status, header
	}
	var buf [5000]byte
	for {
		n, err := r.s.ReadAvailable(buf[:])
		r.body = append(r.body, buf[:n]...)
		if err != nil {
			r.err = err
			if err == io.EOF {
				r.trailer = r.s.Trailer()
			}
			return true
		}
		if n == 0 {
			return false
		}
	}
}

// goAwayIn is the GOAWAY among frames, or nil.
func goAwayIn(frames []http2.Frame) *http2.GoAwayFrame {
	for _, f := range frames {
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return g
		}
	}
	return nil
}

// A GET on a driven connection to x/net's server: the preface and the
// request wait in one Take, the answer's header, body and trailers come
// as the owner feeds the server's frames, and nothing is waited for.
func TestDrivenClientGetWithTrailersFromXNet(t *testing.T) {
	body := randomBytes(100<<10, 11)
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Got", r.Method+" "+r.URL.Path+" "+r.Host+" "+r.Header.Get("X-Asked"))
		w.Write(body)
		w.Header().Set("X-Sum", fmt.Sprintf("%x", sha256.Sum256(body)))
		w.Header().Set(http.TrailerPrefix+"X-Late", "unannounced")
	}))
	// The stream's window is smaller than the answer: the reads give it
	// back as they go. The frames are fed cut anywhere.
	o := driveClient(t, peer.addr, ClientSettings{WindowSize: 16 << 10})
	o.cut = 100
	if n := o.notes.Load(); n != 1 {
		t.Errorf("note called %d times for the preface, want once", n)
	}
	s, err := o.c.NewStream(reqFields("GET", "/get", "x-asked", "yes"), true)
	if err != nil {
		t.Fatal(err)
	}
	if n := o.notes.Load(); n != 1 {
		t.Errorf("note called %d times before a Take, want once", n)
	}
	// Nothing came: the answer is not there, and asking does not wait.
	if status, header, err := s.Answer(); status != 0 || header != nil || err != nil {
		t.Fatalf("Answer before any frame: %d %v %v, want 0, nil, nil", status, header, err)
	}
	if n, err := s.ReadAvailable(make([]byte, 10)); n != 0 || err != nil {
		t.Fatalf("ReadAvailable before any frame: %d %v, want 0, nil", n, err)
	}
	if o.c.Settled() {
		t.Fatalf("settled before the server's SETTINGS came")
	}
	// The preface, the client's SETTINGS and the request go out in one
	// Take.
	out, over := o.c.Take(nil)
	if over || !bytes.HasPrefix(out, []byte(http2.ClientPreface)) {
		t.Fatalf("first Take: over %v, %q...", over, out[:min(len(out), 24)])
	}
	frames := framesOf(t, out)
	last := frames[len(frames)-1]
	if h, ok := last.(*http2.HeadersFrame); !ok || h.StreamID != 1 || !h.StreamEnded() {
		t.Fatalf("the first Take's last frame: %v, want the request's HEADERS with END_STREAM", last)
	}
	if _, ok := frames[0].(*http2.SettingsFrame); !ok {
		t.Fatalf("the first Take's first frame: %v, want SETTINGS", frames[0])
	}
	if _, err := o.nc.Write(out); err != nil {
		t.Fatal(err)
	}
	if out, _ := o.c.Take(nil); len(out) != 0 {
		t.Fatalf("a second Take gave %d bytes again", len(out))
	}

	r := &drivenReply{s: s}
	o.until("the answer", r.poll)
	if r.err != io.EOF || r.status != 200 || !bytes.Equal(r.body, body) {
		t.Fatalf("answer: status %d, %d bytes (same: %v), end %v", r.status, len(r.body), bytes.Equal(r.body, body), r.err)
	}
	if got := fieldValue(r.header, "x-got"); got != "GET /get podpin.test yes" {
		t.Errorf("the server saw %q", got)
	}
	if got, want := fieldValue(r.trailer, "x-sum"), fmt.Sprintf("%x", sha256.Sum256(body)); got != want {
		t.Errorf("trailer x-sum %q, want %q (trailers %v)", got, want, r.trailer)
	}
	if got := fieldValue(r.trailer, "x-late"); got != "unannounced" {
		t.Errorf("trailer x-late %q (trailers %v)", got, r.trailer)
	}
	if fieldValue(r.header, "x-sum") != "" {
		t.Errorf("a trailer came in the header: %v", r.header)
	}
	if n, err := s.ReadAvailable(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("ReadAvailable after the end: %d %v, want 0, io.EOF", n, err)
	}
	if !o.c.Settled() || o.c.Streams() != 0 || o.c.Err() != nil {
		t.Errorf("after the exchange: settled %v, %d streams, error %v", o.c.Settled(), o.c.Streams(), o.c.Err())
	}
}

// A body larger than the server's windows goes as far as they allow:
// WriteAvailable sends less than asked, and the owner sends the rest as
// the server's WINDOW_UPDATEs are fed.
func TestDrivenClientPostLargerThanTheServersWindows(t *testing.T) {
	// The server's windows, the stream's and the connection's, are
	// 65535 bytes, and grow only as its handler reads.
	peer := serveXNet(t, &http2.Server{MaxUploadBufferPerStream: 65535, MaxUploadBufferPerConnection: 65535},
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			if err != nil {
				w.WriteHeader(500)
				return
			}
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		}))
	o := driveClient(t, peer.addr, ClientSettings{})
	body := randomBytes(1<<20, 5)
	s, err := o.c.NewStream(reqFields("POST", "/upload"), false)
	if err != nil {
		t.Fatal(err)
	}
	// Before the server's SETTINGS, its windows are not known: nothing
	// goes.
	if n, err := s.WriteAvailable(body, true); n != 0 || err != nil {
		t.Fatalf("WriteAvailable before the server's SETTINGS: %d %v, want 0, nil", n, err)
	}
	// An empty body's end needs no window: it goes at once.
	empty, err := o.c.NewStream(reqFields("POST", "/empty"), false)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := empty.WriteAvailable(nil, true); n != 0 || err != nil {
		t.Fatalf("WriteAvailable of an empty body's end: %d %v, want 0, nil", n, err)
	}
	if _, err := empty.WriteAvailable(nil, true); err != ErrStreamClosed {
		t.Fatalf("WriteAvailable after the request's end: %v, want ErrStreamClosed", err)
	}
	if o.c.Settled() {
		t.Fatalf("settled before any Feed")
	}
	sent, calls, short := 0, 0, 0
	first := -1
	o.until("the body sent", func() bool {
		// Pieces of odd sizes; the last ends the request.
		piece := body[sent:min(sent+100<<10+3, len(body))]
		n, err := s.WriteAvailable(piece, sent+len(piece) == len(body))
		if err != nil {
			t.Fatalf("WriteAvailable after %d bytes: %v", sent, err)
		}
		calls++
		if n > 0 && first < 0 {
			first = n
		}
		if n < len(piece) {
			short++
		}
		sent += n
		return sent == len(body)
	})
	// The first bytes sent fill the server's windows and no more; the
	// rest waits for its WINDOW_UPDATEs, fed meanwhile.
	if first != 65535 {
		t.Errorf("the first WriteAvailable after the SETTINGS sent %d bytes, want the windows' 65535", first)
	}
	if short < 15 {
		t.Errorf("%d of %d WriteAvailable calls sent less than asked: the windows did not hold the body back", short, calls)
	}
	if _, err := s.WriteAvailable([]byte("more"), true); err != ErrStreamClosed {
		t.Errorf("WriteAvailable after the request's end: %v, want ErrStreamClosed", err)
	}
	r := &drivenReply{s: s}
	o.until("the answer", r.poll)
	want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body))
	if r.err != io.EOF || r.status != 200 || string(r.body) != want {
		t.Fatalf("answer: status %d, %q, end %v; want 200, %q", r.status, r.body, r.err, want)
	}
	r = &drivenReply{s: empty}
	o.until("the empty body's answer", r.poll)
	if want := fmt.Sprintf("0 %x", sha256.Sum256(nil)); r.err != io.EOF || r.status != 200 || string(r.body) != want {
		t.Errorf("empty body's answer: status %d, %q, end %v; want 200, %q", r.status, r.body, r.err, want)
	}
	if o.c.Err() != nil {
		t.Errorf("the connection failed: %v", o.c.Err())
	}
}

// Fifty streams on one driven connection, their bodies and answers
// interleaved, up to the server's limit of concurrent streams.
func TestDrivenClientManyStreamsInterleaved(t *testing.T) {
	const n = 50
	// answerOf is what the server answers on stream i, after the
	// request's length and hash.
	answerOf := func(i int) []byte { return randomBytes(5000+i*1013, uint64(1000+i)) }
	peer := serveXNet(t, &http2.Server{MaxConcurrentStreams: n}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		h := sha256.New()
		size, rerr := io.Copy(h, r.Body)
		if err != nil || rerr != nil {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("X-Len", strconv.FormatInt(size, 10))
		w.Header().Set("X-Sum", fmt.Sprintf("%x", h.Sum(nil)))
		w.Write(answerOf(i))
	}))
	// The streams' windows are smaller than most answers.
	o := driveClient(t, peer.addr, ClientSettings{WindowSize: 16 << 10})
	o.cut = 3000
	type exchange struct {
		body []byte
		sent int
		r    drivenReply
	}
	xs := make([]*exchange, n)
	for i := range xs {
		s, err := o.c.NewStream(reqFields("POST", fmt.Sprint("/", i)), false)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		xs[i] = &exchange{body: randomBytes(1+i*997, uint64(i)), r: drivenReply{s: s}}
	}
	if o.c.Full() || o.c.Streams() != n {
		t.Fatalf("before the server's SETTINGS: full %v, %d streams; want not full (100 until they come), %d", o.c.Full(), o.c.Streams(), n)
	}
	settled, turns := false, 0
	o.until("every answer", func() bool {
		if !settled && o.c.Settled() {
			// No body went before the SETTINGS: every stream is open,
			// and the server's limit is reached.
			settled = true
			if !o.c.Full() || o.c.Streams() != n {
				t.Errorf("once the server's SETTINGS came: full %v, %d streams; want full, %d", o.c.Full(), o.c.Streams(), n)
			}
		}
		// Each stream in turn sends a piece of its body and reads what
		// came of its answer, starting from a different one each turn.
		turns++
		over := 0
		for k := range xs {
			x := xs[(k+turns)%n]
			if x.sent < len(x.body) {
				piece := x.body[x.sent:min(x.sent+1000, len(x.body))]
				m, err := x.r.s.WriteAvailable(piece, x.sent+len(piece) == len(x.body))
				if err != nil {
					t.Fatalf("WriteAvailable: %v", err)
				}
				x.sent += m
			}
			if x.r.poll() {
				over++
			}
		}
		return over == n
	})
	for i, x := range xs {
		r := x.r
		if r.err != io.EOF || r.status != 200 || !bytes.Equal(r.body, answerOf(i)) {
			t.Errorf("stream %d: status %d, %d bytes of %d, end %v", i, r.status, len(r.body), len(answerOf(i)), r.err)
			continue
		}
		if got, want := fieldValue(r.header, "x-len"), strconv.Itoa(len(x.body)); got != want {
			t.Errorf("stream %d: the server read %s bytes, want %s", i, got, want)
		}
		if got, want := fieldValue(r.header, "x-sum"), fmt.Sprintf("%x", sha256.Sum256(x.body)); got != want {
			t.Errorf("stream %d: the server read other bytes than sent", i)
		}
	}
	if o.c.Streams() != 0 || o.c.Full() || o.c.Err() != nil {
		t.Errorf("after every answer: %d streams, full %v, error %v", o.c.Streams(), o.c.Full(), o.c.Err())
	}
}

// A stream the server resets fails with a *ResetError, before its answer
// or in it; one it never processed fails with ErrNotProcessed. The
// connection's other streams go on.
func TestDrivenClientStreamsResetByTheServer(t *testing.T) {
	t.Run("x/net", func(t *testing.T) {
		// A handler that panics with http.ErrAbortHandler has the server
		// reset its stream (INTERNAL_ERROR), before its answer or in it.
		peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/abort-first":
				panic(http.ErrAbortHandler)
			case "/abort-later":
				w.Header().Set("X-Before", "1")
				w.Write([]byte("partial"))
				http.NewResponseController(w).Flush()
				panic(http.ErrAbortHandler)
			}
			w.Write([]byte("fine"))
		}))
		o := driveClient(t, peer.addr, ClientSettings{})
		var rs []*drivenReply
		for _, path := range []string{"/abort-first", "/abort-later", "/fine"} {
			s, err := o.c.NewStream(reqFields("GET", path), true)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, &drivenReply{s: s})
		}
		o.until("every answer", func() bool {
			over := true
			for _, r := range rs {
				over = r.poll() && over
			}
			return over
		})
		var re *ResetError
		if r := rs[0]; r.status != 0 || !errors.As(r.err, &re) || re.Code != http2.ErrCodeInternal {
			t.Errorf("reset before the answer: status %d, error %v; want a *ResetError INTERNAL_ERROR", r.status, r.err)
		}
		if _, _, err := rs[0].s.Answer(); !errors.As(err, &re) {
			t.Errorf("Answer again: %v, want the *ResetError again", err)
		}
		// The answer's header came before the reset; what came of its
		// body may have been read, or dropped with the reset.
		r := rs[1]
		if r.status != 200 || fieldValue(r.header, "x-before") != "1" || !strings.HasPrefix("partial", string(r.body)) {
			t.Errorf("reset in the answer: status %d, header %v, body %q", r.status, r.header, r.body)
		}
		if !errors.As(r.err, &re) || re.Code != http2.ErrCodeInternal {
			t.Errorf("reset in the answer: ReadAvailable's error %v, want a *ResetError INTERNAL_ERROR", r.err)
		}
		if _, err := r.s.WriteAvailable([]byte("x"), true); !errors.As(err, &re) {
			t.Errorf("WriteAvailable on the reset stream: %v, want its *ResetError", err)
		}
		if r := rs[2]; r.err != io.EOF || r.status != 200 || string(r.body) != "fine" {
			t.Errorf("the other stream: status %d, %q, end %v", r.status, r.body, r.err)
		}
		if o.c.Err() != nil || o.c.Streams() != 0 {
			t.Errorf("the connection: error %v, %d streams left", o.c.Err(), o.c.Streams())
		}
	})
	t.Run("not processed", func(t *testing.T) {
		// A server that refuses a stream, and one that goes away before
		// another, never processed them: they may be sent again.
		addr, accept := listenRaw(t)
		o := driveClient(t, addr, ClientSettings{})
		var rs []*drivenReply
		for _, path := range []string{"/1", "/3", "/5"} {
			s, err := o.c.NewStream(reqFields("GET", path), true)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, &drivenReply{s: s})
		}
		o.flush()
		p := accept()
		p.expectHeaders(5)
		p.rst(3, http2.ErrCodeRefusedStream)
		p.headers(1, false, ":status", "200")
		if err := p.fr.WriteGoAway(1, http2.ErrCodeNo, nil); err != nil {
			t.Fatal(err)
		}
		p.data(1, true, []byte("one"))
		// Once stream 1 is over, the connection going away has no
		// stream left, and ends: Feed reports it.
		o.until("every answer", func() bool {
			over := true
			for _, r := range rs {
				over = r.poll() && over
			}
			return over && o.ended
		})
		if r := rs[0]; r.err != io.EOF || r.status != 200 || string(r.body) != "one" {
			t.Errorf("stream 1: status %d, %q, end %v", r.status, r.body, r.err)
		}
		if r := rs[1]; r.err != ErrNotProcessed {
			t.Errorf("stream refused: %v, want ErrNotProcessed", r.err)
		}
		if r := rs[2]; r.err != ErrNotProcessed {
			t.Errorf("stream after the GOAWAY's last: %v, want ErrNotProcessed", r.err)
		}
		if _, err := o.c.NewStream(reqFields("GET", "/7"), true); err != ErrNotProcessed {
			t.Errorf("NewStream after the GOAWAY: %v, want ErrNotProcessed", err)
		}
		if !o.c.Full() {
			t.Errorf("a connection gone away is not full")
		}
		out, over := o.c.Take(nil)
		g := goAwayIn(framesOf(t, out))
		if !over || g == nil || g.ErrCode != http2.ErrCodeNo {
			t.Fatalf("Take after the end: over %v, GOAWAY %v; want over, a GOAWAY NO_ERROR", over, g)
		}
		if _, err := o.nc.Write(out); err != nil {
			t.Fatal(err)
		}
		o.nc.Close()
		if g := p.closedByClient(); g == nil || g.ErrCode != http2.ErrCodeNo {
			t.Errorf("the server read %v before the close, want a GOAWAY NO_ERROR", g)
		}
	})
}

// A connection the server closes fails its open streams with a
// *ConnError; an answer that came complete is still read.
func TestDrivenClientServerClosingTheConnection(t *testing.T) {
	t.Run("x/net closes the socket", func(t *testing.T) {
		started := make(chan string, 2)
		peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/complete":
				w.Write([]byte("complete"))
				return
			case "/answered":
				w.Write([]byte("first"))
				http.NewResponseController(w).Flush()
			}
			started <- r.URL.Path
			<-r.Context().Done()
		}))
		o := driveClient(t, peer.addr, ClientSettings{})
		var rs []*drivenReply
		for _, path := range []string{"/complete", "/answered", "/silent"} {
			s, err := o.c.NewStream(reqFields("GET", path), true)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, &drivenReply{s: s})
		}
		complete, answered, silent := rs[0], rs[1], rs[2]
		handlers := 0
		o.until("the handlers running, one answer complete", func() bool {
			select {
			case <-started:
				handlers++
			default:
			}
			answered.poll()
			// The complete answer is left unread.
			return handlers == 2 && string(answered.body) == "first" && o.c.Streams() == 2
		})
		peer.closeConns()
		o.until("the socket closed", func() bool { return o.sockErr != nil })
		if o.ended {
			t.Fatalf("Feed reported the end, with no GOAWAY")
		}
		o.c.Lost(o.sockErr)
		var ce *ConnError
		for _, r := range []*drivenReply{answered, silent} {
			r.poll()
			if !errors.As(r.err, &ce) {
				t.Errorf("an open stream's error %v, want a *ConnError", r.err)
			}
			if o.sockErr == io.EOF && !errors.Is(r.err, io.ErrUnexpectedEOF) {
				t.Errorf("an open stream's error %v, want io.ErrUnexpectedEOF for the server's close", r.err)
			}
		}
		if answered.status != 200 || silent.status != 0 {
			t.Errorf("statuses %d and %d, want 200 and none", answered.status, silent.status)
		}
		complete.poll()
		if complete.err != io.EOF || complete.status != 200 || string(complete.body) != "complete" {
			t.Errorf("the complete answer: status %d, %q, end %v", complete.status, complete.body, complete.err)
		}
		if out, over := o.c.Take(nil); !over || len(out) != 0 {
			t.Errorf("Take after Lost: %d bytes, over %v; want none, over", len(out), over)
		}
		if _, err := o.c.NewStream(reqFields("GET", "/"), true); err != ErrNotProcessed {
			t.Errorf("NewStream after Lost: %v, want ErrNotProcessed", err)
		}
		if !errors.As(o.c.Err(), &ce) {
			t.Errorf("the connection's error %v, want a *ConnError", o.c.Err())
		}
		// A second Lost, from an owner that closes the socket as well,
		// changes nothing.
		before := o.c.Err()
		o.c.Lost(io.EOF)
		if o.c.Err() != before {
			t.Errorf("a second Lost made the connection's error %v, was %v", o.c.Err(), before)
		}
	})
	t.Run("the server closes the socket after an answer", func(t *testing.T) {
		addr, accept := listenRaw(t)
		o := driveClient(t, addr, ClientSettings{})
		// The first request goes on after its answer came complete: the
		// stream stays open until the close.
		s1, _ := o.c.NewStream(reqFields("POST", "/1"), false)
		s3, _ := o.c.NewStream(reqFields("GET", "/3"), true)
		o.flush()
		p := accept()
		p.expectHeaders(3)
		p.headers(1, false, ":status", "200")
		p.data(1, true, []byte("done"))
		p.headers(3, false, ":status", "200")
		r1, r3 := &drivenReply{s: s1}, &drivenReply{s: s3}
		// The frames come in order: with the second answer's header, the
		// first answer is complete.
		o.until("the answers", func() bool { r3.poll(); return r3.status == 200 })
		if o.c.Streams() != 2 {
			t.Fatalf("%d streams open, want 2: the request whose answer is complete, and the open one", o.c.Streams())
		}
		p.nc.(*net.TCPConn).CloseWrite()
		o.until("the socket closed", func() bool { return o.sockErr != nil })
		if o.sockErr != io.EOF {
			t.Fatalf("the socket's end: %v, want io.EOF", o.sockErr)
		}
		o.c.Lost(io.EOF)
		var ce *ConnError
		if r3.poll(); !errors.As(r3.err, &ce) || !errors.Is(r3.err, io.ErrUnexpectedEOF) {
			t.Errorf("the open answer's error %v, want a *ConnError of io.ErrUnexpectedEOF", r3.err)
		}
		if r1.poll(); r1.err != io.EOF || r1.status != 200 || string(r1.body) != "done" {
			t.Errorf("the complete answer: status %d, %q, end %v", r1.status, r1.body, r1.err)
		}
		if _, err := s1.WriteAvailable([]byte("late"), true); err != ErrStreamClosed {
			t.Errorf("WriteAvailable after the close: %v, want ErrStreamClosed", err)
		}
		if o.c.Streams() != 0 {
			t.Errorf("%d streams left", o.c.Streams())
		}
	})
	t.Run("the server goes away with an error", func(t *testing.T) {
		addr, accept := listenRaw(t)
		o := driveClient(t, addr, ClientSettings{})
		s1, _ := o.c.NewStream(reqFields("POST", "/1"), false)
		s3, _ := o.c.NewStream(reqFields("GET", "/3"), true)
		o.flush()
		p := accept()
		p.expectHeaders(3)
		p.headers(1, false, ":status", "200")
		p.data(1, true, []byte("done"))
		if err := p.fr.WriteGoAway(3, http2.ErrCodeInternal, []byte("bye")); err != nil {
			t.Fatal(err)
		}
		o.until("Feed over", func() bool { return o.ended })
		r1, r3 := &drivenReply{s: s1}, &drivenReply{s: s3}
		var ce *ConnError
		if r3.poll(); !errors.As(r3.err, &ce) || !strings.Contains(r3.err.Error(), "bye") {
			t.Errorf("the open stream's error %v, want a *ConnError with the GOAWAY's", r3.err)
		}
		if r1.poll(); r1.err != io.EOF || r1.status != 200 || string(r1.body) != "done" {
			t.Errorf("the complete answer: status %d, %q, end %v", r1.status, r1.body, r1.err)
		}
		if _, over := o.c.Take(nil); !over {
			t.Errorf("Take after the end: not over")
		}
		if o.c.Feed([]byte{0, 0, 0}) {
			t.Errorf("Feed after the end reported the connection on")
		}
	})
}

// A header block in CONTINUATION frames is read once it ends; one that
// goes on past twice the header list the client takes and a frame ends
// the connection with a GOAWAY, without waiting for its end.
func TestDrivenClientContinuationFloodSendsGoAway(t *testing.T) {
	const limit = 4 << 10
	addr, accept := listenRaw(t)
	o := driveClient(t, addr, ClientSettings{MaxHeaderListSize: limit})
	o.cut = 512
	s1, _ := o.c.NewStream(reqFields("GET", "/1"), true)
	s3, _ := o.c.NewStream(reqFields("GET", "/3"), true)
	o.flush()
	p := accept()
	p.expectHeaders(3)

	// Stream 1: a header block under the limit, in many CONTINUATION
	// frames, is read.
	p.hbuf.Reset()
	var fields []string
	for i := range 30 {
		fields = append(fields, fmt.Sprintf("x-field-%02d", i), fmt.Sprintf("%x", randomBytes(30, uint64(i))))
	}
	p.enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	for i := 0; i < len(fields); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	block := bytes.Clone(p.hbuf.Bytes())
	frags := 0
	for off := 0; off < len(block); off += 300 {
		frag := block[off:min(off+300, len(block))]
		end := off+300 >= len(block)
		var err error
		if off == 0 {
			err = p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: frag, EndStream: true, EndHeaders: end})
		} else {
			err = p.fr.WriteContinuation(1, end, frag)
		}
		if err != nil {
			t.Fatal(err)
		}
		frags++
	}
	if frags < 5 {
		t.Fatalf("the block took %d frames only", frags)
	}
	r1 := &drivenReply{s: s1}
	o.until("the answer in CONTINUATION frames", r1.poll)
	if r1.err != io.EOF || r1.status != 200 || len(r1.header) != 30 || fieldValue(r1.header, "x-field-29") != fields[59] {
		t.Fatalf("answer in %d frames: status %d, %d fields, end %v", frags, r1.status, len(r1.header), r1.err)
	}

	// Stream 3: a block without end. The flood is written from a
	// goroutine of its own: the client stops reading it.
	fedBefore := o.fed
	flooded := make(chan int, 1)
	go func() {
		sent := 0
		err := p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: []byte{0x88}})
		for err == nil && sent < 1<<20 {
			err = p.fr.WriteContinuation(3, false, make([]byte, 1024))
			sent += 1024
		}
		flooded <- sent
	}()
	o.until("Feed over", func() bool { return o.ended })
	// The block is let go once it passes twice the header list the
	// client takes and a frame: a piece of what was read more at most.
	if got, most := o.fed-fedBefore, 2*limit+16<<10+9+1024+9+o.cut; got > most {
		t.Errorf("Feed took %d bytes of the flood before its end, want %d at most", got, most)
	}
	out, over := o.c.Take(nil)
	g := goAwayIn(framesOf(t, out))
	if !over || g == nil || g.ErrCode != http2.ErrCodeProtocol {
		t.Fatalf("Take after the flood: over %v, GOAWAY %v; want over and a GOAWAY PROTOCOL_ERROR", over, g)
	}
	r3 := &drivenReply{s: s3}
	var ce *ConnError
	if r3.poll(); !errors.As(r3.err, &ce) || !errors.Is(r3.err, errHeaderBlockSize) {
		t.Errorf("the flooded stream's error %v, want a *ConnError of errHeaderBlockSize", r3.err)
	}
	if o.c.Feed(make([]byte, 1024)) {
		t.Errorf("Feed after the end reported the connection on")
	}
	o.nc.Write(out)
	o.nc.Close()
	// The socket's buffers may take the whole flood: the writer ends
	// either way.
	waitFor(t, "the flood's end", flooded)
}

// untouchedConn is a socket given to a driven connection, which the
// connection may ask for its addresses and nothing else.
type untouchedConn struct {
	net.Conn
	mu      sync.Mutex
	touched []string
}

func (c *untouchedConn) touch(what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.touched = append(c.touched, what)
	return errors.New("the owner's socket")
}

func (c *untouchedConn) Read([]byte) (int, error)         { return 0, c.touch("Read") }
func (c *untouchedConn) Write([]byte) (int, error)        { return 0, c.touch("Write") }
func (c *untouchedConn) Close() error                     { return c.touch("Close") }
func (c *untouchedConn) SetDeadline(time.Time) error      { return c.touch("SetDeadline") }
func (c *untouchedConn) SetReadDeadline(time.Time) error  { return c.touch("SetReadDeadline") }
func (c *untouchedConn) SetWriteDeadline(time.Time) error { return c.touch("SetWriteDeadline") }

func (c *untouchedConn) uses() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slicesClone(c.touched)
}

// goroutineID is the calling goroutine's number.
func goroutineID() string {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	return s[:strings.IndexByte(s, ' ')]
}

// startedBy lists the goroutines running that the package started from
// the goroutine id.
func startedBy(id string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		_, creator, ok := strings.Cut(g, "\ncreated by ")
		if !ok {
			continue
		}
		// The function that started it, in which goroutine, and its
		// file: one of the package's, not of its tests.
		fn, file, _ := strings.Cut(creator, "\n")
		file = strings.TrimSpace(file)
		if strings.HasPrefix(fn, "github.com/podpin/podpin/internal/h2.") && strings.HasSuffix(fn, " in goroutine "+id) &&
			!strings.Contains(file, "_test.go:") {
			found = append(found, g)
		}
	}
	return found
}

// A driven connection never reads, writes or closes its socket, starts
// no goroutine, and tells its owner of frames from the owner's own calls.
func TestDrivenClientNeitherWaitsNorTouchesItsSocket(t *testing.T) {
	peer := serveXNet(t, &http2.Server{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, n)
	}))
	nc, err := net.Dial("tcp", peer.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	me := goroutineID()
	var elsewhere atomic.Int64
	given := &untouchedConn{Conn: nc}
	o := &clientOwner{t: t, nc: nc, buf: make([]byte, 32<<10)}
	o.c = DriveClient(given, ClientSettings{}, func() {
		// Told from the owner's calls only: no goroutine of the
		// package runs to tell it.
		if goroutineID() != me {
			elsewhere.Add(1)
		}
		o.notes.Add(1)
	})
	s, err := o.c.NewStream(reqFields("POST", "/"), false)
	if err != nil {
		t.Fatal(err)
	}
	body := randomBytes(300<<10, 9)
	sent := 0
	r := &drivenReply{s: s}
	o.until("the exchange", func() bool {
		if sent < len(body) {
			n, err := s.WriteAvailable(body[sent:], true)
			if err != nil {
				t.Fatal(err)
			}
			sent += n
		}
		return r.poll()
	})
	if r.err != io.EOF || string(r.body) != strconv.Itoa(len(body)) {
		t.Fatalf("answer: status %d, %q, end %v", r.status, r.body, r.err)
	}
	// Close ends the connection, its socket left to the owner: a GOAWAY
	// waits to be taken, and the owner is told.
	s2, _ := o.c.NewStream(reqFields("GET", "/"), true)
	o.flush()
	notes := o.notes.Load()
	o.c.Close()
	if o.notes.Load() != notes+1 {
		t.Errorf("Close: note called %d times, want once", o.notes.Load()-notes)
	}
	out, over := o.c.Take(nil)
	if g := goAwayIn(framesOf(t, out)); !over || g == nil || g.ErrCode != http2.ErrCodeNo {
		t.Errorf("Take after Close: over %v, GOAWAY %v; want over, a GOAWAY NO_ERROR", over, g)
	}
	var ce *ConnError
	if r2 := (&drivenReply{s: s2}); !r2.poll() || !errors.As(r2.err, &ce) || !errors.Is(r2.err, net.ErrClosed) {
		t.Errorf("a stream open at Close: %v, want a *ConnError of net.ErrClosed", r2.err)
	}
	o.c.Lost(net.ErrClosed)
	if uses := given.uses(); len(uses) > 0 {
		t.Errorf("the client used the owner's socket: %v", uses)
	}
	if n := elsewhere.Load(); n > 0 {
		t.Errorf("note called %d times from another goroutine than the owner's", n)
	}
	if gs := startedBy(me); len(gs) > 0 {
		t.Errorf("the client started goroutines:\n%s", strings.Join(gs, "\n\n"))
	}
}

func TestDrivenClientEndsItsRequestWhateverTheStreamsWindow(t *testing.T) {
	// The server's streams take 10 bytes, then none: its SETTINGS make
	// the window of a stream that used them negative. A request's end
	// with no bytes is not flow-controlled: it goes all the same.
	addr, accept := listenRaw(t, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 10})
	o := driveClient(t, addr, ClientSettings{})
	s, _ := o.c.NewStream(reqFields("POST", "/"), false)
	o.flush()
	p := accept()
	o.until("the server's SETTINGS", o.c.Settled)
	if n, err := s.WriteAvailable([]byte("0123456789abcdef"), false); n != 10 || err != nil {
		t.Fatalf("WriteAvailable in a window of 10: %d %v", n, err)
	}
	o.flush()
	p.expectHeaders(1)
	d := p.until(func(f http2.Frame) bool { _, ok := f.(*dataFrame); return ok }).(*dataFrame)
	if string(d.payload) != "0123456789" || d.StreamEnded() {
		t.Fatalf("DATA %q, end %v", d.payload, d.StreamEnded())
	}
	if err := p.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	o.until("the new SETTINGS taken", func() bool {
		o.c.mu.Lock()
		defer o.c.mu.Unlock()
		return s.send < 0
	})
	if n, err := s.WriteAvailable([]byte("abcdef"), true); n != 0 || err != nil {
		t.Fatalf("WriteAvailable with a negative window: %d %v, want 0, nil", n, err)
	}
	if n, err := s.WriteAvailable(nil, true); n != 0 || err != nil {
		t.Fatalf("WriteAvailable of the request's end: %d %v, want 0, nil", n, err)
	}
	o.flush()
	d = p.until(func(f http2.Frame) bool { _, ok := f.(*dataFrame); return ok }).(*dataFrame)
	if len(d.payload) != 0 || !d.StreamEnded() {
		t.Fatalf("DATA %q, end %v; want an empty DATA ending the request", d.payload, d.StreamEnded())
	}
	if _, err := s.WriteAvailable(nil, true); err != ErrStreamClosed {
		t.Errorf("WriteAvailable after the request's end: %v, want ErrStreamClosed", err)
	}
}

func TestDrivenClientAndDrivenServerOnOneGoroutine(t *testing.T) {
	// Both ends driven by one goroutine, which passes the bytes each
	// Take gives to the other's Feed: the server's owner serves its
	// streams itself, reading their bodies with ReadAvailable, and
	// echoes them. Both windows are smaller than the bodies.
	srv := &Server{Settings: Settings{WindowSize: 16 << 10}}
	var served []*Stream
	cnc, snc := net.Pipe()
	cconn, sconn := &untouchedConn{Conn: cnc}, &untouchedConn{Conn: snc}
	d := srv.Drive(sconn, func() {}, func(st *Stream) bool {
		served = append(served, st)
		return true
	}, nil)
	if d == nil {
		t.Fatal("Drive: the server is closed")
	}
	t.Cleanup(func() {
		d.Close()
		srv.Close()
		cnc.Close()
		snc.Close()
	})
	c := DriveClient(cconn, ClientSettings{WindowSize: 16 << 10}, func() {})

	type echo struct {
		body, got []byte // the request's body, and what the server read of it
		back      int    // how much of it the server sent back
		answered  bool
		sent      int
		r         drivenReply
	}
	const n = 8
	xs := make([]*echo, n)
	for i := range xs {
		s, err := c.NewStream(reqFields("POST", fmt.Sprint("/", i)), false)
		if err != nil {
			t.Fatal(err)
		}
		xs[i] = &echo{body: randomBytes(50<<10+i*20011, uint64(i)), r: drivenReply{s: s}}
	}
	byPath := map[string]*echo{}
	for i, x := range xs {
		byPath[fmt.Sprint("/", i)] = x
	}
	buf := make([]byte, 3000)
	deadline := time.Now().Add(wait)
	for {
		// The bytes, both ways.
		if out, over := c.Take(nil); over {
			t.Fatalf("the client's connection ended: %v", c.Err())
		} else if len(out) > 0 && !d.Feed(out) {
			t.Fatalf("the server's connection ended")
		}
		if out, over := d.Take(nil); over {
			t.Fatalf("the server's connection ended")
		} else if len(out) > 0 && !c.Feed(out) {
			t.Fatalf("the client's connection ended: %v", c.Err())
		}
		// The server's owner: what came of each body, then the echo.
		for _, st := range served {
			x := byPath[st.Path]
			if x == nil || x.answered && x.back == len(x.got) {
				continue
			}
			for !x.answered {
				m, err := st.ReadAvailable(buf)
				x.got = append(x.got, buf[:m]...)
				if err == io.EOF {
					st.WriteHeaders(200, []HeaderField{{Name: "x-len", Value: strconv.Itoa(len(x.got))}}, false)
					x.answered = true
				} else if err != nil {
					t.Fatalf("ReadAvailable on %s: %v", st.Path, err)
				} else if m == 0 {
					break
				}
			}
			if x.answered {
				m, err := st.WriteAvailable(x.got[x.back:], true)
				if err != nil {
					t.Fatalf("the server's WriteAvailable: %v", err)
				}
				if x.back += m; x.back == len(x.got) {
					d.Finish(st)
				}
			}
		}
		// The client's owner: a piece of each body, and the answers.
		over := 0
		for _, x := range xs {
			if x.sent < len(x.body) {
				piece := x.body[x.sent:min(x.sent+7000, len(x.body))]
				m, err := x.r.s.WriteAvailable(piece, x.sent+len(piece) == len(x.body))
				if err != nil {
					t.Fatalf("the client's WriteAvailable: %v", err)
				}
				x.sent += m
			}
			if x.r.poll() {
				over++
			}
		}
		if over == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the echoes not over within %v", wait)
		}
	}
	for i, x := range xs {
		if !bytes.Equal(x.got, x.body) {
			t.Errorf("stream %d: the server read %d bytes of %d, or other bytes", i, len(x.got), len(x.body))
		}
		if r := x.r; r.err != io.EOF || r.status != 200 || !bytes.Equal(r.body, x.body) || fieldValue(r.header, "x-len") != strconv.Itoa(len(x.body)) {
			t.Errorf("stream %d: status %d, %d bytes back of %d, end %v", i, r.status, len(r.body), len(x.body), r.err)
		}
	}
	if len(served) != n {
		t.Errorf("the server's owner served %d streams, want %d", len(served), n)
	}
	if uses := cconn.uses(); len(uses) > 0 {
		t.Errorf("the client used its socket: %v", uses)
	}
	if uses := sconn.uses(); len(uses) > 0 {
		t.Errorf("the server used its socket: %v", uses)
	}
}
