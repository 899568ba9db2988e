package pxe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pin/tftp/v3"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// TFTPSource finds what a TFTP read request names. name has passed CleanName.
// Errors matching ErrNotFound (or fs.ErrNotExist) become TFTP "file not
// found" (code 1), errors matching ErrAccessDenied (or fs.ErrPermission)
// "access violation" (code 2), anything else "undefined" (code 0). The error
// text is logged, never sent to the client.
type TFTPSource interface {
	OpenTFTP(ctx context.Context, name string, client netip.AddrPort) (TFTPFile, error)
}

// TFTPFile is the content of one transfer. Size is the byte count announced
// to clients that ask for it (tsize); -1 means unknown, in which case an R
// that is an io.Seeker is measured. A transfer whose R gives more or fewer
// bytes than a known Size fails. Close, when not nil, is called exactly once
// when the transfer ends, however it ends.
type TFTPFile struct {
	R     io.Reader
	Size  int64
	Close func() error
}

// TFTPTransfer describes one finished read request that passed CleanName,
// whether it succeeded or not.
type TFTPTransfer struct {
	Client    netip.AddrPort
	Name      string // the clean name
	Bytes     int64  // bytes read from the source and sent
	Size      int64  // the announced size, -1 if unknown
	BlockSize int    // negotiated block size
	Duration  time.Duration
	Err       error // nil on success; matches ErrNotFound, ErrAccessDenied...
}

// FileRootSource serves the files of a FileRoot over TFTP.
type FileRootSource struct {
	Root *FileRoot
}

// OpenTFTP implements TFTPSource.
func (s FileRootSource) OpenTFTP(_ context.Context, name string, _ netip.AddrPort) (TFTPFile, error) {
	if s.Root == nil {
		return TFTPFile{}, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	f, size, err := s.Root.Open(name)
	if err != nil {
		return TFTPFile{}, err
	}
	return TFTPFile{R: f, Size: size, Close: f.Close}, nil
}

// TFTPServer is a read-only TFTP server (RFC 1350, with the blksize and tsize
// options of RFC 2348 and 2349) built on github.com/pin/tftp/v3. Set the
// exported fields, then call ListenAndServe, or Listen (after which LocalAddr
// works, also with port 0) and Serve. The fields must not change after
// Listen.
//
// Every request is vetted before pin/tftp sees it: write requests are refused
// with "access violation" ("read-only server"), names that fail CleanName
// with "access violation", malformed requests with "illegal TFTP operation";
// those refusals are logged and reported to OnDenied and never reach Source.
// A valid read request is opened through Source; only when that succeeds is
// a transfer started, on a fresh port as RFC 1350 asks. Error packets for
// refused requests come from the server port.
//
// Transfer sockets are bound to the wildcard address, so the source address
// of the data packets is the one the kernel routes from, which on a head node
// with several addresses on one interface may differ from Addr's.
type TFTPServer struct {
	// Addr is the UDP address to listen on, e.g. "127.0.0.1:0"; default ":69".
	Addr string
	// Source finds the files; it must be set.
	Source TFTPSource
	// Logger receives one line per refused or failed request (successful
	// transfers at debug level); default: discard.
	Logger *slog.Logger
	// Timeout is how long a block waits for its ACK before it is sent again;
	// default 1s.
	Timeout time.Duration
	// Retries is how many times a block is sent again before the transfer is
	// given up; default 5.
	Retries int
	// MaxBlockSize caps the block size a client may negotiate; default
	// DefaultTFTPBlockSize (1468), range 512..65464.
	MaxBlockSize int
	// MaxTransfers caps the transfers in progress (including the ones being
	// opened); further requests get "undefined" errors saying the server is
	// busy. Default 1024.
	MaxTransfers int
	// OnTransfer, when set, is called after every read request that passed
	// CleanName, successful or not (also when refused as busy). It must not
	// call Close.
	OnTransfer func(TFTPTransfer)
	// OnDenied, when set, is called for every request refused before it
	// reached Source: hostile names, write requests, malformed requests. The
	// name is as the client sent it; reason matches ErrAccessDenied and, for
	// a refused name, is a *NameError. It runs on the server's receive loop:
	// it must not block, and must not call Close. When set, it logs the
	// refusal (Boot.Denied does, rate limited); else the server logs each.
	OnDenied func(client netip.AddrPort, name string, reason error)

	mu      sync.Mutex
	conn    *net.UDPConn
	closed  bool
	closing chan struct{} // closed by Close
	serving bool
	done    chan struct{} // closed when Serve has returned

	// Replies leave from the listening socket (pin/tftp's single-port mode)
	// with the address the client sent to as their source, so that clients
	// that check the server's address (pxelinux) accept them on hosts with
	// several addresses. With a wildcard listener the destination of each
	// client's last packet is kept in dst and set per reply.
	pc4      *ipv4.PacketConn
	pc6      *ipv6.PacketConn
	wildcard bool
	dstMu    sync.Mutex
	dst      map[netip.AddrPort]netip.Addr

	// Set up by Serve. inner answers from a new socket per transfer (pin/tftp's
	// usual mode), which the kernel binds to the wildcard address: right when
	// the kernel's source address towards the client is the address the
	// client sent to. innerSP (single-port mode) answers everything else
	// from the server port through writeTo.
	inner   *tftp.Server
	reqs    *requestConn
	innerSP *tftp.Server
	reqsSP  *requestConn
	ctx     context.Context
	cancel  context.CancelFunc
	opening sync.WaitGroup // goroutines running Source.OpenTFTP
	active  int            // transfers opening or in progress (under mu)
	pending map[pendingKey][]*pendingTransfer
}

type pendingKey struct {
	client netip.AddrPort
	name   string
}

// pendingTransfer is an opened file waiting for pin/tftp to start its
// transfer.
type pendingTransfer struct {
	key       pendingKey
	file      TFTPFile
	start     time.Time
	blockSize int
	timer     *time.Timer
}

// pendingTTL is how long an opened file waits for pin/tftp to pick it up
// (it normally takes microseconds) before it is closed.
const pendingTTL = 30 * time.Second

func (s *TFTPServer) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *TFTPServer) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return time.Second
}

