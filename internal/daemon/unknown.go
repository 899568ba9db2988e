package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
)

// MaxUnknown bounds the table of unknown PXE clients: when it is full, the
// client seen least recently makes room.
const MaxUnknown = 1024

// AdoptRequest names unknown clients as nodes (the API type).
type AdoptRequest = apitype.AdoptRequest

// unknownTable remembers the PXE clients that asked for a boot (DHCP,
// TFTP, HTTP) with a MAC the inventory does not have, from the daemon's
// "unknown" events. The boot servers rate-limit those events, so LastSeen
// and Requests count what got through.
type unknownTable struct {
	mu    sync.Mutex
	max   int
	byMAC map[string]*apitype.UnknownNode
}

func newUnknownTable(max int) *unknownTable {
	return &unknownTable{max: max, byMAC: map[string]*apitype.UnknownNode{}}
}

// see records ev when it is an unknown client's request with a MAC.
func (t *unknownTable) see(ev bootstate.Event) {
	if ev.Kind != bootstate.KindUnknown || ev.MAC == "" {
		return
	}
	hw, err := net.ParseMAC(ev.MAC)
	if err != nil || len(hw) != 6 {
		return
	}
	mac := hw.String()
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.byMAC[mac]
	if u == nil {
		if len(t.byMAC) >= t.max {
			var oldest *apitype.UnknownNode
			for _, o := range t.byMAC {
				if oldest == nil || o.LastSeen.Before(oldest.LastSeen) {
					oldest = o
				}
			}
			delete(t.byMAC, oldest.MAC)
		}
		u = &apitype.UnknownNode{MAC: mac, FirstSeen: ev.Time}
		t.byMAC[mac] = u
	}
	u.LastSeen, u.Proto = ev.Time, ev.Proto
	u.Requests++
	if ev.Remote != "" {
		u.Address = ev.Remote
	}
	if a := unknownArch(ev); a != "" {
		u.Arch = a
	}
}

// unknownArch is what an unknown client's request says of its firmware:
// the proxyDHCP names it in its message ("unknown MAC m (UEFI x86-64, iPXE)
// asked ..."), a TFTP loader name implies it.
func unknownArch(ev bootstate.Event) string {
	if ev.Proto == "dhcp" {
		if _, rest, ok := strings.Cut(ev.Message, "("); ok {
			if a, _, ok := strings.Cut(rest, ")"); ok {
				return a
			}
		}
	}
	if ev.Proto == "tftp" {
		switch p := strings.ToLower(ev.Path); {
		case strings.HasSuffix(p, ".efi"):
			return "uefi"
		case strings.HasSuffix(p, ".kpxe"), strings.HasSuffix(p, ".0"), strings.HasPrefix(p, "pxelinux.cfg/"):
			return "bios"
		}
	}
	return ""
}

// list returns the table in the order the clients first asked.
func (t *unknownTable) list() []apitype.UnknownNode {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]apitype.UnknownNode, 0, len(t.byMAC))
	for _, u := range t.byMAC {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b apitype.UnknownNode) int {
		return cmp.Or(a.FirstSeen.Compare(b.FirstSeen), strings.Compare(a.MAC, b.MAC))
	})
	return out
}

// forget removes clients that became nodes.
func (t *unknownTable) forget(inv *inventory.Inventory) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for mac := range t.byMAC {
		if hw, err := net.ParseMAC(mac); err == nil && inv.NodeByMAC(hw) != nil {
			delete(t.byMAC, mac)
		}
	}
}

// Unknown lists the PXE clients not in the inventory that asked for a boot,
// in the order they first asked.
func (d *Daemon) Unknown() []apitype.UnknownNode {
	d.unknown.forget(d.Inventory())
	return d.unknown.list()
}

// Adopt adds machines that are not in the inventory to it as nodes of a
// group, and reloads: unknown PXE clients by MAC, in the order they first
// asked, and machines by their BMC, whose NIC MACs the daemon reads from it
// (see AdoptRequest). Each is named the next free name of the group's
// pattern (xCAT's sequential discovery) and boots its group's image on its
// next request. Nothing is written unless every machine can be adopted; a
// BMC that cannot be read fails the adoption with its error, naming it.
func (d *Daemon) Adopt(ctx context.Context, r AdoptRequest) (apitype.AdoptResult, error) {
	var res apitype.AdoptResult
	target := strings.Join(append(slices.Clone(r.MACs), r.BMCs...), ",")
	var byBMC []adoptMachine
	if len(r.BMCs) > 0 {
		group, err := adoptGroup(d.Inventory(), r.Group)
		if err == nil {
			byBMC, err = d.readAdoptBMCs(ctx, group, r.BMCs)
		}
		if err != nil {
			d.auditRecord(audit.Entry{Who: r.Who, Action: "adopt", Target: target, Result: err.Error()})
			return res, err
		}
	}
	rev, err := d.writeInventory("adopt", target, r.Who, r.BaseRevision, func(doc *inventory.Document) error {
		res.Nodes = nil
		inv := d.Inventory()
		group, err := adoptGroup(inv, r.Group)
		if err != nil {
			return err
		}
		if len(r.MACs) == 0 && len(r.BMCs) == 0 {
			return errors.New("adopt: no MAC and no BMC")
		}
		machines, err := d.adoptMachines(inv, r.MACs, byBMC)
		if err != nil {
			return err
		}
		names, err := nextFreeNames(inv, group, len(machines))
		if err != nil {
			return err
		}
		for i, m := range machines {
			fields := map[string]any{"mac": m.macs[0], "group": group}
			a := apitype.Adopted{MAC: m.macs[0], Name: names[i]}
			if m.bmc != "" {
				fields["mac"], fields["bmc.host"] = m.macs, m.host
				if m.port != 0 {
					fields["bmc.port"] = m.port
				}
				a.BMC, a.NICs = m.bmc, m.macs
			}
			if err := doc.AddNode(names[i], fields); err != nil {
				return err
			}
			res.Nodes = append(res.Nodes, a)
		}
		return nil
	})
	if err != nil {
		return apitype.AdoptResult{}, err
	}
	res.Revision = rev
	d.unknown.forget(d.Inventory())
	return res, nil
}

