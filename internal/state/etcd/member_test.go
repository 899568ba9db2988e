package etcd_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/state/etcd"
	"github.com/netbootui/netbootui/internal/state/etcd/etcdtest"
)

// TestAddRemoveMember is the README's "adding a head" and "removing one"
// with the client API etcdctl uses: a member is added to a running
// cluster (MemberAdd with its peer URL), the new head starts with Join and
// the list MemberAdd implies, sees the data and counts in the members;
// then it is removed (MemberRemove by its id) and stops itself, and the
// cluster of one goes on taking changes.
func TestAddRemoveMember(t *testing.T) {
	cfgs := etcdtest.Configs(t, 2, t.TempDir())
	first := cfgs[0]
	first.InitialCluster = first.Name + "=" + first.PeerURL // a cluster of one
	m1, err := etcd.StartMember(first)
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	c := etcdtest.Client(t, m1.ClientURL())
	s, err := etcd.Open(c, etcd.Options{Head: "h1", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Documents().Put("doc", []byte("before h2"), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	add, err := c.MemberAdd(ctx, []string{cfgs[1].PeerURL})
	if err != nil {
		t.Fatal(err)
	}
	second := cfgs[1]
	second.InitialCluster, second.Join = first.InitialCluster+","+second.Name+"="+second.PeerURL, true
	second.Dir = filepath.Join(t.TempDir(), "h2")
	start := time.Now()
	m2, err := etcd.StartMember(second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("h2 joined in %v", time.Since(start).Round(time.Millisecond))
	s2, err := etcd.Open(etcdtest.Client(t, m2.ClientURL()), etcd.Options{Head: "h2", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if data, _, err := s2.Documents().Get("doc"); err != nil || string(data) != "before h2" {
		t.Errorf("the added head reads %q, %v", data, err)
	}
	ms, err := s.Members(ctx)
	if err != nil || len(ms) != 2 {
		t.Fatalf("members after the add: %+v %v", ms, err)
	}
	for _, m := range ms {
		if !m.Reachable {
			t.Errorf("member %s unreachable: %s", m.Name, m.Error)
		}
	}
	// Removed while it runs (with two members, one stopped first would
	// leave no quorum to remove it); it stops itself.
	// etcd refuses to remove a member it has not seen healthy for a few
	// seconds ("unhealthy cluster"): etcdctl is refused the same way; it
	// is tried again.
	for {
		_, err := c.MemberRemove(ctx, add.Member.ID)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "unhealthy cluster") {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}
	select {
	case <-m2.Done():
	case <-time.After(30 * time.Second):
		t.Error("the removed member still runs")
	}
	s2.Close()
	m2.Close()
	if ms, err := s.Members(ctx); err != nil || len(ms) != 1 || ms[0].Name != "h1" {
		t.Fatalf("members after the remove: %+v %v", ms, err)
	}
	if _, err := s.Documents().Put("doc", []byte("after h2"), 0); err == nil {
		t.Error("a put from revision 0 over an existing document landed")
	}
	_, rev, _ := s.Documents().Get("doc")
	if _, err := s.Documents().Put("doc", []byte("after h2"), rev); err != nil {
		t.Errorf("the cluster of one after the remove: %v", err)
	}
}
