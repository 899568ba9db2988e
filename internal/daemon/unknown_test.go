package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
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
