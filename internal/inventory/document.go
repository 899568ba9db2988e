package inventory

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/netbootui/netbootui/internal/hostlist"
)

// Indent is the indentation Document writes with. Inventory files that use it
// (and no blank lines between entries, which yaml.v3 drops) survive an edit
// byte for byte outside the edited lines.
const Indent = 2

// Document is an inventory file as a YAML tree, for edits that keep comments
// and key order. Update hands one to its edit function.
type Document struct {
	path string
	root *yaml.Node // the document node
}

// ParseDocument reads data (from path, used in messages) as a YAML tree. It
// checks syntax only; Parse validates.
func ParseDocument(path string, data []byte) (*Document, error) {
	p := &parser{file: path}
	if !p.checkText(data) {
		return nil, sortErrors(p.errs)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.yamlError(data, err)
		return nil, sortErrors(p.errs)
	}
	if doc.Kind == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode, Tag: "!!map"}}}
	}
	if doc.Content[0].Kind != yaml.MappingNode {
		return nil, ErrorList{{Pos: p.pos(doc.Content[0]), Msg: "inventory must be a mapping with settings, images, groups and nodes"}}
	}
	return &Document{path: path, root: &doc}, nil
}

// Bytes encodes the document with Indent spaces.
func (d *Document) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(Indent)
	if err := enc.Encode(d.root); err != nil {
		return nil, fmt.Errorf("inventory: encoding %s: %w", d.path, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("inventory: encoding %s: %w", d.path, err)
	}
	return buf.Bytes(), nil
}

// Root returns the top-level mapping, for edits the field setters do not cover.
func (d *Document) Root() *yaml.Node { return d.root.Content[0] }

func (d *Document) where(n *yaml.Node) string {
	return Pos{File: filepath.Base(d.path), Line: n.Line, Col: n.Column}.String()
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// nodeEntry finds the nodes entry whose name is exactly name. For a node that
// only a range entry defines it returns an error saying where to edit instead.
func (d *Document) nodeEntry(name string) (*yaml.Node, error) {
	nodes := lookup(d.Root(), "nodes")
	if nodes == nil || nodes.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("inventory: no node %s in %s", name, filepath.Base(d.path))
	}
	for _, e := range nodes.Content {
		if n := lookup(e, "name"); n != nil && n.Kind == yaml.ScalarNode && n.Value == name {
			return e, nil
		}
	}
	if r, ok := rangeEntry(nodes, name); ok {
		hint := "edit the range entry"
		if g := lookup(r.entry, "group"); g != nil && g.Kind == yaml.ScalarNode && g.Value != "" {
			hint = "edit group " + g.Value
		}
		return nil, fmt.Errorf("inventory: node %s is defined by range %s at %s; %s or give %s its own entry",
			name, r.name.Value, d.where(r.name), hint, name)
	}
	return nil, fmt.Errorf("inventory: no node %s in %s", name, filepath.Base(d.path))
}

// rangeHit is the range entry of the nodes sequence that defines a node.
type rangeHit struct {
	at    int        // index in the sequence
	entry *yaml.Node // the entry
	name  *yaml.Node // its name scalar
	names []string   // its expansion
	index int        // the node's index in names
}

// rangeEntry finds the range entry that defines node name.
func rangeEntry(nodes *yaml.Node, name string) (rangeHit, bool) {
	for k, e := range nodes.Content {
		n := lookup(e, "name")
		if n == nil || n.Kind != yaml.ScalarNode || !hostlist.IsRange(n.Value) {
			continue
		}
		names, err := hostlist.Expand(n.Value)
		if err != nil {
			continue
		}
		if i := slices.Index(names, name); i >= 0 {
			return rangeHit{at: k, entry: e, name: n, names: names, index: i}, true
		}
	}
	return rangeHit{}, false
}

func (d *Document) groupEntry(name string, create bool) (*yaml.Node, error) {
	root := d.Root()
	groups := lookup(root, "groups")
	if groups == nil || isNull(groups) {
		return nil, fmt.Errorf("inventory: no group %s in %s", name, filepath.Base(d.path))
	}
	if groups.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("inventory: groups in %s is not a mapping", filepath.Base(d.path))
	}
	for i := 0; i+1 < len(groups.Content); i += 2 {
		if groups.Content[i].Value != name {
			continue
		}
		v := groups.Content[i+1]
		if isNull(v) && create {
			*v = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", HeadComment: v.HeadComment, LineComment: v.LineComment, FootComment: v.FootComment}
		}
		return v, nil
	}
	return nil, fmt.Errorf("inventory: no group %s in %s", name, filepath.Base(d.path))
}

// SetNodeField sets key (dotted for nested mappings: "bmc.user",
// "boot_override.ipxe") of the entry of node name to value. A node defined by a
// range entry cannot get its own value; the error names the range and where it
// is. The entry may be named by its exact range expression to edit the whole
// range. Multi-line strings are written in literal block style.
func (d *Document) SetNodeField(node, key string, value any) error {
	e, err := d.nodeEntry(node)
	if err != nil {
		return err
	}
	return setPath(e, key, value)
}

