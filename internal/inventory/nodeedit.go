package inventory

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/netbootui/netbootui/internal/hostlist"
)

// nodeList returns the nodes sequence, creating it when create is set.
func (d *Document) nodeList(create bool) (*yaml.Node, error) {
	root := d.Root()
	nodes := lookup(root, "nodes")
	if nodes != nil && nodes.Kind == yaml.SequenceNode {
		return nodes, nil
	}
	if nodes != nil && !isNull(nodes) {
		return nil, fmt.Errorf("inventory: nodes in %s is not a list", filepath.Base(d.path))
	}
	if !create {
		return nil, fmt.Errorf("inventory: no nodes in %s", filepath.Base(d.path))
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if nodes != nil {
		seq.HeadComment, seq.LineComment, seq.FootComment = nodes.HeadComment, nodes.LineComment, nodes.FootComment
		*nodes = *seq
		return nodes, nil
	}
	root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "nodes"}, seq)
	return seq, nil
}

// SplitNode gives node name an entry of its own when a range entry defines
// it: the range entry becomes up to three entries, the names before name,
// name alone and the names after it, each keeping the range's fields and
// comments with its ip, bmc.host (an IPv4 literal) and NIC MACs advanced to
// what the node had in the range. A node with its own entry is left as it
// is. It reports whether it split a range.
func (d *Document) SplitNode(name string) (bool, error) {
	nodes, err := d.nodeList(false)
	if err != nil {
		return false, err
	}
	for _, e := range nodes.Content {
		if n := lookup(e, "name"); n != nil && n.Kind == yaml.ScalarNode && n.Value == name {
			return false, nil
		}
	}
	r, ok := rangeEntry(nodes, name)
	if !ok {
		return false, fmt.Errorf("inventory: no node %s in %s", name, filepath.Base(d.path))
	}
	e, names, i := r.entry, r.names, r.index
	var pieces []*yaml.Node
	for _, part := range []struct {
		names  []string
		offset int
	}{{names[:i], 0}, {names[i : i+1], i}, {names[i+1:], i + 1}} {
		if len(part.names) == 0 {
			continue
		}
		p := deepCopy(e)
		p.HeadComment, p.FootComment = "", ""
		lookup(p, "name").Value = rangeName(part.names)
		if err := shiftEntry(p, part.offset); err != nil {
			return false, fmt.Errorf("inventory: splitting %s out of range %s at %s: %w", name, r.name.Value, d.where(r.name), err)
		}
		pieces = append(pieces, p)
	}
	pieces[0].HeadComment = e.HeadComment
	pieces[len(pieces)-1].FootComment = e.FootComment
	nodes.Content = slices.Concat(nodes.Content[:r.at], pieces, nodes.Content[r.at+1:])
	return true, nil
}

// rangeName writes names as one host list whose expansion is names in the
// same order (so that the entry's address offsets stay right), or as a
// plain comma list when the compressed form would reorder them.
func rangeName(names []string) string {
	if c := hostlist.Compress(names); c != "" {
		if got, err := hostlist.Expand(c); err == nil && slices.Equal(got, names) {
			return c
		}
	}
	return strings.Join(names, ",")
}

// shiftEntry advances a node entry's ip, IPv4 bmc.host and NIC MACs by n,
// as Parse does for the n-th node of a range.
func shiftEntry(e *yaml.Node, n int) error {
	if n == 0 {
		return nil
	}
	shiftAddr := func(v *yaml.Node, what string, v4only bool) error {
		if v == nil || v.Kind != yaml.ScalarNode {
			return nil
		}
		a, err := netip.ParseAddr(v.Value)
		if err != nil || (v4only && !a.Is4()) {
			return nil
		}
		b, ok := addAddr(a, n)
		if !ok {
			return fmt.Errorf("%s %s + %d overflows", what, v.Value, n)
		}
		v.Value = b.String()
		return nil
	}
	if err := shiftAddr(lookup(e, "ip"), "ip", false); err != nil {
		return err
	}
	if err := shiftAddr(lookup(lookup(e, "bmc"), "host"), "bmc.host", true); err != nil {
		return err
	}
	if nics := lookup(e, "nics"); nics != nil && nics.Kind == yaml.SequenceNode {
		for _, nic := range nics.Content {
			m := lookup(nic, "mac")
			if m == nil || m.Kind != yaml.ScalarNode {
				continue
			}
			hw, err := net.ParseMAC(m.Value)
			if err != nil || len(hw) != 6 {
				continue
			}
			out, ok := addMAC(hw, n)
			if !ok {
				return fmt.Errorf("mac %s + %d overflows", m.Value, n)
			}
			m.Value = formatMACLike(out, m.Value)
		}
	}
	return nil
}

