// Package redfish is the DMTF Redfish backend of the power seam
// (internal/power), with github.com/stmcginnis/gofish: power status and
// control mapped onto the Reset types each system advertises, the one-time
// boot override (PXE, legacy or UEFI by the node's arch; UEFI HTTP boot from
// the node's boot URL where the BMC offers it) read back and verified, the
// machine's facts with its NIC MACs, and asynchronous task monitors.
// Protocol declares it to a power.Registry; the fan-out, breaker, rate
// limit and deadline are the seam's.
//
// A Client keeps one Redfish session (X-Auth-Token) per BMC, made lazily,
// reused by every call, made again once when the BMC answers 401, and
// deleted on Close. TLS is verified against the BMC's CA file
// (bmc.redfish.ca) or the system roots, unless bmc.redfish.insecure is set.
// Errors are *power.BMCError values that name the BMC and never contain the
// password.
package redfish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/stmcginnis/gofish"

	"github.com/netbootui/netbootui/internal/power"
)

// Client holds the BMC sessions: it is the power.Backend of Redfish. It is
// safe for concurrent use.
type Client struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
}

var _ power.Backend = (*Client)(nil)

// New returns a Client.
func New(opts Options) *Client {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = power.DefaultCallTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{opts: opts, log: log, sessions: map[string]*session{}}
}

// session is the state kept for one BMC: its gofish client once logged in.
type session struct {
	lock chan struct{} // one-slot semaphore guarding api while it is (re)made

	api      *gofish.APIClient // nil until logged in; guarded by lock
	password string            // the password api logged in with
	system   string            // the system path in use (resolved once)
}

func (c *Client) session(t target) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, power.NewError(t.addr(), power.ErrClosed, "redfish backend closed")
	}
	s := c.sessions[t.key()]
	if s == nil {
		s = &session{lock: make(chan struct{}, 1)}
		c.sessions[t.key()] = s
	}
	return s, nil
}

// conn returns the session's logged-in client for t, logging in when there
// is none (or fresh is set: the last call got a 401), bound to ctx.
func (c *Client) conn(ctx context.Context, s *session, t target, fresh *gofish.APIClient) (*gofish.APIClient, error) {
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.lock }()
	if s.api != nil && s.password != t.password.Reveal() {
		fresh = s.api // the secrets file changed: log in again
	}
	if s.api != nil && (fresh == nil || fresh != s.api) {
		return s.api.WithContext(ctx), nil
	}
	if s.api != nil {
		old := s.api
		s.api = nil
		go logout(old) // best effort: the BMC may have dropped it already
	}
	hc, err := httpClient(t, c.opts.CallTimeout)
	if err != nil {
		return nil, err
	}
	api, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint:              "https://" + t.addr(),
		Username:              t.user,
		Password:              t.password.Reveal(),
		HTTPClient:            hc,
		NoModifyTransport:     true,
		ReuseConnections:      true,
		MaxConcurrentRequests: 4,
	})
	if err != nil {
		hc.CloseIdleConnections()
		return nil, err
	}
	s.api, s.password = api, t.password.Reveal()
	c.log.Debug("redfish session made", "bmc", t.addr(), "user", t.user)
	return api.WithContext(ctx), nil
}

// logout deletes a session on its BMC, bounded in time.
func logout(api *gofish.APIClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	api.WithContext(ctx).Logout()
}

// caError marks a CA file that could not be used.
type caError struct{ err error }

func (e *caError) Error() string { return e.err.Error() }
func (e *caError) Unwrap() error { return e.err }

