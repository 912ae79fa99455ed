package proxy

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/podpin/podpin/internal/h2"
	"github.com/podpin/podpin/internal/place"
)

// Streams to h2c pods on the event loops: gRPC above all. A loop holds
// HTTP/2 connections of its own to the h2c pods (the HTTP/2 client in
// driven mode, h2.DriveClient), and forwards a stream to such a route
// frame for frame, both ways, without a goroutine: the client's body as
// it comes and as the pod's flow control takes it, the answer's header,
// body and trailers as they come and as the client's flow control takes
// them. What the loop writes in a wake goes out in one write per
// connection, client or pod, as HAProxy's multiplexers write: a gRPC
// message costs a read and a write on each side at most, and many
// messages share them under load.
//
// The exchange keeps to forwardH2's rules: what the client sent is kept
// (up to maxReplay) until the answer begins, so that a call whose pod
// connection was lost before any answer goes again on a fresh one; a pod
// that refuses the connection hands the key on (moveOn); a call that
// fails ends with a status a gRPC client reads.

// startCall sends ex, decided, to its pod, an h2c one.
func (l *eventLoop) startCall(ex *loopExchange) {
	ex.start = time.Now()
	ex.first = ex.start
	ex.bodyHeard = l.now
	ex.until = ex.r.deadline(ex.start, ex.start)
	ex.grpc = isGRPCType(ex.s.HeaderValue("content-type"))
	ex.pd.tally.Start()
	l.busy = append(l.busy, ex)
	l.call(ex)
}

// call opens ex's stream on a connection to its pod, and sends what it
// has of the request.
func (l *eventLoop) call(ex *loopExchange) {
	pc, err := l.h2Conn(ex.pd)
	if err != nil {
		l.callFailed(ex, err)
		return
	}
	fields := podFields(ex.s, ex.r, &ex.d, ex.pd, ex.c.cc, ex.c.sec != nil)
	end := !ex.s.HasBody || ex.bodyEOF && len(ex.reqHeld) == 0
	cs, err := pc.h2.NewStream(fields, end)
	if err != nil {
		l.callFailed(ex, err)
		return
	}
	ex.cs, ex.hc = cs, pc
	ex.reqEnd = end
	ex.tries++
	pc.calls = append(pc.calls, ex)
	l.markPod(pc)
	l.pump(ex)
}

// h2Conn is a connection of the loop's to pd with room for a stream: one
// it has, or a new one (upstream.maxConnsPerPod bounds them).
func (l *eventLoop) h2Conn(pd *pod) (*loopPod, error) {
	for _, pc := range l.h2pods[pd.backend] {
		if !pc.h2.Full() {
			return pc, nil
		}
	}
	pc, err := l.dial(pd.backend, l.pool(pd.backend).sa)
	if err != nil {
		return nil, err
	}
	pc.h2 = h2.DriveClient(nil, h2.ClientSettings{WindowSize: 1 << 20}, func() { l.markPod(pc) })
	l.h2pods[pd.backend] = append(l.h2pods[pd.backend], pc)
	return pc, nil
}

// markPod has pc's frames written at the end of the loop's turn.
func (l *eventLoop) markPod(pc *loopPod) {
	if !pc.dirty {
		pc.dirty = true
		l.dirtyPods = append(l.dirtyPods, pc)
	}
}

// pump moves what it can of ex's exchange: the client's reset, its body
// to the pod, the pod's answer to the client.
func (l *eventLoop) pump(ex *loopExchange) {
	l.markDirty(ex.c)
	if ex.s.Err() != nil {
		// The client reset its stream, or its connection ended: the
		// pod's is reset as the call is left (leaveCall).
		l.abortStream(ex)
		return
	}
	if !ex.reqEnd && !l.pumpRequest(ex) {
		return
	}
	l.pumpAnswer(ex)
}

