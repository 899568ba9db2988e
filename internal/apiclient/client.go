// Package apiclient is the client side of the daemon's local API: JSON over
// HTTP on the daemon's unix socket (New) or on any connection a dialer makes
// (NewDialer; the daemon's in-process client for the SSH console). The
// console, the SSH console and the CLI verbs talk to the daemon only through
// it, with the types of internal/apitype; they never link the daemon.
//
// Every streaming answer (events, build progress, reboot-clean progress) is
// read by one NDJSON reader (stream.go).
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/netbootui/netbootui/internal/apitype"
)

// DefaultSocket is where the daemon listens when no --api-socket is given.
const DefaultSocket = "/run/netbootui/api.sock"

// ErrConflict is returned by edits whose base revision is stale (and by any
// call the daemon answers with apitype.CodeConflict); the message follows it.
var ErrConflict = errors.New("conflict")

// Client talks to one daemon. It is safe for concurrent use.
type Client struct {
	name string // says where the daemon is, in errors
	dial func(ctx context.Context) (net.Conn, error)
	tr   *http.Transport
	hc   *http.Client
}

// New returns a client for the daemon listening on the unix socket. A
// comma-separated list names several heads' sockets (several heads): every
// connection goes to the head that answered last, else to the next of the
// others, in turn, that answers; when a head dies under a follow stream
// (the stream ends with an error) or a call, the next call or stream
// reaches another.
func New(socket string) *Client {
	sockets := strings.Split(socket, ",")
	if len(sockets) == 1 {
		return NewDialer("daemon at "+socket, func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		})
	}
	var cur atomic.Int64 // the socket that answered last
	return NewDialer("daemons at "+socket, func(ctx context.Context) (net.Conn, error) {
		var errs error
		first := int(cur.Load())
		for i := range sockets {
			k := (first + i) % len(sockets)
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", sockets[k])
			if err == nil {
				cur.Store(int64(k))
				return c, nil
			}
			errs = errors.Join(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errs
	})
}

// NewDialer returns a client whose every connection comes from dial; name
// says where they go (errors start with it).
func NewDialer(name string, dial func(ctx context.Context) (net.Conn, error)) *Client {
	tr := &http.Transport{
		DialContext:  func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		MaxIdleConns: 4,
	}
	return &Client{name: name, dial: dial, tr: tr, hc: &http.Client{Transport: tr}}
}

// String says where the client's daemon is.
func (c *Client) String() string { return c.name }

// CloseIdleConnections closes the connections kept for reuse.
func (c *Client) CloseIdleConnections() { c.tr.CloseIdleConnections() }

// send makes a request with in (if not nil) as its JSON body and returns
// the response when its status is a success, or the daemon's error.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	if in == nil {
		return c.sendBody(ctx, method, path, "", nil)
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	return c.sendBody(ctx, method, path, "application/json", bytes.NewReader(b))
}

// sendBody is send with a body of any type (none when body is nil).
func (c *Client) sendBody(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://netbootui"+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, responseError(resp, method+" "+path)
	}
	return resp, nil
}

// responseError turns a failed answer into an *apitype.Error (or
// ErrConflict for a conflict).
func responseError(resp *http.Response, what string) error {
	var e apitype.Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if json.Unmarshal(b, &e) != nil || e.Message == "" {
		e = apitype.Error{Message: fmt.Sprintf("%s: %s", what, resp.Status), Code: apitype.CodeInternal}
	}
	if e.Code == apitype.CodeConflict {
		return fmt.Errorf("%w: %s", ErrConflict, e.Message)
	}
	return &e
}

// do makes a request and decodes its answer into out: nothing for nil, the
// text for a *string, JSON otherwise.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch v := out.(type) {
	case nil:
		return nil
	case *string:
		b, err := io.ReadAll(resp.Body)
		*v = string(b)
		return err
	default:
		return json.NewDecoder(resp.Body).Decode(out)
	}
}

// Backup streams a backup of the daemon's state (internal/backup's format)
// to w. It holds the daemon's token key: write it somewhere private.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	resp, err := c.send(ctx, "POST", "/v1/backup", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("%s: backup: %w", c.name, err)
	}
	return nil
}
