package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/clustertest"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// TestPeerOf: a head's peer URL comes from its entry in --cluster.
func TestPeerOf(t *testing.T) {
	for _, tc := range []struct {
		initial, name, want, err string
	}{
		{"h1=http://10.0.0.1:2380,h2=http://10.0.0.2:2380", "h2", "http://10.0.0.2:2380", ""},
		{" h1=http://10.0.0.1:2380 ", "h1", "http://10.0.0.1:2380", ""},
		{"h1=http://10.0.0.1:2380", "h3", "", "does not name this head"},
		{"h1", "h1", "", "not NAME=PEER_URL"},
		{"=http://x:1", "h1", "", "not NAME=PEER_URL"},
	} {
		got, err := peerOf(tc.initial, tc.name)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("peerOf(%q, %q) = %q, %v; want %q, %q", tc.initial, tc.name, got, err, tc.want, tc.err)
		}
	}
}

// freePorts returns n loopback ports the kernel had free.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// serveCluster is three `netbootui serve --cluster` processes on loopback.
type serveCluster struct {
	procs  []*serveProc
	invs   []string         // each head's inventory file
	sts    []apitype.Status // each head's status when it came up
	killed []bool
}

// startServeCluster starts three heads; only the first gets inventory (the
// others mirror it), each gets secrets. They stop together at the test's
// end, but for the killed ones.
func startServeCluster(t *testing.T, inventory, secrets []byte) *serveCluster {
	t.Helper()
	return startServeClusterWith(t, inventory, secrets, clusterOptions{})
}

// clusterOptions tune startServeClusterWith.
type clusterOptions struct {
	// perHead gives head i extra flags.
	perHead func(i int) []string
	// tls is the cluster's certificates (`cluster certs`): https URLs,
	// --cluster-tls, and each head's generation server on imagesPorts[i].
	tls         string
	imagesPorts []int
}

// startServeClusterWith is startServeCluster with options.
func startServeClusterWith(t *testing.T, inventory, secrets []byte, o clusterOptions) *serveCluster {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 6)
	scheme := "http"
	if o.tls != "" {
		scheme = "https"
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("h%d=%s://127.0.0.1:%d", i+1, scheme, ports[2*i]))
	}
	sc := &serveCluster{procs: make([]*serveProc, 3), invs: make([]string, 3), sts: make([]apitype.Status, 3), killed: make([]bool, 3)}
	var wg sync.WaitGroup
	for i := range 3 {
		hdir := filepath.Join(dir, fmt.Sprintf("h%d", i+1))
		os.MkdirAll(hdir, 0o755)
		sc.invs[i] = filepath.Join(hdir, "nodes.yaml")
		if i == 0 {
			os.WriteFile(sc.invs[i], inventory, 0o644)
		}
		os.WriteFile(filepath.Join(hdir, "secrets.yaml"), secrets, 0o600)
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []string{"--cluster", strings.Join(initial, ","), "--cluster-name", fmt.Sprintf("h%d", i+1),
				"--cluster-client-url", fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i+1])}
			if o.tls != "" {
				args = append(args, "--cluster-tls", o.tls, "--cluster-images-listen", fmt.Sprintf("127.0.0.1:%d", o.imagesPorts[i]))
			}
			if o.perHead != nil {
				args = append(args, o.perHead(i)...)
			}
			sc.procs[i], sc.sts[i] = startServeWith(t, sc.invs[i], filepath.Join(hdir, "data"), args...)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		// Together: a head left alone without a quorum would wait out its
		// timeouts on the way down.
		var wg sync.WaitGroup
		for i, p := range sc.procs {
			if p != nil && !sc.killed[i] {
				wg.Add(1)
				go func() { defer wg.Done(); p.stop(t) }()
			}
		}
		wg.Wait()
	})
	for _, p := range sc.procs {
		if p == nil {
			t.FailNow()
		}
	}
	return sc
}

