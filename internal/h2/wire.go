package h2

import (
	"io"
	"iter"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// maxReadFrame is the largest frame read (SETTINGS_MAX_FRAME_SIZE's
// default, which podpin keeps).
const maxReadFrame = 16 << 10

// maxPending is how many bytes of frames a connection holds for its
// socket before a stream's write waits for the socket to take some.
const maxPending = 256 << 10

// wire is the sending side of a connection, the server's and the
// client's alike: frames are written under mu into out, and given to the
// socket in one write by the first goroutine that asks (sendLocked), or by
// the connection's writer goroutine (writeLoop) for frames that must not
// wait for the socket (those the reader writes). It also holds the
// connection's window towards the peer and the HPACK encoder.
type wire struct {
	nc     net.Conn
	fr     *http2.Framer // reads from the owner's reader, writes into out
	owner  wireOwner
	flushc chan struct{} // wakes the writer; capacity 1
	wdone  chan struct{} // closed when the writer is gone

	// guards everything below, the owner's state, and every write of fr
	mu    sync.Mutex
	out   []byte // frames written, not yet given to the socket
	spare []byte // the buffer of the last write, for the next out
	// writing: a goroutine is writing to the socket; writes counts the
	// writes begun.
	writing bool
	writes  int
	// waits counts the times a stream's write waited for window or for
	// room in out.
	waits   int
	broken  bool   // a write failed
	closing bool   // the writer closes the socket once out is sent
	hbuf    []byte // a header block being encoded (hpack.go)
	// lower is a field name in lower case, and encodeField adds a field
	// given as bytes (encodeBytesLocked).
	lower       []byte
	encodeField func(name, value []byte) bool
	// sizeUpdate: the next header block starts with a dynamic table
	// size update (to 0).
	sizeUpdate bool
	// send is the connection's flow-control window towards the peer;
	// initialSend the peer's SETTINGS_INITIAL_WINDOW_SIZE.
	send, initialSend int64
	peerMaxFrame      uint32
	// waiting wake the writes that wait for the connection's window or
	// for room in out.
	waiting []chan struct{}
	// block reads the peer's header blocks (block.go).
	block headerBlock
	// note, on a connection whose socket its owner writes (Driven), is
	// told that frames wait in out; noted: told since the owner last
	// took them, or the owner takes them anyway. The wire then never
	// writes to the socket itself.
	note  func()
	noted bool
}

// wireOwner is the connection a wire sends for.
type wireOwner interface {
	// lostLocked fails every stream: a write to the socket failed
	// with err.
	lostLocked(err error)
}

func (w *wire) init(nc net.Conn, br io.Reader, owner wireOwner) {
	w.nc, w.owner = nc, owner
	w.flushc = make(chan struct{}, 1)
	w.wdone = make(chan struct{})
	w.send, w.initialSend, w.peerMaxFrame = 65535, 65535, 16384
	w.fr = http2.NewFramer(outWriter{w}, br)
	w.fr.SetMaxReadFrameSize(maxReadFrame)
	w.fr.SetReuseFrames()
	// Nothing podpin sends is indexed (hpack.go): the fields that change
	// from one message to the next would only be inserted and evicted
	// again, and no field outlives its write.
	w.sizeUpdate = true
}

// outWriter is where the framer writes: the connection's pending frames.
type outWriter struct{ w *wire }

func (o outWriter) Write(b []byte) (int, error) {
	o.w.out = append(o.w.out, b...)
	return len(b), nil
}

// wake signals ch without blocking.
func wake(ch chan struct{}) {
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// flushLocked wakes the writer, or tells the owner who writes instead.
func (w *wire) flushLocked() {
	if w.note != nil {
		w.noteLocked()
		return
	}
	wake(w.flushc)
}

// noteLocked tells a driven connection's owner that frames wait, once
// until it takes them.
func (w *wire) noteLocked() {
	if !w.noted {
		w.noted = true
		w.note()
	}
}

// wakeWaitingLocked wakes the writes waiting for the connection's window
// or for room in out.
func (w *wire) wakeWaitingLocked() {
	for _, ch := range w.waiting {
		wake(ch)
	}
	clear(w.waiting)
	w.waiting = w.waiting[:0]
}

// sendLocked gives the socket, in one write, everything written since the
// last one, from the calling goroutine (a stream's), unless another
// goroutine is writing: that one sends it next, together with whatever else
// comes meanwhile, so that the frames of every stream ready at once go out
// together. mu is held on entry and on return, not while the socket is
// written.
func (w *wire) sendLocked() {
	if w.note != nil {
		w.noteLocked()
		return
	}
	if w.writing || w.broken {
		return
	}
	w.writing = true
	wrote := false
	for len(w.out) > 0 && !w.broken {
		wrote = true
		buf := w.out
		w.out, w.spare = w.spare[:0], nil
		w.writes++
		w.wakeWaitingLocked()
		w.mu.Unlock()
		_, err := w.nc.Write(buf)
		w.mu.Lock()
		w.spare = buf[:0]
		if err != nil {
			w.broken, w.closing = true, true
			w.owner.lostLocked(err)
			w.nc.Close()
		}
	}
	w.writing = false
	if wrote {
		// Room in out for those who came during the last write. With
		// nothing written, nothing changed for them: waking them would
		// have a write that waits for the window spin.
		w.wakeWaitingLocked()
	}
	if w.closing {
		// The writer closes the socket once nothing is left.
		w.flushLocked()
	}
}

// writeLoop sends what the reader wrote (SETTINGS, PING and WINDOW_UPDATE
// frames, resets), which must not wait for the socket itself, and once
// the connection is closing and everything is sent, closes the socket's
// writing side.
func (w *wire) writeLoop() {
	defer close(w.wdone)
	deadline := false
	for range w.flushc {
		w.mu.Lock()
		if w.closing && !deadline {
			// The last frames (a GOAWAY) get a moment, not more.
			w.nc.SetWriteDeadline(time.Now().Add(time.Second))
			deadline = true
		}
		w.sendLocked()
		done := w.closing && !w.writing && (len(w.out) == 0 || w.broken)
		w.mu.Unlock()
		if done {
			// The peer reads what was sent before it learns of the
			// close: its last frames are read and dropped for a moment,
			// rather than the socket being reset under them.
			if cw, ok := w.nc.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			w.nc.SetReadDeadline(time.Now().Add(time.Second))
			return
		}
	}
}

// encodeLocked adds fields to the header block in hbuf, names in lower
// case, without pseudo-header and connection-specific fields.
func (w *wire) encodeLocked(fields []HeaderField) {
	for _, f := range fields {
		name := f.Name
		if hasUpper(name) {
			name = strings.ToLower(name)
		}
		if sendable(name, f.Value) {
			appendField(w, name, f.Value)
		}
	}
}

// encodeBytesLocked is encodeLocked for fields given as bytes.
func (w *wire) encodeBytesLocked(fields iter.Seq2[[]byte, []byte]) {
	if w.encodeField == nil {
		// Made once: a function literal here would be made for every
		// block.
		w.encodeField = w.encodeFieldLocked
	}
	fields(w.encodeField)
}

// encodeFieldLocked adds one field given as bytes to the header block,
// as encodeLocked does.
func (w *wire) encodeFieldLocked(name, value []byte) bool {
	lower := w.lower[:0]
	for _, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower = append(lower, c)
	}
	w.lower = lower
	if sendable(lower, value) {
		appendField(w, lower, value)
	}
	return true
}

// sendable reports whether a field (name in lower case) may go in an
// HTTP/2 header block: not a pseudo-header or connection-specific field,
// and a TE field only when it says "trailers" (RFC 9113, 8.2.2).
func sendable[T text](name, value T) bool {
	return len(name) > 0 && name[0] != ':' && !isConnectionField(string(name)) &&
		(string(name) != "te" || strings.EqualFold(string(value), "trailers"))
}

// writeBlockLocked writes the header block in hbuf as HEADERS and the
// CONTINUATION frames the peer's frame size needs.
func (w *wire) writeBlockLocked(id uint32, end bool) {
	block := w.hbuf
	n := min(len(block), int(w.peerMaxFrame))
	w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:n], EndStream: end, EndHeaders: n == len(block)})
	for block = block[n:]; len(block) > 0; block = block[n:] {
		n = min(len(block), int(w.peerMaxFrame))
		w.fr.WriteContinuation(id, n == len(block), block[:n])
	}
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// sender is a stream's sending side, the server's and the client's alike:
// its window towards the peer, and the wake of a write waiting for it.
// Guarded by the wire's mu.
type sender struct {
	send  int64
	wwake chan struct{}
}

