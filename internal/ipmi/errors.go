package ipmi

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/netbootui/netbootui/internal/power"
)

// Error kinds: the power seam's, under the names this package has always
// used. Every error for a BMC is a *BMCError (power.BMCError) whose Kind is
// one of these, so errors.Is(err, ErrTimeout) and the like work.
var (
	ErrAuth        = power.ErrAuth        // the BMC refused the user name or password
	ErrTimeout     = power.ErrTimeout     // no answer within the call deadline
	ErrUnreachable = power.ErrUnreachable // port closed, no route, unknown host
	ErrCircuitOpen = power.ErrCircuitOpen // skipped after a recent timeout
	ErrCipherSuite = power.ErrNegotiation // the BMC accepted none of the cipher suites offered
	ErrRefused     = power.ErrRefused     // a completion code other than success, or a read-back mismatch
	ErrCanceled    = power.ErrCanceled    // the caller canceled the call
	ErrProtocol    = power.ErrProtocol    // anything else the exchange failed with
	ErrClosed      = power.ErrClosed      // the Pool was closed
	ErrSessionAged = power.ErrSessionAged // a SOL stream handed over to a new session (see SOLMaxAge)
)

// BMCError is an error about one BMC (power.BMCError). Its text names the
// BMC and never contains the password.
type BMCError = power.BMCError

func bmcErr(bmc string, kind error, format string, args ...any) *BMCError {
	return power.NewError(bmc, kind, format, args...)
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
// callCtx is the call's deadline context, parent the caller's (the two may
// be one context carrying the power seam's deadline: power.CallerCanceled
// tells the caller's cancel from the deadline), timeout the per-call
// deadline and t the target (for the user name and to scrub the password
// from any text that is passed through).
func classify(err error, t target, parent, callCtx context.Context, timeout time.Duration) *BMCError {
	if err == nil {
		return nil
	}
	var be *BMCError
	if errors.As(err, &be) {
		return be
	}
	addr := t.addr()
	if power.CallerCanceled(parent) {
		perr := parent.Err()
		return bmcErr(addr, ErrCanceled, "canceled: %v", perr).Also(perr)
	}
	text := err.Error()
	var rs *types.RmcpStatusError
	if errors.As(err, &rs) {
		switch rs.StatusCode() {
		case types.RmcpStatusCodeUnauthorizedName, types.RmcpStatusCodeInvalidNameLength,
			types.RmcpStatusCodeUnauthorizedRoleOfPriLevel:
			return bmcErr(addr, ErrAuth, "authentication failed for user %s", t.user)
		}
	}
	if errors.Is(err, client.ErrRAKPAuthentication) {
		return bmcErr(addr, ErrAuth, "authentication failed for user %s", t.user)
	}
	for _, a := range authTexts {
		if strings.Contains(text, a) {
			return bmcErr(addr, ErrAuth, "authentication failed for user %s", t.user)
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
		return bmcErr(addr, ErrUnreachable, "cannot resolve host %s", t.host)
	}
	var ne net.Error
	if callCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) || strings.Contains(text, "no UDP datagram matched") ||
		strings.Contains(text, "no matching IPMI response") {
		return bmcErr(addr, ErrTimeout, "no answer within %s", power.Seconds(timeout))
	}
	var ve *verifyError
	if errors.As(err, &ve) {
		return bmcErr(addr, ErrRefused, "%s", ve.Error())
	}
	var re *types.ResponseError
	if errors.As(err, &re) {
		return bmcErr(addr, ErrRefused, "command refused: %s", scrub(re.Error(), t.password.Reveal()))
	}
	return bmcErr(addr, ErrProtocol, "%s", scrub(text, t.password.Reveal()))
}

// scrub removes the password from a text passed through from go-ipmi
// (power.Scrub).
func scrub(text, password string) string { return power.Scrub(text, password, "IPMI") }
