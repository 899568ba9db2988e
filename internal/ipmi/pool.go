// Package ipmi talks to nodes' BMCs over IPMI 2.0 (RMCP+, "lanplus") with
// github.com/bougou/go-ipmi: power status and control, the next boot device,
// the BMC's device ID, and bounded parallel fan-out over many BMCs with a
// per-BMC circuit breaker and rate limit, plus a background power poller.
//
// A Pool keeps one session per BMC (keyed by host:port and user), opened
// lazily, used by one call at a time, reopened once when it dropped, closed
// exactly once, and retired after SessionMaxAge (go-ipmi's keepalive would
// otherwise race with Close). Every call has a deadline. Errors are *BMCError
// values that name the BMC and never contain the password; their Kind
// (ErrAuth, ErrTimeout, ErrUnreachable, ErrCircuitOpen, ...) works with
// errors.Is.
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
)

// Defaults of Options.
const (
	DefaultCallTimeout     = 5 * time.Second
	DefaultBreakerCooldown = 30 * time.Second
	DefaultMinInterval     = 100 * time.Millisecond
	DefaultConcurrency     = 64
	DefaultProbeLimit      = 1024
)

// Options configure a Pool. Zero values take the defaults.
type Options struct {
	// CallTimeout bounds every call: the reachability probe of a BMC with
	// no session, and then opening the session and running the operation.
	CallTimeout time.Duration
	// BreakerCooldown is how long a BMC that timed out is skipped.
	BreakerCooldown time.Duration
	// MinInterval is the least time between the start of one call to a BMC
	// and the start of the next; negative means no limit.
	MinInterval time.Duration
	// Logger receives one debug line per call and a warning per failure;
	// nil discards them. Passwords are never logged.
	Logger *slog.Logger
}

// Result is the outcome of one operation on one node's BMC.
type Result struct {
	Node     string
	BMC      string // host:port
	Op       Op
	Power    string // "on" or "off" when the operation learned it
	Detail   string // what was done or read, for people
	Err      error  // nil on success; a *BMCError or a context error
	Duration time.Duration
}

// OK reports whether the operation succeeded.
func (r Result) OK() bool { return r.Err == nil }

// Pool holds the BMC sessions. It is safe for concurrent use.
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

