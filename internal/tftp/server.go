package tftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ErrNotFound, returned (wrapped) by a Handler, answers the request with
// "file not found" (code 1). fs.ErrNotExist does the same.
var ErrNotFound = errors.New("file not found")

// ErrDenied, returned (wrapped) by a Handler, answers the request with
// "access violation" (code 2). fs.ErrPermission does the same.
var ErrDenied = errors.New("access violation")

// Handler finds the content of a read request. name is exactly what the
// client sent: the handler decides whether it is acceptable. Errors
// matching ErrNotFound or ErrDenied (or fs.ErrNotExist, fs.ErrPermission)
// are answered with their TFTP error codes, errors matching EMFILE or
// ENFILE are not answered at all (the client will ask again), anything
// else is "undefined"; the error text is logged and reported, never sent.
// Open is called on a goroutine of its own; ctx ends when the server
// closes or after Timeout * (Retries+1).
type Handler interface {
	Open(ctx context.Context, name string, client netip.AddrPort) (File, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, name string, client netip.AddrPort) (File, error)

// Open calls f.
func (f HandlerFunc) Open(ctx context.Context, name string, client netip.AddrPort) (File, error) {
	return f(ctx, name, client)
}

// File is the content of one transfer. R is read sequentially, in chunks
// of several blocks, on the server's transfer loop: it must not block for
// long (regular files and memory are fine). Size is the byte count
// announced to clients that ask for it (tsize); -1 means unknown, in which
// case an R that is an io.Seeker is measured. A transfer whose R gives more
// or fewer bytes than a known Size fails. Close, when not nil, is called
// exactly once when the transfer ends, however it ends.
type File struct {
	R     io.Reader
	Size  int64
	Close func() error
}

// Transfer describes one finished read request that the Handler accepted
// or refused, successful or not.
type Transfer struct {
	Client     netip.AddrPort
	Name       string // as the client sent it
	Bytes      int64  // bytes acknowledged by the client
	Size       int64  // the announced size, -1 if unknown
	BlockSize  int    // negotiated block size
	WindowSize int    // negotiated window size (1 without RFC 7440)
	Duration   time.Duration
	Err        error // nil on success
}

// Server is a read-only TFTP server: RFC 1350 with the option extension
// (RFC 2347), blksize (2348), tsize (2349) and windowsize (7440). Set the
// exported fields (New sets the defaults), then call Listen and Serve, or
// ListenAndServe. Fields must not change after Listen.
//
// Requests are read on the server port. Each accepted read request runs on
// a socket of its own, bound to the address the client sent its request
// to (so that replies come from it, also when it is a secondary address)
// and connected to the client. Transfers run on a few event loops, each a
// goroutine waiting in epoll for the acknowledgements of many transfers:
// one recv and one send per block, no goroutine wake-up.
//
// Overload is never answered with an ERROR: a request over MaxTransfers
// waits in a queue (up to MaxQueued), unanswered, and is started when a
// transfer ends if its client asked within the last Timeout, else as soon
// as its client asks again; a request over MaxQueued, over MaxPerClient
// for its client address, or that finds no file descriptor, gets no answer
// at all, and the client's own retry brings it back. Write requests are refused with "access violation" and malformed
// requests with "illegal TFTP operation"; the server's own log lines about
// refused, shed and failed requests are rate-limited.
type Server struct {
	// Handler finds the files; it must be set.
	Handler Handler
	// Logger receives the server's log lines (rate-limited for refusals,
	// shed requests and failed transfers; successful transfers at debug
	// level); nil: discard.
	Logger *slog.Logger
	// Timeout is how long a block (or window) waits for its ACK before it
	// is sent again; default 1s. It doubles with every retry in a row, up
	// to 4 times Timeout (exponential backoff, RFC 1123 4.2.3.2).
	Timeout time.Duration
	// Retries is how many times a block is sent again before the transfer
	// is given up; default 5.
	Retries int
	// MaxBlockSize caps the block size a client may negotiate; default
	// DefaultBlockSize, range 512..MaxBlockSize.
	MaxBlockSize int
	// MaxWindowSize caps the RFC 7440 window a client may negotiate;
	// default 32, range 1..65535.
	MaxWindowSize int
	// MaxTransfers caps the transfers being opened or in progress; default
	// a quarter of the process's file descriptor limit (RLIMIT_NOFILE: a
	// transfer holds a socket and usually a file), at least 16 and at most
	// 16384. A request over it waits in the queue.
	MaxTransfers int
	// MaxQueued caps the requests waiting for a transfer slot (first in,
	// first out; a client asking again keeps its place); default 4 times
	// MaxTransfers, negative: no queue (requests over MaxTransfers are
	// not answered until the client asks again after a slot is free).
	MaxQueued int
	// MaxPerClient caps the transfers of one client address, queued ones
	// included; default 64 (nodes behind NAT share an address; one
	// flooding address holds at most this many of MaxTransfers).
	MaxPerClient int
	// Loops is the number of transfer loops (goroutines, each waiting in
	// its own epoll); default GOMAXPROCS, at least 1 and at most 4. Few
	// transfers at a time run directly (DirectTransfers) and leave the
	// loops idle; many share the loops, one per processor (measured on 2
	// processors, 32 clients at once: one loop 0.96x tftpd-hpa's speed,
	// two 1.04x-1.06x; bench/tftp/README.md).
	Loops int
	// DirectTransfers is how many transfers at a time run each on a
	// goroutine of its own that waits in a blocking read on its socket
	// (an OS thread each while it waits); the transfers beyond them run
	// on the loops. Default GOMAXPROCS (New); zero or negative: none
	// (every transfer on the loops). A direct transfer costs no
	// epoll_wait per block, and the thread the client's ACK wakes answers
	// it on the client's CPU; but many of them are slower than the loops
	// (32 direct transfers on 2 processors: 0.88x tftpd-hpa's speed,
	// where two loops reach 1.04x).
	DirectTransfers int
	// OnTransfer, when set, is called once for every read request that
	// reached the Handler, when it ends. It runs on a transfer loop or an
	// opening goroutine: it must not block, and must not call Close.
	OnTransfer func(Transfer)
	// OnRefused, when set, is called for every request refused before the
	// Handler: write requests and malformed requests, which the server
	// then does not log itself. reason matches ErrDenied. It runs on the server's receive loop: it must not block,
	// and must not call Close.
	OnRefused func(client netip.AddrPort, name string, reason error)

	mu       sync.Mutex
	conn     *net.UDPConn
	pc4      *ipv4.PacketConn
	pc6      *ipv6.PacketConn
	local    netip.Addr // the listening address; unspecified for a wildcard
	closed   bool
	closing  chan struct{}
	serving  bool
	done     chan struct{}
	active   int                       // transfers opening or in progress
	queue    []*waiting                // requests waiting for their turn, oldest first
	due      []*waiting                // requests whose turn came while their client was silent, by that time
	ready    []*waiting                // due requests whose client asked again while no slot was free
	queued   map[queueKey]*waiting     // every request of the three, by client address and name
	perIP    map[netip.Addr]int        // active and queued, per client address
	byClient map[netip.AddrPort]*entry // the latest transfer of each client address and port
	loops    []*loop
	ctx      context.Context
	cancel   context.CancelFunc
	opening  sync.WaitGroup
	logs     logLimiter

	direct atomic.Int64 // direct transfers running
	shed   atomic.Int64 // requests not answered because of a limit
}

// entry is a transfer being opened or in progress, as the receive loop
// knows it: a request from the same client port for the same name before
// the transfer has moved is the client's retry and is dropped.
type entry struct {
	name  string
	moved atomic.Bool // the client acknowledged something
	heard time.Time   // the client's latest request (s.mu); for a queued one
	wait  *waiting    // its place while it waits for a slot (s.mu); nil once started
}

// queueKey is a queued request's client address and name: a client that
// starts its fetch over from another port keeps its place in the queue.
type queueKey struct {
	ip   netip.Addr
	name string
}

// waiting is a request in the queue.
type waiting struct {
	client netip.AddrPort
	src    netip.Addr
	req    request
	e      *entry
	state  waitState
}

// waitState is where a waiting request is.
type waitState uint8

const (
	inQueue waitState = iota // waiting for its turn
	isDue                    // its turn came while its client was silent
	isReady                  // due, and its client asked again while no slot was free
	isGone                   // started or dropped (still in a list, skipped)
)

// New returns a Server for h with the default settings in its fields.
func New(h Handler) *Server {
	return &Server{
		Handler:       h,
		Timeout:       time.Second,
		Retries:       5,
		MaxBlockSize:  DefaultBlockSize,
		MaxWindowSize: 32,
		MaxTransfers:  defaultMaxTransfers(),
		MaxPerClient:  defaultMaxPerClient,
		Loops:         defaultLoops(),

		DirectTransfers: runtime.GOMAXPROCS(0),
	}
}

const defaultMaxPerClient = 64

func defaultLoops() int { return min(max(runtime.GOMAXPROCS(0), 1), 4) }

// defaultMaxTransfers follows the file descriptor limit.
func defaultMaxTransfers() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 1024
	}
	return int(min(max(rl.Cur/4, 16), 16384))
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Server) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return time.Second
}

