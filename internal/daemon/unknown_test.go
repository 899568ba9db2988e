package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

func TestNextFreeNames(t *testing.T) {
	const head = "groups:\n  c: {}\n  d: {}\n  e: {}\nnodes:\n"
	inv, err := inventory.Parse("t.yaml", []byte(head+
		"  - {name: \"n[001-003]\", group: c, nics: [{mac: \"52:54:00:00:00:01\"}]}\n"+
		"  - {name: n005, group: c, nics: [{mac: \"52:54:00:00:00:05\"}]}\n"+
		"  - {name: login1, group: c, nics: [{mac: \"52:54:00:00:01:01\"}]}\n"+
		"  - {name: \"gpu[8-9]-a\", group: d, nics: [{mac: \"52:54:00:00:02:01\"}]}\n"+
		"  - {name: head, group: e, nics: [{mac: \"52:54:00:00:03:01\"}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		group string
		count int
		want  string
	}{
		{"c", 3, "n004 n006 n007"},
		{"d", 2, "gpu1-a gpu2-a"},
		{"d", 8, "of group d has 7 free names, 8 needed"},
		{"e", 1, "group e has no numbered node"},
	} {
		names, err := nextFreeNames(inv, tc.group, tc.count)
		got := strings.Join(names, " ")
		if err != nil {
			got = "x: " + err.Error()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("nextFreeNames(%s, %d) = %q, want %q", tc.group, tc.count, got, tc.want)
		}
	}
}

func TestUnknownTable(t *testing.T) {
	tbl := newUnknownTable(2)
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	see := func(sec int, mac, proto, path, msg string) {
		tbl.see(bootstate.Event{Time: t0.Add(time.Duration(sec) * time.Second), Kind: bootstate.KindUnknown, MAC: mac,
			Proto: proto, Path: path, Message: msg, Remote: "10.0.0.9:68"})
	}
	see(1, "52-54-00-00-00-0A", "dhcp", "", "unknown MAC 52:54:00:00:00:0a (UEFI x86-64) asked for a boot server")
	see(2, "52:54:00:00:00:0b", "tftp", "undionly.kpxe", "")
	see(3, "52:54:00:00:00:0a", "http", "/boot/52:54:00:00:00:0a.ipxe", "")
	tbl.see(bootstate.Event{Time: t0, Kind: bootstate.KindInfo, MAC: "52:54:00:00:00:0c"}) // not an unknown client
	l := tbl.list()
	got := fmt.Sprintf("%s %s %d %s | %s %s %d", l[0].MAC, l[0].Arch, l[0].Requests, l[0].LastSeen.Format("05"), l[1].MAC, l[1].Arch, l[1].Requests)
	if len(l) != 2 || got != "52:54:00:00:00:0a UEFI x86-64 2 03 | 52:54:00:00:00:0b bios 1" {
		t.Fatalf("table: %s (%d entries)", got, len(l))
	}
	// Full: the client seen least recently (0b, at 2s) makes room.
	see(4, "52:54:00:00:00:0d", "http", "", "")
	l = tbl.list()
	if len(l) != 2 || l[0].MAC != "52:54:00:00:00:0a" || l[1].MAC != "52:54:00:00:00:0d" {
		t.Fatalf("after eviction: %+v", l)
	}
}

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
	res, err := d.Adopt(AdoptRequest{MACs: []string{macs[1], macs[2], macs[0]}, Group: "g", Who: "test"})
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
		st, _ := d.Tracker.Get(name)
		if st.Stage != bootstate.StageBooted || st.Generation != l.gen {
			t.Errorf("%s: stage %s generation %s, want booted %s", name, st.Stage, st.Generation, l.gen)
		}
	}
	if len(d.Unknown()) != 0 {
		t.Errorf("unknown after adoption: %+v", d.Unknown())
	}
}
