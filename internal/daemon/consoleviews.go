package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"os"
	"time"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/power"
)

// This file holds what the console reads besides the node list: a group's
// own settings, an edit tried on a copy of the inventory, and a node's BMC
// facts. None of it changes the inventory or writes the audit log.

// ErrUnknownGroup is returned for a group the inventory does not define.
var ErrUnknownGroup = errors.New("unknown group")

// GroupView is a group's own settings (the API type).
type GroupView = apitype.GroupView

// Group returns a group's own settings and its nodes.
func (d *Daemon) Group(name string) (GroupView, error) {
	inv := d.Inventory()
	g := inv.Groups[name]
	if g == nil {
		return GroupView{}, fmt.Errorf("%w %q", ErrUnknownGroup, name)
	}
	v := GroupView{Name: g.Name, Image: g.Image, Generation: g.Generation, Arch: string(g.Arch), Loader: string(g.Loader),
		KernelArgs: g.KernelArgs, IPXE: g.Override.IPXE, Pxelinux: g.Override.Pxelinux, Defined: g.Defined.String(), Nodes: []string{},
		Revision: groupRevision(g)}
	for _, n := range inv.GroupNodes(name) {
		v.Nodes = append(v.Nodes, n.Name)
	}
	return v, nil
}

// EditPreview is a request to render a node's entry after a proposed edit (the
// API type).
type EditPreview = apitype.EditPreview

// PreviewEdit applies an edit to a copy of the inventory file, validates the
// result as a whole (errors name FILE:LINE:COL) and renders the node's boot
// entry from it. Nothing is written.
func (d *Daemon) PreviewEdit(p EditPreview) (string, error) {
	what := "node " + p.Node
	if p.Group != "" {
		what = "group " + p.Group
	}
	if err := d.checkEdit(what, p.Edit, p.Group != ""); err != nil {
		return "", err
	}
	if d.Inventory().Node(p.Node) == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownNode, p.Node)
	}
	path := d.cfg.InventoryPath
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	switch {
	case p.Edit.BaseEntry != "":
		if err := d.checkEntry(what, p.Group != "", p.Edit.BaseEntry); err != nil {
			return "", err
		}
	case p.Edit.BaseRevision != "" && inventory.Revision(data) != p.Edit.BaseRevision:
		return "", fmt.Errorf("%w: %s changed since revision %s was read", inventory.ErrConflict, path, p.Edit.BaseRevision)
	}
	doc, err := inventory.ParseDocument(path, data)
	if err != nil {
		return "", err
	}
	set, unset := func(k string, v any) error { return doc.SetNodeField(p.Node, k, v) }, func(k string) error { return doc.DeleteNodeField(p.Node, k) }
	if p.Group != "" {
		set, unset = func(k string, v any) error { return doc.SetGroupField(p.Group, k, v) }, func(k string) error { return doc.DeleteGroupField(p.Group, k) }
	}
	for k, v := range p.Edit.Set {
		if err := set(k, v); err != nil {
			return "", err
		}
	}
	for _, k := range p.Edit.Unset {
		if err := unset(k); err != nil {
			return "", err
		}
	}
	out, err := doc.Bytes()
	if err != nil {
		return "", err
	}
	inv, err := inventory.Parse(path, out, d.parseOptions()...)
	if err != nil {
		return "", err
	}
	n := inv.Node(p.Node)
	if n == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownNode, p.Node)
	}
	if p.Group != "" && n.Group != p.Group {
		return "", fmt.Errorf("node %s is not in group %s", p.Node, p.Group)
	}
	format := p.Format
	if format == "" {
		format = string(n.Loader)
	}
	return d.boot.Entry(inv, n, format, d.baseURL())
}

// BMCFacts is a node's BMC device ID and power state (the API type).
type BMCFacts = apitype.BMCFacts

// NodeBMC reads a node's BMC device ID and power state. The power state is
// recorded like a poll's observation; neither read is audited (both are
// read-only).
func (d *Daemon) NodeBMC(ctx context.Context, name string) (BMCFacts, error) {
	n := d.Inventory().Node(name)
	if n == nil {
		return BMCFacts{}, fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	f := BMCFacts{Node: name, PollEvery: d.cfg.PowerPoll}
	targets, failed := d.targets([]*inventory.Node{n}, string(power.OpDeviceID))
	if len(targets) == 0 {
		f.DeviceError, f.PowerError = failed[0].Error, failed[0].Error
		f.ReadAt = time.Now().UTC()
		return f, nil
	}
	t := targets[0]
	dev := d.power.Do(ctx, t, power.OpDeviceID)
	f.BMC = dev.BMC
	if dev.Err != nil {
		f.DeviceError = dev.Err.Error()
	} else {
		f.Device = dev.Detail
	}
	st := d.power.Do(ctx, t, power.OpStatus)
	f.ReadAt = time.Now().UTC()
	if st.Err != nil {
		f.PowerError = st.Err.Error()
	} else {
		f.Power = st.Power
	}
	d.onPoll(st)
	return f, nil
}