func (s *Server) retries() int {
	if s.Retries > 0 {
		return s.Retries
	}
	return 5
}

func (s *Server) maxBlockSize() int {
	switch {
	case s.MaxBlockSize == 0:
		return DefaultBlockSize
	case s.MaxBlockSize < minBlockSize:
		return minBlockSize
	}
	return min(s.MaxBlockSize, MaxBlockSize)
}

func (s *Server) maxWindowSize() int {
	if s.MaxWindowSize <= 0 {
		return 32
	}
	return min(s.MaxWindowSize, maxWindowSize)
}

func (s *Server) maxTransfers() int {
	if s.MaxTransfers > 0 {
		return s.MaxTransfers
	}
	return defaultMaxTransfers()
}

func (s *Server) maxQueued() int {
	switch {
	case s.MaxQueued < 0:
		return 0
	case s.MaxQueued > 0:
		return s.MaxQueued
	}
	return 4 * s.maxTransfers()
}

func (s *Server) maxPerClient() int {
	if s.MaxPerClient > 0 {
		return s.MaxPerClient
	}
	return defaultMaxPerClient
}

// Listen binds the UDP socket on addr (":69" when empty). Call it before
// Serve to learn LocalAddr, also with port 0.
func (s *Server) Listen(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.conn != nil {
		return fmt.Errorf("tftp: already listening on %s", s.conn.LocalAddr())
	}
	if addr == "" {
		addr = ":69"
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return fmt.Errorf("tftp: listen address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return fmt.Errorf("tftp: %w", err)
	}
	// Room for a storm's requests while the receive loop catches up
	// (capped by net.core.rmem_max).
	conn.SetReadBuffer(4 << 20)
	s.conn = conn
	s.closing = make(chan struct{})
	la := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	s.local = la.Addr().Unmap()
	// The address each request was sent to, for the source of the replies.
	if s.local.Is4() {
		s.pc4 = ipv4.NewPacketConn(conn)
		if s.pc4.SetControlMessage(ipv4.FlagDst, true) != nil {
			s.pc4 = nil
		}
	} else {
		s.pc6 = ipv6.NewPacketConn(conn)
		if s.pc6.SetControlMessage(ipv6.FlagDst, true) != nil {
			s.pc6 = nil
		}
		// A dual-stack socket also tells IPv4 destinations through IP_PKTINFO.
		ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagDst, true)
	}
	return nil
}

