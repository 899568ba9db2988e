package inventory

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/netbootui/netbootui/internal/hostlist"
)

// Node returns the node called name, or nil.
func (inv *Inventory) Node(name string) *Node { return inv.byName[name] }

// NodeByMAC returns the node with a NIC of that MAC (any NIC, not only the boot
// NIC), or nil.
func (inv *Inventory) NodeByMAC(mac net.HardwareAddr) *Node {
	if len(mac) != 6 {
		return nil
	}
	return inv.byMAC[mac.String()]
}

// NodeByIP returns the node with that IP address, or nil. An IPv4-mapped IPv6
// address finds the IPv4 node.
func (inv *Inventory) NodeByIP(ip netip.Addr) *Node {
	if n := inv.byIP[ip]; n != nil {
		return n
	}
	if ip.Is4In6() {
		return inv.byIP[ip.Unmap()]
	}
	return nil
}

// GroupNodes returns the nodes of a group in file order (nil for an unknown
// or empty group).
func (inv *Inventory) GroupNodes(group string) []*Node {
	var out []*Node
	for _, n := range inv.Nodes {
		if n.Group == group && group != "" {
			out = append(out, n)
		}
	}
	return out
}

// Select returns the nodes an expression names, in the order of the
// expression, each once. The expression is a host list ("n[01-08],gpu1");
// an item "@group" stands for every node of that group. An empty expression is
// an error (never "all nodes"), and so is any name or group that matches
// nothing (an unknown name, an unknown group, a group without nodes): the
// error names them.
func (inv *Inventory) Select(expr string) ([]*Node, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, errors.New("inventory: empty node selection: name nodes (n[01-04]) or a group (@compute)")
	}
	names, err := hostlist.Expand(expr)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var out []*Node
	seen := map[*Node]bool{}
	var missing, badGroups, emptyGroups []string
	add := func(n *Node) {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, name := range names {
		if g, ok := strings.CutPrefix(name, "@"); ok {
			if _, known := inv.Groups[g]; !known {
				badGroups = append(badGroups, name)
				continue
			}
			members := inv.GroupNodes(g)
			if len(members) == 0 {
				emptyGroups = append(emptyGroups, name)
			}
			for _, n := range members {
				add(n)
			}
			continue
		}
		n := inv.byName[name]
		if n == nil {
			missing = append(missing, name)
			continue
		}
		add(n)
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, fmt.Sprintf("no such node: %s", hostlist.Compress(missing)))
	}
	if len(badGroups) > 0 {
		problems = append(problems, fmt.Sprintf("no such group: %s", strings.Join(badGroups, ", ")))
	}
	if len(emptyGroups) > 0 {
		problems = append(problems, fmt.Sprintf("group without nodes: %s", strings.Join(emptyGroups, ", ")))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("inventory: selection %q: %s", expr, strings.Join(problems, "; "))
	}
	return out, nil
}
