package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
)

// DefaultSocket is where the daemon listens when no --api-socket is given.
const DefaultSocket = "/run/netbootui/api.sock"

// Client talks to a daemon over its unix socket.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the daemon at socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns: 4,
	}
	return &Client{Socket: socket, hc: &http.Client{Transport: tr}}
}

// ErrConflict is returned by edits whose base revision is stale.
var ErrConflict = errors.New("conflict")

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://netbootui"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("daemon at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e = Error{Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status), Code: CodeInternal}
		}
		if e.Code == CodeConflict {
			return fmt.Errorf("%w: %s", ErrConflict, e.Message)
		}
		return &e
	}
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

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.do(ctx, "GET", "/v1/status", nil, &s)
	return s, err
}

// Nodes lists every node with its state.
func (c *Client) Nodes(ctx context.Context) ([]daemon.NodeView, error) {
	var v []daemon.NodeView
	err := c.do(ctx, "GET", "/v1/nodes", nil, &v)
	return v, err
}

// Node returns one node.
func (c *Client) Node(ctx context.Context, name string) (daemon.NodeView, error) {
	var v daemon.NodeView
	err := c.do(ctx, "GET", "/v1/nodes/"+url.PathEscape(name), nil, &v)
	return v, err
}

// BootEntry returns a node's rendered boot entry ("" format: the node's loader).
func (c *Client) BootEntry(ctx context.Context, name, format string) (string, error) {
	var s string
	err := c.do(ctx, "GET", "/v1/nodes/"+url.PathEscape(name)+"/boot?format="+url.QueryEscape(format), nil, &s)
	return s, err
}

// Preview renders a proposed override for a node without applying it.
func (c *Client) Preview(ctx context.Context, p daemon.Preview) (string, error) {
	var s string
	err := c.do(ctx, "POST", "/v1/nodes/"+url.PathEscape(p.Node)+"/preview", p, &s)
	return s, err
}

// EditNode edits a node's inventory entry and returns the new revision.
func (c *Client) EditNode(ctx context.Context, name string, e daemon.Edit) (string, error) {
	var r EditResult
	err := c.do(ctx, "PATCH", "/v1/nodes/"+url.PathEscape(name), e, &r)
	return r.Revision, err
}

// EditGroup edits a group's inventory entry and returns the new revision.
func (c *Client) EditGroup(ctx context.Context, name string, e daemon.Edit) (string, error) {
	var r EditResult
	err := c.do(ctx, "PATCH", "/v1/groups/"+url.PathEscape(name), e, &r)
	return r.Revision, err
}

// Select expands a selection into node names.
func (c *Client) Select(ctx context.Context, expr string) ([]string, error) {
	var v []string
	err := c.do(ctx, "GET", "/v1/select?expr="+url.QueryEscape(expr), nil, &v)
	return v, err
}

// Images lists images and their generations.
func (c *Client) Images(ctx context.Context) ([]daemon.ImageInfo, error) {
	var v []daemon.ImageInfo
	err := c.do(ctx, "GET", "/v1/images", nil, &v)
	return v, err
}

// Import imports files as a new generation.
func (c *Client) Import(ctx context.Context, r daemon.ImportRequest) (*image.Manifest, error) {
	var m image.Manifest
	err := c.do(ctx, "POST", "/v1/images/import", r, &m)
	return &m, err
}

// Publish makes gen the current generation of an image.
func (c *Client) Publish(ctx context.Context, img, gen string) error {
	return c.do(ctx, "POST", "/v1/images/"+url.PathEscape(img)+"/publish", PublishRequest{Generation: gen}, nil)
}

// Reload makes the daemon read its inventory file now.
func (c *Client) Reload(ctx context.Context) (daemon.InventoryStatus, error) {
	var s daemon.InventoryStatus
	err := c.do(ctx, "POST", "/v1/inventory/reload", nil, &s)
	return s, err
}

// Events calls fn for each event: the newest n of node ("" all nodes), then,
// with follow, live events until ctx ends or fn returns an error.
func (c *Client) Events(ctx context.Context, node string, n int, follow bool, fn func(bootstate.Event) error) error {
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	q.Set("n", strconv.Itoa(n))
	if follow {
		q.Set("follow", "1")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://netbootui/v1/events?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("daemon at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var ev bootstate.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("events: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Power runs a power operation on a selection and returns each node's result.
func (c *Client) Power(ctx context.Context, op, selection string) ([]daemon.PowerResult, error) {
	var v []daemon.PowerResult
	err := c.do(ctx, "POST", "/v1/power", daemon.PowerRequest{Op: op, Selection: selection}, &v)
	return v, err
}

// Audit returns the newest n audit entries (all kept when n is 0).
func (c *Client) Audit(ctx context.Context, n int) ([]audit.Entry, error) {
	var v []audit.Entry
	err := c.do(ctx, "GET", "/v1/audit?n="+strconv.Itoa(n), nil, &v)
	return v, err
}