// formatMACLike writes mac with the separator and letter case of like.
func formatMACLike(mac net.HardwareAddr, like string) string {
	s := mac.String()
	if strings.Contains(like, "-") {
		s = strings.ReplaceAll(s, ":", "-")
	}
	if strings.ToUpper(like) == like {
		s = strings.ToUpper(s)
	}
	return s
}

func deepCopy(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, ch := range n.Content {
		c.Content[i] = deepCopy(ch)
	}
	c.Alias = deepCopy(n.Alias)
	return &c
}

// RemoveNode removes node name: its entry, or its name from the range
// entry that defines it (SplitNode). The removed entry's comments stay: they
// go before the next entry's, or after the previous entry.
func (d *Document) RemoveNode(name string) error {
	if _, err := d.SplitNode(name); err != nil {
		return err
	}
	nodes, _ := d.nodeList(false)
	for k, e := range nodes.Content {
		if n := lookup(e, "name"); n != nil && n.Value == name {
			nodes.Content = slices.Delete(nodes.Content, k, k+1)
			keep := joinComments(e.HeadComment, e.FootComment)
			switch {
			case keep == "":
			case k < len(nodes.Content):
				nodes.Content[k].HeadComment = joinComments(keep, nodes.Content[k].HeadComment)
			case k > 0:
				nodes.Content[k-1].FootComment = joinComments(nodes.Content[k-1].FootComment, keep)
			default:
				nodes.FootComment = joinComments(nodes.FootComment, keep)
			}
			return nil
		}
	}
	return fmt.Errorf("inventory: no node %s in %s", name, filepath.Base(d.path))
}

func joinComments(a, b string) string { return joinNonEmpty("\n", a, b) }

// RenameNode gives node old the name new (splitting it out of its range
// first). Parse then checks that new is a valid name no other node has.
func (d *Document) RenameNode(old, new string) error {
	if hostlist.IsRange(new) || !nameRE.MatchString(new) {
		return fmt.Errorf("inventory: bad node name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", new)
	}
	if _, err := d.SplitNode(old); err != nil {
		return err
	}
	nodes, _ := d.nodeList(false)
	for _, e := range nodes.Content {
		if n := lookup(e, "name"); n != nil && n.Value == old {
			n.Value = new
			return nil
		}
	}
	return fmt.Errorf("inventory: no node %s in %s", old, filepath.Base(d.path))
}

// AddNode appends an entry for node name with fields (dotted keys as
// SetNodeField takes them; "mac" is the boot NIC's MAC, written as
// nics: [{mac: ..., boot: true}], or a []string of the node's NIC MACs, the
// boot NIC's first). The entry goes after the last entry of its group, or
// at the end. Parse then validates it.
func (d *Document) AddNode(name string, fields map[string]any) error {
	if hostlist.IsRange(name) || !nameRE.MatchString(name) {
		return fmt.Errorf("inventory: bad node name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	nodes, err := d.nodeList(true)
	if err != nil {
		return err
	}
	e := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if err := setPath(e, "name", name); err != nil {
		return err
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	// name, group and ip first, the boot NIC after the scalar fields, the
	// rest in key order.
	rank := func(k string) int {
		switch k {
		case "group":
			return 0
		case "ip":
			return 1
		case "mac", "nics":
			return 3
		}
		if strings.Contains(k, ".") {
			return 4
		}
		return 2
	}
	slices.SortFunc(keys, func(a, b string) int {
		if c := rank(a) - rank(b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		v := fields[k]
		if k == "name" {
			continue
		}
		if k == "mac" {
			var macs []string
			switch m := v.(type) {
			case string:
				macs = []string{m}
			case []string:
				macs = m
			}
			if len(macs) == 0 {
				return fmt.Errorf("inventory: node %s: mac must be a string or a list of them", name)
			}
			v, k = nicsNode(macs), "nics"
		}
		if err := setPath(e, k, v); err != nil {
			return err
		}
	}
	at := len(nodes.Content)
	if g, ok := fields["group"].(string); ok {
		for k, other := range nodes.Content {
			if gn := lookup(other, "group"); gn != nil && gn.Value == g {
				at = k + 1
			}
		}
	}
	nodes.Content = slices.Insert(nodes.Content, at, e)
	return nil
}

// nicsNode is the nics list of a new node: one flow mapping per MAC, the
// first marked as the boot NIC.
func nicsNode(macs []string) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for i, mac := range macs {
		nic := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Tag: "!!str", Value: "mac"}, {Kind: yaml.ScalarNode, Tag: "!!str", Value: mac, Style: yaml.DoubleQuotedStyle},
		}}
		if i == 0 {
			nic.Content = append(nic.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "boot"}, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
		}
		seq.Content = append(seq.Content, nic)
	}
	return seq
}
