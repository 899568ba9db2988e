package inventory

import (
	"github.com/netbootui/netbootui/internal/atomicfile"

	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// copyExample puts examples/nodes.yaml (and secrets.yaml, mode 0600) in a
// fresh folder and returns the inventory's path.
func copyExample(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"nodes.yaml", "secrets.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../examples", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "nodes.yaml")
}

func revisionOf(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Revision(data)
}

func TestRoundTripExample(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ParseDocument(examplePath, data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := doc.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("examples/nodes.yaml does not survive a round trip unchanged:\n%s", lineDiff(string(data), string(out)))
	}

	// A no-op Update leaves the file as it is.
	path := copyExample(t)
	before, _ := os.ReadFile(path)
	st0, _ := os.Stat(path)
	rev, err := Update(path, Revision(before), func(*Document) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	st1, _ := os.Stat(path)
	if rev != Revision(before) || !bytes.Equal(before, after) || !os.SameFile(st0, st1) {
		t.Errorf("no-op Update changed the file (rev %s)", rev)
	}
	// An edit that sets a value to what it already is is a no-op too.
	rev, err = Update(path, rev, func(d *Document) error { return d.SetGroupField("compute", "arch", "bios") })
	if err != nil || rev != Revision(before) {
		t.Errorf("same-value Update: %v, rev %s", err, rev)
	}
}

// lineDiff lists the lines of b that differ from a, for failure messages.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(al), len(bl)); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("%d: -%q\n%d: +%q", i+1, x, i+1, y))
		}
		if len(out) > 10 {
			break
		}
	}
	return strings.Join(out, "\n")
}

func comments(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.Index(l, "#"); i >= 0 && !strings.Contains(l, "#!ipxe") {
			out = append(out, strings.TrimSpace(l[i:]))
		}
	}
	return out
}