// LocalAddr returns the address the server listens on, or nil before
// Listen.
func (s *Server) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// ListenAndServe is Listen followed by Serve.
func (s *Server) ListenAndServe(addr string) error {
	if err := s.Listen(addr); err != nil {
		return err
	}
	return s.Serve()
}

// Serve answers requests until Close, then returns nil; it returns
// net.ErrClosed when the server was closed before it started. Listen must
// have been called. It may be called once.
func (s *Server) Serve() error {
	if s.Handler == nil {
		return errors.New("tftp: no Handler")
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return net.ErrClosed
	case s.conn == nil:
		s.mu.Unlock()
		return errors.New("tftp: Serve before Listen")
	case s.serving:
		s.mu.Unlock()
		return errors.New("tftp: Serve called twice")
	}
	s.serving = true
	s.done = make(chan struct{})
	defer close(s.done)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.perIP = make(map[netip.Addr]int)
	s.byClient = make(map[netip.AddrPort]*entry)
	s.queued = make(map[queueKey]*waiting)
	n := s.Loops
	if n <= 0 {
		n = defaultLoops()
	}
	var loopsDone sync.WaitGroup
	for range n {
		l, err := newLoop(s)
		if err != nil {
			for _, l := range s.loops {
				l.stop()
			}
			s.mu.Unlock()
			loopsDone.Wait()
			return fmt.Errorf("tftp: %w", err)
		}
		s.loops = append(s.loops, l)
		loopsDone.Go(l.run)
	}
	conn, closing := s.conn, s.closing
	s.mu.Unlock()

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		s.receive(conn)
	}()

	// Shut down on Close: no new requests, the opens finish and hand their
	// transfers to the loops, the loops finish the transfers in progress
	// (each bounded by Timeout and Retries), then stop.
	<-closing
	conn.Close()
	<-readDone
	s.cancel()
	s.opening.Wait()
	for _, l := range s.loops {
		l.stop()
	}
	loopsDone.Wait()
	s.logs.flush(s.logger())
	return nil
}