// httpClient returns an HTTP client for t's BMC: TLS verified against the CA
// file, or the system roots, or not at all when insecure is set.
func httpClient(t target, timeout time.Duration) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case t.opts.Insecure:
		tc.InsecureSkipVerify = true
	case t.opts.CA != "":
		pem, err := os.ReadFile(t.opts.CA)
		if err != nil {
			return nil, &caError{fmt.Errorf("cannot read CA file: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &caError{fmt.Errorf("CA file %s holds no PEM certificate", t.opts.CA)}
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		ForceAttemptHTTP2:   true,
	}
	return &http.Client{Transport: busyTransport{tr}}, nil
}

// do runs f with t's session, making the session when there is none and once
// more when the BMC answers 401 (an expired or revoked token). Errors are
// classified.
func (c *Client) do(ctx context.Context, t target, f func(api *gofish.APIClient, sys string) error) error {
	if err := t.validate(); err != nil {
		return power.NewError(t.addr(), power.ErrRefused, "%v", err)
	}
	s, err := c.session(t)
	if err != nil {
		return err
	}
	var stale *gofish.APIClient
	relogged := false
	for attempt := 0; ; attempt++ {
		err := c.attempt(ctx, s, t, stale, f)
		if err == nil {
			return nil
		}
		if !relogged && status(err) == http.StatusUnauthorized && !errors.Is(err, errLogin) {
			c.log.Debug("redfish session refused, logging in again", "bmc", t.addr())
			stale, relogged = c.current(s), true
			continue
		}
		if wait, ok := retryAfter(ctx, err, attempt); ok {
			c.log.Debug("redfish BMC busy, retrying", "bmc", t.addr(), "after", wait)
			if sleep(ctx, wait) == nil {
				continue
			}
		}
		step := ""
		if errors.Is(err, errLogin) {
			step = "login"
		}
		return classify(err, t, ctx, c.opts.CallTimeout, step)
	}
}

// errLogin marks an error of making the session.
var errLogin = errors.New("login")

// attempt makes (or reuses) the session and runs f once.
func (c *Client) attempt(ctx context.Context, s *session, t target, stale *gofish.APIClient, f func(api *gofish.APIClient, sys string) error) error {
	api, err := c.conn(ctx, s, t, stale)
	if err != nil {
		return loginError{err}
	}
	sys, err := c.system(api, s, t)
	if err != nil {
		return err
	}
	return f(api, sys)
}

// loginError is an error of making the session (errors.Is errLogin).
type loginError struct{ err error }

func (e loginError) Error() string   { return e.err.Error() }
func (e loginError) Unwrap() []error { return []error{e.err, errLogin} }

// current returns the session's client as last made (for a 401 retry).
func (c *Client) current(s *session) *gofish.APIClient {
	s.lock <- struct{}{}
	defer func() { <-s.lock }()
	return s.api
}

// system returns the node's system path: bmc.redfish.system, or the first
// member of the Systems collection (looked up once per session).
func (c *Client) system(api *gofish.APIClient, s *session, t target) (string, error) {
	if t.opts.System != "" {
		return t.opts.System, nil
	}
	s.lock <- struct{}{}
	sys := s.system
	<-s.lock
	if sys != "" {
		return sys, nil
	}
	// The collection itself, not gofish's Systems(): that one fetches the
	// members in parallel and loses their order.
	resp, err := api.Get(systemsPrefix[:len(systemsPrefix)-1])
	if err != nil {
		return "", err
	}
	var coll struct {
		Members []struct {
			ID string `json:"@odata.id"`
		}
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&coll)
	resp.Body.Close()
	if err != nil {
		return "", &refusal{fmt.Sprintf("cannot read the Systems collection: %v", err)}
	}
	if len(coll.Members) == 0 {
		return "", &refusal{"the BMC lists no systems under /redfish/v1/Systems"}
	}
	sys = strings.TrimSuffix(coll.Members[0].ID, "/")
	s.lock <- struct{}{}
	s.system = sys
	<-s.lock
	return sys, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close logs out of every session. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ss := c.sessions
	c.sessions = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range ss {
		s.lock <- struct{}{}
		api := s.api
		s.api = nil
		<-s.lock
		if api != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				logout(api)
				api.HTTPClient.CloseIdleConnections()
			}()
		}
	}
	wg.Wait()
	return nil
}

// refusal is a BMC answer that the backend does not accept (a read-back
// mismatch, a missing resource): ErrRefused.
type refusal struct{ msg string }

func (e *refusal) Error() string { return e.msg }

// unsupported is something this BMC cannot do (a reset type it does not
// advertise, a boot target it does not offer): ErrUnsupported.
type unsupported struct{ msg string }

func (e *unsupported) Error() string { return e.msg }
