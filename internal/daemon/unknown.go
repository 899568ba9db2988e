package daemon

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/netbootui/netbootui/internal/apitype"
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

// Adopt adds unknown clients to the inventory as nodes of a group, in the
// order they first asked, each named the next free name of the group's
// pattern (xCAT's sequential discovery), and reloads: each boots its
// group's image on its next request.
func (d *Daemon) Adopt(r AdoptRequest) (apitype.AdoptResult, error) {
	var res apitype.AdoptResult
	target := strings.Join(r.MACs, ",")
	rev, err := d.writeInventory("adopt", target, r.Who, r.BaseRevision, func(doc *inventory.Document) error {
		res.Nodes = nil
		inv := d.Inventory()
		group := r.Group
		if group == "" {
			if len(inv.Groups) != 1 {
				return errors.New("adopt: name the group (--group)")
			}
			for g := range inv.Groups {
				group = g
			}
		}
		if inv.Groups[group] == nil {
			return fmt.Errorf("adopt: unknown group %q", group)
		}
		if len(r.MACs) == 0 {
			return errors.New("adopt: no MAC")
		}
		seen := map[string]apitype.UnknownNode{}
		for _, u := range d.Unknown() {
			seen[u.MAC] = u
		}
		var macs []apitype.UnknownNode
		for _, m := range r.MACs {
			hw, err := net.ParseMAC(m)
			if err != nil || len(hw) != 6 {
				return fmt.Errorf("adopt: bad MAC %q", m)
			}
			u, ok := seen[hw.String()]
			if !ok {
				return fmt.Errorf("adopt: %s is not an unknown PXE client (netbootui node unknown lists them)", hw)
			}
			if !slices.ContainsFunc(macs, func(x apitype.UnknownNode) bool { return x.MAC == u.MAC }) {
				macs = append(macs, u)
			}
		}
		slices.SortStableFunc(macs, func(a, b apitype.UnknownNode) int { return a.FirstSeen.Compare(b.FirstSeen) })
		names, err := nextFreeNames(inv, group, len(macs))
		if err != nil {
			return err
		}
		for i, u := range macs {
			if err := doc.AddNode(names[i], map[string]any{"mac": u.MAC, "group": group}); err != nil {
				return err
			}
			res.Nodes = append(res.Nodes, apitype.Adopted{MAC: u.MAC, Name: names[i]})
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
