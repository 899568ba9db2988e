package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// TestAdoptSimulatedNodes is sequential discovery with simulated machines
// that are not in the inventory: three are powered on one by one through
// their BMCs; each asks the HTTP boot server for its script and gets the
// "unknown machine, asking again" one, which its firmware retries. The
// table lists them in power-on order; adopting them into group g names
// them r4, r5, r6 in that order, and each boots the group's published
// generation on its next retry and checks in, without a restart.
func TestAdoptSimulatedNodes(t *testing.T) {
	l := startRebootLab(t, nil)
	d := l.d
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pool := ipmi.New(ipmi.Options{CallTimeout: 3 * time.Second})
	defer pool.Close()
	macs := []string{"52:54:00:ff:00:03", "52:54:00:ff:00:01", "52:54:00:ff:00:02"}
	var sims []*simnode.Node
	for _, mac := range macs {
		n, err := simnode.Start(simnode.Options{MAC: mac, Password: rebootPassword, BaseURL: "http://" + d.HTTPAddr().String(),
			PXEFirst: true, Retries: 1000, RetryAfter: 100 * time.Millisecond, POST: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		sims = append(sims, n)
		// Powered on, it asks once before the next one is powered on.
		if _, err := pool.Power(ctx, power.Target{Node: mac, Protocol: "ipmi", Host: "127.0.0.1", Port: n.Port(), User: "admin",
			Password: power.NewSecret(rebootPassword)}, power.OpOn); err != nil {
			t.Fatal(err)
		}
		if !simnode.WaitFor(10*time.Second, func() bool { return n.Stats().Failures > 0 }) {
			t.Fatalf("%s never asked: %+v", mac, n.Stats())
		}
	}
	list := d.Unknown()
	if len(list) != 3 {
		t.Fatalf("unknown: %+v", list)
	}
	for i, u := range list {
		if u.MAC != macs[i] {
			t.Fatalf("unknown[%d] = %s, want %s (power-on order)", i, u.MAC, macs[i])
		}
	}
	res, err := d.Adopt(ctx, AdoptRequest{MACs: []string{macs[1], macs[2], macs[0]}, Group: "g", Who: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"r4", "r5", "r6"} {
		if res.Nodes[i].Name != want || res.Nodes[i].MAC != macs[i] {
			t.Fatalf("adopted %+v", res.Nodes)
		}
	}
	for i, n := range sims {
		name := res.Nodes[i].Name
		if !simnode.WaitFor(20*time.Second, func() bool { return n.Stats().Checkins > 0 }) {
			t.Fatalf("%s (%s) did not boot: %+v", name, macs[i], n.Stats())
		}
		v, err := d.Node(name)
		if err != nil || v.State.Stage != apitype.StageBooted || v.State.Generation != l.gen {
			t.Errorf("%s: stage %s generation %s (%v), want booted %s", name, v.State.Stage, v.State.Generation, err, l.gen)
		}
	}
	if len(d.Unknown()) != 0 {
		t.Errorf("unknown after adoption: %+v", d.Unknown())
	}
}
