package clustertest

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// StormInventory returns an inventory of n nodes s000, s001, ... in group
// g of image img, and their MACs.
func StormInventory(n int) (string, []string) {
	var inv strings.Builder
	inv.WriteString("images:\n  img: {}\ngroups:\n  g: {image: img}\nnodes:\n")
	macs := make([]string, n)
	for i := range n {
		macs[i] = fmt.Sprintf("52:54:00:bb:%02x:%02x", i/256, i%256)
		fmt.Fprintf(&inv, "  - {name: s%03d, group: g, nics: [{mac: %q}]}\n", i, macs[i])
	}
	return inv.String(), macs
}

// Storm is a boot storm over several heads during which the first dies.
type Storm struct {
	// Bases are the heads' boot HTTP base URLs; Kill stops the first.
	Bases []string
	Kill  func()
	// MACs are the nodes (StormInventory's); node i boots from head
	// i%len(Bases), the others offered as DHCP would.
	MACs []string
	// KillAfter: Kill runs once that many nodes checked in; Late nodes
	// (the last ones) are switched on only after it returned.
	KillAfter, Late int
}

// Run switches the nodes on, kills the first head as told and waits (up to
// 3 minutes) until every node checked in or failed. It fails t on any failed
// boot and logs what happened. A node's agent retries a failed first
// check-in (up to 10 times, 1 s apart), as the real agent does: a head
// answers 503 while the cluster elects a new leader; the retries are
// counted and logged.
func (s Storm) Run(t testing.TB) {
	t.Helper()
	var checkedIn atomic.Int64
	nodes := make([]*simnode.Node, len(s.MACs))
	for i, mac := range s.MACs {
		first := i % len(s.Bases)
		var others []string
		for j := 1; j < len(s.Bases); j++ {
			others = append(others, s.Bases[(first+j)%len(s.Bases)])
		}
		n, err := simnode.Start(simnode.Options{MAC: mac, Password: "pw", BaseURL: s.Bases[first], OtherHeads: others,
			PXEFirst: true, POST: time.Duration(i%100) * 5 * time.Millisecond, CheckinRetries: 10,
			AfterStep: func(step string) {
				if step == "checkin" {
					checkedIn.Add(1)
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		nodes[i] = n
	}
	early := len(nodes) - s.Late
	start := time.Now()
	for _, n := range nodes[:early] {
		if err := n.PowerOn(); err != nil {
			t.Fatal(err)
		}
	}
	if !simnode.WaitFor(2*time.Minute, func() bool { return checkedIn.Load() >= int64(s.KillAfter) }) {
		t.Fatalf("only %d check-ins after 2 minutes", checkedIn.Load())
	}
	atKill := checkedIn.Load()
	s.Kill()
	killed := time.Now()
	for _, n := range nodes[early:] {
		if err := n.PowerOn(); err != nil {
			t.Fatal(err)
		}
	}
	if !simnode.WaitFor(3*time.Minute, func() bool {
		for _, n := range nodes {
			if st := n.Stats(); st.Checkins == 0 && st.Failures == 0 {
				return false
			}
		}
		return true
	}) {
		t.Errorf("some nodes neither booted nor failed 3 minutes after the kill")
	}
	var failed, over, retried int
	var errs []string
	for i, n := range nodes {
		st := n.Stats()
		retried += st.CheckinRetries
		if i%len(s.Bases) == 0 && len(st.Steps) > 0 && st.Steps[len(st.Steps)-1].Step == "checkin" {
			for _, x := range st.Steps {
				if x.Step == "script" && x != st.Steps[0] {
					over++ // chained its script again after the first
					break
				}
			}
		}
		if st.Checkins == 1 && st.Failures == 0 {
			continue
		}
		failed++
		if len(errs) < 5 {
			errs = append(errs, fmt.Sprintf("%s: checkins %d, failures %d: %v", s.MACs[i], st.Checkins, st.Failures, st.LastError))
		}
	}
	t.Logf("%d nodes over %d heads: %d failed; %d had checked in when the first head was killed (%.1f s in); %d of its nodes chained their script again; %d first check-ins tried again; all done %.1f s after the kill",
		len(nodes), len(s.Bases), failed, atKill, killed.Sub(start).Seconds(), over, retried, time.Since(killed).Seconds())
	if failed > 0 {
		t.Fatalf("%d failed boots, want 0:\n%s", failed, strings.Join(errs, "\n"))
	}
}
