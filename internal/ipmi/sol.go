package ipmi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/transport"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/netbootui/netbootui/internal/power"
)

// SOLOptions tune a serial-over-LAN session. Zero values take defaults.
type SOLOptions struct {
	// PollInterval is how often the BMC is asked for console output
	// (default 50 ms).
	PollInterval time.Duration
	// Instance is the SOL payload instance (default 1).
	Instance uint8
	// OnActive, if set, is called once the payload is active, before any
	// byte flows.
	OnActive func()
}

// SOLMaxAge is how long one SOL session streams before SOL returns
// ErrSessionAged. With deactivation and close it stays under go-ipmi's
// first keepalive, 30 s after the session opened.
const SOLMaxAge = 20 * time.Second

// completion code of Activate Payload when the payload is active on another
// session (IPMI v2.0 table 24-2).
const ccPayloadAlreadyActive = 0x80

// SOL attaches to t's serial-over-LAN console with go-ipmi's SOL stream:
// bytes read from in go to the node's serial port, and the node's serial
// output is written to out. It opens a session of its own, separate from
// the Pool's power session, so power operations keep working while a
// console is attached. A SOL payload left active by another session is
// deactivated and activated again for this one (the BMC allows one).
//
// SOL returns nil when in reaches EOF, ctx's error when ctx ends,
// ErrSessionAged after SOLMaxAge (call it again), and a *BMCError when the
// BMC cannot be reached, refuses the payload or ends the stream. The
// payload is deactivated and the session closed on return. Opening the
// session and activating the payload are bounded by the Pool's call
// timeout; the stream itself runs until one of the ends above.
func (p *Pool) SOL(ctx context.Context, pt power.Target, in io.Reader, out io.Writer, opts SOLOptions) error {
	t := fromTarget(pt)
	if err := t.validate(); err != nil {
		return err
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 50 * time.Millisecond
	}
	if opts.Instance == 0 {
		opts.Instance = 1
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrClosed
	}
	cctx, cancel := context.WithTimeout(ctx, p.opts.CallTimeout)
	defer cancel()
	if err := Ping(cctx, t.addr()); err != nil {
		return classify(err, t, ctx, cctx, p.opts.CallTimeout)
	}
	c, err := p.solConnect(cctx, t)
	if err != nil {
		return classify(err, t, ctx, cctx, p.opts.CallTimeout)
	}
	defer func() {
		// Close with a fresh deadline: ctx may be over already.
		dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
		defer dcancel()
		_, _ = c.c.DeactivatePayload(dctx, &transport.DeactivatePayloadRequest{
			PayloadType: types.PayloadTypeSOL, PayloadInstance: opts.Instance})
		c.close(dctx)
	}()
	req := &transport.ActivatePayloadRequest{PayloadType: types.PayloadTypeSOL, PayloadInstance: opts.Instance}
	_, err = c.c.ActivatePayload(cctx, req)
	var re *types.ResponseError
	if errors.As(err, &re) && uint8(re.CompletionCode()) == ccPayloadAlreadyActive {
		p.log.Info("ipmi: SOL active on another session, taking it over", "node", t.node, "bmc", t.addr())
		_, _ = c.c.DeactivatePayload(cctx, &transport.DeactivatePayloadRequest{
			PayloadType: types.PayloadTypeSOL, PayloadInstance: opts.Instance})
		_, err = c.c.ActivatePayload(cctx, req)
	}
	if err != nil {
		be := classify(err, t, ctx, cctx, p.opts.CallTimeout)
		be.Msg = "SOL activation: " + be.Msg
		return be
	}
	cancel()
	if opts.OnActive != nil {
		opts.OnActive()
	}
	sctx, scancel := context.WithDeadline(ctx, c.opened.Add(SOLMaxAge))
	err = c.c.SOLStream(sctx, in, out, &client.SOLStreamOptions{PollInterval: opts.PollInterval})
	scancel()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case sctx.Err() != nil:
		return ErrSessionAged
	default:
		be := classify(err, t, ctx, ctx, p.opts.CallTimeout)
		be.Msg = "SOL stream: " + be.Msg
		return be
	}
}

// solConnect opens a session for SOL, trying t's cipher suites in order.
func (p *Pool) solConnect(ctx context.Context, t target) (*conn, error) {
	var lastErr error
	for _, cs := range t.suites {
		c, err := client.NewClient(t.host, t.port, t.user, t.password.Reveal())
		if err != nil {
			return nil, err
		}
		c.WithInterface(client.InterfaceLanplus)
		c.WithCipherSuiteID(types.CipherSuiteID(cs))
		c.WithTimeout(time.Second).WithRetry(int(p.opts.CallTimeout/time.Second) + 1)
		cn := &conn{c: c}
		if err = c.Connect(ctx); err == nil {
			cn.opened = time.Now()
			return cn, nil
		}
		closeNow(cn)
		lastErr = err
		be := classify(err, t, ctx, ctx, p.opts.CallTimeout)
		if be.Kind != ErrProtocol && be.Kind != ErrRefused {
			return nil, be
		}
	}
	if lastErr == nil {
		return nil, fmt.Errorf("node %s: no cipher suites to try", t.node)
	}
	return nil, bmcErr(t.addr(), ErrCipherSuite, "none of cipher suites %v accepted (last error: %s)",
		t.suites, scrub(lastErr.Error(), t.password.Reveal()))
}

// Console (power.SerialConsole) is SOL with the seam's options.
func (p *Pool) Console(ctx context.Context, t power.Target, in io.Reader, out io.Writer, opts power.ConsoleOptions) error {
	return p.SOL(ctx, t, in, out, SOLOptions{OnActive: opts.OnActive})
}
