package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/lab"
)

// mountsUnder returns the lines of /proc/self/mountinfo whose mount point
// is below dir (the test runs in the daemon's mount namespace: the host's).
func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, " "+dir+"/") {
			out = append(out, line)
		}
	}
	return out
}

func generationCount(t *testing.T, cl *apiclient.Client, image string) int {
	t.Helper()
	list, err := cl.Images(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range list {
		if im.Name == image {
			return len(im.Generations)
		}
	}
	return 0
}

// TestImageSessionVerbs drives the image verbs of issue 20 against a real
// `netbootui serve` that built the default recipe: the provenance `image
// show` prints, `image exec` publishing a change (a new generation whose
// manifest names its parent and the change), `image diff` of the two,
// `image verify` before and after a file of the store is damaged, a
// discarded exec leaving nothing, a shell session committed, and SIGKILL
// of the daemon in the middle of a session leaving no mount and no
// generation.
func TestImageSessionVerbs(t *testing.T) {
	lab.RequireTools(t, "mksquashfs", "unsquashfs", "busybox", "chroot", "mount")
	if os.Geteuid() != 0 {
		lab.RequireTools(t, "root privileges (chroot and mount need them)")
	}
	dir := defaultRecipeLab(t)
	t.Cleanup(func() { // should a mount leak, never let TempDir's removal walk into it
		for _, m := range mountsUnder(t, dir) {
			if f := strings.Fields(m); len(f) > 4 {
				syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	})
	p := startServe(t, filepath.Join(dir, "nodes.yaml"), dir)
	sock := "--api-socket=" + p.socket
	cl := apiclient.New(p.socket)
	// The socket flag goes before "--": what follows it is the command.
	withSock := func(args ...string) []string {
		if i := slices.Index(args, "--"); i >= 0 {
			return slices.Concat(args[:i], []string{sock}, args[i:])
		}
		return append(args, sock)
	}
	run := func(args ...string) (string, string) {
		t.Helper()
		out, errOut, code := runCLI(t, withSock(args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errOut)
		}
		return out, errOut
	}
	out, _ := run("image", "build", "default", "--publish")
	first := regexp.MustCompile(`generation ([0-9a-f]{16})`).FindStringSubmatch(out)
	if first == nil {
		t.Fatalf("image build: %s", out)
	}
	out, _ = run("image", "show", "default", "current")
	for _, want := range []string{"image default generation " + first[1] + " (current)", "recipe    ", "builder   netbootui", "netbootui-image-build"} {
		if !strings.Contains(out, want) {
			t.Errorf("image show lacks %q:\n%s", want, out)
		}
	}

	// exec, published: the command's output, the diff, the new generation.
	t0 := time.Now()
	out, errOut := run("image", "exec", "default", "--publish", "--", "echo made-by-exec > /etc/exec-file; echo the command ran")
	t.Logf("image exec with publish: %v", time.Since(t0))
	if !strings.Contains(out, "the command ran") || !strings.Contains(errOut, "+ /etc/exec-file") || !strings.Contains(errOut, "+1 -0 ~0 files") {
		t.Fatalf("image exec:\n%s%s", out, errOut)
	}
	second := regexp.MustCompile(`generation ([0-9a-f]{16}) \(parent ` + first[1] + `\), published`).FindStringSubmatch(out)
	if second == nil {
		t.Fatalf("image exec did not publish a child of %s:\n%s", first[1], out)
	}
	out, _ = run("image", "show", "default", second[1])
	for _, want := range []string{"(current)", "parent    " + first[1], "change    /bin/sh -c echo made-by-exec > /etc/exec-file", "diff      +1 -0 ~0 files"} {
		if !strings.Contains(out, want) {
			t.Errorf("image show of the exec's generation lacks %q:\n%s", want, out)
		}
	}
	t0 = time.Now()
	out, _ = run("image", "diff", "default", first[1], second[1])
	t.Logf("image diff of two generations: %v", time.Since(t0))
	if want := "default:" + first[1] + " -> default:" + second[1] + ": +1 -0 ~0 files\n+ /etc/exec-file\n"; out != want {
		t.Errorf("image diff:\n%s\nwant:\n%s", out, want)
	}

	// verify: all good, then a damaged squashfs is named.
	out, _ = run("image", "verify", "default", second[1])
	if strings.Count(out, "ok ") != 3 {
		t.Errorf("image verify:\n%s", out)
	}
	sq := filepath.Join(dir, "images", "default", "generations", second[1], "rootfs.squashfs")
	if _, err := os.Stat(sq); err != nil {
		t.Fatalf("the store's layout: %v", err)
	}
	f, err := os.OpenFile(sq, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	good := make([]byte, 6)
	f.ReadAt(good, 4096)
	f.WriteAt([]byte("damage"), 4096)
	out, errOut, code := runCLI(t, "image", "verify", "default", second[1], sock)
	if code == 0 || !strings.Contains(out, "DIFFERS  rootfs.squashfs") || strings.Contains(out, "DIFFERS  vmlinuz") || !strings.Contains(errOut, "differ from the manifest") {
		t.Fatalf("verify of a damaged generation: exit %d\n%s%s", code, out, errOut)
	}
	// No session starts from a damaged generation.
	if out, errOut, code := runCLI(t, withSock("image", "exec", "default", "--discard", "--", "true")...); code == 0 ||
		!strings.Contains(errOut, "rootfs.squashfs differs from its manifest") {
		t.Fatalf("exec on a damaged generation: exit %d\n%s%s", code, out, errOut)
	}
	f.WriteAt(good, 4096)
	run("image", "verify", "default", second[1])

	// A discarded exec leaves no generation.
	n := generationCount(t, cl, "default")
	out, _ = run("image", "exec", "default", "--discard", "--", "touch", "/etc/never")
	if !strings.Contains(out, "session discarded") || generationCount(t, cl, "default") != n {
		t.Fatalf("discard: %s (%d generations, had %d)", out, generationCount(t, cl, "default"), n)
	}
	// A shell, its input from a pipe, committed (not published).
	cmd := exec.Command(binary, "image", "shell", "default", "--commit", sock)
	cmd.Stdin = strings.NewReader("echo from-the-shell > /etc/shell-file\nstty size\nexit\n")
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "+ /etc/shell-file") || !strings.Contains(string(b), "24 80") || // a pty of the default size
		!regexp.MustCompile(`generation [0-9a-f]{16} \(parent `+second[1]+`\)\n`).Match(b) {
		t.Fatalf("image shell: %v\n%s", err, b)
	}
	// --save-to-recipe: what was added lands in the recipe's overlay (so
	// the next build keeps it); a removal cannot, and is said.
	out, errOut = run("image", "exec", "default", "--commit", "--save-to-recipe", "--", "echo kept > /etc/saved-file; rm /etc/exec-file")
	saved, err := os.ReadFile(filepath.Join(dir, "recipes", "default", "overlay", "etc", "saved-file"))
	if err != nil || string(saved) != "kept\n" || !strings.Contains(out, "saved 1 path(s) to the recipe overlay") ||
		!strings.Contains(out, "not saved (an overlay cannot remove or make it): /etc/exec-file") {
		t.Fatalf("save to recipe: %q %v\n%s%s", saved, err, out, errOut)
	}
	out, _ = run("image", "build", "default")
	if !regexp.MustCompile(`generation [0-9a-f]{16}`).MatchString(out) {
		t.Fatalf("build after save to recipe: %s", out)
	}
	out, _ = run("image", "diff", "default:"+first[1], "default:"+regexp.MustCompile(`generation ([0-9a-f]{16})`).FindStringSubmatch(out)[1])
	if !strings.Contains(out, "+ /etc/saved-file") {
		t.Errorf("the rebuilt recipe lacks the saved file:\n%s", out)
	}
	out, _ = run("audit", "-n", "30")
	for _, want := range []string{"image exec", "image session publish", "image session discard", "image shell", "image session commit"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}

	// SIGKILL of the daemon while a session's command runs in the chroot.
	n = generationCount(t, cl, "default")
	execCmd := exec.Command(binary, withSock("image", "exec", "default", "--publish", "--", "echo sleeping; exec sleep 120")...)
	execOut, _ := execCmd.StdoutPipe()
	if err := execCmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(execOut).ReadString('\n'); err != nil || line != "sleeping\n" {
		t.Fatalf("the session's command did not start: %q %v", line, err)
	}
	if len(mountsUnder(t, dir)) != 0 {
		t.Errorf("the session's mounts are visible outside its namespace: %v", mountsUnder(t, dir))
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	execCmd.Wait()
	// The chrooted sleep dies with the daemon (Pdeathsig) and the session's
	// mount namespace with its last process: wait for that, bounded.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m := mountsUnder(t, dir)
		if len(m) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mounts left 10 s after SIGKILL: %v", m)
		}
	}
	p = startServe(t, filepath.Join(dir, "nodes.yaml"), dir)
	defer p.stop(t)
	if got := generationCount(t, apiclient.New(p.socket), "default"); got != n {
		t.Errorf("%d generations after SIGKILL mid-session, had %d", got, n)
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "images", "default", "generations"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("the killed session's working copy is still there: %s", e.Name())
		}
	}
}

// TestImageShellResizeInTmux runs `netbootui image shell` in a tmux pane
// and resizes the window while the shell runs: the CLI passes the new size
// on (SIGWINCH, then the session's size route) to the pty of the shell the
// daemon runs, and `stty size` in the shell says the pane's new size. On
// exit the session is discarded.
func TestImageShellResizeInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux", "mksquashfs", "unsquashfs", "busybox", "chroot", "mount")
	if os.Geteuid() != 0 {
		lab.RequireTools(t, "root privileges (chroot and mount need them)")
	}
	dir := defaultRecipeLab(t)
	p := startServe(t, filepath.Join(dir, "nodes.yaml"), dir)
	defer p.stop(t)
	if out, errOut, code := runCLI(t, "image", "build", "default", "--publish", "--api-socket="+p.socket); code != 0 {
		t.Fatalf("image build: exit %d\n%s%s", code, out, errOut)
	}
	c := &tmuxConsole{t: t, server: fmt.Sprintf("netbootui-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	c.tmux("new-session", "-d", "-s", "ui", "-x", "80", "-y", "24",
		fmt.Sprintf("env TERM=xterm %s image shell default --discard --api-socket=%s; sleep 60", binary, p.socket))
	t.Cleanup(func() { exec.Command("tmux", "-L", c.server, "kill-server").Run() })
	c.waitForWithin("the image shell", time.Minute, regexp.MustCompile(`shell in a working copy of image default`))

	// stty size until the shell's answer is the pane's size (the resize
	// travels from tmux through the CLI and the daemon to the shell's pty).
	sizeShown := func(what string) string {
		t.Helper()
		size := strings.TrimSpace(c.tmux("display-message", "-p", "-t", "ui", "#{pane_height} #{pane_width}"))
		re := regexp.MustCompile(`(?m)^` + size + `\s*$`)
		deadline := time.Now().Add(30 * time.Second)
		for {
			c.keys("clear; stty size", "Enter")
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				if re.MatchString(c.capture(false)) {
					return size
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the shell never said its size is the pane's %s:\n%s", what, size, c.capture(false))
			}
		}
	}
	before := sizeShown("before the resize")
	c.tmux("resize-window", "-t", "ui", "-x", "117", "-y", "37")
	after := sizeShown("after the resize")
	if after == before {
		t.Fatalf("tmux did not resize the pane: %s both times", after)
	}
	t.Logf("the shell's terminal went from %s to %s with the pane", before, after)
	c.keys("exit", "Enter")
	c.waitForWithin("the session discarded", time.Minute, regexp.MustCompile(`session discarded`))
}