func (s *TFTPServer) retries() int {
	if s.Retries > 0 {
		return s.Retries
	}
	return 5
}

func (s *TFTPServer) maxBlockSize() int {
	switch {
	case s.MaxBlockSize == 0:
		return DefaultTFTPBlockSize
	case s.MaxBlockSize < tftpDefaultBlockSize:
		return tftpDefaultBlockSize
	case s.MaxBlockSize > tftpMaxBlockSize:
		return tftpMaxBlockSize
	}
	return s.MaxBlockSize
}

func (s *TFTPServer) maxTransfers() int {
	if s.MaxTransfers > 0 {
		return s.MaxTransfers
	}
	return 1024
}

// Listen binds the UDP socket. It is called by Serve when needed; call it
// first to learn LocalAddr before serving.
func (s *TFTPServer) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return net.ErrClosed
	}
	if s.conn != nil {
		return fmt.Errorf("tftp: already listening on %s", s.conn.LocalAddr())
	}
	addr := s.Addr
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
	s.conn = conn
	s.closing = make(chan struct{})
	s.dst = make(map[netip.AddrPort]netip.Addr)
	la := conn.LocalAddr().(*net.UDPAddr)
	s.wildcard = la.IP == nil || la.IP.IsUnspecified()
	if la.IP.To4() != nil {
		s.pc4 = ipv4.NewPacketConn(conn)
		if err := s.pc4.SetControlMessage(ipv4.FlagDst, true); err != nil {
			s.pc4 = nil
		}
	} else {
		s.pc6 = ipv6.NewPacketConn(conn)
		if err := s.pc6.SetControlMessage(ipv6.FlagDst, true); err != nil {
			s.pc6 = nil
		}
	}
	return nil
}