// kill SIGKILLs head i.
func (sc *serveCluster) kill(i int) {
	sc.procs[i].cmd.Process.Kill()
	sc.procs[i].cmd.Wait()
	sc.killed[i] = true
}

// TestServeCluster: three `netbootui serve --cluster` processes on
// loopback. Only the first has an inventory file: the others mirror it.
// status shows the three members and the leader; an edit through the
// third head lands in every head's file; the first head is SIGKILLed and
// the two others keep a quorum: status says so and an edit still lands. A
// client given the three sockets follows h1's events; when h1 is killed its
// stream ends, the next one follows h2's, and the CLI given the three
// (--api-socket=S1,S2,S3) reaches h2.
func TestServeCluster(t *testing.T) {
	inv := copyExample(t)
	b, _ := os.ReadFile(inv)
	sec, _ := os.ReadFile(filepath.Join(filepath.Dir(inv), "secrets.yaml"))
	sc := startServeCluster(t, b, sec)
	procs, invs := sc.procs, sc.invs
	status := func(i int) apitype.Status {
		t.Helper()
		out, errOut, code := runCLI(t, "status", "--api-socket="+procs[i].socket)
		var st apitype.Status
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("status of h%d: %d %s%s", i+1, code, out, errOut)
		}
		return st
	}
	st := status(1)
	if c := st.Cluster; c == nil || c.Head != "h2" || len(c.Members) != 3 || c.Leader == "" || !c.Quorum {
		t.Fatalf("status of h2: %+v", st.Cluster)
	}

	same := func(what string, heads []int, has string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ok := true
			for _, i := range heads {
				b, err := os.ReadFile(invs[i])
				ok = ok && err == nil && bytes.Contains(b, []byte(has))
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not in every head's file after 30 s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	same("the first head's inventory", []int{0, 1, 2}, "login1")
	if out, errOut, code := runCLI(t, "node", "set", "login1", "kernel_args=from-h3", "--api-socket="+procs[2].socket); code != 0 {
		t.Fatalf("node set on h3: %d %s%s", code, out, errOut)
	}
	same("the edit through h3", []int{0, 1, 2}, "kernel_args: from-h3")

	// A client given the three sockets (as --api-socket=S1,S2,S3) follows
	// the events of the first head; a boot request to it shows the stream
	// is open there.
	all := strings.Join([]string{procs[0].socket, procs[1].socket, procs[2].socket}, ",")
	fc := apiclient.New(all)
	evCtx, evCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer evCancel()
	follow := func(head int) chan error {
		t.Helper()
		got, end := make(chan struct{}, 1), make(chan error, 1)
		go func() {
			end <- fc.Events(evCtx, "", 0, true, func(apitype.Event) error {
				select {
				case got <- struct{}{}:
				default:
				}
				return nil
			})
		}()
		for deadline := time.Now().Add(30 * time.Second); ; {
			if resp, err := http.Get("http://" + sc.sts[head].HTTP + "/boot/52:54:00:00:01:01.ipxe"); err == nil {
				resp.Body.Close()
			}
			select {
			case <-got:
				return end
			case err := <-end:
				t.Fatalf("event stream ended before an event of h%d: %v", head+1, err)
			case <-time.After(200 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("no event through h%d after 30 s", head+1)
			}
		}
	}
	end := follow(0)

	sc.kill(0)
	// The stream on the killed head ends; the console reconnects the same
	// way: the next stream is on a live head, and so are the CLI's calls.
	select {
	case err := <-end:
		if err == nil {
			t.Fatal("the stream on the killed head ended without an error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream on the killed head did not end")
	}
	follow(1)
	out, errOut, code := runCLI(t, "status", "--api-socket="+all)
	var failed apitype.Status
	if code != 0 || json.Unmarshal([]byte(out), &failed) != nil || failed.Cluster == nil || failed.Cluster.Head != "h2" {
		t.Fatalf("status through %s after h1 was killed: %d %s%s", all, code, out, errOut)
	}
	c := apiclient.New(procs[1].socket)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.EditNode(ctx, "login1", apitype.Edit{Set: map[string]any{"kernel_args": "after-kill"}})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("edit on h2 after h1 was killed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	same("the edit after the kill", []int{1, 2}, "kernel_args: after-kill")
	st = status(2)
	reachable := 0
	for _, m := range st.Cluster.Members {
		if m.Reachable {
			reachable++
		}
	}
	if !st.Cluster.Quorum || st.Cluster.Leader == "" || st.Cluster.Leader == "h1" || reachable != 2 {
		t.Errorf("status of h3 after h1 was killed: %+v", st.Cluster)
	}
}

// TestServeClusterStorm: three `serve --cluster` processes; a generation
// imported and published through the first head's API reaches the others;
// 300 simulated nodes boot over the three (clustertest.Storm: each node
// from one head, the two others offered as DHCP would) and once 60 have
// checked in the first head is SIGKILLed; the last 100 are switched on
// after. 0 failed boots.
func TestServeClusterStorm(t *testing.T) {
	inv, macs := clustertest.StormInventory(300)
	sc := startServeCluster(t, []byte(inv), nil)
	m := importGeneration(t, apiclient.New(sc.procs[0].socket), "img", "", 50000, true)
	bases := make([]string, 3)
	for i, st := range sc.sts {
		bases[i] = "http://" + st.HTTP
		deadline := time.Now().Add(60 * time.Second)
		for {
			var body []byte
			if resp, err := http.Get(bases[i] + "/boot/" + macs[0] + ".ipxe"); err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			// The generation, and the three heads in the retry line.
			if bytes.Contains(body, []byte(m.ID)) && bytes.Count(body, []byte("chain --replace --autofree ")) == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("h%d's script after 60 s:\n%s", i+1, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	clustertest.Storm{Bases: bases, MACs: macs, KillAfter: 60, Late: 100, Kill: func() { sc.kill(0) }}.Run(t)
}

// importGeneration imports a generation of image through c: each file is
// its name and tag repeated n times; publish makes it current.
func importGeneration(t *testing.T, c *apiclient.Client, image, tag string, n int, publish bool) *apitype.Manifest {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range []string{"kernel", "initrd", "rootfs"} {
		files[f] = filepath.Join(dir, f)
		os.WriteFile(files[f], bytes.Repeat([]byte(f+tag), n), 0o644)
	}
	m, err := c.Import(context.Background(), apitype.ImportRequest{Image: image, Publish: publish},
		apiclient.ImportFiles{Kernel: files["kernel"], Initrd: files["initrd"], Rootfs: files["rootfs"]})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitGenerations waits (up to 60 s) until c's head has every generation
// of ids.
func waitGenerations(t *testing.T, c *apiclient.Client, ids ...string) {
	t.Helper()
	if !simnode.WaitFor(60*time.Second, func() bool {
		imgs, err := c.Images(context.Background())
		if err != nil {
			return false
		}
		got := 0
		for _, im := range imgs {
			for _, g := range im.Generations {
				if slices.Contains(ids, g.ID) {
					got++
				}
			}
		}
		return got == len(ids)
	}) {
		t.Fatalf("the head lacks generations %v after 60 s", ids)
	}
}

// TestBenchHeads: `bench heads` on 30 nodes runs the storm against one
// head and against three `serve --cluster` processes: every node boots in
// both, and it prints both runs and the ratio.
func TestBenchHeads(t *testing.T) {
	out, errOut, code := runCLIWithin(t, 5*time.Minute, "bench", "heads", "--nodes", "30", "--timeout", "2m")
	if code != 0 {
		t.Fatalf("bench heads: %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"1 head(s): 30 nodes, 30 booted, 0 failed", "3 head(s): 30 nodes, 30 booted, 0 failed", "ratio "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, errOut, code := runCLI(t, "bench", "heads", "--nodes", "0"); code == 0 || !strings.Contains(errOut, "want 1..65536") {
		t.Errorf("--nodes 0: %d %s", code, errOut)
	}
}
