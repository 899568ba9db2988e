package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/ipmi"
)

// This file holds what the console reads besides the node list: a group's
// own settings, an edit tried on a copy of the inventory, and a node's BMC
// facts. None of it changes the inventory or writes the audit log.

// ErrUnknownGroup is returned for a group the inventory does not define.
var ErrUnknownGroup = errors.New("unknown group")

// GroupView is a group's own settings, as its inventory entry sets them
// (a node's KernelArgs in NodeView are the group's and its own, joined).
// It never holds credentials.
type GroupView struct {
	Name       string   `json:"name"`
	Image      string   `json:"image,omitempty"`
	Generation string   `json:"generation,omitempty"`
	Arch       string   `json:"arch,omitempty"`
	Loader     string   `json:"loader,omitempty"`
	KernelArgs string   `json:"kernel_args,omitempty"`
	IPXE       string   `json:"boot_override_ipxe,omitempty"`
	Pxelinux   string   `json:"boot_override_pxelinux,omitempty"`
	Nodes      []string `json:"nodes"`
	Defined    string   `json:"defined"` // FILE:LINE:COL of its entry
}

// Group returns a group's own settings and its nodes.
func (d *Daemon) Group(name string) (GroupView, error) {
	inv := d.Inventory()
	g := inv.Groups[name]
	if g == nil {
		return GroupView{}, fmt.Errorf("%w %q", ErrUnknownGroup, name)
	}
	v := GroupView{Name: g.Name, Image: g.Image, Generation: g.Generation, Arch: string(g.Arch), Loader: string(g.Loader),
		KernelArgs: g.KernelArgs, IPXE: g.Override.IPXE, Pxelinux: g.Override.Pxelinux, Defined: g.Defined.String(), Nodes: []string{}}
	for _, n := range inv.GroupNodes(name) {
		v.Nodes = append(v.Nodes, n.Name)
	}
	return v, nil
}

// EditPreview asks how a node's boot entry would look after an edit of the
// node's entry or, with Group set, of that group's entry.
type EditPreview struct {
	Node   string `json:"node"`            // whose entry is rendered
	Group  string `json:"group,omitempty"` // edit this group instead of the node
	Format string `json:"format,omitempty"`
	Edit   Edit   `json:"edit"`
}

// PreviewEdit applies an edit to a copy of the inventory file, validates the
// result as a whole (errors name FILE:LINE:COL) and renders the node's boot
// entry from it. Nothing is written.
func (d *Daemon) PreviewEdit(p EditPreview) (string, error) {
	if err := checkEdit(p.Edit, p.Group != ""); err != nil {
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
	if p.Edit.BaseRevision != "" && inventory.Revision(data) != p.Edit.BaseRevision {
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
	inv, err := inventory.Parse(path, out)
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

// BMCFacts is what the console's node detail shows about a node's BMC, read
// when asked: the device ID and the power state. It never holds
// credentials.
type BMCFacts struct {
	Node string `json:"node"`
	BMC  string `json:"bmc,omitempty"` // host:port
	// Device is the BMC's Get Device ID answer (device, firmware, IPMI
	// version, manufacturer and product IDs); DeviceError says why there is
	// none.
	Device      string `json:"device,omitempty"`
	DeviceError string `json:"device_error,omitempty"`
	// Power is the power state read now ("" when it could not be read,
	// PowerError says why), at ReadAt.
	Power      string    `json:"power,omitempty"`
	PowerError string    `json:"power_error,omitempty"`
	ReadAt     time.Time `json:"read_at"`
	// PollEvery is how often the daemon polls every BMC's power state (0:
	// it does not).
	PollEvery time.Duration `json:"poll_every"`
}

// NodeBMC reads a node's BMC device ID and power state. The power state is
// recorded like a poll's observation; neither read is audited (both are
// read-only).
func (d *Daemon) NodeBMC(ctx context.Context, name string) (BMCFacts, error) {
	n := d.Inventory().Node(name)
	if n == nil {
		return BMCFacts{}, fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	f := BMCFacts{Node: name, PollEvery: d.cfg.PowerPoll}
	targets, failed := d.targets([]*inventory.Node{n}, string(ipmi.OpDeviceID))
	if len(targets) == 0 {
		f.DeviceError, f.PowerError = failed[0].Error, failed[0].Error
		f.ReadAt = time.Now().UTC()
		return f, nil
	}
	t := targets[0]
	f.BMC = t.Addr()
	dev := d.power.Do(ctx, t, ipmi.OpDeviceID)
	if dev.Err != nil {
		f.DeviceError = dev.Err.Error()
	} else {
		f.Device = dev.Detail
	}
	st := d.power.Do(ctx, t, ipmi.OpStatus)
	f.ReadAt = time.Now().UTC()
	if st.Err != nil {
		f.PowerError = st.Err.Error()
	} else {
		f.Power = st.Power
	}
	d.onPoll(st)
	return f, nil
}
