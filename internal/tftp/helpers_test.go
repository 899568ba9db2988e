package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
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
	if err := srv.Listen(listen); err != nil {
		t.Fatal(err)
	}
	ts.addr = srv.LocalAddr().String()
	_, ts.port, _ = net.SplitHostPort(ts.addr)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v after Close", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("Serve did not return after Close")
		}
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

func sha(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rrq builds a read (or write) request with options as name, value pairs.
func rrq(op uint16, name, mode string, opts ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, mode...)
	b = append(b, 0)
	for _, o := range opts {
		b = append(b, o...)
		b = append(b, 0)
	}
	return b
}

// errorCode returns the code of an ERROR packet, or -1.
func errorCode(p []byte) int {
	if len(p) < 5 || binary.BigEndian.Uint16(p) != opERROR {
		return -1
	}
	return int(binary.BigEndian.Uint16(p[2:]))
}

// parseOACK parses an OACK packet, or returns nil.
func parseOACK(p []byte) map[string]string {
	if len(p) < 2 || binary.BigEndian.Uint16(p) != opOACK {
		return nil
	}
	f := strings.Split(strings.TrimSuffix(string(p[2:]), "\x00"), "\x00")
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

// rawReply sends one datagram to the server and returns the first reply
// (nil if none came within wait); the client then ends the transfer with
// an ERROR.
func rawReply(t testing.TB, addr string, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	return rawExchange(t, addr, pkt, wait, true)
}

// rawExchange is rawReply; when polite is false, the client goes away after
// the first reply without a word, as a crashed client would.
func rawExchange(t testing.TB, addr string, pkt []byte, wait time.Duration, polite bool) []byte {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDP(pkt, ua); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 70000)
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil {
		return nil
	}
	reply := append([]byte(nil), buf[:n]...)
	if op := binary.BigEndian.Uint16(reply); polite && (op == opOACK || op == opDATA) {
		conn.WriteToUDP(errorPacket(0, "test done"), from)
	}
	return reply
}

// fetchResult is what fetch saw.
type fetchResult struct {
	data    []byte
	oack    map[string]string
	errPkt  []byte // the ERROR packet received, if any
	packets int    // DATA packets received
	retries int    // times the client had to send again
}

// fetch reads name from server speaking from src (127.0.0.1 when invalid)
// as a PXE client would: it asks again on a silence of wait, up to tries
// times, acknowledges every window (every block without windowsize), and
// stops at the first ERROR.
func fetch(src netip.Addr, server, name string, wait time.Duration, tries int, opts ...string) (fetchResult, error) {
	var res fetchResult
	if !src.IsValid() {
		src = netip.MustParseAddr("127.0.0.1")
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		return res, err
	}
	defer conn.Close()
	sa, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return res, err
	}
	blksize, window := 512, 1
	last := rrq(opRRQ, name, "octet", opts...)
	to := sa
	if _, err := conn.WriteToUDP(last, to); err != nil {
		return res, err
	}
	var want uint16 = 1
	inWindow := 0
	buf := make([]byte, 70000)
	silent := 0
	for {
		conn.SetReadDeadline(time.Now().Add(wait))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && silent < tries {
				silent++
				res.retries++
				conn.WriteToUDP(last, to)
				continue
			}
			return res, fmt.Errorf("%s: block %d: %w", name, want, err)
		}
		if to == sa {
			to = from // the transfer's port
		} else if from.Port != to.Port {
			continue
		}
		p := buf[:n]
		if n < 4 {
			return res, fmt.Errorf("short packet % x", p)
		}
		silent = 0
		switch binary.BigEndian.Uint16(p) {
		case opERROR:
			res.errPkt = append([]byte(nil), p...)
			return res, fmt.Errorf("%s: ERROR %d %q", name, errorCode(p), p[4:])
		case opOACK:
			if want != 1 {
				continue
			}
			res.oack = parseOACK(p)
			if v, ok := res.oack["blksize"]; ok {
				blksize, _ = strconv.Atoi(v)
			}
			if v, ok := res.oack["windowsize"]; ok {
				window, _ = strconv.Atoi(v)
			}
			last = []byte{0, opACK, 0, 0}
			conn.WriteToUDP(last, to)
		case opDATA:
			res.packets++
			b := binary.BigEndian.Uint16(p[2:])
			if b != want {
				// Out of order: say what arrived in order (RFC 7440).
				last = binary.BigEndian.AppendUint16([]byte{0, opACK}, want-1)
				conn.WriteToUDP(last, to)
				inWindow = 0
				continue
			}
			res.data = append(res.data, p[4:]...)
			inWindow++
			final := n-4 < blksize
			if final || inWindow == window {
				last = binary.BigEndian.AppendUint16([]byte{0, opACK}, b)
				conn.WriteToUDP(last, to)
				inWindow = 0
			}
			if final {
				return res, nil
			}
			want++
		}
	}
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