// Close stops the server: no new requests are answered, transfers in
// progress may finish (each is bounded by Timeout and Retries), and Close
// returns when Serve has returned. It must not be called from OnTransfer
// or OnRefused.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conn, serving, done := s.conn, s.serving, s.done
	s.mu.Unlock()
	if !serving {
		if conn != nil {
			return conn.Close()
		}
		return nil
	}
	close(s.closing)
	<-done
	return nil
}

// Shed returns how many requests were not answered because of a limit.
func (s *Server) Shed() int64 { return s.shed.Load() }

// Active returns the number of transfers being opened or in progress.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// receive reads the server port until it is closed.
func (s *Server) receive(conn *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		n, client, dst, err := s.readPacket(conn, buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.logs.warn(s.logger(), "read", "tftp: read error", "err", err)
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		s.handle(buf[:n], client, dst)
	}
}

// readPacket reads one datagram from the server port with the address it
// was sent to (invalid when the platform does not say).
func (s *Server) readPacket(conn *net.UDPConn, buf []byte) (int, netip.AddrPort, netip.Addr, error) {
	var n int
	var src net.Addr
	var dst net.IP
	var err error
	switch {
	case s.pc4 != nil:
		var cm *ipv4.ControlMessage
		n, cm, src, err = s.pc4.ReadFrom(buf)
		if cm != nil {
			dst = cm.Dst
		}
	case s.pc6 != nil:
		var cm *ipv6.ControlMessage
		n, cm, src, err = s.pc6.ReadFrom(buf)
		if cm != nil {
			dst = cm.Dst
		}
	default:
		var ap netip.AddrPort
		n, ap, err = conn.ReadFromUDPAddrPort(buf)
		return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), netip.Addr{}, err
	}
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, err
	}
	ua, _ := src.(*net.UDPAddr)
	if ua == nil {
		return 0, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("unexpected source address %v", src)
	}
	ap := ua.AddrPort()
	d, _ := netip.AddrFromSlice(dst)
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), d.Unmap(), nil
}

// replySource is the address replies to a request sent to dst leave from:
// dst itself when known, else the listening address (unspecified for a
// wildcard listener: the kernel chooses).
func (s *Server) replySource(dst netip.Addr) netip.Addr {
	if dst.IsValid() && !dst.IsUnspecified() {
		return dst
	}
	return s.local
}

