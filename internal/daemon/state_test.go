package daemon_test

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
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
// boot (and its check-in's replay guard record), an audited edit and a
// staged rollout land in the store, and a daemon started again on the same
// store finds them.
func TestStateSeam(t *testing.T) {
	dir := t.TempDir()
	back := statetest.NewBacking()
	mem, err := back.Open()
	if err != nil {
		t.Fatal(err)
	}
	e := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: writeStageInventory(t, dir, nil), State: mem}})
	d := e.D
	gen := importGen(t, d, dir, 'a', true)
	newGen := importGen(t, d, dir, 'n', false)
	// s1 boots: its entry asked for by MAC (a claim), its kernel with its
	// key, a check-in with its token.
	get := func(path string) {
		t.Helper()
		resp, err := http.Get(e.HTTPBase() + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
	}
	get("/boot/" + stageMAC(0) + ".ipxe")
	get("/images/compute/" + gen + "/vmlinuz?node=s1&auth=" + d.FetchKey("s1"))
	checkin := url.Values{"node": {"s1"}, "token": {d.Token("s1")}, "generation": {gen}, "uptime": {"3"},
		"overlay_bytes": {"0"}, "boot_id": {"boot-1"}, "seq": {"1"}}
	postCheckin := func(base string) int {
		t.Helper()
		resp, err := http.PostForm(base+"/checkin", checkin)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := postCheckin(e.HTTPBase()); code != http.StatusOK {
		t.Fatalf("check-in: %d", code)
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

	wantTimeline := []bootstate.StageMark{{Stage: bootstate.StageConfig, Unproven: true}, {Stage: bootstate.StageKernel}, {Stage: bootstate.StageBooted}}
	sameMarks := func(tl []bootstate.StageMark) bool {
		return slices.EqualFunc(tl, wantTimeline, func(a, b bootstate.StageMark) bool { return a.Stage == b.Stage && a.Unproven == b.Unproven })
	}
	if st, ok := back.NodeState("s1"); !ok || st.Stage != bootstate.StageBooted || !sameMarks(st.Timeline) {
		t.Errorf("s1 in the store: %+v %v, want booted after an unproven config and a kernel", st, ok)
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
	for _, f := range []string{"state.db", "rollouts.json", "audit.log", "checkins.db"} {
		if _, err := os.Stat(filepath.Join(e.DataDir, f)); err == nil {
			t.Errorf("%s was written to the data directory", f)
		}
	}

	// Started again on the same store.
	mem, err = back.Open()
	if err != nil {
		t.Fatal(err)
	}
	e = daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: e.InventoryPath, State: mem}})
	d = e.D
	if st, ok := d.NodeState("s1"); !ok || st.Stage != bootstate.StageBooted || !sameMarks(st.Timeline) {
		t.Errorf("s1 after restart: %+v %v", st, ok)
	}
	if code := postCheckin(e.HTTPBase()); code != http.StatusConflict {
		t.Errorf("s1's check-in replayed after the restart: %d, want 409 (the guard's record is in the store)", code)
	}
	if list := d.StageList(); len(list) != 1 || list[0].ID != r.ID {
		t.Errorf("rollouts after restart: %+v", list)
	}
	if got := d.Audit(0); len(got) != len(actions) {
		t.Errorf("%d audit entries after restart, want %d", len(got), len(actions))
	}
}
