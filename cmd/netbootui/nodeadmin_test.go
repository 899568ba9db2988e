package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// TestNodeAdminCLI brings a node in, edits, renames and removes range
// nodes through `netbootui serve`, as an admin would on day one.
func TestNodeAdminCLI(t *testing.T) {
	inv := copyExample(t)
	p := startServe(t, inv, t.TempDir()+"/data")
	defer p.stop(t)
	sock := "--api-socket=" + p.socket
	orig, _ := os.ReadFile(inv)

	steps := []struct {
		args   []string
		code   int
		outHas string
		errHas string
	}{
		{[]string{"node", "add", "n09", "mac=52:54:00:00:01:09", "ip=10.1.0.19", "group=compute", "bmc.host=10.2.0.19"}, 0, "node n09 added: inventory revision ", ""},
		{[]string{"node", "add", "n10", "mac=52:54:00:00:01:09", "group=compute"}, 1, "", "52:54:00:00:01:09"},
		{[]string{"node", "add", "n10"}, 2, "", "needs 2 argument(s)"},
		{[]string{"node", "set", "n04", "kernel_args=debug"}, 0, "node n04 updated", ""},
		{[]string{"node", "rename", "n06", "spare1"}, 0, "node n06 renamed spare1", ""},
		{[]string{"node", "rm", "n02", "n03"}, 0, "node n03 removed", ""},
		{[]string{"node", "rm", "n02"}, 1, "", `unknown node "n02"`},
		{[]string{"node", "list", "@compute", "-o", "wide"}, 0, "n09", ""},
	}
	for _, s := range steps {
		out, errOut, code := runCLI(t, append(s.args, sock)...)
		if code != s.code || !strings.Contains(out, s.outHas) || !strings.Contains(errOut, s.errHas) {
			t.Fatalf("%v: code %d (want %d)\n%s%s", s.args, code, s.code, out, errOut)
		}
	}
	data, _ := os.ReadFile(inv)
	got, err := inventory.Parse(inv, data)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range got.Nodes {
		names = append(names, n.Name)
	}
	if strings.Join(names, " ") != "n01 n04 n05 spare1 n07 n08 login1 n09 gpu1 gpu2 storage1" {
		t.Errorf("nodes: %v", names)
	}
	for name, want := range map[string]string{"n04": "10.1.0.14", "spare1": "10.1.0.16", "n08": "10.1.0.18", "n09": "10.1.0.19"} {
		if n := got.Node(name); n == nil || n.IP.String() != want {
			t.Errorf("%s: %+v, want ip %s", name, n, want)
		}
	}
	for _, l := range strings.Split(string(orig), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") && !strings.Contains(string(data), l+"\n") {
			t.Errorf("comment line lost: %q", l)
		}
	}
	// node list prints a selection in name order (n09 was added after
	// login1, the last entry of its group).
	out, errOut, code := runCLI(t, "node", "list", "n0[7-9],n01,n05,n04", sock)
	if code != 0 {
		t.Fatalf("node list: %d %s", code, errOut)
	}
	var listed []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		listed = append(listed, strings.Fields(l)[0])
	}
	if strings.Join(listed, " ") != "n01 n04 n05 n07 n08 n09" {
		t.Errorf("node list n0[1-9]: %v\n%s", listed, out)
	}
}