// onSettingsLocked applies the peer's SETTINGS f (not an ACK), in the
// order they come, a repeated one too: the initial window to the send
// windows of the open streams, the frame size to the wire, any other
// setting through other (nil: none). It acknowledges them and wakes the
// streams' writes.
func (w *wire) onSettingsLocked(f *http2.SettingsFrame, streams iter.Seq[*sender], other func(http2.Setting)) error {
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - w.initialSend
			w.initialSend = int64(s.Val)
			for st := range streams {
				st.send += delta
				if st.send > 1<<31-1 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
		case http2.SettingMaxFrameSize:
			w.peerMaxFrame = s.Val
		case http2.SettingHeaderTableSize:
			// Whatever its size, the table podpin's encoder uses stays
			// empty: said again at the next block.
			w.sizeUpdate = true
		default:
			if other != nil {
				other(s)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w.fr.WriteSettingsAck()
	w.flushLocked()
	for st := range streams {
		wake(st.wwake)
	}
	return nil
}

// onWindowUpdateLocked applies WINDOW_UPDATE f: to the connection's
// window, or to st's, the stream f names (nil when it is not open).
func (w *wire) onWindowUpdateLocked(f *http2.WindowUpdateFrame, st *sender) error {
	inc := int64(f.Increment)
	switch {
	case f.StreamID == 0:
		w.send += inc
		if w.send > 1<<31-1 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		w.wakeWaitingLocked()
	case st != nil:
		st.send += inc
		if st.send > 1<<31-1 {
			return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
		}
		wake(st.wwake)
	}
	return nil
}
