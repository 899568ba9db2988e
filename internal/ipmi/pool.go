// Package ipmi is the IPMI 2.0 (RMCP+, "lanplus") backend of the power seam
// (internal/power), with github.com/bougou/go-ipmi: power status and
// control, the one-time boot device, the BMC's device facts and
// serial-over-LAN. Protocol declares it to a power.Registry; the fan-out,
// breaker, rate limit and deadline are the seam's.
//
// A Pool keeps one session per BMC (keyed by host:port and user), opened
// lazily, used by one call at a time, reopened once when it dropped, closed
// exactly once, and retired after SessionMaxAge (go-ipmi's keepalive would
// otherwise race with Close). Errors are *BMCError values that name the BMC
// and never contain the password; their Kind (ErrAuth, ErrTimeout,
// ErrUnreachable, ErrCipherSuite, ...) works with errors.Is.
package ipmi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/netbootui/netbootui/internal/power"
)

// Options configure a Pool. Zero values take the defaults.
type Options struct {
	// CallTimeout is the deadline of one call (power.DefaultCallTimeout
	// when zero); the power seam applies it, the Pool uses it to bound its
	// retries and in "no answer within" texts, and applies it itself to
	// opening a SOL session.
	CallTimeout time.Duration
	// Logger receives the Pool's own lines; nil discards them. Passwords
	// are never logged.
	Logger *slog.Logger
}

// Pool holds the BMC sessions: it is the power.Backend (and
// power.SerialConsole and power.Prober) of IPMI. It is safe for concurrent
// use.
type Pool struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool

	closeOnce sync.Once
	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
}

var (
	_ power.Backend       = (*Pool)(nil)
	_ power.SerialConsole = (*Pool)(nil)
	_ power.Prober        = (*Pool)(nil)
)

// New returns a Pool.
func New(opts Options) *Pool {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = power.DefaultCallTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{opts: opts, log: log, sessions: map[string]*session{}, done: make(chan struct{})}
	p.wg.Add(1)
	go p.reap()
	return p
}

// reap closes sessions older than SessionMaxAge that no call is using, until
// the pool closes.
func (p *Pool) reap() {
	defer p.wg.Done()
	t := time.NewTicker(reapEvery)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
		}
		p.mu.Lock()
		ss := make([]*session, 0, len(p.sessions))
		for _, s := range p.sessions {
			ss = append(ss, s)
		}
		p.mu.Unlock()
		for _, s := range ss {
			select {
			case s.lock <- struct{}{}:
				if s.conn != nil && time.Since(s.conn.opened) > SessionMaxAge {
					p.drop(s)
				}
				<-s.lock
			default: // in use: the call retires it, or the next round does
			}
		}
	}
}

// session is the state kept for one BMC.
type session struct {
	key  string
	lock chan struct{} // a one-slot semaphore: the client is used by one call at a time

	// guarded by lock
	conn     *conn
	password string // the password conn was opened with
	suite    int    // the cipher suite that worked last; 0 when unknown
}

// conn is a go-ipmi client whose Close runs exactly once (a second Close
// panics in go-ipmi).
type conn struct {
	c      *client.Client
	once   sync.Once
	opened time.Time // when Connect returned
}

// SessionMaxAge is how long a session is kept open. go-ipmi starts a
// keepalive goroutine with every session that sends every 30 s with a
// context nothing cancels; a Close that lands while such a send is starting
// makes go-ipmi's UDP client write to the connection Close just set to nil,
// and the whole process panics (seen under load in CI:
// bytes.(*Reader).WriteTo with a nil writer in UDPClient.ExchangeUntilMatch;
// go-ipmi v0.9.1 offers no way to turn the keepalive off). So no session
// lives to its first keepalive: a call retires a session older than this
// before using it, and the reaper closes idle ones, in both cases while no
// call uses it. Up to a call's deadline and a reaper round later it is
// closed, still well before the 30 s tick. The cost is a new session (one
// RAKP handshake) per BMC about every SessionMaxAge while it is in use.
const SessionMaxAge = 15 * time.Second

// reapEvery is how often the reaper looks for sessions past SessionMaxAge.
const reapEvery = 2 * time.Second

func (c *conn) close(ctx context.Context) {
	c.once.Do(func() { _ = c.c.Close(ctx) })
}

