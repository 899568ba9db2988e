package pxe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
)

func TestCheckinGuard(t *testing.T) {
	g := &Boot{}
	steps := []struct {
		node, boot string
		seq        uint64
		ok         bool
	}{
		{"n1", "a", 5, true}, // the first one seen (the daemon restarted mid-boot)
		{"n1", "a", 5, false},
		{"n1", "a", 4, false},
		{"n2", "a", 1, true}, // per node
		{"n1", "a", 6, true},
		{"n1", "b", 1, true},
		{"n1", "a", 7, false}, // a boot n1 has left
		{"n1", "b", 2, true},
	}
	for i, s := range steps {
		err := g.admitCheckin(s.node, s.boot, s.seq)
		if (err == nil) != s.ok || (err != nil && !errors.Is(err, errReplay)) {
			t.Fatalf("step %d %+v: %v", i, s, err)
		}
	}
	// Only the last maxBootIDs boots are remembered, the newest of them all.
	for i := range maxBootIDs + 2 {
		if err := g.admitCheckin("n3", fmt.Sprint("boot", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.admitCheckin("n3", "boot1", 9); err == nil {
		t.Error("a boot among the remembered ones accepted")
	}
	if err := g.admitCheckin("n3", "boot0", 9); err != nil {
		t.Errorf("the oldest boot, past the window: %v", err)
	}
}

func TestUnprovenLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	now := t0
	b := &Boot{Now: func() time.Time { return now }}
	cases := []struct {
		key  string
		at   time.Duration
		want bool
	}{
		{"10.0.0.1:1000", 0, true},
		{"10.0.0.1:1001", time.Second, false}, // same address, other port
		{"10.0.0.2:1000", time.Second, true},
		{"10.0.0.1:1000", unprovenEvery - time.Millisecond, false},
		{"10.0.0.1:1000", unprovenEvery, true},
		{"not an address", 0, true},
		{"not an address", 0, false},
	}
	for i, c := range cases {
		now = t0.Add(c.at)
		if got := b.allowUnproven(c.key); got != c.want {
			t.Errorf("case %d %+v: %v", i, c, got)
		}
	}
	// Bounded: past maxLimited fresh keys, new keys share one budget (one
	// event) until old ones go stale.
	now = t0
	m := &Boot{Now: func() time.Time { return now }}
	for i := range maxLimited {
		m.allowUnproven(fmt.Sprint("k", i))
	}
	if !m.allowUnproven("new") || m.allowUnproven("newer") {
		t.Fatalf("past %d keys: the shared budget is not one event", maxLimited)
	}
	now = t0.Add(unprovenEvery)
	if !m.allowUnproven("newest") {
		t.Fatal("stale keys not dropped")
	}
}

func TestProof(t *testing.T) {
	tok, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	b := &Boot{Tokens: tok}
	fixed := &inventory.Node{Name: "f1", IP: netip.MustParseAddr("10.0.0.9")}
	dyn := &inventory.Node{Name: "d1"}
	here, there := netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.50")
	mapped := netip.MustParseAddr("::ffff:10.0.0.9")
	cases := []struct {
		name string
		n    *inventory.Node
		key  string
		ip   netip.Addr
		want bool
	}{
		{"dynamic node, its key", dyn, tok.FetchKey("d1"), there, true},
		{"dynamic node, no key", dyn, "", there, false},
		{"dynamic node, another node's key", dyn, tok.FetchKey("f1"), there, false},
		{"dynamic node, its check-in token", dyn, tok.Token("d1"), there, false},
		{"fixed node, its address", fixed, "", here, true},
		{"fixed node, its address mapped", fixed, "", mapped, true},
		{"fixed node, its key elsewhere", fixed, tok.FetchKey("f1"), there, false},
	}
	for _, c := range cases {
		if got := b.keyProves(c.n, c.key, c.ip); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
	if macProof(fixed, here) != proofNode || macProof(fixed, there) != proofClaim || macProof(dyn, here) != proofClaim {
		t.Error("macProof")
	}
	if tok.FetchKey("d1") == tok.Token("d1") || !tok.VerifyFetch("d1", tok.FetchKey("d1")) || tok.VerifyFetch("d1", tok.Token("d1")) {
		t.Error("fetch key and check-in token are not apart")
	}
}

// TestTFTPClaimsNeverFail: over TFTP (pxelinux) a node is known by its
// address only. From an address learned by its config fetch (a claim) a
// missing file is an info event and a served one a claim event, neither
// moving the node; from its fixed inventory address (proof) the node fails,
// or moves on.
func TestTFTPClaimsNeverFail(t *testing.T) {
	st, m := publishedStore(t, "compute")
	inv, err := inventory.Parse("nodes.yaml", []byte(`images:
  compute: {}
  other: {}
nodes:
  - {name: dyn, image: compute, loader: pxelinux, nics: [{mac: "52:54:00:00:00:01"}]}
  - {name: fix, image: compute, loader: pxelinux, ip: 10.0.0.9, nics: [{mac: "52:54:00:00:00:02"}]}
  - {name: nog, image: other, loader: pxelinux, nics: [{mac: "52:54:00:00:00:03"}]}
  - {name: nogfix, image: other, loader: pxelinux, ip: 10.0.0.10, nics: [{mac: "52:54:00:00:00:04"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	var events []bootstate.Event
	b := &Boot{Inventory: func() *inventory.Inventory { return inv }, Renderer: mustRenderer(t), Images: st,
		Tokens: tok, DefaultURL: "http://10.0.0.1:8080", Events: func(ev bootstate.Event) { events = append(events, ev) }}
	ctx := context.Background()
	dynAddr := netip.MustParseAddrPort("10.0.0.50:2000")
	if _, err := b.OpenTFTP(ctx, "pxelinux.cfg/01-52-54-00-00-00-01", dynAddr); err != nil {
		t.Fatal(err)
	}
	// A missing file from the learned address is an info event, from fix's
	// own address a failure; the good kernel is served to both: from the
	// learned address a claim of dyn's kernel stage, from fix's own address
	// a kernel fetch.
	fixAddr := netip.MustParseAddrPort("10.0.0.9:2000")
	for _, tc := range []struct {
		gen      string
		from     netip.AddrPort
		node     string
		wantKind bootstate.Kind
	}{
		{"0bogus", dynAddr, "dyn", bootstate.KindInfo},
		{"0bogus", fixAddr, "fix", bootstate.KindFail},
		{m.ID, dynAddr, "dyn", bootstate.KindClaim},
		{m.ID, fixAddr, "fix", bootstate.KindFetch},
	} {
		events = nil
		_, err := b.OpenTFTP(ctx, "images/compute/"+tc.gen+"/vmlinuz", tc.from)
		if served := err == nil; served != (tc.gen == m.ID) {
			t.Fatalf("generation %s from %s: served %v (%v)", tc.gen, tc.from, served, err)
		}
		if len(events) != 1 || events[0].Node != tc.node || events[0].Kind != tc.wantKind {
			t.Errorf("generation %s from %s: events %+v, want one %s event of %s", tc.gen, tc.from, events, tc.wantKind, tc.node)
		}
		if tc.gen == m.ID && len(events) == 1 && events[0].Stage != bootstate.StageKernel {
			t.Errorf("kernel fetch from %s: stage %q", tc.from, events[0].Stage)
		}
	}
	// An entry that cannot boot (no generation): asked for by MAC it is a
	// config claim and an info event; from the node's fixed IP a failure.
	for _, tc := range []struct {
		cfg   string
		from  netip.AddrPort
		kinds string
	}{
		{"pxelinux.cfg/01-52-54-00-00-00-03", netip.MustParseAddrPort("10.0.0.60:2000"), "claim,info"},
		{"pxelinux.cfg/01-52-54-00-00-00-04", netip.MustParseAddrPort("10.0.0.10:2000"), "fail"},
	} {
		events = nil
		if _, err := b.OpenTFTP(ctx, tc.cfg, tc.from); err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, ev := range events {
			kinds = append(kinds, string(ev.Kind))
		}
		if strings.Join(kinds, ",") != tc.kinds || !strings.Contains(fmt.Sprint(events), "no published generation") {
			t.Errorf("%s from %s: events %+v, want %s", tc.cfg, tc.from, events, tc.kinds)
		}
	}

}