func TestUpdateEdits(t *testing.T) {
	path := copyExample(t)
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	orig, _ := os.ReadFile(path)
	script := "#!ipxe\nkernel vmlinuz console=ttyS0\ninitrd initrd\nboot\n"
	rev, err := Update(path, Revision(orig), func(d *Document) error {
		for _, e := range []error{
			d.SetNodeField("gpu1", "kernel_args", "pci=noaer rd.debug"),
			d.SetNodeField("gpu1", "bmc.user", "operator"),
			d.SetNodeField("gpu2", "ip", "10.1.0.103"),
			d.SetNodeField("storage1", "boot_override.ipxe", script),
			d.SetGroupField("compute", "kernel_args", "console=ttyS1,115200"),
			d.SetGroupField("gpu", "bmc.cipher_suites", []int{3}),
			d.DeleteNodeField("gpu2", "kernel_args"),
			d.DeleteNodeField("gpu1", "bmc.port"),
			d.DeleteGroupField("gpu", "loader"),
		} {
			if e != nil {
				return e
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if rev != Revision(data) {
		t.Errorf("returned revision %s is not the file's", rev)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 kept", st.Mode().Perm())
	}
	inv, err := Parse(path, data, withIPMI())
	if err != nil {
		t.Fatal(err)
	}
	gpu1, gpu2, st1 := inv.Node("gpu1"), inv.Node("gpu2"), inv.Node("storage1")
	if gpu1.KernelArgs != "console=ttyS0,115200 nomodeset pci=noaer rd.debug" || gpu1.BMC.User != "operator" || gpu1.BMC.Port != 623 ||
		gpu2.IP.String() != "10.1.0.103" || gpu2.KernelArgs != "console=ttyS0,115200 nomodeset" || suites(gpu2.BMC)[0] != 3 ||
		st1.Override.IPXE != script || inv.Node("n03").KernelArgs != "console=ttyS1,115200" || inv.Groups["gpu"].Loader != "" {
		t.Errorf("edits not applied:\n%s", data)
	}
	if !strings.Contains(string(data), "    boot_override:\n      ipxe: |\n        #!ipxe\n        kernel vmlinuz") {
		t.Errorf("multi-line value not in literal block style:\n%s", data)
	}
	// Every comment survives, in order.
	if got, want := comments(string(data)), comments(string(orig)); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("comments changed:\n%s", lineDiff(strings.Join(want, "\n"), strings.Join(got, "\n")))
	}
	// Lines outside the edited entries are byte-identical: the first 60 lines
	// (header, settings, images, groups until compute's kernel_args) at least.
	ol, nl := strings.Split(string(orig), "\n"), strings.Split(string(data), "\n")
	for i := 0; i < 45; i++ {
		if ol[i] != nl[i] {
			t.Errorf("line %d changed: %q -> %q", i+1, ol[i], nl[i])
		}
	}
}

func TestUpdateRefusals(t *testing.T) {
	path := copyExample(t)
	orig, _ := os.ReadFile(path)
	rev := Revision(orig)
	base := filepath.Base(path)
	tests := []struct {
		name string
		edit func(d *Document) error
		want string
	}{
		{"range node", func(d *Document) error { return d.SetNodeField("n03", "ip", "10.9.9.9") },
			"inventory: node n03 is defined by range n[01-08] at nodes.yaml:63:11; edit group compute or give n03 its own entry"},
		{"range node delete", func(d *Document) error { return d.DeleteNodeField("n08", "bmc") },
			"inventory: node n08 is defined by range n[01-08] at nodes.yaml:63:11; edit group compute or give n08 its own entry"},
		{"unknown node", func(d *Document) error { return d.SetNodeField("n99", "ip", "10.9.9.9") },
			"inventory: no node n99 in nodes.yaml"},
		{"unknown group", func(d *Document) error { return d.SetGroupField("gpus", "arch", "uefi") },
			"inventory: no group gpus in nodes.yaml"},
		{"bad field", func(d *Document) error { return d.SetNodeField("gpu1", "bmc..user", "x") },
			`inventory: bad field name "bmc..user"`},
		{"not a mapping", func(d *Document) error { return d.SetNodeField("gpu1", "ip.x", "x") },
			`inventory: ip is not a mapping`},
		{"nics", func(d *Document) error { return d.DeleteNodeField("gpu1", "nics") },
			`inventory: node gpu1: nics cannot be removed`},
		{"edit error", func(d *Document) error { return errors.New("changed my mind") }, "changed my mind"},
		{"invalid result", func(d *Document) error { return d.SetNodeField("gpu1", "arch", "arm64") },
			"inventory: edit rejected, nodes.yaml left unchanged; the result would be invalid:\n" + path + ":95:11: node gpu1: bad arch \"arm64\": must be bios or uefi"},
		{"duplicate after edit", func(d *Document) error { return d.SetNodeField("gpu1", "ip", "10.1.0.12") },
			"duplicate ip 10.1.0.12: node n02 has it too"},
		{"unknown key after edit", func(d *Document) error { return d.SetNodeField("gpu1", "colour", "red") },
			`unknown key "colour" in node gpu1`},
		{"conflict", nil, base + " changed since revision 000000000000 (now " + rev[:12] + "): reload and retry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.edit == nil {
				_, err = Update(path, strings.Repeat("0", 64), func(d *Document) error { return d.SetNodeField("gpu1", "ip", "10.1.0.150") })
				if !errors.Is(err, ErrConflict) {
					t.Errorf("error %v does not wrap ErrConflict", err)
				}
			} else {
				_, err = Update(path, rev, tc.edit)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Update error\n got %v\nwant %s", err, tc.want)
			}
			if now, _ := os.ReadFile(path); !bytes.Equal(now, orig) {
				t.Error("the file changed")
			}
		})
	}
	// A range entry can be edited by its exact name.
	if _, err := Update(path, rev, func(d *Document) error { return d.SetNodeField("n[01-08]", "ip", "10.1.1.11") }); err != nil {
		t.Fatal(err)
	}
	inv, err := Load(path)
	if err != nil || inv.Node("n08").IP.String() != "10.1.1.18" {
		t.Errorf("range edit: %v", err)
	}
}

func TestUpdateRemovesStaleTemps(t *testing.T) {
	path := copyExample(t)
	dir := filepath.Dir(path)
	stale := filepath.Join(dir, ".nodes.yaml.tmp-123456")
	other := filepath.Join(dir, ".other.yaml.tmp-1")
	for _, f := range []string{stale, other} {
		if err := os.WriteFile(f, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Update(path, "", func(d *Document) error { return d.SetNodeField("gpu1", "ip", "10.1.0.150") }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file's temp was removed: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".nodes.yaml.tmp-*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestConcurrentGoroutines: two Updates from the same base revision; exactly
// one wins, the other gets ErrConflict, and the winner's edit is on disk.
func TestConcurrentGoroutines(t *testing.T) {
	path := copyExample(t)
	for round := range 10 {
		rev := revisionOf(t, path)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = Update(path, rev, func(d *Document) error {
					return d.SetNodeField("gpu1", "kernel_args", fmt.Sprintf("round%d-writer%d", round, i))
				})
			}()
		}
		close(start)
		wg.Wait()
		winner := checkOneWinner(t, errs)
		inv, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("console=ttyS0,115200 nomodeset round%d-writer%d", round, winner); inv.Node("gpu1").KernelArgs != want {
			t.Fatalf("round %d: kernel args %q, want %q", round, inv.Node("gpu1").KernelArgs, want)
		}
	}
}

func checkOneWinner(t *testing.T, errs []error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("both writers won")
			}
			winner = i
		case !errors.Is(err, ErrConflict):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no writer won: %v", errs)
	}
	return winner
}

// TestHelperProcess is not a test: it is the child process of the tests below.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("INVENTORY_HELPER_PATH")
	if path == "" {
		t.Skip("helper process only")
	}
	switch os.Getenv("INVENTORY_HELPER_MODE") {
	case "once":
		// Wait for the parent's go signal (a file), then one Update.
		for _, err := os.Stat(path + ".go"); err != nil; _, err = os.Stat(path + ".go") {
			time.Sleep(time.Millisecond)
		}
		_, err := Update(path, os.Getenv("INVENTORY_HELPER_BASE"), func(d *Document) error {
			return d.SetNodeField("gpu1", "kernel_args", os.Getenv("INVENTORY_HELPER_VALUE"))
		})
		switch {
		case err == nil:
			os.Exit(0)
		case errors.Is(err, ErrConflict):
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		default:
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "loop":
		// Update forever, each time from the current revision, until killed.
		for i := os.Getpid(); ; i++ {
			_, err := Update(path, "", func(d *Document) error {
				return d.SetNodeField("gpu1", "kernel_args", "crash-"+strconv.Itoa(i%crashVersions))
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
	}
	os.Exit(2)
}

func helper(path string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), append([]string{"INVENTORY_HELPER_PATH=" + path}, env...)...)
	return cmd
}

func TestConcurrentProcesses(t *testing.T) {
	path := copyExample(t)
	for round := range 3 {
		rev := revisionOf(t, path)
		os.Remove(path + ".go")
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for i := range 2 {
			c := helper(path, "INVENTORY_HELPER_MODE=once", "INVENTORY_HELPER_BASE="+rev,
				fmt.Sprintf("INVENTORY_HELPER_VALUE=proc-r%d-w%d", round, i))
			var out bytes.Buffer
			c.Stderr = &out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			cmds, outs = append(cmds, c), append(outs, &out)
		}
		time.Sleep(20 * time.Millisecond)
		if err := os.WriteFile(path+".go", nil, 0o600); err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 2)
		for i, c := range cmds {
			err := c.Wait()
			var ee *exec.ExitError
			switch {
			case err == nil:
			case errors.As(err, &ee) && ee.ExitCode() == 3:
				if !strings.Contains(outs[i].String(), "changed since revision "+rev[:12]) {
					t.Errorf("conflict message: %s", outs[i])
				}
				errs[i] = ErrConflict
			default:
				t.Fatalf("helper %d: %v: %s", i, err, outs[i])
			}
		}
		winner := checkOneWinner(t, errs)
		inv, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("console=ttyS0,115200 nomodeset proc-r%d-w%d", round, winner); inv.Node("gpu1").KernelArgs != want {
			t.Errorf("kernel args %q, want %q", inv.Node("gpu1").KernelArgs, want)
		}
	}
}

const crashVersions = 7

// TestCrashSafety SIGKILLs a child that loops doing Updates, 30 times at
// random moments. After each kill the file must be one of the versions the
// child could have written, byte for byte.
func TestCrashSafety(t *testing.T) {
	path := copyExample(t)
	dir := filepath.Dir(path)
	orig, _ := os.ReadFile(path)
	valid := map[string]string{Revision(orig): "original"}
	for v := range crashVersions {
		doc, err := ParseDocument(path, orig)
		if err != nil {
			t.Fatal(err)
		}
		if err := doc.SetNodeField("gpu1", "kernel_args", "crash-"+strconv.Itoa(v)); err != nil {
			t.Fatal(err)
		}
		b, err := doc.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		valid[Revision(b)] = "version " + strconv.Itoa(v)
	}
	seen := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	for kill := range 30 {
		if time.Now().After(deadline) {
			t.Fatalf("took too long (%d kills)", kill)
		}
		c := helper(path, "INVENTORY_HELPER_MODE=loop")
		var out bytes.Buffer
		c.Stderr = &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait until it has written once (so it is inside its loop), then kill
		// it at a random moment.
		before := revisionOf(t, path)
		for revisionOf(t, path) == before {
			if time.Now().After(deadline) {
				t.Fatalf("the child never wrote: %s", out.String())
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Duration(rand.IntN(15000)) * time.Microsecond)
		if err := c.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := c.Wait()
		if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("child was not killed but ended: %v: %s", err, out.String())
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("after kill %d: %v", kill, err)
		}
		name, ok := valid[Revision(data)]
		if !ok {
			t.Fatalf("after kill %d the file is none of the written versions:\n%s", kill, data)
		}
		seen[name] = true
		if _, err := Parse(path, data); err != nil {
			t.Fatalf("after kill %d: %v", kill, err)
		}
		// No inventory-looking files appear; temp files are hidden.
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if n := e.Name(); n != "nodes.yaml" && n != "secrets.yaml" && !strings.HasPrefix(n, ".nodes.yaml.") {
				t.Fatalf("unexpected file %s", n)
			}
		}
	}
	t.Logf("versions seen after kills: %d of %d", len(seen), len(valid))
	if len(seen) < 2 {
		t.Errorf("the child never got an Update through before being killed: %v", seen)
	}
	// A later Update removes whatever temp files the kills left.
	if _, err := Update(path, "", func(d *Document) error { return d.SetNodeField("gpu1", "kernel_args", "after") }); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".nodes.yaml.tmp-*")); len(left) != 0 {
		t.Errorf("temp files left after a clean Update: %v", left)
	}
}