func sessionKey(t target) string { return t.addr() + "|" + t.user }

func (p *Pool) session(t target) (*session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	k := sessionKey(t)
	s := p.sessions[k]
	if s == nil {
		s = &session{key: k, lock: make(chan struct{}, 1)}
		p.sessions[k] = s
	}
	return s, nil
}

// hasConn reports, without waiting, whether the BMC has an open session.
// It is a hint for skipping the probe; a wrong guess costs one ping.
func (s *session) hasConn() bool {
	select {
	case s.lock <- struct{}{}:
		ok := s.conn != nil
		<-s.lock
		return ok
	default:
		return true // in use: a session exists or is being opened
	}
}

// Probe (power.Prober) asks a BMC with no open session an RMCP presence
// ping, so that a silent BMC is found out before a session is tried; with a
// session open it returns nil at once.
func (p *Pool) Probe(ctx context.Context, pt power.Target) error {
	t := fromTarget(pt)
	if err := t.validate(); err != nil {
		return err
	}
	s, err := p.session(t)
	if err != nil {
		return err
	}
	if s.hasConn() {
		return nil
	}
	if err := Ping(ctx, t.addr()); err != nil {
		return classify(err, t, ctx, ctx, p.opts.CallTimeout)
	}
	return nil
}

// Power (power.Backend) runs status, on, off, soft, cycle or reset.
func (p *Pool) Power(ctx context.Context, t power.Target, op power.Op) (power.Outcome, error) {
	if !op.PowerOp() {
		return power.Outcome{}, fmt.Errorf("node %s: %w %q", t.Node, power.ErrBadOp, string(op))
	}
	return p.do(ctx, fromTarget(t), func(ctx context.Context, c *client.Client, t target) (power.Outcome, error) {
		return runPower(ctx, c, op)
	})
}

// BootOnce (power.Backend) sets the next boot, once, to PXE (legacy, or EFI
// for a UEFI node), read back and verified. HTTP boot is not an IPMI boot
// device: it is an ErrUnsupported error.
func (p *Pool) BootOnce(ctx context.Context, t power.Target, dev power.BootDevice) (power.Outcome, error) {
	tg := fromTarget(t)
	if dev.Kind != power.BootPXE {
		return power.Outcome{}, bmcErr(tg.addr(), power.ErrUnsupported, "IPMI cannot set %s as the boot device", dev.Kind)
	}
	return p.do(ctx, tg, func(ctx context.Context, c *client.Client, t target) (power.Outcome, error) {
		return bootPXE(ctx, c, dev.EFI)
	})
}

// Facts (power.Backend) reads the BMC's device ID, then the power state and
// the boot flags (those two are left empty, with their errors in Unread,
// when the BMC does not answer them).
func (p *Pool) Facts(ctx context.Context, t power.Target) (power.Facts, error) {
	var f power.Facts
	tg := fromTarget(t)
	_, err := p.do(ctx, tg, func(ctx context.Context, c *client.Client, t target) (power.Outcome, error) {
		var err error
		f, err = facts(ctx, c, func(err error) error { return classify(err, t, ctx, ctx, p.opts.CallTimeout) })
		return power.Outcome{}, err
	})
	return f, err
}

// do runs f on t's session, the session lock held. ctx carries the call's
// deadline (the power seam's).
func (p *Pool) do(ctx context.Context, t target, f runFunc) (power.Outcome, error) {
	if err := t.validate(); err != nil {
		return power.Outcome{}, err
	}
	s, err := p.session(t)
	if err != nil {
		return power.Outcome{}, err
	}
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return power.Outcome{}, classify(ctx.Err(), t, ctx, ctx, p.opts.CallTimeout)
	}
	defer func() { <-s.lock }()
	out, err := p.call(ctx, s, t, f)
	if err != nil {
		return power.Outcome{}, classify(err, t, ctx, ctx, p.opts.CallTimeout)
	}
	return out, nil
}

// runFunc is one operation on a connected client.
type runFunc func(ctx context.Context, c *client.Client, t target) (power.Outcome, error)

