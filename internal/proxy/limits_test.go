package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/podpin/podpin/internal/config"
)

// TestSlowlorisIsCutAtHeaderTimeout opens many connections that trickle
// their headers a byte at a time, while a normal client keeps sending
// requests: the normal client is served throughout, and every slow
// connection is closed (408) once headerTimeout has passed.
func TestSlowlorisIsCutAtHeaderTimeout(t *testing.T) {
	const slow = 200
	headerTimeout := 800 * time.Millisecond
	c := oneRoute(newTestPod(t, "web-0", nil))
	c.Limits.HeaderTimeout = headerTimeout
	h := startProxy(t, c)

	var cut atomic.Int32
	var cutAfter sync.Map // conn index -> time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for i := range slow {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Go(func() {
			opened := time.Now()
			closed := make(chan struct{})
			go func() {
				// Whatever podpin sends ends with it closing.
				io.Copy(io.Discard, conn)
				cutAfter.Store(i, time.Since(opened))
				cut.Add(1)
				close(closed)
			}()
			msg := "GET / HTTP/1.1\r\nHost: example.com\r\nX-Slow: " + strings.Repeat("a", 100)
			for j := 0; j < len(msg); j++ {
				select {
				case <-closed:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := conn.Write([]byte{msg[j]}); err != nil {
					<-closed
					return
				}
			}
			<-closed
		})
	}

	served, worst := 0, time.Duration(0)
	for time.Since(start) < headerTimeout+700*time.Millisecond {
		t0 := time.Now()
		if got := h.podOf("normal"); got != "web-0" {
			t.Fatalf("normal client served by %q", got)
		}
		worst = max(worst, time.Since(t0))
		served++
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	if n := cut.Load(); n != slow {
		t.Fatalf("%d of %d slow connections were cut, want all", n, slow)
	}
	cutAfter.Range(func(_, v any) bool {
		if d := v.(time.Duration); d < headerTimeout-50*time.Millisecond || d > headerTimeout+time.Second {
			t.Errorf("a slow connection was cut after %v, want about %v", d, headerTimeout)
		}
		return true
	})
	if worst > 500*time.Millisecond {
		t.Errorf("normal requests took up to %v while slow clients held connections", worst)
	}
	t.Logf("%d normal requests served, slowest %v", served, worst)
}

// slowBody sends a POST whose body of n bytes arrives in pieces with gaps
// between them, then returns podpin's status.
func slowBody(t *testing.T, addr string, n, pieces int, gap time.Duration, stallAfter int) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: %d\r\n\r\n", n)
	piece := strings.Repeat("x", n/pieces)
	for i := range pieces {
		if i == stallAfter {
			break
		}
		time.Sleep(gap)
		if _, err := io.WriteString(conn, piece); err != nil {
			break
		}
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestBodyTimeoutIsAnInactivityTimeout(t *testing.T) {
	c := oneRoute(newTestPod(t, "web-0", nil))
	c.Limits.HeaderTimeout = 300 * time.Millisecond
	c.Limits.BodyTimeout = 300 * time.Millisecond
	h := startProxy(t, c)
	t.Run("an upload that keeps flowing is not cut", func(t *testing.T) {
		// 10 pieces 100ms apart: 1s in all, over both timeouts.
		if code := slowBody(t, h.addr, 200<<10, 10, 100*time.Millisecond, -1); code != 200 {
			t.Errorf("got %d, want 200", code)
		}
	})
	t.Run("an upload that stalls gets 408", func(t *testing.T) {
		start := time.Now()
		if code := slowBody(t, h.addr, 200<<10, 10, 50*time.Millisecond, 3); code != 408 {
			t.Errorf("got %d, want 408", code)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the stalled upload was answered after %v", d)
		}
	})
}

func TestConnectionLimits(t *testing.T) {
	c := oneRoute(newTestPod(t, "web-0", nil))
	c.Limits.MaxConnsPerIP = 3
	h := startProxy(t, c)
	var conns []net.Conn
	for range 3 {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	time.Sleep(50 * time.Millisecond)
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 429 {
		t.Errorf("the fourth connection got %d, want 429", resp.StatusCode)
	}
	for _, c := range conns {
		c.Close()
	}
	time.Sleep(50 * time.Millisecond)
	if got := h.podOf("k"); got != "web-0" {
		t.Errorf("after the others closed, got %q", got)
	}
}

var _ = config.Limits{}
