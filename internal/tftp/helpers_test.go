package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/tftp/tftptest"
)

const (
	undionly = "/usr/lib/ipxe/undionly.kpxe"
	ipxeEFI  = "/usr/lib/ipxe/ipxe.efi"
)

// virtual is served under "virtual/...": 1468*128 bytes, a whole number of
// blocks at both 512 and 1468 bytes.
var virtual = func() []byte {
	b := make([]byte, 1468*128)
	r := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) {
	return 0, errors.New("disk on fire at /var/lib/secret/place")
}

// testHandler serves generated files, package files by alias, and counts
// opens and closes.
type testHandler struct {
	aliases map[string]string // name -> path
	opened  atomic.Int64
	closed  atomic.Int64
}

func (h *testHandler) Open(ctx context.Context, name string, client netip.AddrPort) (File, error) {
	if !client.IsValid() || client.Port() == 0 {
		return File{}, fmt.Errorf("bad client %v", client)
	}
	c := virtual
	var f File
	switch name {
	case "a.txt":
		f = File{R: strings.NewReader("hello a"), Size: 7}
	case "text":
		f = File{R: strings.NewReader("one\ntwo\r\nthree\r"), Size: 15}
	case "virtual/known":
		f = File{R: bytes.NewReader(c), Size: int64(len(c))}
	case "virtual/unknown": // not a Seeker: size stays unknown
		f = File{R: struct{ io.Reader }{bytes.NewReader(c)}, Size: -1}
	case "virtual/seek": // a Seeker: the server measures it
		f = File{R: bytes.NewReader(c), Size: -1}
	case "virtual/odd":
		f = File{R: bytes.NewReader(c[:100001]), Size: 100001}
	case "virtual/empty":
		f = File{R: bytes.NewReader(nil), Size: 0}
	case "virtual/fail":
		f = File{R: io.MultiReader(bytes.NewReader(c[:5000]), failingReader{}), Size: int64(len(c))}
	case "virtual/short":
		f = File{R: bytes.NewReader(c[:10000]), Size: int64(len(c))}
	case "virtual/long":
		f = File{R: bytes.NewReader(c), Size: 10000}
	case "virtual/denied":
		return File{}, fmt.Errorf("%w: policy says no", ErrDenied)
	case "virtual/broken":
		return File{}, errors.New("database at /var/lib/secret down")
	case "virtual/nofd":
		return File{}, &os.PathError{Op: "open", Path: "x", Err: errEMFILE}
	default:
		p, ok := h.aliases[name]
		if !ok {
			return File{}, fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		fh, err := os.Open(p)
		if err != nil {
			return File{}, err
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return File{}, err
		}
		return File{R: fh, Size: st.Size(), Close: fh.Close}, nil
	}
	h.opened.Add(1)
	f.Close = func() error { h.closed.Add(1); return nil }
	return f, nil
}

// testServer is a Server on 127.0.0.1:0 with what its hooks saw.
type testServer struct {
	*Server
	addr string // host:port
	port string
	h    *testHandler

	mu        sync.Mutex
	transfers []Transfer
	refused   []string
}

func (ts *testServer) Transfers() []Transfer {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]Transfer(nil), ts.transfers...)
}

func (ts *testServer) Refused() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.refused...)
}

// waitIdle waits until no transfer is in progress.
func (ts *testServer) waitIdle(t testing.TB, d time.Duration) {
	t.Helper()
	lab.Eventually(t, "no transfer in progress", d, func() bool { return ts.Active() == 0 })
}

// onLoops makes startServer's servers run every transfer on the epoll
// loops (DirectTransfers -1); TestOnTheLoops sets it. The tests are not
// parallel.
var onLoops bool

// startServer serves the test handler on listen (default 127.0.0.1:0).
func startServer(t testing.TB, listen string, modify func(*Server)) *testServer {
	t.Helper()
	h := &testHandler{aliases: map[string]string{}}
	for name, p := range map[string]string{"undionly.kpxe": undionly, "ipxe.efi": ipxeEFI} {
		if _, err := os.Stat(p); err == nil {
			h.aliases[name] = p
		}
	}
	ts := &testServer{h: h}
	srv := New(h)
	srv.Timeout = 500 * time.Millisecond
	srv.Retries = 3
	if onLoops {
		srv.DirectTransfers = -1
	}
	srv.OnTransfer = func(tr Transfer) {
		ts.mu.Lock()
		ts.transfers = append(ts.transfers, tr)
		ts.mu.Unlock()
	}
	srv.OnRefused = func(client netip.AddrPort, name string, reason error) {
		if !client.IsValid() || reason == nil || !errors.Is(reason, ErrDenied) {
			t.Errorf("OnRefused(%v, %q, %v): bad arguments", client, name, reason)
		}
		ts.mu.Lock()
		ts.refused = append(ts.refused, name)
		ts.mu.Unlock()
	}
	if modify != nil {
		modify(srv)
	}
	ts.Server = srv
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ts.addr, ts.port = tftptest.Start(t, srv, listen)
	t.Cleanup(func() { // runs before Serve's (cleanups run last first): close here
		srv.Close()
		if o, c := h.opened.Load(), h.closed.Load(); o != c {
			t.Errorf("virtual files: %d opened, %d closed", o, c)
		}
	})
	return ts
}

func requireTool(t testing.TB, tool string) {
	t.Helper()
	lab.RequireTools(t, tool)
}

// askFrom opens a client socket on 127.0.0.1, closed when the test ends,
// and sends the read request for name (octet) from it to addr.
func askFrom(t testing.TB, addr, name string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDP(tftptest.Request(opRRQ, name, "octet"), ua); err != nil {
		t.Fatal(err)
	}
	return c
}

func sha(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
