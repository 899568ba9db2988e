package api

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// TestNodeAddRemoveRename drives the inventory's node verbs through the API
// and a real daemon: each takes effect at once (the daemon reloads), a node
// of a range is split out of it, stale revisions conflict, mistakes are
// refused with where they are, and each change is audited.
func TestNodeAddRemoveRename(t *testing.T) {
	dir := t.TempDir()
	d, _, sock := startServer(t, dir, nil)
	c := apiclient.New(sock)
	ctx := context.Background()
	st, _ := c.Status(ctx)
	stale := st.Inventory.Revision

	if _, err := c.AddNode(ctx, "n3", apitype.Edit{Set: map[string]any{"mac": "52:54:00:cc:00:03", "group": "g", "ip": "10.0.0.3"}}); err != nil {
		t.Fatal(err)
	}
	n3, err := c.Node(ctx, "n3")
	if err != nil || n3.MAC != "52:54:00:cc:00:03" || n3.Group != "g" || n3.IP != "10.0.0.3" {
		t.Fatalf("added n3: %+v %v", n3, err)
	}
	var apiErr *apitype.Error
	for _, tc := range []struct {
		name string
		e    apitype.Edit
		want string
	}{
		{"n3", apitype.Edit{Set: map[string]any{"mac": "52:54:00:cc:00:04"}}, "node n3 exists"},
		{"n4", apitype.Edit{Set: map[string]any{"group": "g"}}, "mac=MAC of its boot NIC is required"},
		{"n4", apitype.Edit{Set: map[string]any{"mac": "52:54:00:bb:00:01"}}, "nodes.yaml:"},
		{"n4", apitype.Edit{Set: map[string]any{"mac": "52:54:00:cc:00:04", "password": "x"}}, `key "password" cannot be edited here`},
	} {
		if _, err := c.AddNode(ctx, tc.name, tc.e); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeInvalid || !strings.Contains(apiErr.Message, tc.want) {
			t.Errorf("add %s %v: %v, want %q", tc.name, tc.e.Set, err, tc.want)
		}
	}
	if _, err := c.AddNode(ctx, "n5", apitype.Edit{BaseRevision: stale, Set: map[string]any{"mac": "52:54:00:cc:00:05"}}); !errors.Is(err, apiclient.ErrConflict) {
		t.Fatalf("add against a stale revision: %v", err)
	}

	// n2 leaves its range n[1-2], keeping its MAC, under a new name.
	if _, err := c.RenameNode(ctx, "n2", apitype.NodeRename{NewName: "spare"}); err != nil {
		t.Fatal(err)
	}
	if sp, err := c.Node(ctx, "spare"); err != nil || sp.MAC != "52:54:00:aa:00:02" {
		t.Fatalf("renamed n2: %+v %v", sp, err)
	}
	if _, err := c.Node(ctx, "n2"); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeNotFound {
		t.Fatalf("n2 after the rename: %v", err)
	}
	if _, err := c.RenameNode(ctx, "spare", apitype.NodeRename{NewName: "solo"}); !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, "solo") {
		t.Fatalf("rename onto solo: %v", err)
	}
	if _, err := c.RemoveNode(ctx, "n1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemoveNode(ctx, "n1", ""); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeNotFound {
		t.Fatalf("removing n1 twice: %v", err)
	}
	nodes, _ := c.Nodes(ctx)
	var names []string
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "spare,solo,n3" {
		t.Fatalf("nodes now %v", names)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "nodes.yaml"))
	if !strings.Contains(string(data), "  - name: spare\n") || strings.Contains(string(data), "n[1-2]") {
		t.Fatalf("inventory:\n%s", data)
	}
	var actions []string
	for _, e := range d.Audit(0) {
		if strings.Contains(e.Action, " node ") {
			actions = append(actions, e.Action+": "+strings.SplitN(e.Result, " ", 2)[0])
		}
	}
	want := "add node n3: ok:|add node n3: node|add node n4: node|add node n4: inventory:|add node n4: key|add node n5: nodes.yaml|rename node n2: ok:|rename node spare: inventory:|remove node n1: ok:"
	if got := strings.Join(actions, "|"); got != want {
		t.Errorf("audit:\n%s\nwant\n%s", got, want)
	}
}