// DeleteNodeField removes key from the entry of node name, so that the group's
// value (or the default) applies. Removing a key that is not there does nothing.
func (d *Document) DeleteNodeField(node, key string) error {
	e, err := d.nodeEntry(node)
	if err != nil {
		return err
	}
	if key == "name" || key == "nics" {
		return fmt.Errorf("inventory: node %s: %s cannot be removed", node, key)
	}
	deletePath(e, key)
	return nil
}

// SetGroupField sets key (dotted like SetNodeField) of group name.
func (d *Document) SetGroupField(group, key string, value any) error {
	g, err := d.groupEntry(group, true)
	if err != nil {
		return err
	}
	return setPath(g, key, value)
}

// DeleteGroupField removes key from group name. Removing a key that is not
// there does nothing.
func (d *Document) DeleteGroupField(group, key string) error {
	g, err := d.groupEntry(group, false)
	if err != nil {
		return err
	}
	deletePath(g, key)
	return nil
}

// valueNode turns a Go value into a YAML node; multi-line strings become
// literal blocks.
func valueNode(value any) (*yaml.Node, error) {
	if n, ok := value.(*yaml.Node); ok {
		return n, nil
	}
	var n yaml.Node
	if err := n.Encode(value); err != nil {
		return nil, fmt.Errorf("inventory: cannot write %T: %w", value, err)
	}
	literal(&n)
	return &n, nil
}

func literal(n *yaml.Node) bool {
	found := false
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.Contains(n.Value, "\n") {
		n.Style = yaml.LiteralStyle
		found = true
	}
	for _, c := range n.Content {
		if literal(c) {
			found = true
		}
	}
	if found {
		n.Style &^= yaml.FlowStyle
	}
	return found
}

func setPath(m *yaml.Node, key string, value any) error {
	parts := strings.Split(key, ".")
	for _, p := range parts {
		if p == "" {
			return fmt.Errorf("inventory: bad field name %q", key)
		}
	}
	v, err := valueNode(value)
	if err != nil {
		return err
	}
	multi := v.Style&yaml.LiteralStyle != 0 || (v.Kind != yaml.ScalarNode && v.Style&yaml.FlowStyle == 0)
	for i, p := range parts {
		if m.Kind != yaml.MappingNode {
			return fmt.Errorf("inventory: %s is not a mapping", strings.Join(parts[:i], "."))
		}
		if multi {
			m.Style &^= yaml.FlowStyle // a block value cannot sit in a flow mapping
		}
		last := i == len(parts)-1
		var cur *yaml.Node
		for j := 0; j+1 < len(m.Content); j += 2 {
			if m.Content[j].Value == p {
				cur = m.Content[j+1]
				break
			}
		}
		if last {
			if cur != nil {
				keepComments(v, cur)
				*cur = *v
			} else {
				k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}
				m.Content = append(m.Content, k, v)
			}
			return nil
		}
		if cur == nil || isNull(cur) {
			child := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if cur != nil {
				child.LineComment, child.HeadComment, child.FootComment = cur.LineComment, cur.HeadComment, cur.FootComment
				*cur = *child
				child = cur
			} else {
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, child)
			}
			cur = child
		}
		m = cur
	}
	return nil
}

// keepComments moves old's comments (and a scalar's quoting) to v.
func keepComments(v, old *yaml.Node) {
	if v.HeadComment == "" {
		v.HeadComment = old.HeadComment
	}
	if v.LineComment == "" {
		v.LineComment = old.LineComment
	}
	if v.FootComment == "" {
		v.FootComment = old.FootComment
	}
	if v.Kind == yaml.ScalarNode && old.Kind == yaml.ScalarNode && v.Style == 0 && v.ShortTag() == "!!str" &&
		old.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		v.Style = old.Style
	}
	if v.Kind == old.Kind && v.Kind != yaml.ScalarNode && v.Style == 0 {
		v.Style = old.Style & yaml.FlowStyle
	}
}

func deletePath(m *yaml.Node, key string) {
	parts := strings.Split(key, ".")
	var chain []*yaml.Node
	for i, p := range parts {
		if m == nil || m.Kind != yaml.MappingNode {
			return
		}
		chain = append(chain, m)
		if i == len(parts)-1 {
			removeKey(m, p)
			break
		}
		m = lookup(m, p)
	}
	// Remove intermediate mappings the deletion left empty.
	for i := len(chain) - 1; i >= 1; i-- {
		if len(chain[i].Content) > 0 {
			break
		}
		removeKey(chain[i-1], parts[i-1])
	}
}

func removeKey(m *yaml.Node, key string) {
	for j := 0; j+1 < len(m.Content); j += 2 {
		if m.Content[j].Value == key {
			k := m.Content[j]
			m.Content = append(m.Content[:j], m.Content[j+2:]...)
			// A head comment on the removed key belongs to what follows.
			if k.HeadComment != "" && j < len(m.Content) && m.Content[j].HeadComment == "" {
				m.Content[j].HeadComment = k.HeadComment
			}
			return
		}
	}
}
