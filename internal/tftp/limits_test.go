package tftp

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/tftp/tftptest"
)

// TestShedAtTransferLimit: over MaxTransfers, without a queue, a request
// gets no answer at all (never an ERROR), and the client's retry is served
// once a slot is free.
func TestShedAtTransferLimit(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.MaxTransfers = 1; s.MaxQueued = -1 })
	// Hold the only slot: a client that takes the first block and stays
	// silent (Timeout 500ms, 3 retries: about 2s).
	if reply := tftptest.Exchange(t, ts.addr, tftptest.Request(opRRQ, "virtual/known", "octet"), 2*time.Second, false); len(reply) < 4 || reply[1] != opDATA {
		t.Fatalf("first reply %q, want DATA", reply)
	}
	if reply := tftptest.Reply(t, ts.addr, tftptest.Request(opRRQ, "a.txt", "octet"), 300*time.Millisecond); reply != nil {
		t.Fatalf("reply %q over the limit, want none", reply)
	}
	if ts.Shed() != 1 {
		t.Fatalf("shed %d, want 1", ts.Shed())
	}
	// A client that asks again every 500ms gets the file once the slot is
	// free.
	res, err := tftptest.Fetch(netip.Addr{}, ts.addr, "a.txt", 500*time.Millisecond, 20, "tsize", "0")
	if err != nil || string(res.Data) != "hello a" || res.Error != nil {
		t.Fatalf("fetch after the limit: %q, %v", res.Data, err)
	}
	if res.Retries == 0 {
		t.Fatalf("served without a retry while the slot was held")
	}
	t.Logf("served after %d retries; %d requests shed", res.Retries, ts.Shed())
}

// TestQueueAtTransferLimit: over MaxTransfers a request waits in the queue,
// unanswered (never an ERROR), and is served as soon as the slot is free,
// without the client asking again; its repeated requests keep its one
// place; a request over MaxQueued is not answered and counted as shed.
func TestQueueAtTransferLimit(t *testing.T) {
	// Timeout 10s: the queued request, asked well within it before the
	// slot frees (also on a loaded machine), starts without its client
	// asking again.
	ts := startServer(t, "", func(s *Server) { s.MaxTransfers = 1; s.MaxQueued = 1; s.Timeout = 10 * time.Second })
	// Hold the only slot: a client that takes the first block and stays
	// silent until it closes its port.
	release := holdSlot(t, ts.addr)
	type fetched struct {
		res tftptest.Result
		err error
	}
	got := make(chan fetched, 1)
	go func() {
		// Asks again only after 3s of silence: longer than the slot is
		// held, and than the server's answer to a queued request takes.
		res, err := tftptest.Fetch(netip.Addr{}, ts.addr, "a.txt", 3*time.Second, 5, "tsize", "0")
		got <- fetched{res, err}
	}()
	lab.Eventually(t, "the request queued", 2*time.Second, func() bool { return ts.Queued() == 1 })
	// The queue is full: a third client is not answered.
	if reply := tftptest.Reply(t, ts.addr, tftptest.Request(opRRQ, "b.txt", "octet"), 300*time.Millisecond); reply != nil {
		t.Fatalf("reply %q over the queue's limit, want none", reply)
	}
	if ts.Shed() != 1 {
		t.Fatalf("shed %d, want 1 (the request over the full queue)", ts.Shed())
	}
	// The slot frees at once, within the 3s the client waits.
	release()
	f := <-got
	if f.err != nil || string(f.res.Data) != "hello a" || f.res.Error != nil {
		t.Fatalf("queued fetch: %q, %q, %v", f.res.Data, f.res.Error, f.err)
	}
	if f.res.Retries != 0 {
		t.Fatalf("the queued client asked %d times again, want 0: it is served when the slot frees", f.res.Retries)
	}
	if ts.Queued() != 0 {
		t.Fatalf("%d requests still queued", ts.Queued())
	}
}

// TestQueuedRequestKeepsItsPlace: a client that asks again for the same
// name from another port while its request waits (firmware that gave up and
// started over) keeps its place in the queue; the transfer goes to the new
// port, not the old one.
func TestQueuedRequestKeepsItsPlace(t *testing.T) {
	// Timeout 10s: the request, asked well within it before the slot
	// frees, starts without its client asking again.
	ts := startServer(t, "", func(s *Server) { s.MaxTransfers = 1; s.Timeout = 10 * time.Second })
	release := holdSlot(t, ts.addr)
	var ports []*net.UDPConn
	for range 2 {
		c := askFrom(t, ts.addr, "a.txt")
		ports = append(ports, c)
		port := c.LocalAddr().(*net.UDPAddr).AddrPort()
		lab.Eventually(t, "the request queued", 2*time.Second, func() bool {
			ts.Server.mu.Lock()
			defer ts.Server.mu.Unlock()
			return ts.byClient[netip.AddrPortFrom(port.Addr().Unmap(), port.Port())] != nil
		})
	}
	if ts.Queued() != 1 || ts.Shed() != 0 {
		t.Fatalf("queued %d, shed %d; want 1 place, nothing shed", ts.Queued(), ts.Shed())
	}
	release()
	buf := make([]byte, 600)
	ports[1].SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := ports[1].ReadFromUDP(buf)
	if err != nil || n < 4 || buf[1] != opDATA || string(buf[4:n]) != "hello a" {
		t.Fatalf("the new port got %q, %v; want DATA \"hello a\"", buf[:max(n, 0)], err)
	}
	ports[1].WriteToUDP([]byte{0, opACK, 0, 1}, from) // the transfer ends now, not at a resend
	ports[0].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _, err := ports[0].ReadFromUDP(buf); err == nil {
		t.Fatalf("the old port got %q", buf[:n])
	}
}

