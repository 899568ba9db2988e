// Package etcdtest starts embedded etcd members for tests: at most three,
// on loopback ports chosen by the kernel, with raft timings set for a
// loaded machine, each stopped when its test ends.
package etcdtest

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netbootui/netbootui/internal/state/etcd"
)

// Heartbeat and Election are the raft timings of test members: short
// enough that a failover takes a second or two, long enough that a loaded
// 2-core machine does not lose its leader for nothing.
const (
	Heartbeat = 100 * time.Millisecond
	Election  = 1000 * time.Millisecond
)

// Ports returns n free loopback ports (the kernel's choice, released again
// for the member to bind).
func Ports(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// Configs returns the member configurations of an n-member cluster
// (h1..hn) on loopback, data under dir.
func Configs(t testing.TB, n int, dir string) []etcd.MemberConfig {
	t.Helper()
	ports := Ports(t, 2*n)
	var cfgs []etcd.MemberConfig
	var initial []string
	for i := range n {
		name := fmt.Sprintf("h%d", i+1)
		c := etcd.MemberConfig{Name: name, Dir: filepath.Join(dir, name),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			Heartbeat: Heartbeat, Election: Election, StartTimeout: 60 * time.Second}
		initial = append(initial, name+"="+c.PeerURL)
		cfgs = append(cfgs, c)
	}
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
	}
	return cfgs
}

// Cluster starts an n-member cluster (n <= 3) and stops it when the test
// ends.
func Cluster(t testing.TB, n int) []*etcd.Member {
	t.Helper()
	if n < 1 || n > 3 {
		t.Fatalf("etcdtest: %d members (1 to 3)", n)
	}
	members, errs := StartAll(t, Configs(t, n, t.TempDir()))
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return members
}

// StartAll starts the members of cfgs at once (a member waits for a
// majority of its cluster) and stops those that started when the test
// ends; errs[i] is why member i did not.
func StartAll(t testing.TB, cfgs []etcd.MemberConfig) (members []*etcd.Member, errs []error) {
	t.Helper()
	members, errs = make([]*etcd.Member, len(cfgs)), make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Go(func() { members[i], errs[i] = etcd.StartMember(cfgs[i]) })
	}
	wg.Wait()
	for _, m := range members {
		if m != nil {
			t.Cleanup(func() { m.Close() })
		}
	}
	return members, errs
}

// Client returns a client of the members at urls, closed when the test
// ends.
func Client(t testing.TB, urls ...string) *clientv3.Client {
	t.Helper()
	c, err := etcd.NewClient(urls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
