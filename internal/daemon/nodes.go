package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
)

// NodeView is a node as the console and the CLI show it (the API type).
type NodeView = apitype.NodeView

func (d *Daemon) view(inv *inventory.Inventory, n *inventory.Node) NodeView {
	v := NodeView{
		Name: n.Name, Group: n.Group, Arch: string(n.Arch), Loader: string(n.Loader),
		Image: n.Image, Pinned: n.Generation != "", KernelArgs: n.KernelArgs,
		OwnKernelArgs: n.OwnKernelArgs, Revision: nodeRevision(n),
		Override: !n.Override.Empty(), Defined: n.Defined.String(),
	}
	if mac := n.BootMAC(); mac != nil {
		v.MAC = mac.String()
	}
	if n.IP.IsValid() {
		v.IP = n.IP.String()
	}
	if n.BMC.Host != "" {
		v.BMC = net.JoinHostPort(n.BMC.Host, strconv.Itoa(n.BMC.Port))
	}
	if _, gen, err := d.boot.Assignment(n); err != nil {
		v.AssignError = err.Error()
	} else {
		v.Assigned = gen
	}
	st, ok := d.tracker.Get(n.Name)
	if !ok {
		st = bootstate.NodeState{Node: n.Name}
	}
	if st.Power == "" {
		st.Power = "unknown"
	}
	v.State = NodeStateView(st)
	v.Dirty, v.DirtyReasons = st.Dirty(v.Assigned, inv.Settings.OverlayDirtyBytes)
	return v
}

// Nodes returns every inventory node with its state, in inventory order.
func (d *Daemon) Nodes() []NodeView {
	inv := d.Inventory()
	out := make([]NodeView, 0, len(inv.Nodes))
	for _, n := range inv.Nodes {
		out = append(out, d.view(inv, n))
	}
	return out
}

// ErrUnknownNode is returned for a node name the inventory lacks.
var ErrUnknownNode = errors.New("unknown node")

// Node returns one node's view.
func (d *Daemon) Node(name string) (NodeView, error) {
	inv := d.Inventory()
	n := inv.Node(name)
	if n == nil {
		return NodeView{}, fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	return d.view(inv, n), nil
}

// Select expands a selection (a hostlist, or @group) into node names.
func (d *Daemon) Select(expr string) ([]string, error) {
	nodes, err := d.Inventory().Select(expr)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Name
	}
	return out, nil
}

// BootEntry renders the entry node name would get now, in format ("ipxe" or
// "pxelinux"; "" picks the node's loader). It changes nothing.
func (d *Daemon) BootEntry(name, format string) (string, error) {
	inv := d.Inventory()
	n := inv.Node(name)
	if n == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	if format == "" {
		format = string(n.Loader)
	}
	return d.boot.Entry(inv, n, format, d.baseURL())
}

func (d *Daemon) baseURL() string {
	if d.cfg.AdvertiseURL != "" {
		return d.cfg.AdvertiseURL
	}
	return d.boot.DefaultURL
}

// History returns the newest n events of a node (all nodes when name is "").
func (d *Daemon) History(name string, n int) []bootstate.Event {
	if name == "" {
		return d.tracker.Recent(n)
	}
	return d.tracker.History(name, n)
}

// Notable returns the newest n events of all nodes that are not routine
// (check-ins, file progress; all kept if n <= 0): bounded apart from the
// routine ones, they outlast a busy cluster's check-ins.
func (d *Daemon) Notable(n int) []bootstate.Event { return d.tracker.Notable(n) }

// Edit is a change to one node's or group's inventory entry (the API type;
// Who is set by the API server).
type Edit = apitype.Edit

// editableKeys are the keys an Edit may touch; everything else is for the
// file's editor.
var editableKeys = map[string]bool{
	"image": true, "group": true, "arch": true, "loader": true, "kernel_args": true, "ip": true,
	"boot_override.ipxe": true, "boot_override.pxelinux": true,
	"bmc.protocol": true, "bmc.host": true, "bmc.port": true, "bmc.user": true, "bmc.password": true, "bmc.cipher_suites": true,
}

