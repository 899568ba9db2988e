// Package tftptest is a raw TFTP client for tests: it builds and reads
// packets byte by byte and fetches files the way PXE firmware does (asking
// again on silence, acknowledging windows), so that tests can see exactly
// what a server sends, ERROR packets included. It imports nothing of the
// server.
package tftptest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Opcodes and error codes (RFC 1350, 2347).
const (
	OpRRQ   = 1
	OpWRQ   = 2
	OpDATA  = 3
	OpACK   = 4
	OpERROR = 5
	OpOACK  = 6

	ErrUndefined = 0
	ErrNotFound  = 1
	ErrAccess    = 2
	ErrIllegalOp = 4
)

// Request builds a read (op 1) or write (op 2) request with options as
// name, value pairs.
func Request(op uint16, name, mode string, opts ...string) []byte {
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

// Error builds an ERROR packet.
func Error(code uint16, msg string) []byte {
	b := binary.BigEndian.AppendUint16(nil, OpERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	return append(append(b, msg...), 0)
}

// ErrorCode returns the code of an ERROR packet, or -1.
func ErrorCode(p []byte) int {
	if len(p) < 5 || binary.BigEndian.Uint16(p) != OpERROR {
		return -1
	}
	return int(binary.BigEndian.Uint16(p[2:]))
}

// Opcode returns the opcode of a packet, or 0.
func Opcode(p []byte) int {
	if len(p) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(p))
}

// OACK parses an OACK packet, or returns nil.
func OACK(p []byte) map[string]string {
	if Opcode(p) != OpOACK {
		return nil
	}
	f := strings.Split(strings.TrimSuffix(string(p[2:]), "\x00"), "\x00")
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

// Reply sends one datagram from 127.0.0.1 to the server and returns the
// first reply (nil if none came within wait); the client then ends a
// transfer that started with an ERROR, as a polite client would.
func Reply(t testing.TB, addr string, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	return Exchange(t, addr, pkt, wait, true)
}

// Exchange is Reply; when polite is false, the client goes away after the
// first reply without a word, as a crashed client would.
func Exchange(t testing.TB, addr string, pkt []byte, wait time.Duration, polite bool) []byte {
	t.Helper()
	return ExchangeFrom(t, netip.AddrFrom4([4]byte{127, 0, 0, 1}), addr, pkt, wait, polite)
}

// ExchangeFrom is Exchange from a port of the loopback address src. The
// server takes a second request from a client address and port for a name
// whose transfer it has not heard from yet for the client's retry: tests
// that leave transfers unanswered behind them ask from distinct addresses,
// so that the kernel cannot hand a new client the port of one of them.
func ExchangeFrom(t testing.TB, src netip.Addr, addr string, pkt []byte, wait time.Duration, polite bool) []byte {
	t.Helper()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
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
	if op := Opcode(reply); polite && (op == OpOACK || op == OpDATA) {
		conn.WriteToUDP(Error(0, "test done"), from)
	}
	return reply
}

// Result is what Fetch saw.
type Result struct {
	Data    []byte
	OACK    map[string]string
	Error   []byte // the ERROR packet received, if any
	Packets int    // DATA packets received
	Retries int    // times the client had to send again
}

// Fetch reads name from server speaking from src (127.0.0.1 when invalid)
// as PXE firmware would: it asks again on a silence of wait, up to tries
// times in a row, acknowledges every window (every block without
// windowsize), and stops at the first ERROR.
func Fetch(src netip.Addr, server, name string, wait time.Duration, tries int, opts ...string) (Result, error) {
	var res Result
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
	last := Request(OpRRQ, name, "octet", opts...)
	to := sa
	if _, err := conn.WriteToUDP(last, to); err != nil {
		return res, err
	}
	ack := func(b uint16) {
		last = binary.BigEndian.AppendUint16([]byte{0, OpACK}, b)
		conn.WriteToUDP(last, to)
	}
	var want uint16 = 1
	inWindow, silent := 0, 0
	buf := make([]byte, 70000)
	for {
		conn.SetReadDeadline(time.Now().Add(wait))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && silent < tries {
				silent++
				res.Retries++
				conn.WriteToUDP(last, to)
				continue
			}
			return res, fmt.Errorf("%s: block %d: %w", name, want, err)
		}
		if to == sa {
			to = from // the transfer's own port
		} else if from.Port != to.Port {
			continue
		}
		p := buf[:n]
		if n < 4 {
			return res, fmt.Errorf("short packet % x", p)
		}
		silent = 0
		switch Opcode(p) {
		case OpERROR:
			res.Error = append([]byte(nil), p...)
			return res, fmt.Errorf("%s: ERROR %d %q", name, ErrorCode(p), p[4:])
		case OpOACK:
			if want != 1 {
				continue
			}
			res.OACK = OACK(p)
			if v, ok := res.OACK["blksize"]; ok {
				blksize, _ = strconv.Atoi(v)
			}
			if v, ok := res.OACK["windowsize"]; ok {
				window, _ = strconv.Atoi(v)
			}
			ack(0)
		case OpDATA:
			res.Packets++
			b := binary.BigEndian.Uint16(p[2:])
			if b != want {
				ack(want - 1) // out of order: say what arrived in order (RFC 7440)
				inWindow = 0
				continue
			}
			res.Data = append(res.Data, p[4:]...)
			inWindow++
			final := n-4 < blksize
			if final || inWindow == window {
				ack(b)
				inWindow = 0
			}
			if final {
				return res, nil
			}
			want++
		}
	}
}

// Server is what Start runs: a tftp.Server, as this package does not
// import it.
type Server interface {
	Listen(addr string) error
	LocalAddr() net.Addr
	Serve() error
	Close() error
}

// Start listens on listen, serves in the background and returns the bound
// address and port. When the test ends it closes the server and checks
// that Serve returned nil within 20 seconds.
func Start(t testing.TB, srv Server, listen string) (addr, port string) {
	t.Helper()
	if err := srv.Listen(listen); err != nil {
		t.Fatal(err)
	}
	addr = srv.LocalAddr().String()
	_, port, _ = net.SplitHostPort(addr)
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
	})
	return addr, port
}

// CheckNoFDLeak makes total requests, request i by kinds[i%len(kinds)], on
// four workers, waits for idle to return (no transfer left), and fails the
// test when the process has more open file descriptors than before.
func CheckNoFDLeak(t testing.TB, total int, idle func(), kinds ...func(i int) error) (before, after int) {
	t.Helper()
	countFDs := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("cannot count fds: %v", err)
		}
		return len(entries)
	}
	before = countFDs()
	var wg sync.WaitGroup
	errs := make(chan error, total)
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				if err := kinds[i%len(kinds)](i); err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
				}
			}
		})
	}
	deadline := time.After(60 * time.Second)
	for i := 0; i < total; i++ {
		select {
		case work <- i:
		case <-deadline:
			t.Fatalf("only %d requests made in 60s", i)
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	idle()
	for range 100 { // closed sockets may take a moment to leave /proc
		if after = countFDs(); after <= before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after > before {
		t.Fatalf("open fds grew from %d to %d over %d requests", before, after, total)
	}
	return before, after
}