// adoptGroup is the group adopted machines join: the one named, else the
// inventory's only group.
func adoptGroup(inv *inventory.Inventory, group string) (string, error) {
	if group == "" {
		if len(inv.Groups) != 1 {
			return "", errors.New("adopt: name the group (--group)")
		}
		for g := range inv.Groups {
			group = g
		}
	}
	if inv.Groups[group] == nil {
		return "", fmt.Errorf("adopt: unknown group %q", group)
	}
	return group, nil
}

// adoptMachine is one machine to adopt.
type adoptMachine struct {
	macs []string  // its NIC MACs, the boot NIC's first
	seen time.Time // when it first asked as an unknown PXE client (zero: it has not)
	// bmc is the BMC it is adopted by, as asked ("" when by MAC), at host
	// and port (0: the group's or protocol's default).
	bmc, host string
	port      int
}

// adoptMachines are the machines to adopt: one per BMC (byBMC, boot NIC
// chosen here), and one per MAC that no BMC reported, which must be an
// unknown PXE client. Those that asked come first, in the order they first
// asked; the others keep the order of their BMCs.
func (d *Daemon) adoptMachines(inv *inventory.Inventory, macs []string, byBMC []adoptMachine) ([]adoptMachine, error) {
	seen := map[string]apitype.UnknownNode{}
	for _, u := range d.Unknown() {
		seen[u.MAC] = u
	}
	var out []adoptMachine
	owner := map[string]string{} // MAC -> the BMC that reported it
	for _, m := range byBMC {
		boot := -1
		for i, mac := range m.macs {
			if o, dup := owner[mac]; dup {
				return nil, fmt.Errorf("adopt: BMCs %s and %s both report MAC %s", o, m.bmc, mac)
			}
			owner[mac] = m.bmc
			if n := inv.NodeByMAC(mustMAC(mac)); n != nil {
				return nil, fmt.Errorf("adopt: BMC %s reports MAC %s, which is node %s's", m.bmc, mac, n.Name)
			}
			if u, ok := seen[mac]; ok && (boot < 0 || u.FirstSeen.Before(m.seen)) {
				boot, m.seen = i, u.FirstSeen
			}
		}
		if boot > 0 {
			m.macs = append([]string{m.macs[boot]}, slices.Delete(slices.Clone(m.macs), boot, boot+1)...)
		}
		out = append(out, m)
	}
	for _, s := range macs {
		hw, err := net.ParseMAC(s)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("adopt: bad MAC %q", s)
		}
		mac := hw.String()
		if _, ok := owner[mac]; ok {
			continue // it joins its BMC's node
		}
		u, ok := seen[mac]
		if !ok {
			return nil, fmt.Errorf("adopt: %s is not an unknown PXE client (netbootui node unknown lists them)", mac)
		}
		owner[mac] = ""
		out = append(out, adoptMachine{macs: []string{mac}, seen: u.FirstSeen})
	}
	slices.SortStableFunc(out, func(a, b adoptMachine) int {
		if az, bz := a.seen.IsZero(), b.seen.IsZero(); az || bz {
			return cmp.Compare(boolInt(az), boolInt(bz)) // those that never asked last
		}
		return a.seen.Compare(b.seen)
	})
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// mustMAC parses a MAC already known to be well formed.
func mustMAC(s string) net.HardwareAddr {
	hw, _ := net.ParseMAC(s)
	return hw
}

// namePattern is a node name cut around its last run of digits.
type namePattern struct {
	prefix, suffix string
	width          int
}

func splitName(name string) (namePattern, int, bool) {
	end := len(name)
	for end > 0 && (name[end-1] < '0' || name[end-1] > '9') {
		end--
	}
	start := end
	for start > 0 && name[start-1] >= '0' && name[start-1] <= '9' {
		start--
	}
	if start == end || end-start > 9 {
		return namePattern{}, 0, false
	}
	n, _ := strconv.Atoi(name[start:end])
	return namePattern{prefix: name[:start], suffix: name[end:], width: end - start}, n, true
}

// nextFreeNames returns count names of group's pattern (the prefix, digit
// width and suffix most of its nodes share) that no node has, smallest
// numbers first, gaps included.
func nextFreeNames(inv *inventory.Inventory, group string, count int) ([]string, error) {
	votes := map[namePattern]int{}
	var best namePattern
	for _, n := range inv.Nodes {
		if n.Group != group {
			continue
		}
		if p, _, ok := splitName(n.Name); ok {
			votes[p]++
			if votes[p] > votes[best] || (votes[p] == votes[best] && p.prefix < best.prefix) {
				best = p
			}
		}
	}
	if votes[best] == 0 {
		return nil, fmt.Errorf("adopt: group %s has no numbered node to take a name pattern from; add the first with netbootui node add", group)
	}
	limit := 1
	for range best.width {
		limit *= 10
	}
	var out []string
	for i := 1; i < limit && len(out) < count; i++ {
		name := fmt.Sprintf("%s%0*d%s", best.prefix, best.width, i, best.suffix)
		if inv.Node(name) == nil {
			out = append(out, name)
		}
	}
	if len(out) < count {
		return nil, fmt.Errorf("adopt: the pattern %s%s%s of group %s has %d free names, %d needed",
			best.prefix, strings.Repeat("N", best.width), best.suffix, group, len(out), count)
	}
	return out, nil
}
