package daemon_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/state/statetest"
)

// TestStateSeam: a daemon handed another state store (statetest's, in
// memory: a second implementation of internal/state) keeps all its durable
// state there and nothing in the data directory's state files: a node's
// boot, an audited edit and a staged rollout land in the store, and a
// daemon started again on the same store finds them.
func TestStateSeam(t *testing.T) {
	dir := t.TempDir()
	back := statetest.NewBacking()
	mem, err := back.Open()
	if err != nil {
		t.Fatal(err)
	}
	e := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: writeStageInventory(t, dir, nil), State: mem}})
	d := e.D
	importGen(t, d, dir, 'a', true)
	newGen := importGen(t, d, dir, 'n', false)
	resp, err := http.Get(e.HTTPBase() + "/boot/" + stageMAC(0) + ".ipxe")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("boot script: %s", resp.Status)
	}
	if _, err := d.EditNode("s6", Edit{Set: map[string]any{"kernel_args": "quiet"}, Who: "tester"}); err != nil {
		t.Fatal(err)
	}
	r, err := d.StageCreate(StageRequest{Selection: "s[1-5]", Generation: "compute@" + newGen, Who: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}

	if st, ok := back.NodeState("s1"); !ok || st.Stage != bootstate.StageConfig {
		t.Errorf("s1 in the store: %+v %v, want stage config", st, ok)
	}
	var actions []string
	for _, a := range back.AuditEntries() {
		actions = append(actions, a.Action)
	}
	if !slices.Contains(actions, "edit node s6") || !slices.Contains(actions, "rollout create") {
		t.Errorf("audit entries in the store: %q", actions)
	}
	if doc := back.Document("rollouts.json"); !bytes.Contains(doc, []byte(`"id": "`+r.ID+`"`)) {
		t.Errorf("rollouts document in the store:\n%s", doc)
	}
	for _, f := range []string{"state.db", "rollouts.json", "audit.log"} {
		if _, err := os.Stat(filepath.Join(e.DataDir, f)); err == nil {
			t.Errorf("%s was written to the data directory", f)
		}
	}

	// Started again on the same store.
	mem, err = back.Open()
	if err != nil {
		t.Fatal(err)
	}
	d = daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: e.InventoryPath, State: mem}}).D
	if st, ok := d.NodeState("s1"); !ok || st.Stage != bootstate.StageConfig {
		t.Errorf("s1 after restart: %+v %v", st, ok)
	}
	if list := d.StageList(); len(list) != 1 || list[0].ID != r.ID {
		t.Errorf("rollouts after restart: %+v", list)
	}
	if got := d.Audit(0); len(got) != len(actions) {
		t.Errorf("%d audit entries after restart, want %d", len(got), len(actions))
	}
}
