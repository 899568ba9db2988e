package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
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

// TestServeCluster: three `netbootui serve --cluster` processes on
// loopback. Only the first has an inventory file: the others mirror it.
// status shows the three members and the leader; an edit through the
// third head lands in every head's file; the first head is SIGKILLed and
// the two others keep a quorum: status says so and an edit still lands.
func TestServeCluster(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 6)
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("h%d=http://127.0.0.1:%d", i+1, ports[2*i]))
	}
	inv := copyExample(t)
	procs := make([]*serveProc, 3)
	invs := make([]string, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		hdir := filepath.Join(dir, fmt.Sprintf("h%d", i+1))
		os.MkdirAll(hdir, 0o755)
		invs[i] = filepath.Join(hdir, "nodes.yaml")
		if i == 0 {
			b, _ := os.ReadFile(inv)
			os.WriteFile(invs[i], b, 0o644)
		}
		s, _ := os.ReadFile(filepath.Join(filepath.Dir(inv), "secrets.yaml"))
		os.WriteFile(filepath.Join(hdir, "secrets.yaml"), s, 0o600)
		wg.Add(1)
		go func() {
			defer wg.Done()
			procs[i], _ = startServeWith(t, invs[i], filepath.Join(hdir, "data"),
				"--cluster", strings.Join(initial, ","), "--cluster-name", fmt.Sprintf("h%d", i+1),
				"--cluster-client-url", fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]))
		}()
	}
	wg.Wait()
	killed := false
	defer func() {
		// Together: a head left alone without a quorum would wait out its
		// timeouts on the way down.
		var wg sync.WaitGroup
		for i, p := range procs {
			if p != nil && !(i == 0 && killed) {
				wg.Add(1)
				go func() { defer wg.Done(); p.stop(t) }()
			}
		}
		wg.Wait()
	}()
	for _, p := range procs {
		if p == nil {
			t.FailNow()
		}
	}
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

	procs[0].cmd.Process.Kill() // SIGKILL
	procs[0].cmd.Wait()
	killed = true
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
