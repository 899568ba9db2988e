package daemon

import (
	"errors"
	"fmt"
	"strings"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/inventory"
)

// NodeRename asks for a node's new name (the API type; Who is set by the
// API server).
type NodeRename = apitype.NodeRename

// addMACKey is the key of a new node's boot NIC MAC, which an Edit of an
// existing node cannot set.
const addMACKey = "mac"

// AddNode writes a new node entry, name with the fields of e.Set (the keys
// an Edit takes, and "mac", the boot NIC's MAC, which is required), and
// reloads: the node boots from its next request on.
func (d *Daemon) AddNode(name string, e Edit) (string, error) {
	return d.writeInventory("add node "+name, strings.Join(sortedKeys(e.Set), ","), e.Who, e.BaseRevision, func(doc *inventory.Document) error {
		if d.Inventory().Node(name) != nil {
			return fmt.Errorf("node %s exists", name)
		}
		if len(e.Unset) > 0 {
			return errors.New("a new node has nothing to unset")
		}
		if _, ok := e.Set[addMACKey].(string); !ok {
			return fmt.Errorf("node %s: mac=MAC of its boot NIC is required", name)
		}
		rest := Edit{Set: map[string]any{}}
		for k, v := range e.Set {
			if k != addMACKey {
				rest.Set[k] = v
			}
		}
		if len(rest.Set) > 0 {
			if err := d.checkEdit("node "+name, rest, false); err != nil {
				return err
			}
		}
		return doc.AddNode(name, e.Set)
	})
}

// RemoveNode removes a node from the inventory (from its range entry when
// one defines it) and reloads. e carries only the base revision and who.
func (d *Daemon) RemoveNode(name string, e Edit) (string, error) {
	if d.Inventory().Node(name) == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	return d.writeInventory("remove node "+name, name, e.Who, e.BaseRevision, func(doc *inventory.Document) error {
		return doc.RemoveNode(name)
	})
}

// RenameNode renames a node (splitting it out of its range entry) and
// reloads. Its boot state stays under the old name until it boots again.
func (d *Daemon) RenameNode(name string, r NodeRename) (string, error) {
	if d.Inventory().Node(name) == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownNode, name)
	}
	return d.writeInventory("rename node "+name, r.NewName, r.Who, r.BaseRevision, func(doc *inventory.Document) error {
		return doc.RenameNode(name, r.NewName)
	})
}
