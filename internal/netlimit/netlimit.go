// Package netlimit bounds what a TCP server spends on its clients, so that
// no flood of connections topples the head node: a cap on open connections
// (at the cap a new connection replaces the longest-idle one, or is closed
// unanswered when none is idle: PXE firmware retries, and nothing is logged
// per connection), a write
// deadline renewed at every write (a slow client that keeps reading is never
// cut off, one that stops is), the read-header, read and idle timeouts of an
// http.Server, and a default cap derived from the process's file descriptor
// limit.
package netlimit

import (
	"container/list"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of Limits.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	// ReservedFDs are file descriptors kept for everything but the capped
	// server: the state database, the TFTP server, the API socket, the SSH
	// console, image builds.
	ReservedFDs = 256
	// DefaultWriteChunk is the most one deadline covers when a file is sent
	// with sendfile: a client must take at least WriteChunk per
	// WriteTimeout (512 KiB a minute by default, about 9 KB/s).
	DefaultWriteChunk = 512 << 10
)

// Limits are one server's limits. Zero fields take the defaults above;
// MaxConns 0 is DefaultMaxConns().
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (a trickled
	// check-in body). A long answer is not bound by it (the test proves it).
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request.
	IdleTimeout time.Duration
	// WriteTimeout is a progress deadline: every write (every WriteChunk of
	// a file sent with sendfile) must complete within it. A whole response
	// may take as long as the client keeps reading.
	WriteTimeout time.Duration
	// WriteChunk is the most one write deadline covers when a file is sent
	// with sendfile (default DefaultWriteChunk).
	WriteChunk int64
	// MaxConns caps open connections; more are accepted and closed at once.
	MaxConns int
}

// WithDefaults fills the zero fields.
func (l Limits) WithDefaults() Limits {
	set := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	set(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	set(&l.ReadTimeout, DefaultReadTimeout)
	set(&l.IdleTimeout, DefaultIdleTimeout)
	set(&l.WriteTimeout, DefaultWriteTimeout)
	if l.WriteChunk <= 0 {
		l.WriteChunk = DefaultWriteChunk
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns()
	}
	return l
}

// FDLimit returns the process's soft limit of open files (RLIMIT_NOFILE;
// Go raises it to the hard limit at start), or 1024 when it cannot be read.
func FDLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur == 0 {
		return 1024
	}
	return int(min(r.Cur, 1<<30))
}

// MaxConnsFor is the connection cap for a file descriptor limit of fds: a
// quarter of what ReservedFDs leave (a connection sending a file holds two
// descriptors, and the other half stays for TFTP transfers and the rest), at
// least 16.
func MaxConnsFor(fds int) int { return max(16, (fds-ReservedFDs)/4) }

// DefaultMaxConns is MaxConnsFor(FDLimit()).
func DefaultMaxConns() int { return MaxConnsFor(FDLimit()) }

// Listener caps the connections a net.Listener hands out and gives each a
// write deadline renewed at every write. When the cap is reached, a new
// connection takes the place of the connection that has waited longest
// without a request in progress (idle keep-alive, or no request yet), so a
// flood of idle connections cannot lock a booting node out; when every
// connection is busy answering, the new one is closed unanswered (shed).
// Idle states are known only through Server's http.Server.
type Listener struct {
	net.Listener
	limits Limits
	active atomic.Int64
	shed   atomic.Uint64
	evict  atomic.Uint64

	mu   sync.Mutex
	idle *list.List // of *conn without a request in progress, longest first
}

// Listener wraps ln with l's cap and write timeout (WithDefaults applied).
func (l Limits) Listener(ln net.Listener) *Listener {
	return &Listener{Listener: ln, limits: l.WithDefaults(), idle: list.New()}
}

