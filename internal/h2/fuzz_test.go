package h2

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// FuzzServerFrames sends a client preface and then any bytes to a server
// connection whose handler reads the body and answers. Whatever the bytes,
// the server must not panic, and once the client hangs up the connection
// and its handlers must end (Close returns).
func FuzzServerFrames(f *testing.F) {
	// Seeds: a request with a body, a SETTINGS frame repeating a setting,
	// a reset of an open stream, a frame too large, CONTINUATION alone.
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"}, {Name: ":path", Value: "/"}, {Name: ":authority", Value: "a"}, {Name: "content-length", Value: "2"}} {
		enc.WriteField(hf)
	}
	seed := func(write func(fr *http2.Framer)) []byte {
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		fr.WriteSettings()
		write(fr)
		return b.Bytes()
	}
	f.Add(seed(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
		fr.WriteData(1, true, []byte("hi"))
	}))
	f.Add(seed(func(fr *http2.Framer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	}))
	f.Add(seed(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
		fr.WriteRSTStream(1, http2.ErrCodeCancel)
		fr.WriteWindowUpdate(0, 1)
	}))
	f.Add(seed(func(fr *http2.Framer) { fr.WriteRawFrame(http2.FrameData, 0, 1, make([]byte, 20000)) }))
	f.Add(seed(func(fr *http2.Framer) { fr.WriteContinuation(1, true, hb.Bytes()) }))
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := &Server{
			Handler: HandlerFunc(func(s *Stream) {
				io.Copy(io.Discard, s)
				s.WriteHeaders(200, []HeaderField{{Name: "content-type", Value: "text/plain"}}, false)
				s.WriteData([]byte("ok"), true)
			}),
			Settings: Settings{IdleTimeout: time.Second, PrefaceTimeout: time.Second},
		}
		client, server := net.Pipe()
		srv.ServeConn(server)
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(time.Second))
		client.Write([]byte(http2.ClientPreface))
		client.Write(data)
		client.Close()
		closed := make(chan struct{})
		go func() { srv.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection's goroutines still run 10s after the client hung up and the server closed")
		}
	})
}
