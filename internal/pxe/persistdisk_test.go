package pxe

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
)

// TestPersistDiskEntry: a node whose group keeps its persisted paths on a
// local disk gets the disk's words after the transport's (http-live's
// root=live:), with the newest wipe the daemon recorded; a node of a group
// that persists on nothing gets none; no NFS export is written for a
// disk-backed node.
func TestPersistDiskEntry(t *testing.T) {
	st, _ := publishedStore(t, "compute")
	inv, err := inventory.Parse("nodes.yaml", []byte(`settings:
  nfs: {server: 10.1.0.1, export: /netbootui, dir: /srv/netbootui}
images:
  compute: {}
groups:
  disk:
    image: compute
    persist: [/var/log, /var/lib/x]
    persist_disk: {missing: boot}
  plain:
    image: compute
nodes:
  - {name: n1, group: disk, ip: 10.1.0.11, nics: [{mac: "52:54:00:00:00:01"}]}
  - {name: n2, group: disk, nics: [{mac: "52:54:00:00:00:02"}]}
  - {name: n3, group: plain, nics: [{mac: "52:54:00:00:00:03"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	wipes := map[string]string{"n1": "00112233445566ff", "n3": "ffeeddccbbaa9988"}
	var asked []string
	b := &Boot{Inventory: func() *inventory.Inventory { return inv }, Renderer: mustRenderer(t), Images: st, Tokens: tok,
		PersistWipe: func(node string) string { asked = append(asked, node); return wipes[node] }}
	for _, tc := range []struct {
		node string
		want []string // words in this order after root=live:
		none bool
	}{
		{"n1", []string{"netbootui.persist=/var/log,/var/lib/x", "netbootui.persist_disk=NBUI-PERSIST:boot", "netbootui.persist_wipe=00112233445566ff"}, false},
		{"n2", []string{"netbootui.persist=/var/log,/var/lib/x", "netbootui.persist_disk=NBUI-PERSIST:boot"}, false},
		{"n3", nil, true},
	} {
		text, err := b.Entry(inv, inv.Node(tc.node), "ipxe", "http://10.1.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		if tc.none {
			if strings.Contains(text, "netbootui.persist") {
				t.Errorf("%s persists nothing, yet: %s", tc.node, text)
			}
			continue
		}
		line := text[strings.Index(text, "root=live:"):]
		at := 0
		for _, w := range tc.want {
			i := strings.Index(line[at:], " "+w+" ")
			if i < 0 {
				t.Fatalf("%s: no %q after the root (in order): %s", tc.node, w, line)
			}
			at += i + 1
		}
		if tc.node == "n2" && strings.Contains(line, "persist_wipe") {
			t.Errorf("n2 has no wipe, yet: %s", line)
		}
	}
	if strings.Join(asked, ",") != "n1,n2" {
		t.Errorf("the wipe hook was asked for %v, want the disk-backed nodes only", asked)
	}
	if ex := NFSExports(inv); strings.Contains(ex, "nodes/n1") {
		t.Errorf("an NFS export for a disk-backed node:\n%s", ex)
	}
	// A bad wipe id never reaches a command line.
	wipes["n2"] = "../../etc"
	if _, err := b.Entry(inv, inv.Node("n2"), "ipxe", "http://10.1.0.1:8080"); err == nil || !strings.Contains(err.Error(), "wipe id") {
		t.Errorf("entry with a bad wipe id: %v", err)
	}
}

// TestCheckinPersist: what a node's check-in says of its persisted paths is
// kept per node (the newest) and shown in the check-in's event.
func TestCheckinPersist(t *testing.T) {
	b, h, tok, evs := oneNodeCheckins(t)
	post := func(seq, persist string) {
		t.Helper()
		w := httptest.NewRecorder()
		body := "node=n1&token=" + tok.Token("n1") + "&boot_id=b1&seq=" + seq
		if persist != "" {
			body += "&persist=" + url.QueryEscape(persist)
		}
		h.ServeHTTP(w, checkinRequest(body))
		if w.Code != 200 {
			t.Fatalf("check-in: %d %s", w.Code, w.Body)
		}
	}
	if _, ok := b.Persisted("n1"); ok {
		t.Fatal("a report before any check-in")
	}
	post("1", "none: no partition labelled NBUI-PERSIST; booted without persistence")
	r, ok := b.Persisted("n1")
	if !ok || r.BootID != "b1" || !strings.HasPrefix(r.State, "none: ") || r.At.IsZero() {
		t.Fatalf("report %+v %v", r, ok)
	}
	if ev := (*evs)[len(*evs)-1]; ev.Kind != bootstate.KindCheckin || !strings.Contains(ev.Message, "; persist: none: no partition labelled NBUI-PERSIST") {
		t.Errorf("event %+v", ev)
	}
	post("2", "")
	if r, ok := b.Persisted("n1"); ok {
		t.Errorf("a check-in that persists nothing left %+v", r)
	}
}