// New returns a Pool.
func New(opts Options) *Pool {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.BreakerCooldown <= 0 {
		opts.BreakerCooldown = DefaultBreakerCooldown
	}
	if opts.MinInterval == 0 {
		opts.MinInterval = DefaultMinInterval
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
	last     time.Time

	// breaker, guarded by mu
	mu        sync.Mutex
	openUntil time.Time
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

func sessionKey(t Target) string { return t.Addr() + "|" + t.User }

func (p *Pool) session(t Target) (*session, error) {
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

// breakerWait returns how long the BMC's breaker stays open (0: closed).
func (s *session) breakerWait(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.openUntil) {
		return s.openUntil.Sub(now)
	}
	return 0
}

func (s *session) trip(until time.Time) {
	s.mu.Lock()
	s.openUntil = until
	s.mu.Unlock()
}

func (s *session) reset() {
	s.mu.Lock()
	s.openUntil = time.Time{}
	s.mu.Unlock()
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

// BreakerOpen reports how long calls to t's BMC are still skipped after a
// timeout (0 when they are not).
func (p *Pool) BreakerOpen(t Target) time.Duration {
	p.mu.Lock()
	s := p.sessions[sessionKey(t.withDefaults())]
	p.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.breakerWait(time.Now())
}

// Do runs op on t's BMC and returns its result. It never panics on a bad
// target or op: the Result's Err says what is wrong.
func (p *Pool) Do(ctx context.Context, t Target, op Op) Result {
	return p.do(ctx, t, op, nil)
}

// gate is acquired after the probe and before the session work; it returns
// the release function. Bulk uses it to bound concurrency.
type gate func(ctx context.Context) (release func(), err error)

func (p *Pool) do(ctx context.Context, t Target, op Op, g gate) (res Result) {
	start := time.Now()
	t = t.withDefaults()
	res = Result{Node: t.Node, BMC: t.Addr(), Op: op}
	defer func() {
		res.Duration = time.Since(start)
		p.logResult(t, res)
	}()
	if err := t.validate(); err != nil {
		res.Err = err
		return res
	}
	if !op.valid() {
		res.Err = fmt.Errorf("node %s: %w %q", t.Node, ErrBadOp, string(op))
		return res
	}
	s, err := p.session(t)
	if err != nil {
		res.Err = err
		return res
	}
	if w := s.breakerWait(time.Now()); w > 0 {
		res.Err = bmcErr(t.Addr(), ErrCircuitOpen, "circuit open after a timeout, retry in %s", ceilSeconds(w))
		return res
	}
	if err := ctx.Err(); err != nil {
		res.Err = err
		return res
	}

	// Reachability: a BMC without a session is pinged first, outside the
	// gate, so that silent BMCs do not hold concurrency slots.
	if !s.hasConn() {
		pctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
		err := Ping(pctx, t.Addr())
		if err != nil {
			be := classify(err, t, ctx, pctx, p.opts.CallTimeout)
			cancel()
			p.afterFailure(s, be)
			res.Err = be
			return res
		}
		cancel()
	}
	if g != nil {
		release, err := g(ctx)
		if err != nil {
			res.Err = err
			return res
		}
		defer release()
	}

	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	select {
	case s.lock <- struct{}{}:
	case <-cctx.Done():
		be := classify(cctx.Err(), t, ctx, cctx, p.opts.CallTimeout)
		res.Err = be
		return res
	}
	defer func() { <-s.lock }()
	if err := p.rateWait(cctx, s); err != nil {
		res.Err = classify(err, t, ctx, cctx, p.opts.CallTimeout)
		return res
	}
	s.last = time.Now()

	power, detail, err := p.call(cctx, s, t, op)
	if err != nil {
		be := classify(err, t, ctx, cctx, p.opts.CallTimeout)
		p.afterFailure(s, be)
		res.Err = be
		return res
	}
	s.reset()
	res.Power, res.Detail = power, detail
	return res
}

// rateWait waits until MinInterval has passed since the BMC's last call.
func (p *Pool) rateWait(ctx context.Context, s *session) error {
	if p.opts.MinInterval <= 0 || s.last.IsZero() {
		return nil
	}
	w := time.Until(s.last.Add(p.opts.MinInterval))
	if w <= 0 {
		return nil
	}
	tm := time.NewTimer(w)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// afterFailure trips the breaker on a timeout and drops a session that
// cannot be trusted any more.
func (p *Pool) afterFailure(s *session, be *BMCError) {
	if be == nil {
		return
	}
	if errors.Is(be, ErrTimeout) {
		s.trip(time.Now().Add(p.opts.BreakerCooldown))
	}
}

// call runs op with the session lock held: on the existing session when
// there is one (reopening it once if it dropped), else on a new one.
func (p *Pool) call(ctx context.Context, s *session, t Target, op Op) (string, string, error) {
	if s.conn != nil && (s.password != t.Password || time.Since(s.conn.opened) > SessionMaxAge) {
		p.drop(s)
	}
	if s.conn != nil {
		// Give the old session half of what is left, so that a session the
		// BMC forgot (it restarted) leaves time to open a new one.
		sub, cancel := halfContext(ctx)
		power, detail, err := run(sub, s.conn.c, op, t.EFI)
		cancel()
		if err == nil {
			return power, detail, nil
		}
		var re *types.ResponseError
		var ve *verifyError
		if errors.As(err, &re) || errors.As(err, &ve) || ctx.Err() != nil {
			// The BMC answered in the session (or our deadline is gone):
			// the session is fine, or there is no time to reopen it.
			if ctx.Err() != nil {
				p.drop(s)
			}
			return "", "", err
		}
		p.log.Debug("ipmi: session dropped, reconnecting", "bmc", t.Addr(), "node", t.Node, "err", scrub(err.Error(), t.Password))
		p.drop(s)
	}
	if err := p.connect(ctx, s, t); err != nil {
		return "", "", err
	}
	return run(ctx, s.conn.c, op, t.EFI)
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
func (p *Pool) connect(ctx context.Context, s *session, t Target) error {
	suites := t.CipherSuites
	if s.suite != 0 {
		suites = append([]int{s.suite}, without(suites, s.suite)...)
	}
	var lastErr error
	for _, cs := range suites {
		c, err := client.NewClient(t.Host, t.Port, t.User, t.Password)
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
			s.conn, s.password, s.suite = cn, t.Password, cs
			return nil
		}
		closeNow(cn)
		lastErr = err
		be := classify(err, t, ctx, ctx, p.opts.CallTimeout)
		if be.Kind != ErrProtocol && be.Kind != ErrRefused {
			return be
		}
	}
	return bmcErr(t.Addr(), ErrCipherSuite, "none of cipher suites %v accepted (last error: %s)",
		suites, scrub(lastErr.Error(), t.Password))
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

func (p *Pool) logResult(t Target, r Result) {
	if r.Err != nil {
		p.log.Warn("ipmi call failed", "node", t.Node, "bmc", r.BMC, "op", string(r.Op), "err", r.Err.Error(), "duration", r.Duration)
		return
	}
	p.log.Debug("ipmi call", "node", t.Node, "bmc", r.BMC, "op", string(r.Op), "power", r.Power, "detail", r.Detail, "duration", r.Duration)
}

// Close closes every session exactly once (a second Close does nothing).
// It waits for calls in flight, each bounded by its deadline, and for
// pollers to stop; calls after Close fail with ErrClosed.
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
		sem := make(chan struct{}, DefaultConcurrency)
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