// readPacket reads one datagram from the server port with the address it
// was sent to (invalid when the platform does not say).
func (s *TFTPServer) readPacket(conn *net.UDPConn, buf []byte) (int, netip.AddrPort, netip.Addr, error) {
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
		return 0, netip.AddrPort{}, netip.Addr{}, fmt.Errorf("tftp: unexpected source address %v", src)
	}
	ap := ua.AddrPort()
	d, _ := netip.AddrFromSlice(dst)
	return n, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), d.Unmap(), nil
}

// noteDst remembers where a client's packets go, for the source address of
// replies from a wildcard listener.
func (s *TFTPServer) noteDst(client netip.AddrPort, dst netip.Addr) {
	if !dst.IsValid() {
		return
	}
	s.dstMu.Lock()
	if len(s.dst) >= 65536 { // bounded: a flood of clients only costs a reset
		clear(s.dst)
	}
	s.dst[client] = dst
	s.dstMu.Unlock()
}

func (s *TFTPServer) forgetDst(client netip.AddrPort) {
	s.dstMu.Lock()
	delete(s.dst, client)
	s.dstMu.Unlock()
}

// writeTo sends one datagram to a client from the server port, with the
// address the client sent to as its source.
func (s *TFTPServer) writeTo(conn *net.UDPConn, pkt []byte, client netip.AddrPort) error {
	if s.wildcard {
		s.dstMu.Lock()
		src, ok := s.dst[client]
		s.dstMu.Unlock()
		if ok {
			// IP_PKTINFO sets the source of IPv4 datagrams, also on a
			// dual-stack IPv6 socket (Linux ignores a v4-mapped source in
			// IPV6_PKTINFO); IPV6_PKTINFO that of IPv6 ones.
			var oob []byte
			if src.Is4() {
				oob = (&ipv4.ControlMessage{Src: src.AsSlice()}).Marshal()
			} else {
				oob = (&ipv6.ControlMessage{Src: src.AsSlice()}).Marshal()
			}
			_, _, err := conn.WriteMsgUDPAddrPort(pkt, oob, client)
			return err
		}
	}
	_, err := conn.WriteToUDPAddrPort(pkt, client)
	return err
}

// LocalAddr returns the address the server listens on, or nil before Listen.
func (s *TFTPServer) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// ListenAndServe is Listen followed by Serve.
func (s *TFTPServer) ListenAndServe() error {
	if err := s.Listen(); err != nil {
		return err
	}
	return s.Serve()
}

// Serve answers requests until Close, then returns nil. It calls Listen if
// that has not been done. It may be called once.
func (s *TFTPServer) Serve() error {
	if s.Source == nil {
		return errors.New("tftp: no Source")
	}
	if s.LocalAddr() == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	if s.serving {
		s.mu.Unlock()
		return errors.New("tftp: Serve called twice")
	}
	s.serving = true
	s.done = make(chan struct{})
	defer close(s.done)
	conn := s.conn
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pending = make(map[pendingKey][]*pendingTransfer)
	s.reqs = newRequestConn(conn.LocalAddr(), nil)
	s.reqsSP = newRequestConn(conn.LocalAddr(), func(pkt []byte, to netip.AddrPort) error {
		return s.writeTo(conn, pkt, to)
	})
	s.inner = s.newInner(false)
	s.innerSP = s.newInner(true)
	closing := s.closing
	s.mu.Unlock()

	innerDone := make(chan struct{})
	go func() {
		defer close(innerDone)
		var wg sync.WaitGroup
		wg.Go(func() { s.inner.Serve(s.reqs) }) // each returns nil once Shutdown has run
		wg.Go(func() { s.innerSP.Serve(s.reqsSP) })
		wg.Wait()
	}()

	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 65536)
		log := s.logger()
		for {
			n, client, dst, err := s.readPacket(conn, buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				log.Warn("tftp: read", "err", err)
				time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
				continue
			}
			s.noteDst(client, dst)
			s.handle(conn, buf[:n], client)
		}
	}()

	// Shut down when Close is called: new requests are refused from then
	// on, the opens finish and hand their transfers to pin/tftp, pin/tftp
	// finishes the transfers in progress (acknowledgements still flow), and
	// only then is the socket closed.
	<-closing
	s.cancel()
	s.opening.Wait()
	s.reqs.waitHandled()
	s.reqsSP.waitHandled()
	s.inner.Shutdown() // waits for its transfers (they have sockets of their own)
	s.reqs.stop()
	// The single-port server stops by itself once its transfers are done:
	// their acknowledgements still come through the read loop until then,
	// and its reads time out (SetReadDeadline) when nothing is left.
	s.innerSP.Shutdown()
	<-innerDone
	s.reqsSP.stop()
	conn.Close()
	<-readDone
	s.mu.Lock()
	var left []*pendingTransfer
	for _, ps := range s.pending {
		left = append(left, ps...)
	}
	s.pending = nil
	s.mu.Unlock()
	for _, p := range left { // only when pin/tftp could not start a transfer (no socket)
		p.timer.Stop()
		s.finish(p, 0, errors.New("server closed before the transfer started"))
	}
	return nil
}