// TestUnknownAdoptCLI: two machines missing from the inventory ask the
// daemon's HTTP boot server for a script; `node unknown` lists them in that
// order, completion offers their MACs, and `node adopt` names them after
// the group's nodes (n09, n10 after n[01-08]) in that order.
func TestUnknownAdoptCLI(t *testing.T) {
	inv := copyExample(t)
	p, st := startServeWith(t, inv, t.TempDir()+"/data")
	defer p.stop(t)
	sock := "--api-socket=" + p.socket
	macs := []string{"52:54:00:77:00:02", "52:54:00:77:00:01"}
	for _, m := range macs {
		resp, err := http.Get("http://" + st.HTTP + "/boot/" + m + ".ipxe")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond)
	}
	var out string
	if !simnode.WaitFor(5*time.Second, func() bool {
		out, _, _ = runCLI(t, "node", "unknown", sock)
		return strings.Count(out, "52:54:00:77:") == 2
	}) {
		t.Fatalf("node unknown:\n%s", out)
	}
	if i, j := strings.Index(out, macs[0]), strings.Index(out, macs[1]); !strings.HasPrefix(out, "MAC ") || i > j {
		t.Fatalf("node unknown, not in the order they asked:\n%s", out)
	}
	comp, _, _ := runCLIEnv(t, "__complete", "node", "adopt", sock, macs[0], "")
	if !strings.HasPrefix(comp, macs[1]+"\t") || strings.Contains(comp, macs[0]) {
		t.Errorf("completion of a second MAC:\n%s", comp)
	}
	out, errOut, code := runCLI(t, "node", "adopt", "--group", "compute", macs[1], macs[0], sock)
	if code != 0 || !strings.Contains(out, macs[0]+" adopted as n09\n"+macs[1]+" adopted as n10\n") {
		t.Fatalf("node adopt: %d\n%s%s", code, out, errOut)
	}
	out, _, _ = runCLI(t, "node", "show", "n10", sock)
	if !strings.Contains(out, macs[1]) || !strings.Contains(out, "compute") {
		t.Fatalf("node show n10:\n%s", out)
	}
	if out, _, _ = runCLI(t, "node", "unknown", sock); strings.Contains(out, "52:54:00:77:") {
		t.Fatalf("still unknown:\n%s", out)
	}
	// Adoption by BMC reaches the daemon, which asks that BMC with the
	// group's settings (nothing listens there); nothing to adopt is refused.
	bmc := "127.0.0.1:" + strconv.Itoa(freePort(t))
	if out, errOut, code := runCLI(t, "node", "adopt", "--group", "compute", "--bmc", bmc, sock); code == 0 ||
		!strings.Contains(errOut, "adopt: reading the NICs of "+bmc+": BMC "+bmc+": ") {
		t.Errorf("node adopt --bmc: %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := runCLI(t, "node", "adopt", "--group", "compute", sock); code == 0 || !strings.Contains(errOut, "name a MAC") {
		t.Errorf("node adopt with nothing to adopt: %d\n%s%s", code, out, errOut)
	}
}

// TestConsoleAdoptInTmux is sequential discovery in the console at 80x24:
// three machines missing from the inventory ask for their boot script one
// after the other; :unknown lists them in that order; all three marked, `a`
// asks first and a plain enter (No) changes nothing; `y` adopts them as
// n17, n18, n19 in the order they asked, and their next request gets their
// own boot script.
func TestConsoleAdoptInTmux(t *testing.T) {
	lab.RequireTools(t, "tmux")
	dir := t.TempDir()
	inv := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(inv, []byte(consoleInventory), 0o644); err != nil {
		t.Fatal(err)
	}
	p, st := startServeWith(t, inv, dir)
	defer p.stop(t)
	macs := []string{"52:54:00:99:00:03", "52:54:00:99:00:01", "52:54:00:99:00:02"}
	ask := func(mac string) string {
		t.Helper()
		resp, err := http.Get("http://" + st.HTTP + "/boot/" + mac + ".ipxe")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, m := range macs {
		ask(m)
		time.Sleep(20 * time.Millisecond)
	}
	c := startConsole(t, p.socket, "TERM=xterm-256color")
	c.waitFor("start", regexp.MustCompile(`20 nodes · 0 marked`))
	c.keys(":", "u", "n", "k", "n", "o", "w", "n", "Enter")
	s := c.waitFor("unknown view", regexp.MustCompile(`UNKNOWN PXE CLIENTS  3  \(adopt into group compute\)`))
	if !regexp.MustCompile(`(?s)` + macs[0] + `.*` + macs[1] + `.*` + macs[2]).MatchString(s) {
		t.Fatalf("not in the order they asked:\n%s", s)
	}
	c.keys("Space", "Space", "Space", "a")
	c.waitFor("confirmation", regexp.MustCompile(`Adopt 3 machines into group compute\?`))
	time.Sleep(300 * time.Millisecond) // the dialog's guard
	c.keys("Enter")
	c.waitFor("no", regexp.MustCompile(`adoption cancelled; nothing changed`))
	c.keys("a")
	c.waitFor("confirmation again", regexp.MustCompile(`Adopt 3 machines into group compute\?`))
	time.Sleep(300 * time.Millisecond)
	c.keys("y")
	c.waitFor("adopted", regexp.MustCompile(`UNKNOWN PXE CLIENTS  0 `))
	cl := apiclient.New(p.socket)
	for i, name := range []string{"n17", "n18", "n19"} {
		n, err := cl.Node(context.Background(), name)
		if err != nil || n.MAC != macs[i] || n.Group != "compute" {
			t.Errorf("%s: %+v %v, want MAC %s", name, n, err, macs[i])
		}
		if s := ask(macs[i]); strings.Contains(s, "not in the inventory") {
			t.Errorf("%s still unknown to the boot server:\n%s", name, s)
		}
	}
	c.keys("Escape")
	c.waitFor("nodes", regexp.MustCompile(`23 nodes · 0 marked`))
	c.keys("C-c")
}