// sendFromPort sends one datagram to a client from the server port, with
// src as its source address when the listener is a wildcard.
func (s *Server) sendFromPort(pkt []byte, client netip.AddrPort, src netip.Addr) {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	var err error
	if s.local.IsUnspecified() && src.IsValid() && !src.IsUnspecified() {
		// IP_PKTINFO sets the source of IPv4 datagrams, also on a
		// dual-stack IPv6 socket; IPV6_PKTINFO that of IPv6 ones.
		var oob []byte
		if src.Is4() {
			oob = (&ipv4.ControlMessage{Src: src.AsSlice()}).Marshal()
		} else {
			oob = (&ipv6.ControlMessage{Src: src.AsSlice()}).Marshal()
		}
		_, _, err = conn.WriteMsgUDPAddrPort(pkt, oob, client)
	} else {
		_, err = conn.WriteToUDPAddrPort(pkt, client)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		s.logs.warn(s.logger(), "send", "tftp: send error packet", "client", client, "err", err)
	}
}

// handle answers one datagram from the server port.
func (s *Server) handle(pkt []byte, client netip.AddrPort, dst netip.Addr) {
	req, err := parseRequest(pkt)
	if errors.Is(err, errNotRequest) {
		return // strays get no answer (no amplification)
	}
	src := s.replySource(dst)
	if err != nil {
		s.refuse(client, src, req.name, errIllegalOp, "illegal TFTP operation",
			fmt.Errorf("%w: malformed request: %v", ErrDenied, err))
		return
	}
	if req.op == opWRQ {
		s.refuse(client, src, req.name, errAccess, "read-only server",
			fmt.Errorf("%w: write request", ErrDenied))
		return
	}
	now := time.Now()
	s.mu.Lock()
	if e := s.byClient[client]; e != nil && e.name == req.name && !e.moved.Load() {
		e.heard = now
		if w := e.wait; w != nil {
			s.heardQueued(w)
		}
		s.mu.Unlock()
		return // the client asking again: its transfer resends by itself, or it waits in the queue
	}
	ip := client.Addr()
	if w := s.queued[queueKey{ip, req.name}]; w != nil {
		// The same client address asks for the same name from another
		// port while its request waits: firmware that gave up and started
		// over. It keeps its place; the transfer goes to the new port.
		if s.byClient[w.client] == w.e {
			delete(s.byClient, w.client)
		}
		w.client, w.src, w.req = client, src, req
		w.e.heard = now
		s.byClient[client] = w.e
		s.heardQueued(w)
		s.mu.Unlock()
		return
	}
	var limit string
	switch {
	case s.perIP[ip] >= s.maxPerClient():
		limit = "per-client transfers"
	case s.active >= s.maxTransfers() && len(s.queued) >= s.maxQueued():
		limit = "transfers and of the queue"
	}
	if limit != "" {
		s.mu.Unlock()
		s.shed.Add(1)
		s.logs.warn(s.logger(), "shed", "tftp: at the limit of "+limit+", request not answered (the client will retry)",
			"client", client, "name", req.name)
		return
	}
	s.perIP[ip]++
	e := &entry{name: req.name, heard: now}
	s.byClient[client] = e
	if s.active >= s.maxTransfers() {
		w := &waiting{client: client, src: src, req: req, e: e}
		e.wait = w
		s.queue = append(s.queue, w)
		s.queued[queueKey{ip, req.name}] = w
		s.mu.Unlock()
		return
	}
	s.startLocked(client, src, req, e)
	s.mu.Unlock()
}

// startLocked takes a slot and opens the request on a goroutine of its own.
// s.mu is held.
func (s *Server) startLocked(client netip.AddrPort, src netip.Addr, req request, e *entry) {
	s.active++
	s.opening.Add(1)
	go func() {
		defer s.opening.Done()
		s.open(client, src, req, e)
	}()
}

// refuse answers a request refused before the Handler and reports it.
func (s *Server) refuse(client netip.AddrPort, src netip.Addr, name string, code uint16, msg string, reason error) {
	if s.OnRefused == nil { // else the hook reports it (the daemon's, rate limited)
		s.logs.warn(s.logger(), "refused", "tftp: request refused", "client", client, "name", name, "err", reason)
	}
	s.sendFromPort(errorPacket(code, msg), client, src)
	if s.OnRefused != nil {
		s.OnRefused(client, name, reason)
	}
}