// Server returns an http.Server for h with the Listener's timeouts; serve it
// on the Listener. errorLog may be nil.
func (l *Listener) Server(h http.Handler, errorLog *log.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.limits.ReadHeaderTimeout,
		ReadTimeout:       l.limits.ReadTimeout,
		IdleTimeout:       l.limits.IdleTimeout,
		// No WriteTimeout: it bounds a whole response (a 2 GB squashfs over
		// a slow link); the Listener's conns renew a deadline at every write.
		ErrorLog:  errorLog,
		ConnState: l.connState,
	}
}

// Accept returns the next connection. At the cap it first closes the
// longest-idle connection; when none is idle it closes the new one at once
// and accepts the next.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > int64(l.limits.MaxConns) {
			if old := l.oldestIdle(); old != nil {
				l.evict.Add(1)
				old.Close()
			} else {
				l.active.Add(-1)
				l.shed.Add(1)
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0) // free the port at once: no TIME_WAIT per shed connection
				}
				c.Close()
				continue
			}
		}
		nc := &conn{Conn: c, l: l}
		l.setIdle(nc, true) // no request yet
		return nc, nil
	}
}

// connState follows net/http's view of each connection.
func (l *Listener) connState(c net.Conn, st http.ConnState) {
	if nc, ok := c.(*conn); ok {
		l.setIdle(nc, st == http.StateNew || st == http.StateIdle)
	}
}

func (l *Listener) setIdle(c *conn, idle bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	if idle && !c.closed {
		c.elem = l.idle.PushBack(c)
	}
}

// oldestIdle removes and returns the connection idle the longest, or nil.
func (l *Listener) oldestIdle() *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.idle.Front()
	if e == nil {
		return nil
	}
	l.idle.Remove(e)
	c := e.Value.(*conn)
	c.elem = nil
	return c
}

// Active is the number of connections open now.
func (l *Listener) Active() int { return int(l.active.Load()) }

// Shed is the number of connections closed unanswered at the cap.
func (l *Listener) Shed() uint64 { return l.shed.Load() }

// Evicted is the number of idle connections closed to make room.
func (l *Listener) Evicted() uint64 { return l.evict.Load() }

// Limits returns the limits in force (defaults applied).
func (l *Listener) Limits() Limits { return l.limits }

// conn renews its write deadline at every write and frees its slot once.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
	// elem is the conn's place in l.idle; closed is set once it is closed.
	// Both are guarded by l.mu.
	elem   *list.Element
	closed bool
}

func (c *conn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.l.limits.WriteTimeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// ReadFrom keeps sendfile (net/http sends files through the connection's
// ReadFrom) and renews the deadline every WriteChunk bytes.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	rf, ok := c.Conn.(io.ReaderFrom)
	if !ok {
		return io.Copy(writeOnly{c}, r)
	}
	// The kernel sends a file only when it is an *os.File or an
	// *io.LimitedReader of one: cut the source into pieces of that shape.
	src, limited := r.(*io.LimitedReader)
	var total int64
	for {
		piece := &io.LimitedReader{R: r, N: c.l.limits.WriteChunk}
		if limited {
			if src.N <= 0 {
				return total, nil
			}
			piece = &io.LimitedReader{R: src.R, N: min(src.N, c.l.limits.WriteChunk)}
		}
		want := piece.N
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.l.limits.WriteTimeout)); err != nil {
			return total, err
		}
		n, err := rf.ReadFrom(piece)
		total += n
		if limited {
			src.N -= n
		}
		if err != nil || n < want {
			return total, err
		}
	}
}

// CloseWrite half-closes a TCP connection (net/http uses it before closing
// a connection on an error, so that the client reads the answer).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.closed = true
		if c.elem != nil {
			c.l.idle.Remove(c.elem)
			c.elem = nil
		}
		c.l.mu.Unlock()
		c.l.active.Add(-1)
	})
	return c.Conn.Close()
}

// writeOnly hides ReadFrom so that io.Copy does not call it again.
type writeOnly struct{ io.Writer }