// editable reports whether an Edit may touch key: one of editableKeys, or a
// key of a power backend's own section (bmc.ipmi.cipher_suites).
func (d *Daemon) editable(key string) bool {
	if editableKeys[key] {
		return true
	}
	rest, ok := strings.CutPrefix(key, "bmc.")
	if !ok {
		return false
	}
	proto, k, ok := strings.Cut(rest, ".")
	p, known := d.cfg.Backends.Lookup(proto)
	return ok && known && slices.Contains(p.Keys, k)
}

// checkEdit refuses an edit of what ("node n01", "group gpu") that changes
// nothing, names a key that cannot be edited (editable), or sets a value the
// boot servers would refuse; errors name what and the key.
func (d *Daemon) checkEdit(what string, e Edit, group bool) error {
	if len(e.Set) == 0 && len(e.Unset) == 0 {
		return errors.New("edit changes nothing")
	}
	for k, v := range e.Set {
		if !d.editable(k) || (group && (k == "ip" || k == "group")) {
			return fmt.Errorf("key %q cannot be edited here", k)
		}
		if s, ok := v.(string); ok {
			var err error
			switch k {
			case "boot_override.ipxe":
				err = pxe.ValidateOverride("ipxe", s)
			case "boot_override.pxelinux":
				err = pxe.ValidateOverride("pxelinux", s)
			case "kernel_args":
				err = pxe.CheckKernelArgs(s)
			}
			if err != nil {
				return fmt.Errorf("%s: %s: %w", what, k, err)
			}
		}
	}
	for _, k := range e.Unset {
		if !d.editable(k) {
			return fmt.Errorf("key %q cannot be edited here", k)
		}
	}
	return nil
}

// EditNode changes a node's inventory entry atomically and reloads. It returns
// the new revision.
func (d *Daemon) EditNode(name string, e Edit) (string, error) {
	if d.Inventory().Node(name) == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	return d.edit("node "+name, e, false, func(doc *inventory.Document) fieldEditor {
		// A node of a range gets its own entry first.
		split := func() error { _, err := doc.SplitNode(name); return err }
		return fieldEditor{
			set: func(k string, v any) error {
				if err := split(); err != nil {
					return err
				}
				return doc.SetNodeField(name, k, v)
			},
			unset: func(k string) error {
				if err := split(); err != nil {
					return err
				}
				return doc.DeleteNodeField(name, k)
			}}
	})
}

// EditGroup changes a group's inventory entry atomically and reloads.
func (d *Daemon) EditGroup(name string, e Edit) (string, error) {
	if d.Inventory().Groups[name] == nil {
		return "", fmt.Errorf("unknown group %q", name)
	}
	return d.edit("group "+name, e, true, func(doc *inventory.Document) fieldEditor {
		return fieldEditor{set: func(k string, v any) error { return doc.SetGroupField(name, k, v) },
			unset: func(k string) error { return doc.DeleteGroupField(name, k) }}
	})
}

// fieldEditor sets and removes the fields of one inventory entry.
type fieldEditor struct {
	set   func(key string, value any) error
	unset func(key string) error
}