// call runs op with the session lock held: on the existing session when
// there is one (reopening it once if it dropped), else on a new one.
func (p *Pool) call(ctx context.Context, s *session, t target, f runFunc) (power.Outcome, error) {
	if s.conn != nil && (s.password != t.password.Reveal() || time.Since(s.conn.opened) > SessionMaxAge) {
		p.drop(s)
	}
	if s.conn != nil {
		// Give the old session half of what is left, so that a session the
		// BMC forgot (it restarted) leaves time to open a new one.
		sub, cancel := halfContext(ctx)
		out, err := f(sub, s.conn.c, t)
		cancel()
		if err == nil {
			return out, nil
		}
		var re *types.ResponseError
		var ve *verifyError
		if errors.As(err, &re) || errors.As(err, &ve) || ctx.Err() != nil {
			// The BMC answered in the session (or our deadline is gone):
			// the session is fine, or there is no time to reopen it.
			if ctx.Err() != nil {
				p.drop(s)
			}
			return power.Outcome{}, err
		}
		p.log.Debug("ipmi: session dropped, reconnecting", "bmc", t.addr(), "node", t.node, "err", scrub(err.Error(), t.password.Reveal()))
		p.drop(s)
	}
	if err := p.connect(ctx, s, t); err != nil {
		return power.Outcome{}, err
	}
	return f(ctx, s.conn.c, t)
}

func halfContext(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
}

// drop closes the session's client without waiting for the BMC.
func (p *Pool) drop(s *session) {
	if s.conn == nil {
		return
	}
	c := s.conn
	s.conn = nil
	closeNow(c)
}

// closeNow closes c with an already-ended context: go-ipmi then skips the
// Close Session exchange and only releases its socket.
func closeNow(c *conn) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.close(ctx)
}

// connect opens a session, trying the cipher suites in order with the one
// that worked last first. A refused password or a silent BMC stops the
// search; a suite the BMC does not offer moves on to the next.
func (p *Pool) connect(ctx context.Context, s *session, t target) error {
	suites := t.suites
	if s.suite != 0 {
		suites = append([]int{s.suite}, without(suites, s.suite)...)
	}
	var lastErr error
	for _, cs := range suites {
		c, err := client.NewClient(t.host, t.port, t.user, t.password.Reveal())
		if err != nil {
			return err
		}
		c.WithCipherSuiteID(types.CipherSuiteID(cs))
		// One attempt every second within the call's deadline.
		c.WithTimeout(time.Second).WithRetry(int(p.opts.CallTimeout/time.Second) + 1)
		cn := &conn{c: c}
		err = c.Connect(ctx)
		if err == nil {
			cn.opened = time.Now()
			s.conn, s.password, s.suite = cn, t.password.Reveal(), cs
			return nil
		}
		closeNow(cn)
		lastErr = err
		be := classify(err, t, ctx, ctx, p.opts.CallTimeout)
		if be.Kind != ErrProtocol && be.Kind != ErrRefused {
			return be
		}
	}
	return bmcErr(t.addr(), ErrCipherSuite, "none of cipher suites %v accepted (last error: %s)",
		suites, scrub(lastErr.Error(), t.password.Reveal()))
}

func without(xs []int, x int) []int {
	var out []int
	for _, v := range xs {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

// Close closes every session exactly once (a second Close does nothing).
// It waits for calls in flight, each bounded by its deadline; calls after
// Close fail with ErrClosed.
func (p *Pool) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		ss := make([]*session, 0, len(p.sessions))
		for _, s := range p.sessions {
			ss = append(ss, s)
		}
		p.mu.Unlock()
		close(p.done)
		p.wg.Wait()
		var wg sync.WaitGroup
		sem := make(chan struct{}, power.DefaultConcurrency)
		for _, s := range ss {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s.lock <- struct{}{}
				defer func() { <-s.lock }()
				if s.conn != nil {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					s.conn.close(ctx)
					cancel()
					s.conn = nil
				}
			}()
		}
		wg.Wait()
	})
	return nil
}

// openSessions counts the sessions with an open go-ipmi client (for tests).
func (p *Pool) openSessions() int {
	p.mu.Lock()
	ss := make([]*session, 0, len(p.sessions))
	for _, s := range p.sessions {
		ss = append(ss, s)
	}
	p.mu.Unlock()
	n := 0
	for _, s := range ss {
		s.lock <- struct{}{}
		if s.conn != nil {
			n++
		}
		<-s.lock
	}
	return n
}