// release gives back the slot of a transfer that ended or never started,
// and starts the oldest queued request that is still wanted.
func (s *Server) release(client netip.AddrPort, e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	s.forget(client, e)
	if s.closed {
		return // Serve is shutting down: nothing new starts
	}
	s.admit(time.Now())
}

// admit hands the free slots to waiting requests whose clients are known
// to be still there: first the due requests whose client has asked again
// since their turn came, within the last Timeout (oldest first), then the queue in order, where a
// request whose client asked within the last Timeout starts and one whose
// client has been silent longer becomes due: it starts only when its
// client asks again (a client that gave up, or started over under another
// name, is never opened late). A request not heard of for twice as long as
// a transfer waits for an ACK (12s by default) is dropped. s.mu is held.
func (s *Server) admit(now time.Time) {
	stale := now.Add(-2 * s.timeout() * time.Duration(s.retries()+1))
	fresh := now.Add(-s.timeout())
	// The due requests not heard of since long ago are dropped (the
	// list is in the order their turns came, so the oldest are first).
	for len(s.due) > 0 {
		w := s.due[0]
		if w.state == isDue && !w.e.heard.Before(stale) {
			break
		}
		popFront(&s.due)
		if w.state == isDue {
			s.dequeue(w)
			s.forget(w.client, w.e)
		}
	}
	for s.active < s.maxTransfers() && len(s.ready) > 0 {
		w := popFront(&s.ready)
		switch {
		case w.state != isReady:
		case w.e.heard.Before(fresh): // silent again since: due again
			w.state = isDue
			s.due = append(s.due, w)
		default:
			s.startQueued(w)
		}
	}
	for s.active < s.maxTransfers() && len(s.queue) > 0 {
		w := popFront(&s.queue)
		switch {
		case w.state != inQueue:
		case w.e.heard.Before(stale):
			s.dequeue(w)
			s.forget(w.client, w.e)
		case w.e.heard.Before(fresh):
			w.state = isDue
			s.due = append(s.due, w)
		default:
			s.startQueued(w)
		}
	}
}

// popFront takes the first request off a list.
func popFront(l *[]*waiting) *waiting {
	w := (*l)[0]
	(*l)[0] = nil
	*l = (*l)[1:]
	return w
}

// heardQueued is called when the client of a waiting request asks again:
// the request starts at once when a slot is free, and a due one is next in
// line when none is. s.mu is held.
func (s *Server) heardQueued(w *waiting) {
	switch {
	case s.closed || w.state == isGone:
	case s.active < s.maxTransfers():
		s.startQueued(w)
	case w.state == isDue:
		w.state = isReady
		s.ready = append(s.ready, w)
	}
}

// startQueued starts a waiting request. s.mu is held.
func (s *Server) startQueued(w *waiting) {
	s.dequeue(w)
	s.startLocked(w.client, w.src, w.req, w.e)
}

// dequeue takes w off the books of the waiting requests (the lists skip
// it from now on). s.mu is held.
func (s *Server) dequeue(w *waiting) {
	w.state = isGone
	w.e.wait = nil
	delete(s.queued, queueKey{w.client.Addr(), w.req.name})
}

// forget drops the bookkeeping of a request that ended. s.mu is held.
func (s *Server) forget(client netip.AddrPort, e *entry) {
	ip := client.Addr()
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	if s.byClient[client] == e {
		delete(s.byClient, client)
	}
}

// Queued returns the number of requests waiting for a transfer slot.
func (s *Server) Queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queued)
}

// errShed marks a request dropped for lack of a resource.
var errShed = errors.New("not answered: out of file descriptors")

