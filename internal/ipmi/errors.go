package ipmi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Error kinds. Every error a Pool returns for a BMC is a *BMCError whose
// Kind is one of these, so errors.Is(err, ErrTimeout) and the like work.
var (
	// ErrAuth: the BMC refused the user name or password.
	ErrAuth = errors.New("authentication failed")
	// ErrTimeout: the BMC did not answer within the call deadline.
	ErrTimeout = errors.New("no answer")
	// ErrUnreachable: the BMC's address refused the packets (port closed,
	// no route, unknown host).
	ErrUnreachable = errors.New("unreachable")
	// ErrCircuitOpen: the BMC timed out recently and is skipped until its
	// cool-down ends.
	ErrCircuitOpen = errors.New("circuit open")
	// ErrCipherSuite: the BMC accepted none of the cipher suites offered.
	ErrCipherSuite = errors.New("no cipher suite accepted")
	// ErrRefused: the BMC answered but refused the command (an IPMI
	// completion code other than success), or a read-back did not match.
	ErrRefused = errors.New("command refused")
	// ErrCanceled: the caller canceled the call; the error also matches
	// context.Canceled or context.DeadlineExceeded.
	ErrCanceled = errors.New("canceled")
	// ErrProtocol: anything else the exchange failed with.
	ErrProtocol = errors.New("protocol error")
	// ErrClosed: the Pool was closed.
	ErrClosed = errors.New("ipmi: pool closed")
	// ErrEmptySelection: Bulk was given no targets. An empty selection is
	// never "all nodes".
	ErrEmptySelection = errors.New("ipmi: empty selection: no nodes to act on")
	// ErrBadOp: the operation name is not one of the known operations.
	ErrBadOp = errors.New("ipmi: unknown operation")
)

// BMCError is an error about one BMC. Its text names the BMC and never
// contains the password.
type BMCError struct {
	BMC  string // host:port
	Kind error  // one of the Err* kinds above
	Msg  string // the human text after "BMC host:port: "
	ctx  error  // context.Canceled / DeadlineExceeded for ErrCanceled
}

// Error returns "BMC host:port: Msg".
func (e *BMCError) Error() string { return "BMC " + e.BMC + ": " + e.Msg }

// Unwrap lets errors.Is match the Kind (and the context error of a
// canceled call).
func (e *BMCError) Unwrap() []error {
	if e.ctx != nil {
		return []error{e.Kind, e.ctx}
	}
	return []error{e.Kind}
}

func bmcErr(bmc string, kind error, format string, args ...any) *BMCError {
	return &BMCError{BMC: bmc, Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// seconds renders d as whole seconds when it is a whole number of them,
// else with millisecond precision ("5s", "1.5s").
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return d.String()
	}
	return d.Round(time.Millisecond).String()
}

// ceilSeconds renders a remaining wait rounded up to whole seconds ("28s").
func ceilSeconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int(math.Ceil(d.Seconds())))
}

// authTexts are the phrases go-ipmi uses for a refused user or password.
// Some of its session-setup errors are formatted with %v, so the chain is
// lost and the text is all there is.
var authTexts = []string{
	"RAKP2 authentication code mismatch",
	"RAKP4 integrity check value does not match",
	"RAKP authentication failed",
	"Unauthorized name",
	"Invalid name length",
	"Unauthorized role",
}

// classify maps an error from go-ipmi (or our probe) to a *BMCError.
// callCtx is the call's own deadline context, parent the caller's context,
// timeout the per-call deadline and t the target (for the user name and to
// scrub the password from any text that is passed through).
func classify(err error, t Target, parent, callCtx context.Context, timeout time.Duration) *BMCError {
	if err == nil {
		return nil
	}
	var be *BMCError
	if errors.As(err, &be) {
		return be
	}
	addr := t.Addr()
	if perr := parent.Err(); perr != nil {
		e := bmcErr(addr, ErrCanceled, "canceled: %v", perr)
		e.ctx = perr
		return e
	}
	text := err.Error()
	var rs *types.RmcpStatusError
	if errors.As(err, &rs) {
		switch rs.StatusCode() {
		case types.RmcpStatusCodeUnauthorizedName, types.RmcpStatusCodeInvalidNameLength,
			types.RmcpStatusCodeUnauthorizedRoleOfPriLevel:
			return bmcErr(addr, ErrAuth, "authentication failed for user %s", t.User)
		}
	}
	if errors.Is(err, client.ErrRAKPAuthentication) {
		return bmcErr(addr, ErrAuth, "authentication failed for user %s", t.User)
	}
	for _, a := range authTexts {
		if strings.Contains(text, a) {
			return bmcErr(addr, ErrAuth, "authentication failed for user %s", t.User)
		}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return bmcErr(addr, ErrUnreachable, "connection refused")
	}
	if errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) {
		return bmcErr(addr, ErrUnreachable, "no route to host")
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return bmcErr(addr, ErrUnreachable, "cannot resolve host %s", t.Host)
	}
	var ne net.Error
	if callCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) || strings.Contains(text, "no UDP datagram matched") ||
		strings.Contains(text, "no matching IPMI response") {
		return bmcErr(addr, ErrTimeout, "no answer within %s", seconds(timeout))
	}
	var ve *verifyError
	if errors.As(err, &ve) {
		return bmcErr(addr, ErrRefused, "%s", ve.Error())
	}
	var re *types.ResponseError
	if errors.As(err, &re) {
		return bmcErr(addr, ErrRefused, "command refused: %s", scrub(re.Error(), t.Password))
	}
	return bmcErr(addr, ErrProtocol, "%s", scrub(text, t.Password))
}

// scrub removes the password from a text passed through from the library.
// A password too short to be replaced safely withholds the text.
func scrub(text, password string) string {
	if password == "" || !strings.Contains(text, password) {
		return text
	}
	if len(password) < 4 {
		return "IPMI error (details withheld: they contain the password)"
	}
	return strings.ReplaceAll(text, password, redacted)
}
