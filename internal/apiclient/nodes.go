package apiclient

import (
	"context"
	"errors"
	"net/url"
	"strconv"

	"github.com/netbootui/netbootui/internal/apitype"
)

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (apitype.Status, error) {
	var s apitype.Status
	err := c.do(ctx, "GET", "/v1/status", nil, &s)
	return s, err
}

// Nodes lists every node with its state.
func (c *Client) Nodes(ctx context.Context) ([]apitype.NodeView, error) {
	var v []apitype.NodeView
	err := c.do(ctx, "GET", "/v1/nodes", nil, &v)
	return v, err
}

// Node returns one node.
func (c *Client) Node(ctx context.Context, name string) (apitype.NodeView, error) {
	var v apitype.NodeView
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
func (c *Client) Preview(ctx context.Context, p apitype.Preview) (string, error) {
	var s string
	err := c.do(ctx, "POST", "/v1/nodes/"+url.PathEscape(p.Node)+"/preview", p, &s)
	return s, err
}

// EditNode edits a node's inventory entry and returns the new revision.
func (c *Client) EditNode(ctx context.Context, name string, e apitype.Edit) (string, error) {
	var r apitype.EditResult
	err := c.do(ctx, "PATCH", "/v1/nodes/"+url.PathEscape(name), e, &r)
	return r.Revision, err
}

// AddNode adds node name with the fields of e.Set ("mac", the boot NIC's,
// is required) and returns the new inventory revision.
func (c *Client) AddNode(ctx context.Context, name string, e apitype.Edit) (string, error) {
	var r apitype.EditResult
	err := c.do(ctx, "POST", "/v1/nodes/"+url.PathEscape(name), e, &r)
	return r.Revision, err
}

// RemoveNode removes node name (against baseRevision unless "") and
// returns the new inventory revision.
func (c *Client) RemoveNode(ctx context.Context, name, baseRevision string) (string, error) {
	var r apitype.EditResult
	err := c.do(ctx, "DELETE", "/v1/nodes/"+url.PathEscape(name), apitype.Edit{BaseRevision: baseRevision}, &r)
	return r.Revision, err
}

// RenameNode renames node name and returns the new inventory revision.
func (c *Client) RenameNode(ctx context.Context, name string, r apitype.NodeRename) (string, error) {
	var res apitype.EditResult
	err := c.do(ctx, "POST", "/v1/nodes/"+url.PathEscape(name)+"/rename", r, &res)
	return res.Revision, err
}

// Unknown lists the PXE clients not in the inventory that asked for a boot,
// in the order they first asked.
func (c *Client) Unknown(ctx context.Context) ([]apitype.UnknownNode, error) {
	var out []apitype.UnknownNode
	err := c.do(ctx, "GET", "/v1/unknown", nil, &out)
	return out, err
}

// Adopt names unknown clients as nodes of a group, in the order they first
// asked.
func (c *Client) Adopt(ctx context.Context, r apitype.AdoptRequest) (apitype.AdoptResult, error) {
	var res apitype.AdoptResult
	err := c.do(ctx, "POST", "/v1/unknown/adopt", r, &res)
	return res, err
}

// EditGroup edits a group's inventory entry and returns the new revision.
func (c *Client) EditGroup(ctx context.Context, name string, e apitype.Edit) (string, error) {
	var r apitype.EditResult
	err := c.do(ctx, "PATCH", "/v1/groups/"+url.PathEscape(name), e, &r)
	return r.Revision, err
}

// Group returns a group's own settings and its nodes.
func (c *Client) Group(ctx context.Context, name string) (apitype.GroupView, error) {
	var v apitype.GroupView
	err := c.do(ctx, "GET", "/v1/groups/"+url.PathEscape(name), nil, &v)
	return v, err
}

// PreviewEdit renders a node's boot entry as it would be after a proposed
// edit of the node or its group, changing nothing.
func (c *Client) PreviewEdit(ctx context.Context, p apitype.EditPreview) (string, error) {
	var s string
	err := c.do(ctx, "POST", "/v1/edit-preview", p, &s)
	return s, err
}

// NodeBMC reads a node's BMC device ID and power state.
func (c *Client) NodeBMC(ctx context.Context, name string) (apitype.BMCFacts, error) {
	var f apitype.BMCFacts
	err := c.do(ctx, "GET", "/v1/nodes/"+url.PathEscape(name)+"/bmc", nil, &f)
	return f, err
}

// Select expands a selection into node names.
func (c *Client) Select(ctx context.Context, expr string) ([]string, error) {
	var v []string
	err := c.do(ctx, "GET", "/v1/select?expr="+url.QueryEscape(expr), nil, &v)
	return v, err
}

// Reload makes the daemon read its inventory file now.
func (c *Client) Reload(ctx context.Context) (apitype.InventoryStatus, error) {
	var s apitype.InventoryStatus
	err := c.do(ctx, "POST", "/v1/inventory/reload", nil, &s)
	return s, err
}

// Events calls fn for each event: the newest n of node ("" all nodes), then,
// with follow, live events until ctx ends or fn returns an error. The end of
// ctx is not an error.
func (c *Client) Events(ctx context.Context, node string, n int, follow bool, fn func(apitype.Event) error) error {
	return c.EventsBacklog(ctx, node, n, 0, follow, fn)
}

// EventsBacklog is Events whose backlog of all nodes holds, besides the
// newest n events, the newest notable ones that are not routine
// (apitype.Kind.Routine: check-ins, progress), in Seq order: on a busy
// cluster the newest n would be check-ins only.
func (c *Client) EventsBacklog(ctx context.Context, node string, n, notable int, follow bool, fn func(apitype.Event) error) error {
	q := url.Values{}
	if node != "" {
		q.Set("node", node)
	}
	q.Set("n", strconv.Itoa(n))
	if notable > 0 {
		q.Set("notable", strconv.Itoa(notable))
	}
	if follow {
		q.Set("follow", "1")
	}
	err := stream(ctx, c, "GET", "/v1/events?"+q.Encode(), nil, fn)
	if errors.Is(err, ErrStreamEnded) {
		return nil
	}
	return followEnd(ctx, err)
}

// FollowAudit calls fn with the newest n audit entries (all kept when n is
// 0), then with each entry as the daemon records it, until ctx ends (nil),
// fn returns an error, or the daemon closes the stream (ErrStreamEnded). A
// reader that lags far behind loses entries, never the daemon's time.
func (c *Client) FollowAudit(ctx context.Context, n int, fn func(apitype.AuditEntry) error) error {
	return followEnd(ctx, stream(ctx, c, "GET", "/v1/audit?n="+strconv.Itoa(n)+"&follow=1", nil, fn))
}

// Audit returns the newest n audit entries (all kept when n is 0).
func (c *Client) Audit(ctx context.Context, n int) ([]apitype.AuditEntry, error) {
	var v []apitype.AuditEntry
	err := c.do(ctx, "GET", "/v1/audit?n="+strconv.Itoa(n), nil, &v)
	return v, err
}

// Persist reads what a node keeps across reboots: its persisted paths and
// what each holds on the head, or its persist disk (PersistView.Disk).
func (c *Client) Persist(ctx context.Context, name string) (apitype.PersistView, error) {
	var v apitype.PersistView
	err := c.do(ctx, "GET", "/v1/nodes/"+url.PathEscape(name)+"/persist", nil, &v)
	return v, err
}

// WipePersist empties a node's persisted paths on the head, or records a
// wipe its persist disk applies at its next boot (admin role; audited), and
// returns them read again.
func (c *Client) WipePersist(ctx context.Context, name string) (apitype.PersistView, error) {
	var v apitype.PersistView
	err := c.do(ctx, "POST", "/v1/nodes/"+url.PathEscape(name)+"/persist/wipe", nil, &v)
	return v, err
}
