package tftp

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A loop runs transfers: one goroutine waits in epoll_wait for the
// acknowledgements of all its transfers and for their timeouts, and
// answers each ACK with the next block (or window) at once. Everything
// about a transfer after it was added is touched by its loop only.
type loop struct {
	s    *Server
	epfd int
	wake int // eventfd: new transfers, stop
	load atomic.Int32

	mu       sync.Mutex
	incoming []*transfer
	stopping bool

	transfers map[int32]*transfer
	timers    timerHeap // the transfers by deadline
	pkt       []byte    // the packet being sent
	rbuf      []byte    // the packet being received
	epoch     time.Time
	clock     int64 // now(), as of the last wake-up
}

func newLoop(s *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll: %w", err)
	}
	return &loop{s: s, epfd: epfd, wake: wake, transfers: make(map[int32]*transfer),
		pkt: make([]byte, 4+s.maxBlockSize()), rbuf: make([]byte, 2048), epoch: time.Now()}, nil
}

// now is the loop's clock: nanoseconds since the loop started.
func (l *loop) now() int64 { return int64(time.Since(l.epoch)) }

// add hands a transfer to the loop.
func (l *loop) add(t *transfer) {
	l.load.Add(1)
	l.mu.Lock()
	l.incoming = append(l.incoming, t)
	l.mu.Unlock()
	l.poke()
}

// stop asks the loop to return once its transfers are done.
func (l *loop) stop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.poke()
}

func (l *loop) poke() {
	var one = [8]byte{1}
	unix.Write(l.wake, one[:]) // EAGAIN only when already poked
}

// run is the loop. Its goroutine is not locked to its thread: a locked
// goroutine that the runtime preempts (sysmon does every 10 ms of running)
// hands its processor over and sleeps until it is scheduled back, several
// futex calls and context switches each time (measured: 6.5 against 3.7 us
// of CPU per 512-byte block).
func (l *loop) run() {
	defer unix.Close(l.wake)
	defer unix.Close(l.epfd)
	events := make([]unix.EpollEvent, 256)
	stopping := false
	for {
		wait := -1
		if len(l.timers) > 0 {
			d := l.timers[0].deadline - l.clock
			wait = int(max((d+int64(time.Millisecond)-1)/int64(time.Millisecond), 0))
		}
		n, err := unix.EpollWait(l.epfd, events, wait)
		if err != nil && err != unix.EINTR {
			panic(fmt.Sprintf("tftp: epoll_wait: %v", err)) // EBADF or EFAULT: a bug
		}
		l.clock = l.now()
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == l.wake {
				stopping = l.takeIncoming() || stopping
				continue
			}
			if t := l.transfers[ev.Fd]; t != nil {
				t.readable()
			}
		}
		for len(l.timers) > 0 && l.timers[0].deadline <= l.clock {
			l.timers[0].expired()
		}
		if stopping && len(l.transfers) == 0 && l.pending() == 0 {
			return
		}
	}
}

// takeIncoming starts the transfers handed over; it reports whether the
// loop was asked to stop.
func (l *loop) takeIncoming() bool {
	var b [8]byte
	unix.Read(l.wake, b[:])
	l.mu.Lock()
	in, stopping := l.incoming, l.stopping
	l.incoming = nil
	l.mu.Unlock()
	for _, t := range in {
		t.loop = l
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, t.fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(t.fd)}); err != nil {
			t.finish(fmt.Errorf("epoll: %w", err))
			continue
		}
		l.transfers[int32(t.fd)] = t
		t.resend()
	}
	return stopping
}

func (l *loop) pending() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.incoming)
}

// touch sets t's deadline: Timeout from now, doubled for every retry in a
// row (RFC 1123's exponential backoff: a client that is slow to answer is
// not flooded), at most maxBackoff times Timeout.
func (l *loop) touch(t *transfer) {
	if t.done {
		return
	}
	t.deadline = l.clock + int64(l.s.timeout())<<min(t.retries, maxBackoffShift)
	if t.hidx < 0 {
		heap.Push(&l.timers, t)
	} else {
		heap.Fix(&l.timers, t.hidx)
	}
}

