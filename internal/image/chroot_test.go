package image

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/image/liveinit"
)

// mountsBelow lists this process's mount points below dir.
func mountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 && strings.HasPrefix(unescapeMountinfo(fields[4]), dir+"/") {
			out = append(out, fields[4])
		}
	}
	return out
}

// TestSIGKILLInChrootLeavesNoMounts kills a builder while a tool runs
// chrooted in the root with /proc, /sys and /dev mounted there (a stand-in
// dracut that sleeps): the mounts lived in the tool's own mount namespace,
// so none is left below the store, and the stale build directory is
// removed without touching the host's /dev.
func TestSIGKILLInChrootLeavesNoMounts(t *testing.T) {
	requireTool(t, "busybox", "chroot", "mount")
	if os.Geteuid() != 0 {
		requireTool(t, "root privileges (chroot and mount need them)")
	}
	dir := t.TempDir()
	// Should a mount leak (the bug this test is for), detach it before
	// TempDir's removal could walk into the host's /dev (cleanups run last
	// registered first).
	t.Cleanup(func() { unmountBelow(dir) })
	root := filepath.Join(dir, "root")
	for _, d := range []string{"bin", "usr/bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile(liveinit.DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	dracut := "#!/bin/sh\n[ -c /dev/null ] && [ -e /proc/self/status ] && echo 'stand-in dracut: /dev and /proc are there'\nexec sleep 120\n"
	if err := os.WriteFile(filepath.Join(root, "usr", "bin", "dracut"), []byte(dracut), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("not really a kernel"), 0o644)
	recipe := filepath.Join(dir, "recipe")
	os.Mkdir(recipe, 0o755)
	y := fmt.Sprintf("name: chrooted\nrootfs: {dir: %q}\nkernel: {file: %q, modules: %q}\ninitramfs: {dracut: {}}\n",
		root, filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "6.1.0-test"))
	if err := os.WriteFile(filepath.Join(recipe, RecipeFile), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "store")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperBuild$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+recipe+"|"+store)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var lines []string
	running := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), "stand-in dracut: /dev and /proc are there") {
			running = true
			break
		}
	}
	if !running {
		cmd.Wait()
		t.Fatalf("the stand-in dracut never ran with /dev and /proc mounted; output:\n%s", strings.Join(lines, "\n"))
	}
	cmd.Process.Signal(syscall.SIGKILL)
	go func() {
		for sc.Scan() {
		}
	}()
	cmd.Wait()
	// The chrooted tool dies with the builder (Pdeathsig), and its
	// namespace with it.
	deadline := time.Now().Add(10 * time.Second)
	for len(mountsBelow(t, store)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if m := mountsBelow(t, store); len(m) > 0 {
		t.Fatalf("mounts left below the store after SIGKILL: %v", m)
	}
	s, err := OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	var removed []string
	for time.Now().Before(deadline) {
		if removed, err = s.CleanStale(); err == nil && len(removed) == 1 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(removed) != 1 {
		t.Fatalf("CleanStale removed %v, %v; want the killed build's directory", removed, err)
	}
	if _, err := os.Stat("/dev/null"); err != nil {
		t.Fatalf("the host's /dev/null: %v", err)
	}
}
