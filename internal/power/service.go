package power

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Defaults of Config.
const (
	DefaultCallTimeout     = 5 * time.Second
	DefaultBreakerCooldown = 30 * time.Second
	DefaultMinInterval     = 100 * time.Millisecond
	DefaultConcurrency     = 64
	DefaultProbeLimit      = 1024
)

// Config tunes a Service. Zero values take the defaults.
type Config struct {
	// CallTimeout bounds every call: the reachability probe of a backend
	// that has one, and then the operation.
	CallTimeout time.Duration
	// BreakerCooldown is how long a BMC that timed out is skipped.
	BreakerCooldown time.Duration
	// MinInterval is the least time between the starts of two calls to one
	// BMC; negative means no limit.
	MinInterval time.Duration
	// Logger receives one debug line per call and a warning per failure;
	// nil discards them. Passwords are never logged.
	Logger *slog.Logger
}

// Result is the outcome of one operation on one node's BMC.
type Result struct {
	Node     string
	Protocol string // the backend's name
	BMC      string // host:port
	Op       Op
	Power    string // "on" or "off" when the operation learned it
	Detail   string // what was done or read, for people
	// MACs are the machine's NIC MACs a deviceid read learned, where the
	// BMC tells them (Facts.MACs: Redfish does, IPMI does not); they feed
	// adoption by BMC.
	MACs     []string
	Err      error // nil on success; a *BMCError or a context error
	Duration time.Duration
}

// OK reports whether the operation succeeded.
func (r Result) OK() bool { return r.Err == nil }

// Service is the power seam: it runs operations on nodes' BMCs through the
// backend of each target's protocol, with what every backend gets (a
// deadline per call, a per-BMC breaker and rate limit, bounded parallel
// fan-out with one result per node, progress and cancel, a background
// poller). It is safe for concurrent use.
type Service struct {
	cfg Config
	reg *Registry
	log *slog.Logger

	mu       sync.Mutex
	backends map[string]Backend
	bmcs     map[string]*bmcState
	closed   bool

	closeOnce sync.Once
	done      chan struct{} // closed by Close
	wg        sync.WaitGroup
}

// bmcState is what the seam keeps per BMC: its breaker and rate limit.
type bmcState struct {
	mu        sync.Mutex
	openUntil time.Time // breaker open until then
	next      time.Time // the earliest start of the next call
}

// New returns a Service over the registry's backends. Each is opened when a
// target first needs it.
func New(cfg Config, reg *Registry) *Service {
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = DefaultBreakerCooldown
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = DefaultMinInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, reg: reg, log: log, backends: map[string]Backend{},
		bmcs: map[string]*bmcState{}, done: make(chan struct{})}
}

// Registry returns the registry the Service was made with.
func (s *Service) Registry() *Registry { return s.reg }

// backend returns the opened backend of t's protocol, opening it on first
// use.
func (s *Service) backend(t Target) (Backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if b := s.backends[t.Protocol]; b != nil {
		return b, nil
	}
	p, ok := s.reg.Lookup(t.Protocol)
	if !ok {
		return nil, unknownProtocol(t, s.reg)
	}
	b, err := p.Open(Settings{CallTimeout: s.cfg.CallTimeout, Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("power: opening the %s backend: %w", p.Name, err)
	}
	s.backends[t.Protocol] = b
	return b, nil
}

func bmcKey(t Target) string { return t.Protocol + "|" + t.Addr() }

func (s *Service) bmc(t Target) *bmcState {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := bmcKey(t)
	b := s.bmcs[k]
	if b == nil {
		b = &bmcState{}
		s.bmcs[k] = b
	}
	return b
}

// breakerWait returns how long the BMC's breaker stays open (0: closed).
func (b *bmcState) breakerWait(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.openUntil) {
		return b.openUntil.Sub(now)
	}
	return 0
}

func (b *bmcState) setBreaker(until time.Time) {
	b.mu.Lock()
	b.openUntil = until
	b.mu.Unlock()
}