// Close stops the server: no new requests are answered, transfers in
// progress are allowed to finish (each is bounded by Timeout and Retries),
// and Close returns when Serve has returned. It must not be called from
// OnTransfer or OnDenied.
func (s *TFTPServer) Close() error {
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

// handle vets one datagram from the server port.
func (s *TFTPServer) handle(conn *net.UDPConn, pkt []byte, client netip.AddrPort) {
	log := s.logger()
	req, err := parseTFTPRequest(pkt)
	if errors.Is(err, errNotRequest) {
		// ACK and ERROR belong to transfers in progress: pin/tftp matches
		// them by client address and drops strays. Anything else gets no
		// answer (no amplification).
		if len(pkt) >= 4 && pkt[0] == 0 && (pkt[1] == tftpOpACK || pkt[1] == tftpOpERROR) {
			s.reqsSP.push(append([]byte(nil), pkt...), net.UDPAddrFromAddrPort(client))
		}
		return
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return // shutting down: transfers in progress finish, no new ones start
	}
	if err != nil {
		s.deny(conn, client, req.name, tftpErrIllegalOp, "illegal TFTP operation",
			fmt.Errorf("%w: malformed request: %v", ErrAccessDenied, err))
		return
	}
	if req.op == tftpOpWRQ {
		s.deny(conn, client, req.name, tftpErrAccess, "read-only server",
			fmt.Errorf("%w: write request", ErrAccessDenied))
		return
	}
	name, err := CleanName(req.name)
	if err != nil {
		s.deny(conn, client, req.name, tftpErrAccess, "access violation", err)
		return
	}
	s.mu.Lock()
	busy := s.active >= s.maxTransfers()
	if !busy {
		s.active++
	}
	s.mu.Unlock()
	if busy {
		log.Warn("tftp: too many transfers, request refused", "client", client, "name", name, "max", s.maxTransfers())
		s.send(conn, client, tftpErrorPacket(tftpErrUndefined, "server busy, try again"))
		if s.OnTransfer != nil {
			s.OnTransfer(TFTPTransfer{Client: client, Name: name, Size: -1,
				BlockSize: req.negotiatedBlockSize(s.maxBlockSize()), Err: errTFTPBusy})
		}
		return
	}
	s.opening.Add(1)
	go func() {
		defer s.opening.Done()
		s.open(conn, client, name, req)
	}()
}

// deny answers a refused request and reports it.
func (s *TFTPServer) deny(conn *net.UDPConn, client netip.AddrPort, name string, code uint16, msg string, reason error) {
	if s.OnDenied == nil {
		s.logger().Warn("tftp: request refused", "client", client, "name", name, "err", reason)
	}
	s.send(conn, client, tftpErrorPacket(code, msg))
	if s.OnDenied != nil {
		s.OnDenied(client, name, reason)
	}
}

func (s *TFTPServer) send(conn *net.UDPConn, client netip.AddrPort, pkt []byte) {
	if err := s.writeTo(conn, pkt, client); err != nil && !errors.Is(err, net.ErrClosed) {
		s.logger().Warn("tftp: send error packet", "client", client, "err", err)
	}
}

// open asks the Source for the file and, when it has it, hands the request
// to pin/tftp. It holds one slot of s.active, which finish releases.
func (s *TFTPServer) open(conn *net.UDPConn, client netip.AddrPort, name string, req tftpRequest) {
	start := time.Now()
	p := &pendingTransfer{
		key:       pendingKey{client, name},
		start:     start,
		blockSize: req.negotiatedBlockSize(s.maxBlockSize()),
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.timeout()*time.Duration(s.retries()+1))
	f, err := s.Source.OpenTFTP(ctx, name, client)
	cancel()
	if err == nil && f.R == nil {
		if f.Close != nil {
			f.Close()
		}
		err = errors.New("source returned no reader")
	}
	if err != nil {
		code, msg := tftpErrorFor(err)
		s.send(conn, client, tftpErrorPacket(code, msg))
		p.file.Size = -1
		s.finish(p, 0, err)
		return
	}
	if f.Size < 0 {
		f.Size = measure(f.R)
	}
	p.file = f
	s.mu.Lock()
	s.pending[p.key] = append(s.pending[p.key], p)
	p.timer = time.AfterFunc(pendingTTL, func() {
		if s.takePending(p) {
			s.finish(p, 0, errors.New("transfer never started"))
		}
	})
	s.mu.Unlock()
	reqs := s.reqs
	if s.needsServerPort(client) {
		reqs = s.reqsSP
	}
	reqs.push(req.canonical(name, s.maxBlockSize()), net.UDPAddrFromAddrPort(client))
}

// newInner sets up one of the two pin/tftp servers.
func (s *TFTPServer) newInner(singlePort bool) *tftp.Server {
	in := tftp.NewServer(s.readHandler, nil)
	in.SetTimeout(s.timeout())
	in.SetRetries(s.retries())
	// Resend as soon as a block times out: Timeout is the wait.
	in.SetBackoff(func(int) time.Duration { return 0 })
	// pin/tftp cannot learn the interface MTU through our request conn; the
	// block size is capped in the request we hand it instead.
	in.SetBlockSizeNegotiation(false)
	in.SetBlockSize(s.maxBlockSize())
	if singlePort {
		in.EnableSinglePort()
	}
	return in
}

// needsServerPort reports whether replies to client must leave from the
// server port: when the address the client sent to is not the source the
// kernel would pick for a socket bound to the wildcard address (a secondary
// address or a service address, such as 127.0.0.2 or a failover IP).
func (s *TFTPServer) needsServerPort(client netip.AddrPort) bool {
	s.dstMu.Lock()
	dst, ok := s.dst[client]
	s.dstMu.Unlock()
	if !ok {
		return false // the platform does not say: the kernel's choice it is
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(client))
	if err != nil {
		return true
	}
	src := c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	c.Close()
	return src != dst
}

// measure returns the size of a seekable reader, leaving its offset where it
// was, or -1.
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

// takePending removes p from the pending set; it reports whether p was
// still there. Whoever removes a pending transfer from the set owns it and
// must finish it.
func (s *TFTPServer) takePending(p *pendingTransfer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pending[p.key]
	for i, q := range ps {
		if q == p {
			ps = append(ps[:i:i], ps[i+1:]...)
			if len(ps) == 0 {
				delete(s.pending, p.key)
			} else {
				s.pending[p.key] = ps
			}
			return true
		}
	}
	return false
}

// claim takes the oldest pending transfer for a client and name.
func (s *TFTPServer) claim(key pendingKey) *pendingTransfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.pending[key]
	if len(ps) == 0 {
		return nil
	}
	p := ps[0]
	if len(ps) == 1 {
		delete(s.pending, key)
	} else {
		s.pending[key] = ps[1:]
	}
	p.timer.Stop()
	return p
}