func (d *Daemon) edit(what string, e Edit, group bool, entry func(*inventory.Document) fieldEditor) (string, error) {
	keys := append(sortedKeys(e.Set), e.Unset...)
	base := e.BaseRevision
	if e.BaseEntry != "" {
		// the entry's own revision decides; the file's may have moved on
		// (another node edited) and the write applies to it
		base = ""
	}
	return d.writeInventory("edit "+what, strings.Join(keys, ","), e.Who, base, func(doc *inventory.Document) error {
		if e.BaseEntry != "" {
			if err := d.checkEntry(what, group, e.BaseEntry); err != nil {
				return err
			}
		}
		if err := d.checkEdit(what, e, group); err != nil {
			return err
		}
		fe := entry(doc)
		for _, k := range sortedKeys(e.Set) {
			if err := fe.set(k, e.Set[k]); err != nil {
				return err
			}
		}
		for _, k := range e.Unset {
			if err := fe.unset(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkEntry fails with inventory.ErrConflict when the entry being edited
// (what: "node NAME" or "group NAME") no longer has revision base. It runs
// under editMu, after writeInventory brought the daemon up to the file.
func (d *Daemon) checkEntry(what string, group bool, base string) error {
	inv := d.Inventory()
	name := strings.TrimPrefix(strings.TrimPrefix(what, "node "), "group ")
	now := ""
	if group {
		if g := inv.Groups[name]; g != nil {
			now = groupRevision(g)
		}
	} else if n := inv.Node(name); n != nil {
		now = nodeRevision(n)
	}
	if now != base {
		return fmt.Errorf("%w: %s changed since it was read", inventory.ErrConflict, what)
	}
	return nil
}

// nodeRevision identifies a node's settings (its resolved entry, where it
// is in the file aside, its BMC password reference kept as a name): two
// inventories give the same revision exactly when the node's settings are
// the same.
func nodeRevision(n *inventory.Node) string {
	c := *n
	c.Defined, c.BMC.Options = inventory.Pos{}, nil
	return entryHash(fmt.Sprintf("%+v", c))
}

// groupRevision is nodeRevision for a group.
func groupRevision(g *inventory.Group) string {
	c := *g
	c.Defined, c.BMC.Options = inventory.Pos{}, nil
	return entryHash(fmt.Sprintf("%+v", c))
}

func entryHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

// writeInventory applies change to the inventory file (inventory.Update,
// against base or, when base is "", the revision in force), reloads, and
// audits action on target by who with the outcome.
func (d *Daemon) writeInventory(action, target, who, base string, change func(*inventory.Document) error) (rev string, err error) {
	defer func() {
		res := "ok: revision " + short(rev)
		if err != nil {
			res = err.Error()
		}
		d.auditRecord(audit.Entry{Who: who, Action: action, Target: target, Result: res})
	}()
	d.editMu.Lock()
	defer d.editMu.Unlock()
	if base == "" {
		// the revision in force: the file's, should the watcher not have
		// brought it in yet (a file that does not parse keeps the last
		// good one, and the write below refuses)
		_ = d.Reload()
		base = d.Inventory().Revision
	}
	rev, err = inventory.UpdateWith(d.cfg.InventoryPath, base, change, d.commitInventory(), d.parseOptions()...)
	if err != nil {
		return "", err
	}
	if err := d.Reload(); err != nil {
		return rev, fmt.Errorf("written, but reload failed: %w", err)
	}
	return rev, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Preview is a request for a boot entry rendered from a proposed override (the
// API type).
type Preview = apitype.Preview

// PreviewEntry validates and renders a proposed override for a node without
// applying it.
func (d *Daemon) PreviewEntry(p Preview) (string, error) {
	inv := d.Inventory()
	n := inv.Node(p.Node)
	if n == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownNode, p.Node)
	}
	format := p.Format
	if format == "" {
		format = string(n.Loader)
	}
	if strings.TrimSpace(p.Override) == "" {
		return d.boot.Entry(inv, n, format, d.baseURL())
	}
	params, err := d.boot.Params(inv, n, d.baseURL())
	if err != nil {
		return "", err
	}
	return pxe.Preview(format, p.Override, params)
}

// stageCollector exports the number of nodes in each boot stage.
type stageCollector struct {
	d    *Daemon
	desc *prometheus.Desc
}

func newStageCollector(d *Daemon) *stageCollector {
	return &stageCollector{d: d, desc: prometheus.NewDesc("netbootui_nodes",
		"Inventory nodes by boot stage.", []string{"stage"}, nil)}
}

// Describe implements prometheus.Collector.
func (c *stageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *stageCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	inv := c.d.Inventory()
	for _, n := range inv.Nodes {
		st, _ := c.d.tracker.Get(n.Name)
		s := string(st.Stage)
		if s == "" {
			s = "unknown"
		}
		counts[s]++
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s)
	}
}