// reserve books the BMC's next call start at least interval after the
// previous one and returns when that is.
func (b *bmcState) reserve(interval time.Duration) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	at := now
	if b.next.After(now) {
		at = b.next
	}
	b.next = at.Add(interval)
	return at
}

// BreakerOpen reports how long calls to t's BMC are still skipped after a
// timeout (0 when they are not).
func (s *Service) BreakerOpen(t Target) time.Duration {
	t, err := s.reg.WithDefaults(t)
	if err != nil {
		return 0
	}
	s.mu.Lock()
	b := s.bmcs[bmcKey(t)]
	s.mu.Unlock()
	if b == nil {
		return 0
	}
	return b.breakerWait(time.Now())
}

// Do runs op on t's BMC and returns its result. It never panics on a bad
// target or op: the Result's Err says what is wrong.
func (s *Service) Do(ctx context.Context, t Target, op Op) Result {
	return s.do(ctx, t, op, nil)
}

// gate is acquired after the probe and before the call; it returns the
// release function. Bulk uses it to bound concurrency.
type gate func(ctx context.Context) (release func(), err error)

func (s *Service) do(ctx context.Context, t Target, op Op, g gate) (res Result) {
	start := time.Now()
	t, derr := s.reg.WithDefaults(t)
	res = Result{Node: t.Node, Protocol: t.Protocol, BMC: t.Addr(), Op: op}
	defer func() {
		res.Duration = time.Since(start)
		s.logResult(t, res)
	}()
	if derr != nil {
		res.Err = derr
		return res
	}
	if err := validate(t); err != nil {
		res.Err = err
		return res
	}
	if !op.Valid() {
		res.Err = fmt.Errorf("node %s: %w %q", t.Node, ErrBadOp, string(op))
		return res
	}
	be, err := s.backend(t)
	if err != nil {
		res.Err = err
		return res
	}
	b := s.bmc(t)
	if w := b.breakerWait(time.Now()); w > 0 {
		res.Err = NewError(t.Addr(), ErrCircuitOpen, "circuit open after a timeout, retry in %s", ceilSeconds(w))
		return res
	}
	if err := ctx.Err(); err != nil {
		res.Err = err
		return res
	}
	// Reachability first, outside the gate, so that silent BMCs do not
	// hold concurrency slots.
	if pr, ok := be.(Prober); ok {
		pctx, cancel := WithDeadline(ctx, s.cfg.CallTimeout)
		err := pr.Probe(pctx, t)
		if err != nil {
			res.Err = s.failed(b, t, ctx, pctx, err)
			cancel()
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
	cctx, cancel := WithDeadline(ctx, s.cfg.CallTimeout)
	defer cancel()
	if s.cfg.MinInterval > 0 {
		if err := sleepUntil(cctx, b.reserve(s.cfg.MinInterval)); err != nil {
			res.Err = s.classify(t, ctx, cctx, err)
			return res
		}
	}
	out, err := s.call(cctx, be, t, op)
	if err != nil {
		res.Err = s.failed(b, t, ctx, cctx, err)
		return res
	}
	b.setBreaker(time.Time{})
	res.Power, res.Detail, res.MACs = out.Power, out.Detail, out.MACs
	return res
}

// call maps op to the backend's method.
func (s *Service) call(ctx context.Context, be Backend, t Target, op Op) (Outcome, error) {
	switch {
	case op.PowerOp():
		return be.Power(ctx, t, op)
	case op == OpBootdevPXE:
		return be.BootOnce(ctx, t, BootDevice{Kind: BootPXE, EFI: t.EFI, URL: t.BootURL})
	}
	f, err := be.Facts(ctx, t)
	if err != nil {
		return Outcome{}, err
	}
	switch op {
	case OpBootflags:
		if f.Boot == "" {
			if e := f.Unread["boot"]; e != nil {
				return Outcome{}, e
			}
			return Outcome{}, NewError(t.Addr(), ErrUnsupported, "the BMC does not tell the next boot device")
		}
		return Outcome{Detail: f.Boot}, nil
	default: // OpDeviceID
		return Outcome{Detail: f.Device, MACs: f.MACs}, nil
	}
}

// failed classifies a backend's error and trips the breaker on a timeout.
func (s *Service) failed(b *bmcState, t Target, parent, callCtx context.Context, err error) error {
	err = s.classify(t, parent, callCtx, err)
	if errors.Is(err, ErrTimeout) {
		b.setBreaker(time.Now().Add(s.cfg.BreakerCooldown))
	}
	return err
}

// classify makes every error about the BMC a *BMCError: a backend's own
// stays as it is; a context error becomes ErrCanceled (the caller's) or
// ErrTimeout (the deadline); anything else ErrProtocol.
func (s *Service) classify(t Target, parent, callCtx context.Context, err error) error {
	var be *BMCError
	if errors.As(err, &be) {
		return err
	}
	if perr := parent.Err(); perr != nil {
		return NewError(t.Addr(), ErrCanceled, "canceled: %v", perr).Also(perr)
	}
	if callCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return NewError(t.Addr(), ErrTimeout, "no answer within %s", Seconds(s.cfg.CallTimeout))
	}
	return NewError(t.Addr(), ErrProtocol, "%v", err)
}

func sleepUntil(ctx context.Context, at time.Time) error {
	w := time.Until(at)
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

// validate checks what every call needs before any packet is sent.
func validate(t Target) error {
	switch {
	case t.Host == "":
		return fmt.Errorf("node %s: no BMC host", t.Node)
	case t.Port < 1 || t.Port > 65535:
		return fmt.Errorf("node %s: BMC port %d out of range", t.Node, t.Port)
	}
	return nil
}

func (s *Service) logResult(t Target, r Result) {
	if r.Err != nil {
		s.log.Warn("power call failed", "node", t.Node, "protocol", t.Protocol, "bmc", r.BMC, "op", string(r.Op), "err", r.Err.Error(), "duration", r.Duration)
		return
	}
	s.log.Debug("power call", "node", t.Node, "protocol", t.Protocol, "bmc", r.BMC, "op", string(r.Op), "power", r.Power, "detail", r.Detail, "duration", r.Duration)
}

// Console attaches to t's serial console through its backend (see
// SerialConsole). A backend without one fails with an ErrNoConsole error
// (its Kind ErrUnsupported) that names the protocol.
func (s *Service) Console(ctx context.Context, t Target, in io.Reader, out io.Writer, opts ConsoleOptions) error {
	t, err := s.reg.WithDefaults(t)
	if err != nil {
		return err
	}
	if err := validate(t); err != nil {
		return err
	}
	be, err := s.backend(t)
	if err != nil {
		return err
	}
	sc, ok := be.(SerialConsole)
	if !ok {
		msg := fmt.Sprintf("the %s backend has no serial console", t.Protocol)
		if alt, ok := be.(ConsoleAlternative); ok {
			if a := alt.ConsoleAlternative(t); a != "" {
				msg += "; " + a
			}
		}
		return NewError(t.Addr(), ErrUnsupported, "%s", msg).Also(ErrNoConsole)
	}
	return sc.Console(ctx, t, in, out, opts)
}

// HasConsole reports whether t's backend has a serial console.
func (s *Service) HasConsole(t Target) bool {
	be, err := s.backend(t)
	if err != nil {
		return false
	}
	_, ok := be.(SerialConsole)
	return ok
}

// Close closes every opened backend exactly once (a second Close does
// nothing). It stops the pollers first; calls after Close fail with
// ErrClosed.
func (s *Service) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		bs := s.backends
		s.mu.Unlock()
		close(s.done)
		s.wg.Wait()
		for _, b := range bs {
			if err := b.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