// pumpRequest sends the pod what came of the client's body, as far as
// the pod's flow control takes it; what it does not take is held, and
// the client's stream not read meanwhile. It reports false when the
// exchange ended: the body failed for the client's fault.
func (l *eventLoop) pumpRequest(ex *loopExchange) bool {
	for {
		// What waits from before, or what the client sent since, read
		// into the loop's buffer: only what the pod does not take is
		// copied to be held.
		data := ex.reqHeld
		if len(data) == 0 && !ex.bodyEOF {
			n, err := ex.s.ReadAvailable(l.callBuf)
			data = l.callBuf[:n]
			ex.sentBody += int64(n)
			if n > 0 {
				ex.bodyHeard = l.now
			}
			limit := ex.st.limits.maxBodyBytes
			switch {
			case limit > 0 && ex.sentBody > limit:
				l.bodyFault(ex, errBodyTooLarge)
				return false
			case err == io.EOF:
				ex.bodyEOF = true
			case err != nil:
				return true // a reset: pump sees it next
			case n == 0:
				return true
			}
		}
		m, err := ex.cs.WriteAvailable(data, ex.bodyEOF)
		if err != nil {
			return true // the pod's stream failed: pumpAnswer sees it
		}
		if !ex.replayOff {
			if len(ex.kept)+m > maxReplay {
				ex.kept, ex.replayOff = ex.kept[:0], true
			} else {
				ex.kept = append(ex.kept, data[:m]...)
			}
		}
		if m < len(data) {
			// The pod's window is full.
			if len(ex.reqHeld) > 0 {
				ex.reqHeld = ex.reqHeld[:copy(ex.reqHeld, ex.reqHeld[m:])]
			} else {
				ex.reqHeld = append(ex.reqHeld, data[m:]...)
			}
			return true
		}
		ex.reqHeld = ex.reqHeld[:0]
		if ex.bodyEOF {
			ex.reqEnd = true
			return true
		}
	}
}

// bodyFault ends ex, whose client's body failed for the client's fault
// (err: too large, or too slow): before the answer, with the status for
// it; after, a gRPC call with that status in its trailers (bodyBroken),
// any other answer with a reset.
func (l *eventLoop) bodyFault(ex *loopExchange, err error) {
	l.forgetCall(ex)
	if !ex.head {
		ex.pd.tally.Stop()
	}
	ex.clientFault = true
	if ex.head {
		l.settleCall(ex, bodyStatus(err), false)
		l.markDirty(ex.c)
		ex.held = ex.held[:0] // the call ends here, what waits with it
		bodyBroken(err).end(ex.s, ex.grpc)
		l.streamOver(ex, ex.status)
		return
	}
	l.settleCall(ex, bodyStatus(err), false)
	l.streamReply(ex, bodyStatus(err), err.Error())
}

// pumpAnswer passes on what came of the pod's answer, as far as the
// client's flow control takes it; while loopWriteMax bytes wait for the
// client, the pod's stream is not read, and its window closes.
func (l *eventLoop) pumpAnswer(ex *loopExchange) {
	cs := ex.cs
	buf := l.callBuf
	if !ex.head {
		code, header, err := cs.Answer()
		if err != nil {
			l.callLost(ex, err)
			return
		}
		if code == 0 {
			return
		}
		ex.pd.tally.Stop()
		ex.head, ex.status = true, code
		ex.kept, ex.replayOff = ex.kept[:0], true
		out := l.p.answerFields(ex.s, ex.st, ex.r, &ex.d, ex.pd, ex.c.cc, ex.c.sec != nil, header)
		n, err := cs.ReadAvailable(buf)
		if n == 0 && err == io.EOF && len(cs.Trailer()) == 0 {
			// The header is the whole answer (a gRPC trailers-only
			// one).
			l.settleCall(ex, answeredStatus(code, header, nil), false)
			l.forgetCall(ex)
			if ex.s.WriteHeaders(code, out, true) != nil {
				l.abortStream(ex)
				return
			}
			l.streamOver(ex, ex.status)
			return
		}
		ex.answerHeader = header
		if ex.s.WriteHeaders(code, out, false) != nil {
			l.abortStream(ex)
			return
		}
		if !l.answerBytes(ex, buf[:n], err) {
			return
		}
	}
	for len(ex.held) < loopWriteMax {
		n, err := cs.ReadAvailable(buf)
		if n == 0 && err == nil {
			return
		}
		if !l.answerBytes(ex, buf[:n], err) {
			return
		}
	}
}

// answerBytes passes b, the next bytes of ex's answer, and then its end
// when err says so (io.EOF: its end, with its trailers; another error: the
// pod failed it). It reports whether the answer goes on.
func (l *eventLoop) answerBytes(ex *loopExchange, b []byte, err error) bool {
	switch {
	case err == io.EOF:
		ex.trailers = ex.cs.Trailer()
		l.settleCall(ex, answeredStatus(ex.status, ex.answerHeader, ex.trailers), false)
		// sendOn ends the stream once all is sent.
		l.forgetCall(ex)
		l.streamSend(ex, b, true)
		return false
	case err != nil:
		if len(b) > 0 {
			l.streamSend(ex, b, false)
		}
		l.callBroke(ex)
		return false
	}
	cs := ex.cs
	if len(b) > 0 {
		l.streamSend(ex, b, false)
	}
	// A write that failed ended the exchange.
	return ex.cs == cs
}