// readHandler is pin/tftp's read handler. Every path through it either
// calls rf.ReadFrom or returns a non-nil error, so pin/tftp always releases
// the transfer's socket.
func (s *TFTPServer) readHandler(name string, rf io.ReaderFrom) error {
	ot, ok := rf.(tftp.OutgoingTransfer)
	if !ok {
		return errors.New("file not found")
	}
	ra := ot.RemoteAddr()
	client := ra.AddrPort()
	p := s.claim(pendingKey{netip.AddrPortFrom(client.Addr().Unmap(), client.Port()), name})
	if p == nil {
		// Not a request we vetted and opened (cannot happen: only vetted
		// requests reach pin/tftp). The text goes to the client.
		return errors.New("file not found")
	}
	if p.file.Size >= 0 {
		ot.SetSize(p.file.Size)
	}
	src := &transferReader{r: p.file.R, size: p.file.Size}
	// Large reads from the source, whatever the block size.
	n, err := rf.ReadFrom(bufio.NewReaderSize(src, 64<<10))
	if src.err != nil {
		err = src.err // the real cause, not the generic text the client got
	}
	s.finish(p, n, err)
	return err
}

// errTFTPBusy is reported for requests refused because MaxTransfers are in
// progress.
var errTFTPBusy = errors.New("tftp: too many transfers in progress")