// open asks the Handler for the file and starts the transfer. It holds one
// slot, which the transfer (or release, when none starts) gives back.
func (s *Server) open(client netip.AddrPort, src netip.Addr, req request, e *entry) {
	start := time.Now()
	report := Transfer{Client: client, Name: req.name, Size: -1,
		BlockSize: req.blockSize(s.maxBlockSize()), WindowSize: req.windowSize(s.maxWindowSize())}
	fail := func(err error) {
		report.Duration, report.Err = time.Since(start), err
		s.logResult(report)
		if s.OnTransfer != nil {
			s.OnTransfer(report)
		}
		s.release(client, e)
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout()*time.Duration(s.retries()+1))
	f, err := s.Handler.Open(ctx, req.name, client)
	cancel()
	if err == nil && f.R == nil {
		if f.Close != nil {
			f.Close()
		}
		err = errors.New("handler returned no reader")
	}
	if err != nil {
		if isShed(err) {
			s.shed.Add(1)
			fail(fmt.Errorf("%w: %v", errShed, err))
			return
		}
		code, msg := errorFor(err)
		s.sendFromPort(errorPacket(code, msg), client, src)
		fail(err)
		return
	}
	if f.Size < 0 {
		f.Size = measure(f.R)
	}
	if req.mode == "netascii" {
		f.R, f.Size = &netascii{r: f.R}, -1
	}
	report.Size = f.Size
	fd, err := transferSocket(src, client)
	if err != nil {
		if f.Close != nil {
			f.Close()
		}
		if isShed(err) {
			s.shed.Add(1)
			s.logs.warn(s.logger(), "shed", "tftp: out of file descriptors, request not answered (the client will retry)", "client", client)
		}
		fail(err)
		return
	}
	t := newTransfer(s, fd, client, req, f, e, start, s.Active())
	if n := s.DirectTransfers; n > 0 {
		if s.direct.Add(1) <= int64(n) {
			defer s.direct.Add(-1)
			s.runDirect(t)
			return
		}
		s.direct.Add(-1)
	}
	s.pickLoop().add(t)
}

// isShed reports whether err means the process ran out of descriptors.
func isShed(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// pickLoop returns the loop with the fewest transfers.
func (s *Server) pickLoop() *loop {
	best := s.loops[0]
	for _, l := range s.loops[1:] {
		if l.load.Load() < best.load.Load() {
			best = l
		}
	}
	return best
}

// logResult logs how a transfer ended.
func (s *Server) logResult(t Transfer) {
	log := s.logger()
	switch err := t.Err; {
	case err == nil:
		log.Debug("tftp: sent", "client", t.Client, "name", t.Name, "bytes", t.Bytes, "blksize", t.BlockSize,
			"windowsize", t.WindowSize, "duration", t.Duration)
	case errors.Is(err, ErrNotFound), errors.Is(err, fs.ErrNotExist):
		log.Debug("tftp: not found", "client", t.Client, "name", t.Name, "err", err)
	case errors.Is(err, ErrDenied), errors.Is(err, fs.ErrPermission):
		s.logs.warn(log, "denied", "tftp: access denied", "client", t.Client, "name", t.Name, "err", err)
	case errors.Is(err, errShed):
	default:
		s.logs.info(log, "failed", "tftp: transfer failed", "client", t.Client, "name", t.Name, "bytes", t.Bytes, "err", err)
	}
}

// errorFor maps a Handler error to a TFTP error code and a message that
// says nothing about the server's insides.
func errorFor(err error) (uint16, string) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return errNotFound, "file not found"
	case errors.Is(err, ErrDenied), errors.Is(err, fs.ErrPermission):
		return errAccess, "access violation"
	case errors.Is(err, context.DeadlineExceeded):
		return errUndefined, "timed out"
	}
	return errUndefined, "server error"
}

// measure returns the size of a seekable reader, leaving its offset where
// it was, or -1.
func measure(r io.Reader) int64 {
	sk, ok := r.(io.Seeker)
	if !ok {
		return -1
	}
	pos, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return -1
	}
	end, err := sk.Seek(0, io.SeekEnd)
	if err != nil {
		return -1
	}
	if _, err := sk.Seek(pos, io.SeekStart); err != nil {
		return -1
	}
	return end - pos
}
