package daemon_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
)

// TestBuildPublishRollbackGC builds the default recipe through the daemon
// (the inventory names the recipe), sees it published and served, builds a
// changed copy, rolls back, and collects garbage; every step is audited.
func TestBuildPublishRollbackGC(t *testing.T) {
	lab.RequireTools(t, "mksquashfs")
	_, modules := lab.Kernel(t)
	kernelDir := filepath.Dir(modules)
	dir := t.TempDir()
	recipe := filepath.Join(dir, "recipes", "default")
	if err := os.CopyFS(recipe, os.DirFS("../../assets/recipes/default")); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(inv, []byte(`images:
  default: {recipe: recipes/default}
groups:
  g: {image: default}
nodes:
  - name: b1
    group: g
    nics: [{mac: "52:54:00:dd:00:01"}]
`), 0o644)
	d := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{InventoryPath: inv, KernelDir: kernelDir, Logger: testLogger(t)}}).D
	ctx := context.Background()

	var steps []string
	m1, err := d.BuildImage(ctx, BuildRequest{Image: "default", Publish: true, Who: "tester"}, func(p image.Progress) {
		if len(steps) == 0 || steps[len(steps)-1] != p.Step {
			steps = append(steps, p.Step)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(steps, " "), "squashfs") {
		t.Fatalf("steps %v", steps)
	}
	if v, _ := d.Node("b1"); v.Assigned != m1.ID {
		t.Fatalf("b1 assigned %q, want the new generation %s", v.Assigned, m1.ID)
	}
	entry, err := d.BootEntry("b1", "ipxe")
	if err != nil || !strings.Contains(entry, "/images/default/"+m1.ID+"/vmlinuz") {
		t.Fatalf("entry: %v\n%s", err, entry)
	}
	// Unchanged inputs: no new generation.
	again, err := d.BuildImage(ctx, BuildRequest{Image: "default", Publish: true}, nil)
	if err != nil || again.ID != m1.ID {
		t.Fatalf("rebuild: %v %v", again, err)
	}
	// A changed overlay file: a new generation; rollback goes back.
	os.WriteFile(filepath.Join(recipe, "overlay", "etc", "motd"), []byte("changed\n"), 0o644)
	m2, err := d.BuildImage(ctx, BuildRequest{Image: "default", Publish: true}, nil)
	if err != nil || m2.ID == m1.ID {
		t.Fatalf("changed build: %v %v", m2, err)
	}
	if gen, err := d.RollbackImage("default", "tester"); err != nil || gen != m1.ID {
		t.Fatalf("rollback: %q %v", gen, err)
	}
	removed, err := d.GCImage("default", 0, "tester") // keep only what is current or in use
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != m2.ID {
		t.Fatalf("gc removed %v, want [%s]", removed, m2.ID)
	}
	if err := d.Images().Verify("default", m1.ID); err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range d.Audit(0) {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, ","); got != "image build,image build,image build,image rollback,image gc" {
		t.Fatalf("audit: %s", got)
	}
	if _, err := d.BuildImage(ctx, BuildRequest{Image: "nosuch"}, nil); err == nil {
		t.Fatal("build of an unknown image accepted")
	}
}

// TestRollbackNodesFollow publishes a second generation, reboots a node to
// clean (it checks in with the new one), rolls the image back and reboots it
// again: its check-in reports the old generation.
func TestRollbackNodesFollow(t *testing.T) {
	l := startRebootLab(t, nil)
	d := l.d
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	src := map[string]string{}
	dir := t.TempDir()
	for i, name := range image.BootFiles {
		p := filepath.Join(dir, name)
		os.WriteFile(p, bytes.Repeat([]byte{byte('v' + i)}, 16<<10), 0o644)
		src[name] = p
	}
	m2, err := d.ImportImage(ImportRequest{Image: "compute", Kernel: src[image.FileKernel], Initrd: src[image.FileInitrd],
		Rootfs: src[image.FileRootfs], Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	running := func() string {
		res, err := d.RebootClean(ctx, RebootRequest{Selection: "r1", Timeout: 10 * time.Second, Who: "tester"}, nil)
		if err != nil || len(res) != 1 || !res[0].OK {
			t.Fatalf("reboot-clean: %v %+v", err, res)
		}
		st, _ := d.NodeState("r1")
		return st.Generation
	}
	if got := running(); got != m2.ID {
		t.Fatalf("after publishing %s, r1 checked in with %s", m2.ID, got)
	}
	if gen, err := d.RollbackImage("compute", "tester"); err != nil || gen != l.gen {
		t.Fatalf("rollback: %q %v, want %s", gen, err, l.gen)
	}
	if got := running(); got != l.gen {
		t.Fatalf("after rollback, r1 checked in with %s, want %s", got, l.gen)
	}
}