// errSourceRead is what the client is told when the source fails mid-way.
var errSourceRead = errors.New("read error")

// transferReader hides source errors from the client (pin/tftp sends the
// error text), and fails a transfer whose length differs from the size
// announced.
type transferReader struct {
	r    io.Reader
	size int64
	n    int64
	err  error // the real error, for the log
}

func (t *transferReader) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	t.n += int64(n)
	if t.size >= 0 && t.n > t.size {
		t.err = fmt.Errorf("source gave more than the %d bytes announced", t.size)
		return 0, errSourceRead
	}
	if err == io.EOF && t.size >= 0 && t.n < t.size {
		t.err = fmt.Errorf("source gave %d bytes, %d announced", t.n, t.size)
		return n, errSourceRead
	}
	if err != nil && err != io.EOF {
		t.err = err
		return n, errSourceRead
	}
	return n, err
}

// finish closes the transfer's file, releases its slot and reports it.
func (s *TFTPServer) finish(p *pendingTransfer, n int64, err error) {
	if p.file.Close != nil {
		if cerr := p.file.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	s.mu.Lock()
	s.active--
	s.mu.Unlock()
	s.forgetDst(p.key.client)
	t := TFTPTransfer{
		Client: p.key.client, Name: p.key.name, Bytes: n, Size: p.file.Size,
		BlockSize: p.blockSize, Duration: time.Since(p.start), Err: err,
	}
	log := s.logger()
	switch {
	case err == nil:
		log.Debug("tftp: sent", "client", t.Client, "name", t.Name, "bytes", n, "blksize", t.BlockSize, "duration", t.Duration)
	case errors.Is(err, ErrNotFound), errors.Is(err, fs.ErrNotExist):
		log.Debug("tftp: not found", "client", t.Client, "name", t.Name, "err", err)
	case errors.Is(err, ErrAccessDenied), errors.Is(err, fs.ErrPermission):
		log.Warn("tftp: access denied", "client", t.Client, "name", t.Name, "err", err)
	default:
		log.Info("tftp: transfer failed", "client", t.Client, "name", t.Name, "bytes", n, "err", err)
	}
	if s.OnTransfer != nil {
		s.OnTransfer(t)
	}
}

// tftpErrorFor maps a source error to a TFTP error code and a message that
// says nothing about the server's insides.
func tftpErrorFor(err error) (uint16, string) {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return tftpErrNotFound, "file not found"
	case errors.Is(err, ErrAccessDenied), errors.Is(err, fs.ErrPermission):
		return tftpErrAccess, "access violation"
	case errors.Is(err, context.DeadlineExceeded):
		return tftpErrUndefined, "timed out"
	}
	return tftpErrUndefined, "server error"
}

