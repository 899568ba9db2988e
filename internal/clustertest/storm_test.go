package clustertest_test

import (
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/clustertest"
)

// TestStormHeadDies: three heads; 300 simulated nodes boot, each from one
// head (a third from each), the two others offered as DHCP would. Once 60
// have checked in, the first head is stopped in-process (its daemon's
// servers shut down, then its etcd member closed) while the first 200 are
// booting; the last 100 are switched on after it is gone. Every node boots
// and checks in once, with no failed attempt: a node caught mid-boot
// chains its script's retry line, or the root's netbootui.heads=, to a live
// head; a node whose head is already gone takes the next head's offer.
// cmd/netbootui's TestServeClusterStorm does the same with a SIGKILL of a
// `serve --cluster` process.
func TestStormHeadDies(t *testing.T) {
	inv, macs := clustertest.StormInventory(300)
	heads := clustertest.Start(t, 3, inv, clustertest.Options{})
	gen := publish(t, heads, 50000).ID
	bases := make([]string, len(heads))
	for i, h := range heads {
		bases[i] = h.Env.HTTPBase()
	}
	for _, h := range heads {
		clustertest.Eventually(t, h.Name+"'s scripts list the other heads", func() bool {
			s := script(h, macs[0])
			return strings.Count(s, "chain --replace --autofree ") == len(heads) && strings.Contains(s, gen)
		})
	}
	clustertest.Storm{Bases: bases, MACs: macs, KillAfter: 60, Late: 100, Kill: func() { heads[0].Stop(t) }}.Run(t)
}