func TestWatch(t *testing.T) {
	path := copyExample(t)
	type call struct {
		inv *Inventory
		err error
	}
	calls := make(chan call, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Watch(ctx, path, 5*time.Millisecond, func(inv *Inventory, err error) { calls <- call{inv, err} })
		close(done)
	}()
	defer func() { cancel(); <-done }()
	next := func(what string) call {
		t.Helper()
		select {
		case c := <-calls:
			return c
		case <-time.After(5 * time.Second):
			t.Fatalf("no call for %s", what)
		}
		return call{}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case c := <-calls:
			t.Fatalf("%s: unexpected call %+v", what, c)
		case <-time.After(50 * time.Millisecond):
		}
	}
	c := next("start")
	if c.err != nil || c.inv == nil || len(c.inv.Nodes) != 12 {
		t.Fatalf("first call: %+v", c)
	}
	quiet("unchanged file")

	rev, err := Update(path, c.inv.Revision, func(d *Document) error { return d.SetNodeField("gpu1", "kernel_args", "watched") })
	if err != nil {
		t.Fatal(err)
	}
	c = next("update")
	if c.err != nil || c.inv.Revision != rev || c.inv.Node("gpu1").KernelArgs != "console=ttyS0,115200 nomodeset watched" {
		t.Fatalf("after Update: %+v", c)
	}

	// An editor saving a broken file by rename.
	good, _ := os.ReadFile(path)
	bad := bytes.Replace(good, []byte("arch: uefi"), []byte("arch: arm"), 1)
	if err := atomicfile.Write(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	c = next("broken file")
	var list ErrorList
	if c.inv != nil || !errors.As(c.err, &list) || !strings.Contains(list[0].Msg, `bad arch "arm"`) {
		t.Fatalf("after a bad write: %+v", c)
	}
	// Same content rewritten: no new call.
	if err := atomicfile.Write(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	quiet("same bad content")
	if err := atomicfile.Write(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if c = next("fixed file"); c.err != nil || c.inv.Revision != rev {
		t.Fatalf("after the fix: %+v", c)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if c = next("removed file"); c.inv != nil || !errors.Is(c.err, os.ErrNotExist) {
		t.Fatalf("after removal: %+v", c)
	}
	quiet("still removed")
}

// An edit of a symlinked inventory (the link in /etc, the file in a git
// checkout) writes the link's target and keeps the link.
func TestUpdateThroughSymlink(t *testing.T) {
	real := copyExample(t)
	link := filepath.Join(t.TempDir(), "nodes.yaml")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(filepath.Dir(real), ".nodes.yaml.tmp-99")
	os.WriteFile(stale, []byte("partial"), 0o600)
	rev, err := Update(link, revisionOf(t, link), func(d *Document) error { return d.SetNodeField("gpu1", "ip", "10.1.0.150") })
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the inventory is no longer a symbolic link: %v", err)
	}
	if got := revisionOf(t, real); got != rev {
		t.Errorf("the link's target has revision %s, want %s", got, rev)
	}
	inv, err := Load(real)
	if err != nil || inv.Node("gpu1").IP.String() != "10.1.0.150" {
		t.Fatalf("target not edited: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp next to the target still there: %v", err)
	}
}
