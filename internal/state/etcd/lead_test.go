package etcd_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/state/etcd"
	"github.com/netbootui/netbootui/internal/state/etcd/etcdtest"
)

// openTTL opens a store of head with a lease of 4 s on its own client; the
// client is returned so that a test can cut the head off (close it) as a
// SIGKILL would.
func openTTL(t *testing.T, url, head string) *etcd.Store {
	t.Helper()
	c, err := etcd.NewClient([]string{url})
	if err != nil {
		t.Fatal(err)
	}
	s, err := etcd.Open(c, etcd.Options{Prefix: "/lead/", Head: head, LeaseTTL: 4 * time.Second, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s
}

// TestClaims: a key one head claims is refused to another, naming the
// holder, until it is released; the claims of a head that dies (its
// client gone, its lease not renewed) lapse on their own.
func TestClaims(t *testing.T) {
	m := etcdtest.Cluster(t, 1)[0]
	a, b := openTTL(t, m.ClientURL(), "a"), openTTL(t, m.ClientURL(), "b")
	ctx := context.Background()
	releaseA, held, err := a.Claim(ctx, []string{"reboot-clean/n1", "reboot-clean/n2"})
	if err != nil || len(held) != 0 {
		t.Fatalf("a's claims: held %v, %v", held, err)
	}
	releaseB, held, err := b.Claim(ctx, []string{"reboot-clean/n2", "reboot-clean/n3"})
	if err != nil || len(held) != 1 || held["reboot-clean/n2"] != "a" {
		t.Fatalf("b's claims beside a's: held %v, %v", held, err)
	}
	releaseB()
	releaseA()
	releaseB, held, err = b.Claim(ctx, []string{"reboot-clean/n2"})
	if err != nil || len(held) != 0 {
		t.Fatalf("b's claim after a released: held %v, %v", held, err)
	}
	releaseB()

	// a claims again and dies.
	if _, held, err = a.Claim(ctx, []string{"reboot-clean/n1"}); err != nil || len(held) != 0 {
		t.Fatalf("a again: %v %v", held, err)
	}
	a.Client().Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		release, held, err := b.Claim(ctx, []string{"reboot-clean/n1"})
		if err != nil {
			t.Fatal(err)
		}
		release()
		if len(held) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dead head's claim did not lapse: %v", held)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLeadAndLiveHeads: one of two heads runs the work of an election at
// a time; when it stops the other runs it; a head that stops leaves the
// live heads.
func TestLeadAndLiveHeads(t *testing.T) {
	m := etcdtest.Cluster(t, 1)[0]
	heads := []*etcd.Store{openTTL(t, m.ClientURL(), "a"), openTTL(t, m.ClientURL(), "b")}
	ctx := context.Background()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 30 s", what)
			}
		}
	}
	waitFor("two live heads", func() bool {
		live, err := heads[0].LiveHeads(ctx)
		return err == nil && slices.Equal(live, []string{"a", "b"})
	})
	leading := make(chan string, 4)
	stops := make([]context.CancelFunc, 2)
	for i, s := range heads {
		lctx, cancel := context.WithCancel(ctx)
		stops[i] = cancel
		go s.Lead(lctx, "work", func(wctx context.Context) {
			leading <- s.Head()
			<-wctx.Done()
		})
	}
	var first string
	select {
	case first = <-leading:
	case <-time.After(30 * time.Second):
		t.Fatal("nobody leads")
	}
	if l, err := heads[0].Leader(ctx, "work"); err != nil || l != first {
		t.Errorf("Leader = %q, %v; want %q", l, err, first)
	}
	select {
	case second := <-leading:
		t.Fatalf("%s leads while %s does", second, first)
	case <-time.After(500 * time.Millisecond):
	}
	i := slices.IndexFunc(heads, func(s *etcd.Store) bool { return s.Head() == first })
	stops[i]()
	select {
	case second := <-leading:
		if second == first {
			t.Errorf("%s leads again after it stopped", second)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("nobody took over")
	}
	stops[1-i]()
	heads[i].Close()
	waitFor("one live head", func() bool {
		live, err := heads[1-i].LiveHeads(ctx)
		return err == nil && len(live) == 1 && live[0] == heads[1-i].Head()
	})
}