// requestConn is the net.PacketConn a pin/tftp server serves: it reads the
// vetted, canonical read requests (and, in single-port mode, the
// acknowledgements) that the server pushes. In single-port mode pin/tftp
// writes through it to the server's socket; otherwise it never writes.
type requestConn struct {
	local net.Addr
	ch    chan queuedRequest
	write func(pkt []byte, to netip.AddrPort) error

	mu        sync.Mutex
	cond      *sync.Cond
	deadline  time.Time     // for ReadFrom; zero: none
	dlChanged chan struct{} // closed when the deadline changes
	pushed    int           // requests pushed
	delivered int           // requests returned by ReadFrom
	handled   int           // requests pin/tftp has finished handling
	stopped   bool
	stopCh    chan struct{}
}

type queuedRequest struct {
	pkt  []byte
	addr *net.UDPAddr
}

func newRequestConn(local net.Addr, write func([]byte, netip.AddrPort) error) *requestConn {
	c := &requestConn{local: local, ch: make(chan queuedRequest, 1024), stopCh: make(chan struct{}), write: write,
		dlChanged: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	return c
}

func (c *requestConn) push(pkt []byte, addr *net.UDPAddr) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.pushed++
	c.mu.Unlock()
	select {
	case c.ch <- queuedRequest{pkt, addr}: // pin/tftp drains it until stop
	case <-c.stopCh:
		c.mu.Lock()
		c.pushed--
		c.cond.Broadcast()
		c.mu.Unlock()
	}
}

// ReadFrom returns the next request. pin/tftp calls it again only after it
// has handled the previous one, which is how waitHandled knows.
func (c *requestConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	c.handled = c.delivered
	c.cond.Broadcast()
	c.mu.Unlock()
	for {
		c.mu.Lock()
		deadline, changed := c.deadline, c.dlChanged
		c.mu.Unlock()
		var expired <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, nil, errStopped
			}
			t := time.NewTimer(d)
			defer t.Stop()
			expired = t.C
		}
		select {
		case <-changed:
			continue // a new deadline, as a socket would see it mid-read
		case <-expired:
			return 0, nil, errStopped
		case r := <-c.ch:
			c.mu.Lock()
			c.delivered++
			c.mu.Unlock()
			return copy(b, r.pkt), r.addr, nil
		case <-c.stopCh:
			// pin/tftp keeps reading until its transfers end: a short wait and
			// a timeout keep its loop from spinning.
			time.Sleep(20 * time.Millisecond)
			return 0, nil, errStopped
		}
	}
}

// errStopped is a timeout: pin/tftp's single-port loop retries it quietly,
// and stops on it once it is shutting down and has no transfers left.
var errStopped = &net.OpError{Op: "read", Net: "udp", Err: os.ErrDeadlineExceeded}

// waitHandled returns once pin/tftp has handled every pushed request. No
// push may happen concurrently.
func (c *requestConn) waitHandled() {
	c.mu.Lock()
	for c.handled < c.pushed {
		c.cond.Wait()
	}
	c.mu.Unlock()
}

func (c *requestConn) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopped {
		c.stopped = true
		close(c.stopCh)
	}
}

// WriteTo sends pin/tftp's packets through the server's socket.
func (c *requestConn) WriteTo(pkt []byte, to net.Addr) (int, error) {
	if c.write == nil {
		return 0, errors.New("tftp: request conn is read-only")
	}
	ua, ok := to.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("tftp: unexpected address %v", to)
	}
	ap := ua.AddrPort()
	if err := c.write(pkt, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())); err != nil {
		return 0, err
	}
	return len(pkt), nil
}

// Close is called by pin/tftp's Shutdown; ReadFrom keeps blocking until stop,
// so that pin/tftp's loop sees its own cancellation rather than spinning.
func (c *requestConn) Close() error                     { return nil }
func (c *requestConn) LocalAddr() net.Addr              { return c.local }
func (c *requestConn) SetDeadline(t time.Time) error    { return c.SetReadDeadline(t) }
func (c *requestConn) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline bounds the next ReadFrom calls (pin/tftp's single-port
// loop uses it while shutting down).
func (c *requestConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	close(c.dlChanged)
	c.dlChanged = make(chan struct{})
	c.mu.Unlock()
	return nil
}