// callLost handles ex, whose pod's stream failed with err before the
// answer began: once more on a fresh connection when the pod's connection
// was lost under it and what the client sent is kept, another pod when
// the key may move (moveOn), else the status for err.
func (l *eventLoop) callLost(ex *loopExchange, err error) {
	l.forgetCall(ex)
	replayable := !ex.s.HasBody || !ex.replayOff
	if next := ex.r.moveOn(&ex.d, ex.pd, err, func() bool { return !replayable }); next != nil && h2cServed(next) {
		ex.pd.tally.Stop()
		ex.pd = next
		ex.pd.tally.Start()
		ex.start, ex.tries = time.Now(), 0
		ex.until = ex.r.deadline(ex.first, ex.start)
		l.recall(ex)
		return
	}
	if ex.tries < 2 && (lostEarly(err) || err == h2.ErrNotProcessed) && replayable {
		l.recall(ex)
		return
	}
	l.callFailed(ex, err)
}

// recall sends ex again, on a fresh stream: with what was kept of the
// client's body ahead of what waits.
func (l *eventLoop) recall(ex *loopExchange) {
	if len(ex.kept) > 0 {
		ex.reqHeld = append(ex.kept, ex.reqHeld...)
		ex.kept = nil
	}
	l.call(ex)
}

// callFailed answers ex, whose pod failed it with err before any answer.
func (l *eventLoop) callFailed(ex *loopExchange, err error) {
	code := http.StatusBadGateway
	msg := "pod " + ex.pd.name + " failed: " + podStreamReason(err)
	if ex.timedOut {
		code, msg = http.StatusGatewayTimeout, "pod "+ex.pd.name+" failed: no response in time"
	}
	ex.r.Log.Debug("pod failed", "pod", ex.pd.name, "err", err)
	ex.pd.tally.Stop()
	l.settleCall(ex, code, true)
	l.streamReply(ex, code, msg)
}

// callBroke ends ex, whose pod failed mid-answer (or the route's timeouts
// ran out): a gRPC call with a status, any other answer reset.
func (l *eventLoop) callBroke(ex *loopExchange) {
	l.forgetCall(ex)
	b := brokenAnswer(ex.s, ex.pd.name, ex.timedOut, ex.start)
	ex.r.Log.Debug("pod failed mid-answer", "pod", ex.pd.name)
	l.settleCall(ex, b.status, b.failed)
	l.markDirty(ex.c)
	if ex.grpc && len(ex.held) > 0 {
		// The client's flow control holds back the answer's last bytes:
		// the status follows them.
		ex.trailers = []h2.HeaderField{{Name: "grpc-status", Value: strconv.Itoa(b.code)}, {Name: "grpc-message", Value: grpcMessage(b.msg)}}
		ex.heldEnd = true
		return
	}
	b.end(ex.s, ex.grpc)
	l.streamOver(ex, ex.status)
}

// settleCall records what came of ex, once: in the route's and the pod's
// counters and health.
func (l *eventLoop) settleCall(ex *loopExchange, status int, failed bool) {
	if ex.settled {
		return
	}
	ex.settled = true
	ex.status = status
	l.done(ex)
	ex.r.Done(ex.r.pods.Load(), ex.pd, place.Outcome{Status: status, Failed: failed, ClientFault: ex.clientFault, Seconds: time.Since(ex.start).Seconds()})
}

// forgetCall takes ex off its pod connection's calls, its stream reset
// unless over.
func (l *eventLoop) forgetCall(ex *loopExchange) {
	pc := ex.hc
	if pc == nil {
		return
	}
	ex.hc = nil
	if ex.cs != nil {
		ex.cs.Close()
		ex.cs = nil
		l.markPod(pc)
	}
	for i, o := range pc.calls {
		if o == ex {
			last := len(pc.calls) - 1
			pc.calls[i] = pc.calls[last]
			pc.calls[last] = nil
			pc.calls = pc.calls[:last]
			break
		}
	}
	if len(pc.calls) == 0 {
		pc.idleSince = l.now
	}
}

// leaveCall ends ex's call, whose client went away: its pod's stream is
// reset. It reports whether the call was under way (not yet settled).
func (l *eventLoop) leaveCall(ex *loopExchange) bool {
	if ex.settled {
		l.forgetCall(ex)
		return false
	}
	if !ex.head {
		ex.pd.tally.Stop()
	}
	l.forgetCall(ex)
	ex.clientFault = true
	l.settleCall(ex, statusClientClosed, false)
	return true
}