// maxBackoffShift caps the backoff at 4 times Timeout.
const maxBackoffShift = 2

func (l *loop) unlink(t *transfer) {
	if t.hidx >= 0 {
		heap.Remove(&l.timers, t.hidx)
	}
}

// timerHeap is a min-heap of transfers by deadline.
type timerHeap []*transfer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*transfer)
	t.hidx = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.hidx = -1
	return t
}

// transferSocket makes the UDP socket of one transfer: bound to src (the
// address the client asked; unspecified, or an address the host cannot
// send from such as a broadcast one, lets the kernel choose) on a fresh
// port, and connected to the client, so that only its packets come in.
func transferSocket(src netip.Addr, client netip.AddrPort) (int, error) {
	family := unix.AF_INET
	if !client.Addr().Is4() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	var local, remote unix.Sockaddr
	if family == unix.AF_INET {
		la := &unix.SockaddrInet4{}
		if src.Is4() {
			la.Addr = src.As4()
		}
		local = la
		remote = &unix.SockaddrInet4{Port: int(client.Port()), Addr: client.Addr().As4()}
	} else {
		la := &unix.SockaddrInet6{}
		if src.Is6() && !src.Is4In6() {
			la.Addr = src.As16()
			la.ZoneId = zoneID(src.Zone())
		}
		local = la
		remote = &unix.SockaddrInet6{Port: int(client.Port()), Addr: client.Addr().As16(), ZoneId: zoneID(client.Addr().Zone())}
	}
	err = unix.Bind(fd, local)
	if err == unix.EADDRNOTAVAIL || err == unix.EINVAL {
		// Not an address of this host (a broadcast request): the kernel
		// chooses.
		if family == unix.AF_INET {
			local = &unix.SockaddrInet4{}
		} else {
			local = &unix.SockaddrInet6{}
		}
		err = unix.Bind(fd, local)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", src, err)
	}
	if err := unix.Connect(fd, remote); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", client, err)
	}
	return fd, nil
}