// TestQueuedRequestGivenUp: a queued request whose client has not asked
// again for 2 * Timeout * (Retries+1) is dropped when its turn comes, not
// started; the next one is.
func TestQueuedRequestGivenUp(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.MaxTransfers = 1; s.Timeout = 100 * time.Millisecond; s.Retries = 2 })
	// Hold the slot about 0.7s (100ms, 200ms, 400ms backoff);
	// queued requests are stale after 600ms.
	holdSlot(t, ts.addr)
	// Asked once, then silent: gone by the time the slot frees.
	gone := askFrom(t, ts.addr, "virtual/known")
	lab.Eventually(t, "the first request queued", 2*time.Second, func() bool { return ts.Queued() == 1 })
	time.Sleep(700 * time.Millisecond) // past 2 * Timeout * (Retries+1)
	res, err := tftptest.Fetch(netip.Addr{}, ts.addr, "a.txt", 200*time.Millisecond, 30)
	if err != nil || string(res.Data) != "hello a" {
		t.Fatalf("second queued fetch: %q, %v", res.Data, err)
	}
	ts.waitIdle(t, 5*time.Second)
	for _, tr := range ts.Transfers() {
		if tr.Client.Port() == uint16(gone.LocalAddr().(*net.UDPAddr).Port) {
			t.Fatalf("the given-up request was started: %+v", tr)
		}
	}
	gone.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _, err := gone.ReadFromUDP(make([]byte, 600)); err == nil {
		t.Fatalf("the given-up client received %d bytes", n)
	}
}

// TestQueuedSilentRequestWaitsForRetry: a queued request whose client has
// been silent for longer than Timeout when its turn comes is not opened
// (its client may have given up or moved on to another name); it starts as
// soon as its client asks again, ahead of a request queued after it.
func TestQueuedSilentRequestWaitsForRetry(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.MaxTransfers = 1; s.Timeout = 100 * time.Millisecond; s.Retries = 20 })
	release := holdSlot(t, ts.addr) // the Handler's first open
	silent := askFrom(t, ts.addr, "a.txt")
	lab.Eventually(t, "the request queued", 2*time.Second, func() bool { return ts.Queued() == 1 })
	time.Sleep(300 * time.Millisecond) // its client silent for more than Timeout
	release()
	// The slot is free and the request is still waiting: not opened.
	lab.Eventually(t, "the slot freed", 5*time.Second, func() bool { return ts.Active() == 0 })
	if q, o := ts.Queued(), ts.h.opened.Load(); q != 1 || o != 1 {
		t.Fatalf("queued %d, Handler opens %d (want 1: the held slot's): the silent request was started", q, o)
	}
	// It asks again: served at once.
	ua, _ := net.ResolveUDPAddr("udp", ts.addr)
	if _, err := silent.WriteToUDP(tftptest.Request(opRRQ, "a.txt", "octet"), ua); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 600)
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := silent.ReadFromUDP(buf)
	if err != nil || n < 4 || buf[1] != opDATA || string(buf[4:n]) != "hello a" {
		t.Fatalf("after asking again: %q, %v; want DATA \"hello a\"", buf[:max(n, 0)], err)
	}
	if o := ts.h.opened.Load(); o != 2 {
		t.Fatalf("Handler opens %d, want 2", o)
	}
}

// holdSlot takes a transfer of the server at addr: a client that reads the
// first block and stays silent, its port open until release is called or
// the test ends (a closed port ends the transfer at the server's next
// resend). release ends the transfer at once: the client sends an ERROR.
func holdSlot(t *testing.T, addr string) (release func()) {
	t.Helper()
	c := askFrom(t, addr, "virtual/known")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 600)
	n, from, err := c.ReadFromUDP(buf)
	if err != nil || n < 4 || buf[1] != opDATA {
		t.Fatalf("holding a slot: reply %q, %v; want DATA", buf[:max(n, 0)], err)
	}
	return func() {
		c.WriteToUDP(errorPacket(errUndefined, "released"), from)
		c.Close()
	}
}