// h2PodReady handles the events of pc, a loop's HTTP/2 connection to a
// pod.
func (l *eventLoop) h2PodReady(pc *loopPod, events uint32) {
	if pc.connecting {
		done, err := connected(pc, events)
		if !done {
			return
		}
		if err != nil {
			l.h2PodLost(pc, err)
			return
		}
		l.watch(pc.fd, &pc.watching, unix.EPOLLIN|unix.EPOLLRDHUP, false)
		l.markPod(pc)
		return
	}
	if events&unix.EPOLLOUT != 0 {
		l.markPod(pc)
	}
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLERR|unix.EPOLLHUP) == 0 {
		return
	}
	n, err := unix.Read(pc.fd, l.buf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	if n <= 0 {
		if err == nil {
			err = io.EOF
		}
		l.h2PodLost(pc, err)
		return
	}
	ok := pc.h2.Feed(l.buf[:n])
	for i := 0; i < len(pc.calls); i++ {
		ex := pc.calls[i]
		before := len(pc.calls)
		l.pump(ex)
		if len(pc.calls) < before {
			i--
		}
	}
	if !ok {
		pc.closing = true
		l.markPod(pc)
	}
}

// writePod writes what pc's connection has for the pod.
func (l *eventLoop) writePod(pc *loopPod) {
	if pc.connecting || pc.fd < 0 {
		return
	}
	var over bool
	pc.out, over = pc.h2.Take(pc.out)
	for len(pc.out) > 0 {
		n, err := unix.Write(pc.fd, pc.out)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			l.h2PodLost(pc, err)
			return
		}
		pc.out = pc.out[:copy(pc.out, pc.out[n:])]
	}
	if (over || pc.closing) && len(pc.out) == 0 {
		l.h2PodLost(pc, errors.New("connection closed"))
		return
	}
	switch {
	case len(pc.out) == 0:
		pc.blocked = time.Time{}
	case pc.blocked.IsZero():
		pc.blocked = l.now
	}
	want := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if len(pc.out) > 0 {
		want |= unix.EPOLLOUT
	}
	l.watch(pc.fd, &pc.watching, want, false)
}

// h2PodLost closes pc, whose socket failed with err or which is over:
// the calls on it fail, or go again (callLost).
func (l *eventLoop) h2PodLost(pc *loopPod, err error) {
	if pc.h2 == nil {
		return
	}
	pc.h2.Lost(err)
	conns := l.h2pods[pc.b]
	for i, o := range conns {
		if o == pc {
			conns = append(conns[:i], conns[i+1:]...)
			break
		}
	}
	if len(conns) == 0 {
		delete(l.h2pods, pc.b)
	} else {
		l.h2pods[pc.b] = conns
	}
	l.closePod(pc)
	calls := pc.calls
	pc.calls = nil
	for _, ex := range calls {
		l.pump(ex)
	}
	pc.h2 = nil
}

// sweepCall ends ex when the route's timeouts ran out, or its client's
// body stalled for the body timeout.
func (l *eventLoop) sweepCall(ex *loopExchange, now time.Time) {
	timeout := ex.r.upstream.readTimeout
	late := !ex.until.IsZero() && now.After(ex.until) ||
		!ex.head && timeout > 0 && now.Sub(ex.start) > timeout
	if late {
		// Both ways below reset the pod's stream (forgetCall).
		ex.timedOut = true
		if ex.head {
			l.callBroke(ex)
			return
		}
		l.forgetCall(ex)
		l.callFailed(ex, errTimedOut)
		return
	}
	if t := ex.st.limits.bodyTimeout; t > 0 && !ex.bodyEOF && len(ex.reqHeld) == 0 && now.Sub(ex.bodyHeard) > t {
		l.bodyFault(ex, errBodyTimeout)
	}
}

// sweepH2Pods closes the loop's HTTP/2 connections to pods left without
// a stream for the idle timeout, and those whose socket took nothing for
// the read timeout (as the goroutines' pool does).
func (l *eventLoop) sweepH2Pods(now time.Time) {
	var stuck []*loopPod
	for b, conns := range l.h2pods {
		for _, pc := range conns {
			if t := b.client.timeout; t > 0 && !pc.blocked.IsZero() && now.Sub(pc.blocked) > t {
				stuck = append(stuck, pc)
				continue
			}
			if t := b.client.idleTimeout; t > 0 && len(pc.calls) == 0 && pc.h2.Streams() == 0 && now.Sub(pc.idleSince) > t {
				pc.h2.Close()
				pc.closing = true
				l.markPod(pc)
			}
		}
	}
	for _, pc := range stuck {
		l.h2PodLost(pc, errTimedOut)
	}
}

// errTimedOut: the route's timeouts ran out before the pod answered.
var errTimedOut = errors.New("no response in time")