func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// rawRead and rawWrite are read(2) and send(2) on a transfer's socket,
// which do not block: they return at once, so they need not tell the
// Go scheduler (as syscall.Syscall does) that the thread may block. That
// is a tenth of the CPU time of a block on loopback.
func rawRead(fd int, b []byte) (int, error) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, b []byte) error {
	// send(2) with MSG_DONTWAIT: a direct transfer's socket is blocking.
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// transfer is one read request being served.
type transfer struct {
	s      *Server
	loop   *loop
	fd     int
	client netip.AddrPort
	name   string
	entry  *entry
	file   File
	start  time.Time

	blksize int
	window  int
	oack    []byte // sent first and acknowledged with ACK 0; nil: none
	waiting bool   // the OACK is not acknowledged yet

	// Blocks are numbered from 1 as int64 and sent as their low 16 bits
	// (block numbers roll over to 0 after 65535).
	acked int64 // the highest block the client acknowledged
	sent  int64 // the highest block sent
	last  int64 // the final (short) block, 0 until it has been read

	// buf holds the blocks from first on, as read from the source: every
	// block sent and not yet acknowledged is in it.
	buf      []byte
	first    int64
	eof      bool
	read     int64 // bytes read from the source
	readErr  error
	retries  int
	deadline int64
	lastSend int64 // loop clock of the last packet sent

	hidx int // index in the loop's timers; -1: none
	done bool
}

// chunkBytes is about how much is read from the source at a time, beyond
// the window: bigChunkBytes while the server has fewer than
// bigChunkTransfers transfers (fewer reads per block), else smallChunkBytes
// (bounded memory in a storm).
const (
	bigChunkBytes     = 64 << 10
	smallChunkBytes   = 8 << 10
	bigChunkTransfers = 64
)

func newTransfer(s *Server, fd int, client netip.AddrPort, req request, f File, e *entry, start time.Time, active int) *transfer {
	t := &transfer{s: s, fd: fd, client: client, name: req.name, entry: e, file: f, start: start,
		blksize: req.blockSize(s.maxBlockSize()), window: req.windowSize(s.maxWindowSize()), first: 1, hidx: -1}
	t.oack = req.oack(s.maxBlockSize(), s.maxWindowSize(), f.Size)
	t.waiting = t.oack != nil
	chunk := smallChunkBytes
	if active < bigChunkTransfers {
		chunk = bigChunkBytes
	}
	blocks := t.window + max(chunk/t.blksize, 1)
	n := blocks * t.blksize
	if f.Size >= 0 && f.Size < int64(n) {
		n = int(f.Size) + 1 // room to see the end
	}
	t.buf = make([]byte, 0, n)
	return t
}

// resend sends what the client waits for: the OACK until it is
// acknowledged, then the window after the last block acknowledged. It
// starts a transfer and repeats its last step on a timeout.
func (t *transfer) resend() {
	if t.waiting {
		t.send(t.oack)
		t.loop.touch(t)
		return
	}
	t.sendWindow()
}

// readable handles what the client sent.
func (t *transfer) readable() {
	n, err := rawRead(t.fd, t.loop.rbuf)
	t.received(n, err)
}

// received handles the result of one read from the transfer's socket.
func (t *transfer) received(n int, err error) {
	if err != nil {
		switch err {
		case unix.EAGAIN, unix.EINTR:
			return
		case unix.ECONNREFUSED: // the client's port is closed: it went away
			t.finish(errors.New("client went away (port unreachable)"))
			return
		}
		t.finish(fmt.Errorf("receive: %w", err))
		return
	}
	p := t.loop.rbuf[:n]
	if n < 4 {
		return
	}
	switch binary.BigEndian.Uint16(p) {
	case opACK:
		t.ack(binary.BigEndian.Uint16(p[2:]))
	case opERROR:
		msg := p[4:]
		for i, c := range msg {
			if c == 0 {
				msg = msg[:i]
				break
			}
		}
		t.finish(fmt.Errorf("client sent error %d: %q", binary.BigEndian.Uint16(p[2:]), msg))
	}
}

// ack handles ACK block.
func (t *transfer) ack(block uint16) {
	if t.waiting {
		if block != 0 {
			return
		}
		t.waiting = false
		t.progress()
		t.sendWindow()
		return
	}
	// The block number as int64: the one within the blocks sent.
	b := t.acked + int64(block-uint16(t.acked))
	if b == t.acked && t.retries > 0 && t.loop.clock-t.lastSend >= int64(t.s.timeout()) {
		// The client asks again while the backoff holds the next resend
		// back: a client that gives up after a few of its own timeouts
		// would not live to see it. Answered only when a full Timeout
		// has passed since the last send, as the timer would have without
		// backoff, so it cannot start a Sorcerer's Apprentice cascade.
		t.resend()
		return
	}
	if b <= t.acked || b > t.sent {
		return // a duplicate or stray ACK: never answered (Sorcerer's Apprentice)
	}
	t.acked = b
	t.progress()
	if t.last != 0 && t.acked == t.last {
		t.finish(nil)
		return
	}
	// RFC 7440: an ACK short of the window's end says the blocks after it
	// were lost; either way the next window starts after it.
	t.sendWindow()
}

func (t *transfer) progress() {
	t.retries = 0
	if !t.entry.moved.Load() {
		t.entry.moved.Store(true)
	}
}

// expired runs when the deadline passed without progress.
func (t *transfer) expired() {
	if t.retries >= t.s.retries() {
		t.finish(fmt.Errorf("timed out waiting for the ACK of block %d", t.acked+1))
		return
	}
	t.retries++
	t.resend()
}

// sendWindow sends the blocks after the last acknowledged one, up to the
// window.
func (t *transfer) sendWindow() {
	end := t.acked + int64(t.window)
	for b := t.acked + 1; b <= end && (t.last == 0 || b <= t.last); b++ {
		data, ok := t.block(b)
		if !ok {
			t.fail()
			return
		}
		pkt := t.loop.pkt[:4+len(data)]
		binary.BigEndian.PutUint16(pkt, opDATA)
		binary.BigEndian.PutUint16(pkt[2:], uint16(b))
		copy(pkt[4:], data)
		t.send(pkt)
		t.sent = max(t.sent, b)
		if t.done {
			return
		}
	}
	t.loop.touch(t)
}

// block returns the data of block b, reading from the source as needed.
func (t *transfer) block(b int64) ([]byte, bool) {
	off := int(b-t.first) * t.blksize
	if off+t.blksize > len(t.buf) && !t.eof {
		// Keep the blocks not yet acknowledged, read more after them.
		drop := int(t.acked+1-t.first) * t.blksize
		if drop > 0 {
			t.buf = t.buf[:copy(t.buf, t.buf[drop:])]
			t.first = t.acked + 1
			off -= drop
		}
		if !t.fill() {
			return nil, false
		}
	}
	end := min(off+t.blksize, len(t.buf))
	if off > end {
		return nil, false
	}
	if end-off < t.blksize {
		t.last = b
	}
	return t.buf[off:end], true
}

// fill reads from the source until the buffer is full or the source ends.
// It reports false when the source failed or gave another length than
// announced (readErr says why).
func (t *transfer) fill() bool {
	for empty := 0; len(t.buf) < cap(t.buf); {
		n, err := t.file.R.Read(t.buf[len(t.buf):cap(t.buf)])
		if n == 0 && err == nil {
			if empty++; empty > 100 {
				t.readErr = io.ErrNoProgress
				return false
			}
			continue
		}
		t.buf = t.buf[:len(t.buf)+n]
		t.read += int64(n)
		if size := t.file.Size; size >= 0 && t.read > size {
			t.readErr = fmt.Errorf("source gave more than the %d bytes announced", size)
			return false
		}
		if err == io.EOF {
			if size := t.file.Size; size >= 0 && t.read < size {
				t.readErr = fmt.Errorf("source gave %d bytes, %d announced", t.read, size)
				return false
			}
			t.eof = true
			return true
		}
		if err != nil {
			t.readErr = err
			return false
		}
	}
	return true
}

// fail ends a transfer whose source failed: the client is told "read
// error", the report says why.
func (t *transfer) fail() {
	t.send(errorPacket(errUndefined, "read error"))
	t.finish(t.readErr)
}

// send writes one packet. A full socket buffer drops it: the timeout sends
// it again.
func (t *transfer) send(pkt []byte) {
	if t.done {
		return
	}
	t.lastSend = t.loop.clock
	for {
		err := rawWrite(t.fd, pkt)
		switch err {
		case nil, unix.EAGAIN, unix.ENOBUFS:
			return
		case unix.EINTR:
			continue
		case unix.ECONNREFUSED: // an ICMP error from an earlier packet
			t.finish(errors.New("client went away (port unreachable)"))
			return
		}
		t.finish(fmt.Errorf("send: %w", err))
		return
	}
}

// finish ends the transfer: the socket and the file are closed, the slot
// released and the transfer reported.
func (t *transfer) finish(err error) {
	if t.done {
		return
	}
	t.done = true
	l := t.loop
	l.unlink(t)
	delete(l.transfers, int32(t.fd))
	l.load.Add(-1)
	unix.Close(t.fd) // also leaves the epoll set
	if t.file.Close != nil {
		if cerr := t.file.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	t.buf = nil
	bytes := t.acked * int64(t.blksize)
	if t.last != 0 && t.acked == t.last {
		bytes = t.read
	}
	r := Transfer{Client: t.client, Name: t.name, Bytes: bytes, Size: t.file.Size,
		BlockSize: t.blksize, WindowSize: t.window, Duration: time.Since(t.start), Err: err}
	t.s.logResult(r)
	if t.s.OnTransfer != nil {
		t.s.OnTransfer(r)
	}
	t.s.release(t.client, t.entry) // after the report: Active 0 means all reported
}