// TestPerClientCap: one client address sending 6,000 read requests from
// 200 ports and never acknowledging holds at most MaxPerClient transfers,
// gets no ERROR, and another client's 100 fetches all succeed meanwhile.
func TestPerClientCap(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.MaxTransfers = 64; s.MaxPerClient = 8; s.Timeout = time.Second })
	ua, _ := net.ResolveUDPAddr("udp", ts.addr)
	var errors atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var conns []*net.UDPConn
	for range 200 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		wg.Go(func() { // read what comes, never acknowledge
			buf := make([]byte, 2048)
			for {
				c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				n, _, err := c.ReadFromUDP(buf)
				if err == nil && tftptest.ErrorCode(buf[:n]) >= 0 {
					errors.Add(1)
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range 30 {
		for _, c := range conns {
			c.WriteToUDP(tftptest.Request(opRRQ, "virtual/known", "octet", "blksize", "1468"), ua)
		}
		if i%5 == 0 {
			time.Sleep(time.Millisecond) // a socket buffer is finite
		}
	}
	maxActive := 0
	flooder, legit := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	for i := range 100 {
		res, err := tftptest.Fetch(legit, ts.addr, "virtual/odd", time.Second, 5, "blksize", "1468", "tsize", "0")
		if err != nil || len(res.Data) != 100001 {
			t.Fatalf("legitimate fetch %d: %d bytes, %v", i, len(res.Data), err)
		}
		ts.Server.mu.Lock()
		maxActive = max(maxActive, ts.perIP[flooder])
		ts.Server.mu.Unlock()
	}
	if errors.Load() != 0 {
		t.Errorf("the flooding client received %d ERROR packets", errors.Load())
	}
	if maxActive > 8 {
		t.Errorf("the flooding address had %d transfers at once, want at most 8", maxActive)
	}
	t.Logf("flood: %d requests shed; the flooding address had at most %d transfers", ts.Shed(), maxActive)
}

// Test5000ConcurrentRequestsNoError: 5,000 clients (on 5,000 addresses)
// ask for a file at once, as PXE firmware does in a boot storm, from a
// server limited to 1,000 transfers: none receives an ERROR packet, and
// all get the file, the queued ones when a slot frees, the shed ones (over
// the queue's 1,000) by asking again.
func Test5000ConcurrentRequestsNoError(t *testing.T) {
	const clients = 5000
	var logs lab.Buffer
	ts := startServer(t, "", func(s *Server) {
		s.MaxTransfers = 1000
		s.MaxQueued = 1000
		s.Timeout = time.Second
		s.Logger = newTextLogger(&logs)
	})
	start := time.Now()
	var wg sync.WaitGroup
	var gotError, failed, retried atomic.Int64
	var firstErr atomic.Value
	release := make(chan struct{})
	for i := range clients {
		src := netip.AddrFrom4([4]byte{127, 3, byte(i / 200), byte(i%200 + 1)})
		wg.Go(func() {
			<-release
			// 60 retries of 1s: patient enough for a loaded CI machine under -race.
			res, err := tftptest.Fetch(src, ts.addr, "a.txt", time.Second, 60, "blksize", "1468", "tsize", "0")
			if res.Error != nil {
				gotError.Add(1)
			}
			if err != nil || string(res.Data) != "hello a" {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, fmt.Sprintf("%v: %d bytes, %v", src, len(res.Data), err))
			}
			if res.Retries > 0 {
				retried.Add(1)
			}
		})
	}
	close(release)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		t.Fatalf("5,000 clients not done after 120s (%d failed so far)", failed.Load())
	}
	if gotError.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("%d clients received an ERROR, %d failed (first: %v)", gotError.Load(), failed.Load(), firstErr.Load())
	}
	if n := strings.Count(logs.String(), "\n"); n > 20 {
		t.Errorf("%d log lines for one storm:\n%.3000s", n, logs.String())
	}
	t.Logf("%d clients done in %v; %d asked again; %d requests shed", clients, time.Since(start).Round(time.Millisecond),
		retried.Load(), ts.Shed())
}

// TestLimitsFollowFDLimit: the default cap on transfers is a quarter of the
// process's file descriptor limit, within 16..16384.
func TestLimitsFollowFDLimit(t *testing.T) {
	var saved syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &saved); err != nil {
		t.Skip(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved)
	for _, tt := range []struct{ soft, want uint64 }{{400, 100}, {40, 16}, {1 << 20, 16384}} {
		if tt.soft > saved.Max {
			continue
		}
		rl := syscall.Rlimit{Cur: tt.soft, Max: saved.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			t.Fatal(err)
		}
		got := New(nil).MaxTransfers
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &saved)
		if uint64(got) != tt.want {
			t.Errorf("RLIMIT_NOFILE %d: MaxTransfers %d, want %d", tt.soft, got, tt.want)
		}
	}
}
