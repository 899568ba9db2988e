package netlimit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
)

// serve runs h with limits l on a loopback port and returns its address.
func serve(t *testing.T, l Limits, h http.Handler) (string, *Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := l.Listener(ln)
	srv := cl.Server(h, nil)
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), cl
}

var fast = Limits{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 400 * time.Millisecond,
	IdleTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond, MaxConns: 64}

func TestTimeouts(t *testing.T) {
	addr, _ := serve(t, fast, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok\n")
	}))
	for _, tc := range []struct {
		name string
		send func(c net.Conn)
	}{
		{"idle keep-alive", func(c net.Conn) {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			bufio.NewReader(c).ReadString('\n')
		}},
		{"never a request", func(c net.Conn) {}},
		{"slowloris headers", func(c net.Conn) {
			fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n")
			go func() {
				for range 20 {
					time.Sleep(100 * time.Millisecond)
					if _, err := fmt.Fprintf(c, "X-A: b\r\n"); err != nil {
						return
					}
				}
			}()
		}},
		{"trickled body", func(c net.Conn) {
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
			go func() {
				for range 20 {
					time.Sleep(100 * time.Millisecond)
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			tc.send(c)
			if !lab.ClosedWithin(c, 1500*time.Millisecond) {
				t.Fatalf("connection still open after %v", time.Since(start))
			}
		})
	}
}

// A client that keeps reading, slowly, gets the whole file however long it
// takes (here 3 times the write timeout, 5 times the read timeout), through
// sendfile; one that stops
// reading is cut off by the write deadline.
func TestSlowReaderIsNotCutOffStalledOneIs(t *testing.T) {
	const size = 6 << 20
	path := filepath.Join(t.TempDir(), "rootfs.squashfs")
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	var canceled, sent atomic.Int64
	done := make(chan struct{}, 4)
	l := fast
	l.WriteTimeout, l.WriteChunk = time.Second, 64<<10 // at least 64 KB/s
	addr, _ := serve(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Length", fmt.Sprint(size))
		n, err := io.CopyN(w, f, size) // reaches the conn's ReadFrom: sendfile
		sent.Store(n)
		if err != nil {
			t.Logf("server: %d bytes, %v", n, err)
		}
		if r.Context().Err() != nil {
			canceled.Add(1)
		}
	}))

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(64 << 10)
	fmt.Fprintf(c, "GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var got int64
	buf := make([]byte, 128<<10)
	const rate = 1.5e6 // bytes a second: 3.5 s for the file, 23 times the floor
	for got < size {
		n, err := resp.Body.Read(buf)
		got += int64(n)
		if err != nil {
			break
		}
		if ahead := time.Duration(float64(got)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
			time.Sleep(ahead)
		}
	}
	took := time.Since(start)
	<-done
	if got != size || sent.Load() != size {
		t.Fatalf("slow reader got %d of %d bytes (server sent %d) in %v", got, size, sent.Load(), took)
	}
	if took < 3*l.WriteTimeout || took < 5*l.ReadTimeout {
		t.Fatalf("the download took %v: not slow enough to prove anything", took)
	}
	if canceled.Load() != 0 {
		t.Error("the request's context was canceled during the download")
	}

	// A client that stops reading.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.(*net.TCPConn).SetReadBuffer(16 << 10)
	fmt.Fprintf(c2, "GET /f HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-done:
		if sent.Load() >= size {
			t.Fatal("the server sent everything to a client that does not read")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stalled client still holds its handler after 5 s")
	}
}

// At the cap a new connection replaces the longest-idle one; when every
// connection is busy the new one is closed at once, unanswered.
func TestCap(t *testing.T) {
	l := fast
	l.MaxConns, l.IdleTimeout = 3, 10*time.Second
	release, entered := make(chan struct{}), make(chan struct{}, 3)
	addr, cl := serve(t, l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok\n")
	}))
	get := func(c net.Conn, path string) (string, error) {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		return bufio.NewReader(c).ReadString('\n')
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	var idle []net.Conn
	for range 3 {
		c := dial()
		if s, err := get(c, "/"); err != nil || !strings.Contains(s, "200") {
			t.Fatalf("a connection under the cap: %q %v", s, err)
		}
		idle = append(idle, c)
	}
	// Idle at the cap: the newcomer is served, an idle one closed.
	if s, err := get(dial(), "/"); err != nil || !strings.Contains(s, "200") {
		t.Fatalf("a newcomer while 3 connections idle: %q %v", s, err)
	}
	closed := 0 // (which one is the longest idle depends on when net/http marked each idle)
	for _, c := range idle {
		if lab.ClosedWithin(c, 300*time.Millisecond) {
			closed++
		}
	}
	if closed != 1 {
		t.Errorf("%d idle connections closed, want 1", closed)
	}
	if cl.Evicted() != 1 || cl.Shed() != 0 {
		t.Errorf("evicted %d, shed %d; want 1, 0", cl.Evicted(), cl.Shed())
	}

	// Busy at the cap: the newcomer is closed unanswered.
	var busy []net.Conn
	for range 3 {
		c := dial()
		fmt.Fprintf(c, "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
		busy = append(busy, c)
	}
	for range 3 { // the busy ones took the idle ones' places and are being answered
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("the busy requests were not served")
		}
	}
	// The shed connection is reset: at connect (the reset can beat the
	// handshake's completion) or at the first read.
	if over, err := net.Dial("tcp", addr); err == nil {
		defer over.Close()
		fmt.Fprintf(over, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		over.SetReadDeadline(time.Now().Add(2 * time.Second))
		if b, err := io.ReadAll(over); len(b) != 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
			t.Fatalf("over the cap: read %q, %v; want a bare close", b, err)
		}
	} else if !strings.Contains(err.Error(), "reset") {
		t.Fatal(err)
	}
	if cl.Shed() != 1 || cl.Active() != 3 || cl.Evicted() != 4 {
		t.Errorf("shed %d, active %d, evicted %d; want 1, 3, 4", cl.Shed(), cl.Active(), cl.Evicted())
	}
	close(release)
	for _, c := range busy {
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if s, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(s, "200") {
			t.Fatalf("a busy connection: %q %v", s, err)
		}
	}
	var err error
	for try := 0; try < 20; try++ { // the answered ones turn idle a moment after answering
		var resp *http.Response
		if resp, err = http.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("once the busy ones are done: %v", err)
	}
}

func TestMaxConnsFor(t *testing.T) {
	for _, tc := range []struct{ fds, want int }{{64, 16}, {1024, 192}, {20000, 4936}, {1 << 20, 262080}} {
		if got := MaxConnsFor(tc.fds); got != tc.want {
			t.Errorf("MaxConnsFor(%d) = %d, want %d", tc.fds, got, tc.want)
		}
	}
	if l := (Limits{}).WithDefaults(); l.MaxConns != MaxConnsFor(FDLimit()) || l.WriteTimeout != DefaultWriteTimeout {
		t.Errorf("defaults: %+v", l)
	}
}
