package pxe

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
)

// TestNoCloudDatasource serves meta-data, user-data and vendor-data per node
// (templates from the group, the node's own winning) to the node's token
// alone, through a real HTTP server and client.
func TestNoCloudDatasource(t *testing.T) {
	st, m := publishedStore(t, "compute")
	inv, err := inventory.Parse("nodes.yaml", []byte(`images:
  compute: {}
groups:
  lab:
    image: compute
    user_data: |
      #cloud-config
      runcmd: [[sh, -c, "echo {{.Node}} of {{.Group}} boots {{.Image}}@{{.Generation}} > /run/hello"]]
    vendor_data: "#cloud-config\npackages: []\n"
nodes:
  - {name: n1, group: lab, nics: [{mac: "52:54:00:00:00:01"}]}
  - name: n2
    group: lab
    ip: 127.0.0.1
    user_data: "#cloud-config\nhostname: {{.Node}}-at-{{.IP}}\n"
    nics: [{mac: "52:54:00:00:00:02"}]
  - {name: n3, group: lab, ip: 10.9.9.9, nics: [{mac: "52:54:00:00:00:03"}]}
  - {name: bare, image: compute, nics: [{mac: "52:54:00:00:00:04"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	var events []bootstate.Event
	b := &Boot{Inventory: func() *inventory.Inventory { return inv }, Renderer: mustRenderer(t), Images: st,
		Tokens: tok, Events: func(ev bootstate.Event) { events = append(events, ev) }}
	srv := httptest.NewServer(&HTTPServer{Boot: b})
	defer srv.Close()
	get := func(node, token, file string) (int, string) {
		t.Helper()
		resp, err := http.Get(NoCloudURL(srv.URL, node, token) + file)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, tc := range []struct {
		node, token, file string
		code              int
		want              string
	}{
		{"n1", tok.Token("n1"), NoCloudMetaData, 200, "instance-id: netbootui-n1-" + m.ID + "\nlocal-hostname: n1\n"},
		{"n1", tok.Token("n1"), NoCloudUserData, 200, "#cloud-config\nruncmd: [[sh, -c, \"echo n1 of lab boots compute@" + m.ID + " > /run/hello\"]]\n"},
		{"n1", tok.Token("n1"), NoCloudVendorData, 200, "#cloud-config\npackages: []\n"},
		// The node's own user_data wins over the group's; vendor-data is the group's.
		{"n2", tok.Token("n2"), NoCloudUserData, 200, "#cloud-config\nhostname: n2-at-127.0.0.1\n"},
		{"n2", tok.Token("n2"), NoCloudVendorData, 200, "#cloud-config\npackages: []\n"},
		// Nothing in the inventory: empty, not an error.
		{"bare", tok.Token("bare"), NoCloudUserData, 200, ""},
		{"n1", tok.Token("n1"), "network-config", 404, ""},
		// Refused: no token, another node's token, a made-up node, and a
		// node with a fixed ip asked from another address.
		{"n1", "", NoCloudMetaData, 0, ""},
		{"n1", "x", NoCloudUserData, 403, "forbidden\n"},
		{"n1", tok.Token("n2"), NoCloudUserData, 403, "forbidden\n"},
		{"ghost", tok.Token("ghost"), NoCloudMetaData, 403, "forbidden\n"},
		{"n3", tok.Token("n3"), NoCloudMetaData, 403, "forbidden\n"},
	} {
		code, body := get(tc.node, tc.token, tc.file)
		if tc.code == 0 { // an empty token is no such route
			if code == 200 || strings.Contains(body, "instance-id") {
				t.Errorf("%s without a token: %d %q", tc.node, code, body)
			}
			continue
		}
		if code != tc.code || (tc.code != 404 && body != tc.want) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.node, tc.file, code, body, tc.code, tc.want)
		}
	}
	// Refusals are reported without the token.
	denied := 0
	for _, ev := range events {
		if ev.Kind == bootstate.KindDenied {
			denied++
		}
		if strings.Contains(ev.Path+ev.Error+ev.Message, tok.Token("n1")) || strings.Contains(ev.Path, tok.Token("n2")) {
			t.Errorf("an event carries a token: %+v", ev)
		}
	}
	if denied == 0 {
		t.Error("no refusal was reported")
	}
}

// TestCloudTemplateErrors: a template that cannot run is an inventory error
// at its position.
func TestCloudTemplateErrors(t *testing.T) {
	for _, tc := range []struct{ src, err string }{
		{`nodes:
  - {name: a, user_data: "{{.Hostname}}", nics: [{mac: "52:54:00:00:00:01"}]}
`, `nodes.yaml:2:26: node a: user_data:`},
		{`groups:
  g: {vendor_data: "{{if}}"}
`, `nodes.yaml:2:20: group g: vendor_data:`},
	} {
		_, err := inventory.Parse("nodes.yaml", []byte(tc.src))
		if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
			t.Errorf("Parse: %v, want %s...", err, tc.err)
		}
	}
}

// TestCheckinFailed: a check-in with failed= marks the node failed at the
// stage it names, with the reason; a malformed one is refused.
func TestCheckinFailed(t *testing.T) {
	_, h, tok, evs := oneNodeCheckins(t)
	post := func(seq, failed string) int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, checkinRequest("node=n1&token="+tok.Token("n1")+"&boot_id=b1&seq="+seq+"&failed="+failed))
		return w.Code
	}
	if code := post("1", "rootfs%3A+cannot+mount+the+NFS+root+10.0.2.2%3A%2Fx"); code != 200 {
		t.Fatalf("failed check-in: %d", code)
	}
	events := *evs
	if len(events) != 1 || events[0].Kind != bootstate.KindFail || events[0].Error != "boot failed at stage rootfs: cannot mount the NFS root 10.0.2.2:/x" {
		t.Fatalf("events %+v", events)
	}
	if code := post("2", "rootfs%3A+x%0Ay"); code != 400 {
		t.Errorf("a failed= with a newline: %d, want 400", code)
	}
	if code := post("3", strings.Repeat("x", 600)); code != 400 {
		t.Errorf("a long failed=: %d, want 400", code)
	}
}

// oneNodeCheckins is a Boot knowing one node, n1, and its HTTP handler,
// with the tokens and the events it emitted.
func oneNodeCheckins(t *testing.T) (*Boot, http.Handler, *Tokens, *[]bootstate.Event) {
	t.Helper()
	inv, err := inventory.Parse("nodes.yaml", []byte("nodes:\n  - {name: n1, nics: [{mac: \"52:54:00:00:00:01\"}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	events := &[]bootstate.Event{}
	b := &Boot{Inventory: func() *inventory.Inventory { return inv }, Tokens: tok,
		Events: func(ev bootstate.Event) { *events = append(*events, ev) }}
	return b, (&HTTPServer{Boot: b}).Handler(), tok, events
}

// publishedStore is an image store holding one published generation of img
// whose files each hold "x".
func publishedStore(t *testing.T, img string) (*image.Store, *image.Manifest) {
	t.Helper()
	st, err := image.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, name := range image.BootFiles {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, []byte("x"), 0o644)
		files[name] = p
	}
	m, err := st.Import(img, files, "test")
	if err != nil || st.Publish(img, m.ID) != nil {
		t.Fatal(err)
	}
	return st, m
}

// TestNoCloudCmdline: a node with user_data or vendor_data gets its seed URL
// (with its token) on the command line; a node without gets none.
func TestNoCloudCmdline(t *testing.T) {
	tok, _ := NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	for _, tc := range []struct {
		node inventory.Node
		want bool
	}{
		{inventory.Node{Name: "n1", UserData: "#cloud-config\n"}, true},
		{inventory.Node{Name: "n2", VendorData: "#cloud-config\n"}, true},
		{inventory.Node{Name: "n3"}, false},
	} {
		p := BootParams{Node: &tc.node, BaseURL: "http://10.0.0.1:8080", Token: tok.Token(tc.node.Name), Generation: "g1", Image: "c",
			RootfsURL: "http://10.0.0.1:8080/images/c/g1/rootfs.squashfs", CheckinURL: "http://10.0.0.1:8080/checkin"}
		line := KernelCmdline(p)
		word := "netbootui.nocloud=" + NoCloudURL(p.BaseURL, tc.node.Name, p.Token)
		if strings.Contains(line, word) != tc.want || (!tc.want && strings.Contains(line, "nocloud")) {
			t.Errorf("%s: %s", tc.node.Name, line)
		}
	}
}
