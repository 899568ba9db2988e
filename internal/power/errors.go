package power

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Error kinds. Every error the seam returns for a BMC is a *BMCError whose
// Kind is one of these, so errors.Is(err, ErrTimeout) and the like work
// whatever the protocol. Backends build their errors with NewError.
var (
	// ErrAuth: the BMC refused the user name or password.
	ErrAuth = errors.New("authentication failed")
	// ErrTimeout: the BMC did not answer within the call deadline. It trips
	// the BMC's breaker.
	ErrTimeout = errors.New("no answer")
	// ErrUnreachable: the BMC's address refused the packets (port closed,
	// no route, unknown host).
	ErrUnreachable = errors.New("unreachable")
	// ErrCircuitOpen: the BMC timed out recently and is skipped until its
	// cool-down ends.
	ErrCircuitOpen = errors.New("circuit open")
	// ErrNegotiation: the BMC and the backend found no common way to talk
	// (IPMI: no cipher suite accepted; TLS: no common version or a
	// certificate mismatch).
	ErrNegotiation = errors.New("no common protocol parameters")
	// ErrRefused: the BMC answered but refused the command, or a read-back
	// did not match what was set.
	ErrRefused = errors.New("command refused")
	// ErrUnsupported: the backend or the BMC cannot do this at all (a boot
	// device it does not offer, a serial console it does not have).
	ErrUnsupported = errors.New("not supported")
	// ErrCanceled: the caller canceled the call; the error also matches
	// context.Canceled or context.DeadlineExceeded.
	ErrCanceled = errors.New("canceled")
	// ErrProtocol: anything else the exchange failed with.
	ErrProtocol = errors.New("protocol error")
	// ErrClosed: the Service (or the backend) was closed.
	ErrClosed = errors.New("power: closed")
	// ErrEmptySelection: Bulk was given no targets. An empty selection is
	// never "all nodes".
	ErrEmptySelection = errors.New("power: empty selection: no nodes to act on")
	// ErrBadOp: the operation name is not one of the known operations.
	ErrBadOp = errors.New("power: unknown operation")
	// ErrUnknownProtocol: a target names a protocol no backend is
	// registered for.
	ErrUnknownProtocol = errors.New("power: unknown BMC protocol")
	// ErrNoConsole: the node's backend has no serial console. Its
	// *BMCError's Kind is ErrUnsupported, so both match.
	ErrNoConsole = errors.New("no serial console")
	// ErrSessionAged ends a serial console stream that stopped only so that
	// a new session takes over (a backend's planned hand-over, see
	// SerialConsole). Call Console again at once; bytes the node writes in
	// between may be lost.
	ErrSessionAged = errors.New("console session reached its maximum age")
)

// BMCError is an error about one BMC. Its text names the BMC and never
// contains a password.
type BMCError struct {
	BMC  string // host:port
	Kind error  // one of the Err* kinds above
	Msg  string // the human text after "BMC host:port: "
	also error  // a second error errors.Is matches (a context error, ErrNoConsole)
}

// NewError returns a *BMCError about the BMC at addr.
func NewError(addr string, kind error, format string, args ...any) *BMCError {
	return &BMCError{BMC: addr, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Also returns e matching err too (errors.Is), e.g. the context error of a
// canceled call.
func (e *BMCError) Also(err error) *BMCError {
	e.also = err
	return e
}

// Error returns "BMC host:port: Msg".
func (e *BMCError) Error() string { return "BMC " + e.BMC + ": " + e.Msg }

// Unwrap lets errors.Is match the Kind (and the second error, if any).
func (e *BMCError) Unwrap() []error {
	if e.also != nil {
		return []error{e.Kind, e.also}
	}
	return []error{e.Kind}
}

// Permanent reports whether err is a failure that retrying at once would
// meet again (wrong credentials, a refused command or payload, no common
// parameters, a closed port, no such capability, a closed service): a
// console hub stops rather than reconnects.
func Permanent(err error) bool {
	for _, k := range []error{ErrRefused, ErrAuth, ErrNegotiation, ErrUnreachable, ErrUnsupported, ErrClosed, ErrUnknownProtocol} {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// errDeadline is the cause of a context the seam ended at its per-call
// deadline.
var errDeadline = errors.New("power: per-call deadline passed")

// WithDeadline returns ctx bounded by the per-call deadline d, marked so that
// DeadlineExpired tells its end apart from the caller's cancel. The Service
// calls backends with such contexts.
func WithDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d, errDeadline)
}

// DeadlineExpired reports whether ctx ended because the per-call deadline
// set by WithDeadline passed, rather than because the caller canceled it (or
// the caller's own deadline passed).
func DeadlineExpired(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), errDeadline)
}

// CallerCanceled reports whether ctx ended by the caller's cancel (or the
// caller's own deadline) rather than by a per-call deadline of the seam.
func CallerCanceled(ctx context.Context) bool {
	return ctx.Err() != nil && !DeadlineExpired(ctx)
}

// Seconds renders a deadline as whole seconds when it is a whole number of
// them, else with millisecond precision ("5s", "1.5s"), for "no answer
// within 5s".
func Seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return d.String()
	}
	return d.Round(time.Millisecond).String()
}

// ceilSeconds renders a remaining wait rounded up to whole seconds ("28s").
func ceilSeconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int(math.Ceil(d.Seconds())))
}
