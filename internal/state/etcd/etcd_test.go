package etcd_test

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/etcd"
	"github.com/netbootui/netbootui/internal/state/etcd/etcdtest"
	"github.com/netbootui/netbootui/internal/state/statetest"
)

// TestConformance runs internal/state's conformance test against a real
// embedded etcd member: each key is a prefix of its own, so reopening a
// key finds what the closed store wrote.
func TestConformance(t *testing.T) {
	m := etcdtest.Cluster(t, 1)[0]
	statetest.Run(t, func(t *testing.T, key string) state.Store {
		c := etcdtest.Client(t, m.ClientURL())
		s, err := etcd.Open(c, etcd.Options{Prefix: "/statetest/" + key + "/", Head: "h1", Timeout: 10 * time.Second, MaxTxnOps: etcd.MaxTxnOps})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// open opens a store of head on the members at urls, closed with the test.
func open(t *testing.T, head string, maxOps int, urls ...string) *etcd.Store {
	t.Helper()
	s, err := etcd.Open(etcdtest.Client(t, urls...), etcd.Options{Prefix: "/twoheads/", Head: head, Timeout: 10 * time.Second, MaxTxnOps: maxOps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// eventually polls cond for up to 20 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20 s", what)
		}
	}
}

// TestTwoHeads: two heads on one cluster see each other's documents,
// audit entries, learned addresses, console tails and token key; their
// boot histories (counted separately) do not collide; a batch larger than
// a transaction holds, and one that forgets a node and records it again,
// land.
func TestTwoHeads(t *testing.T) {
	m := etcdtest.Cluster(t, 1)[0]
	a := open(t, "a", 16, m.ClientURL())
	b := open(t, "b", 16, m.ClientURL())

	ka, err := a.TokenKey()
	if err != nil {
		t.Fatal(err)
	}
	if kb, err := b.TokenKey(); err != nil || string(kb) != string(ka) {
		t.Errorf("the heads' token keys differ (%v)", err)
	}

	rev, err := a.Documents().Put("nodes.yaml", []byte("v1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if data, brev, err := b.Documents().Get("nodes.yaml"); err != nil || string(data) != "v1" || brev != rev {
		t.Errorf("b reads %q rev %d (%v), want v1 rev %d", data, brev, err, rev)
	}
	if _, err := b.Documents().Put("nodes.yaml", []byte("v2"), rev); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Documents().Put("nodes.yaml", []byte("v2 from a"), rev); !errors.Is(err, state.ErrConflict) {
		t.Errorf("a's put from the revision b replaced: %v, want a conflict", err)
	}

	if err := a.Audit().Record(audit.Entry{Who: "a", Action: "edit", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's audit entry on b", func() bool {
		r := b.Audit().Recent(1)
		return len(r) == 1 && r[0].Who == "a"
	})

	ip := netip.MustParseAddr("10.9.0.1")
	a.Addresses().Learn(ip, "n1", time.Now().Add(time.Minute))
	eventually(t, "a's learned address on b", func() bool {
		n, ok := b.Addresses().Lookup(ip, time.Now())
		return ok && n == "n1"
	})

	a.Consoles().Append("n1", []byte("login: \n"))
	eventually(t, "a's console tail on b", func() bool {
		l, ok := b.Consoles().Tail("n1", 5)
		return ok && len(l.Lines) > 0 && strings.Contains(l.Lines[len(l.Lines)-1], "login:")
	})

	// Each head counts its events from 1: both histories are kept.
	for _, s := range []*etcd.Store{a, b} {
		var batch bootstate.Batch
		for i := range 40 { // more than one transaction of 16
			node := fmt.Sprintf("n%02d", i)
			batch.Events = append(batch.Events, bootstate.BatchEvent{Event: bootstate.Event{Seq: uint64(i + 1), Node: node, Kind: bootstate.KindInfo, Message: s.Head()}})
			batch.States = append(batch.States, bootstate.NodeState{Node: node, Stage: bootstate.StageKernel})
		}
		batch.Seq = 40
		if err := s.BootStates().Write(&batch); err != nil {
			t.Fatal(err)
		}
	}
	// A node forgotten and seen again in one batch, another trimmed.
	if err := a.BootStates().Write(&bootstate.Batch{
		Forgets:  []string{"n00"},
		Events:   []bootstate.BatchEvent{{Event: bootstate.Event{Seq: 41, Node: "n00", Kind: bootstate.KindInfo, Message: "again"}}},
		States:   []bootstate.NodeState{{Node: "n00", Stage: bootstate.StageConfig}},
		KeepFrom: map[string]uint64{"n01": 100},
		Seq:      41,
	}); err != nil {
		t.Fatal(err)
	}
	snap, err := b.BootStates().Load(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.States) != 40 || snap.Seq != 41 {
		t.Errorf("loaded %d states, seq %d; want 40, 41", len(snap.States), snap.Seq)
	}
	if h := snap.History["n05"]; len(h) != 2 {
		t.Errorf("n05's history has %d events, want one of each head", len(h))
	}
	if h := snap.History["n00"]; len(h) != 1 || h[0].Message != "again" {
		t.Errorf("n00's history after forget and again: %+v", h)
	}
	if h := snap.History["n01"]; len(h) != 0 {
		t.Errorf("n01's history after KeepFrom: %+v", h)
	}
}

// TestLargeBatch: a batch larger than a transaction's byte limit (a storm's
// 4,000 events with their states) is written, and read back whole.
func TestLargeBatch(t *testing.T) {
	m := etcdtest.Cluster(t, 1)[0]
	s := open(t, "h1", etcd.MaxTxnOps, m.ClientURL())
	var batch bootstate.Batch
	long := strings.Repeat("x", 300)
	for i := range 4000 {
		node := fmt.Sprintf("n%04d", i)
		batch.Events = append(batch.Events, bootstate.BatchEvent{Event: bootstate.Event{Seq: uint64(i + 1), Node: node, Kind: bootstate.KindInfo, Message: long}})
		batch.States = append(batch.States, bootstate.NodeState{Node: node, Stage: bootstate.StageBooted})
	}
	batch.Seq = 4000
	if err := s.BootStates().Write(&batch); err != nil {
		t.Fatal(err)
	}
	snap, err := s.BootStates().Load(5)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.States) != 4000 || len(snap.History) != 4000 || snap.Seq != 4000 {
		t.Errorf("read back %d states, %d histories, seq %d", len(snap.States), len(snap.History), snap.Seq)
	}
}
