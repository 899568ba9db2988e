package redfish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stmcginnis/gofish/schemas"

	"github.com/netbootui/netbootui/internal/power"
)

// busyError is a 503 Service Unavailable answer, with the wait the BMC asked
// for in Retry-After (0 when none). The transport returns it instead of the
// response, so that the header survives gofish.
type busyError struct {
	status     int
	retryAfter time.Duration
}

func (e *busyError) Error() string {
	if e.retryAfter > 0 {
		return fmt.Sprintf("service unavailable (HTTP %d), the BMC asks to retry after %s", e.status, power.Seconds(e.retryAfter))
	}
	return fmt.Sprintf("service unavailable (HTTP %d)", e.status)
}

// busyTransport turns 503 answers into *busyError values.
type busyTransport struct{ next http.RoundTripper }

// CloseIdleConnections closes the wrapped transport's idle connections.
func (b busyTransport) CloseIdleConnections() {
	if c, ok := b.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (b busyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		return resp, err
	}
	resp.Body.Close()
	return nil, &busyError{status: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date.
// Anything else (or a time past) is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// maxBusyRetries bounds the retries of a BMC answering 503 within one call.
const maxBusyRetries = 3

// retryAfter reports how long to wait before retrying a 503 answer, if the
// wait fits in ctx's deadline.
func retryAfter(ctx context.Context, err error, attempt int) (time.Duration, bool) {
	var be *busyError
	if !errors.As(err, &be) || attempt >= maxBusyRetries {
		return 0, false
	}
	wait := be.retryAfter
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+100*time.Millisecond {
		return 0, false
	}
	return wait, true
}

// status returns the HTTP status of a Redfish error answer (0 if err is not
// one).
func status(err error) int {
	var re *schemas.Error
	if errors.As(err, &re) {
		return re.HTTPReturnedStatusCode
	}
	return 0
}

// redfishMessage is the human part of a Redfish error answer: its message
// and those of @Message.ExtendedInfo, or the raw text.
func redfishMessage(re *schemas.Error) string {
	var parts []string
	if re.Message != "" {
		parts = append(parts, re.Message)
	}
	for _, ei := range re.ExtendedInfos {
		if ei.Message != "" && ei.Message != re.Message {
			parts = append(parts, ei.Message)
		}
	}
	if len(parts) == 0 {
		return strings.TrimPrefix(re.Error(), strconv.Itoa(re.HTTPReturnedStatusCode)+": ")
	}
	return strings.Join(parts, "; ")
}

// taskTimeout is a task monitor that did not finish within the deadline.
type taskTimeout struct {
	monitor string
	state   string
}

func (e *taskTimeout) Error() string { return "task " + e.monitor + " still " + e.state }

// classify maps an error from gofish (or this package) to a *BMCError. ctx
// is the call's context (power.CallerCanceled tells the caller's cancel
// from the deadline), timeout the per-call deadline, t the target (for its
// user, and to scrub the password from texts passed through), step what was
// being done ("login" for the session).
func classify(err error, t target, ctx context.Context, timeout time.Duration, step string) *power.BMCError {
	if err == nil {
		return nil
	}
	var be *power.BMCError
	if errors.As(err, &be) {
		return be
	}
	addr := t.addr()
	mk := func(kind error, format string, args ...any) *power.BMCError {
		msg := power.Scrub(fmt.Sprintf(format, args...), t.password.Reveal(), "Redfish")
		return power.NewError(addr, kind, "%s", msg)
	}
	if power.CallerCanceled(ctx) {
		return mk(power.ErrCanceled, "canceled: %v", ctx.Err()).Also(ctx.Err())
	}
	var (
		tt   *taskTimeout
		ce   *caError
		busy *busyError
		re   *schemas.Error
		ref  *refusal
		uns  *unsupported
		dns  *net.DNSError
		ne   net.Error
	)
	switch {
	case errors.As(err, &tt):
		return mk(power.ErrTimeout, "task %s did not finish within %s (still %s)", tt.monitor, power.Seconds(timeout), tt.state)
	case errors.As(err, &ce):
		return mk(power.ErrNegotiation, "%v (bmc.redfish.ca)", ce.err)
	case tlsTrust(err):
		return mk(power.ErrNegotiation, "TLS certificate not trusted: %s (name the BMC's CA in bmc.redfish.ca, or set insecure: true to skip the check)", tlsReason(err))
	case tlsHandshake(err):
		return mk(power.ErrNegotiation, "TLS handshake failed: %s", tlsReason(err))
	case errors.As(err, &busy):
		return mk(power.ErrProtocol, "%s", busy.Error())
	case errors.As(err, &re):
		switch code := re.HTTPReturnedStatusCode; {
		case code == http.StatusUnauthorized:
			return mk(power.ErrAuth, "authentication failed for user %s", t.user)
		case code == http.StatusForbidden:
			return mk(power.ErrRefused, "user %s may not do this (HTTP 403): %s", t.user, redfishMessage(re))
		case code == 0:
			return mk(power.ErrProtocol, "%s", redfishMessage(re))
		case code >= 500:
			return mk(power.ErrProtocol, "HTTP %d: %s", code, redfishMessage(re))
		default:
			return mk(power.ErrRefused, "refused (HTTP %d): %s", code, redfishMessage(re))
		}
	case errors.As(err, &ref):
		return mk(power.ErrRefused, "%s", ref.msg)
	case errors.As(err, &uns):
		return mk(power.ErrUnsupported, "%s", uns.msg)
	case errors.Is(err, syscall.ECONNREFUSED):
		return mk(power.ErrUnreachable, "connection refused")
	case errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH):
		return mk(power.ErrUnreachable, "no route to host")
	case errors.As(err, &dns):
		return mk(power.ErrUnreachable, "cannot resolve host %s", t.host)
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		if step != "" {
			return mk(power.ErrTimeout, "no answer within %s (%s)", power.Seconds(timeout), step)
		}
		return mk(power.ErrTimeout, "no answer within %s", power.Seconds(timeout))
	}
	return mk(power.ErrProtocol, "%v", err)
}

// tlsTrust reports a certificate the client does not trust.
func tlsTrust(err error) bool {
	var (
		ua x509.UnknownAuthorityError
		ci x509.CertificateInvalidError
		he x509.HostnameError
		cv *tls.CertificateVerificationError
	)
	return errors.As(err, &ua) || errors.As(err, &ci) || errors.As(err, &he) || errors.As(err, &cv)
}

// tlsHandshake reports a TLS exchange that failed otherwise (an alert, a
// server that does not speak TLS).
func tlsHandshake(err error) bool {
	var (
		ae tls.AlertError
		rh tls.RecordHeaderError
	)
	return errors.As(err, &ae) || errors.As(err, &rh) || strings.Contains(err.Error(), "tls: ")
}

// tlsReason is the innermost text of a TLS error, without the URL gofish
// and net/http put in front.
func tlsReason(err error) string {
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return cv.Err.Error()
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": tls: "); i >= 0 {
		return s[i+2:]
	}
	if i := strings.Index(s, "x509: "); i >= 0 {
		return s[i:]
	}
	return s
}
