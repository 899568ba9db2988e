package demo

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
)

// fastConfig is a 16-node demo with test timings and the tiny generation.
func fastConfig(t *testing.T) Config {
	return Config{Nodes: 16, DataDir: t.TempDir(), Image: ImageTiny, TinySizes: [3]int64{64 << 10, 128 << 10, 256 << 10},
		StallTimeout: 2 * time.Second, POST: 50 * time.Millisecond, CheckinEvery: 200 * time.Millisecond,
		DirtyGrowth: 16 << 20, PowerPoll: 500 * time.Millisecond}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDemoBootsDirtiesStallsAndCleans: 16 simulated nodes powered on through
// their BMCs boot over TFTP and HTTP; cn003 writes to its overlay until it
// is dirty; cn010 stalls at the kernel; reboot-clean brings cn003 back clean.
func TestDemoBootsDirtiesStallsAndCleans(t *testing.T) {
	d, err := Start(context.Background(), fastConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if len(d.Names) != 16 || len(d.Groups["compute"]) != 10 || len(d.Groups["gpu"]) != 4 || len(d.Groups["io"]) != 2 {
		t.Fatalf("layout %v", d.Groups)
	}
	if !strings.HasPrefix(d.ImageSource, "tiny") || d.StallNode != "cn010" {
		t.Fatalf("image %q stall %q", d.ImageSource, d.StallNode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	on, err := d.PowerOnAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Every other GPU node is behind a Redfish BMC, the rest behind IPMI,
	// and the one power call drove both.
	if len(d.RedfishBMCs) != 2 || d.RedfishBMCs["gpu01"] == nil || d.RedfishBMCs["gpu03"] == nil {
		t.Fatalf("Redfish BMCs %v", d.RedfishBMCs)
	}
	for _, r := range on {
		if rf := d.RedfishBMCs[r.Node]; rf != nil && (r.BMC != rf.Addr() || !rf.Power(0) || len(rf.Resets()) != 1) {
			t.Errorf("%s: powered through %s, want its Redfish BMC %s (on %v, resets %v)", r.Node, r.BMC, rf.Addr(), rf.Power(0), rf.Resets())
		}
	}
	waitUntil(t, 40*time.Second, "15 booted and cn010 stalled", func() bool {
		st, _ := d.Counts()
		return st[apitype.StageBooted] == 15 && st[apitype.StageStalled] == 1
	})
	v, _ := d.Daemon.Node("cn010")
	if v.State.Stage != apitype.StageStalled {
		t.Fatalf("cn010: %+v", v.State)
	}
	// Every kind of node fetched its bootloader over TFTP from its own address.
	for name, want := range map[string][]string{
		"cn001": {"tftp:undionly.kpxe", "/boot/52:54:00:de:00:00.ipxe"},
		"gpu01": {"tftp:ipxe.efi"},
		"io01":  {"tftp:pxelinux.0", "tftp:pxelinux.cfg/01-52-54-00-de-00-0e"},
	} {
		got := strings.Join(d.Nodes[name].Stats().Fetched, " ")
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("%s fetched %s, want %s", name, got, w)
			}
		}
		if v, _ := d.Daemon.Node(name); v.State.Generation != d.Generation {
			t.Errorf("%s runs %q, want %s", name, v.State.Generation, d.Generation)
		}
	}
	waitUntil(t, 30*time.Second, "cn003 dirty", func() bool {
		v, _ := d.Daemon.Node("cn003")
		return v.Dirty
	})
	if v, _ := d.Daemon.Node("cn001"); v.Dirty {
		t.Fatalf("cn001 dirty too early: %v", v.DirtyReasons)
	}
	res, err := d.Daemon.RebootClean(ctx, daemon.RebootRequest{Selection: "cn003", Timeout: 20 * time.Second, Who: "test"}, nil)
	if err != nil || len(res) != 1 || !res[0].OK {
		t.Fatalf("reboot-clean: %+v %v", res, err)
	}
	if v, _ := d.Daemon.Node("cn003"); v.Dirty || v.State.Stage != apitype.StageBooted {
		t.Fatalf("cn003 after reboot-clean: %+v", v)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		errHas string
	}{
		{"no data", Config{}, "data folder"},
		{"too many", Config{Nodes: MaxNodes + 1, DataDir: "x"}, "--nodes 10001"},
		{"off loopback", Config{DataDir: "x", HTTPListen: "0.0.0.0:8080"}, `"0.0.0.0:8080"`},
		{"bad image", Config{DataDir: "x", Image: "big"}, `"big"`},
		{"bad stall", Config{DataDir: "x", StallAt: "bios"}, `"bios"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Start(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %v, want %q", err, tc.errHas)
			}
		})
	}
	if _, err := Start(context.Background(), Config{Nodes: 4, DataDir: t.TempDir(), Image: ImageTiny, StallNode: "cn099"}); err == nil || !strings.Contains(err.Error(), `"cn099"`) {
		t.Fatalf("unknown stall node: %v", err)
	}
}

// requireTool skips when tool is missing, unless NETBOOTUI_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, tool string) {
	t.Helper()
	lab.RequireTools(t, tool)
}

// TestDemoRecipeImageRebuilds: with the default recipe, the demo's inventory
// names it, so the console's `b` (and `image build default`) works on the
// demo: the daemon rebuilds it, finds the inputs unchanged and says so,
// keeping the generation the demo built.
func TestDemoRecipeImageRebuilds(t *testing.T) {
	lab.RequireTools(t, "mksquashfs")
	lab.Kernel(t)
	cfg := fastConfig(t)
	cfg.Nodes, cfg.Image, cfg.TinySizes = 4, ImageRecipe, [3]int64{}
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	im := d.Daemon.Inventory().Images["default"]
	if im == nil || !filepath.IsAbs(im.Recipe) {
		t.Fatalf("the demo inventory's image default names no recipe: %+v", im)
	}
	var steps []string
	m, err := d.Daemon.BuildImage(context.Background(), daemon.BuildRequest{Image: "default", Who: "test"},
		func(p image.Progress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatalf("rebuilding the demo image: %v", err)
	}
	if m.ID != d.Generation || !slices.Contains(steps, image.StepUnchanged) {
		t.Fatalf("rebuild gave %s with steps %v; want the demo's %s, unchanged", m.ID, steps, d.Generation)
	}
}

// The demo finds the kernel where scripts/fetch-kernel.sh puts it when
// NETBOOTUI_CACHE moves its cache, as the script does.
func TestFindRecipeHonorsCache(t *testing.T) {
	cache := t.TempDir()
	os.MkdirAll(filepath.Join(cache, "kernel"), 0o755)
	os.WriteFile(filepath.Join(cache, "kernel", "vmlinuz"), []byte("k"), 0o644)
	t.Setenv("NETBOOTUI_KERNEL_DIR", "")
	t.Setenv("NETBOOTUI_CACHE", cache)
	_, kernel, reason := findRecipe("", "")
	if strings.HasPrefix(reason, "no kernel") || (reason == "" && kernel != filepath.Join(cache, "kernel")) {
		t.Fatalf("with NETBOOTUI_CACHE=%s: kernel %q, reason %q", cache, kernel, reason)
	}
	t.Setenv("NETBOOTUI_CACHE", t.TempDir())
	if _, _, reason := findRecipe("", ""); !strings.HasPrefix(reason, "no kernel") || !strings.Contains(reason, "vmlinuz") {
		t.Fatalf("with an empty cache: reason %q", reason)
	}
}
