package daemon_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
)

// testInventory has two groups and five nodes; n[01-03] is a range.
const testInventory = `# test cluster
images:
  compute:
    description: test image
    kernel_args: "quiet"
groups:
  compute:
    image: compute
    kernel_args: "console=ttyS0"
  legacy:
    image: compute
    loader: pxelinux
nodes:
  # three nodes from one entry
  - name: n[01-03]
    group: compute
    nics:
      - mac: "52:54:00:00:00:01"
        boot: true
  - name: px1
    group: legacy
    nics:
      - mac: "52:54:00:00:01:01"
  - name: st1
    group: compute
    ip: 127.0.0.9
    nics:
      - mac: "52:54:00:00:02:01"
`

type testEnv struct {
	t     *testing.T
	dir   string
	inv   string
	d     *Daemon
	env   *daemontest.Env
	base  string // http://127.0.0.1:PORT
	gen   string
	files map[string][]byte
}

// startDaemon runs a daemon on loopback with a published generation of image
// "compute" whose files are small random blobs.
func startDaemon(t *testing.T) *testEnv {
	t.Helper()
	dir := t.TempDir()
	e := &testEnv{t: t, dir: dir, inv: filepath.Join(dir, "nodes.yaml"), files: map[string][]byte{}}
	if err := os.WriteFile(e.inv, []byte(testInventory), 0o644); err != nil {
		t.Fatal(err)
	}
	src := map[string]string{}
	for i, name := range image.BootFiles {
		b := bytes.Repeat([]byte{byte('a' + i)}, 64<<10+i*1000)
		if name == image.FileRootfs {
			b = bytes.Repeat([]byte("rootfs-"), 3<<20/7) // ~3 MiB: several progress events
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		src[name] = p
		e.files[name] = b
	}
	e.start(src)
	return e
}

func (e *testEnv) start(src map[string]string) {
	e.env = daemontest.Start(e.t, daemontest.Options{Dir: e.dir,
		Config: Config{TFTPListen: "127.0.0.1:0", StallTimeout: time.Minute, ReloadInterval: 50 * time.Millisecond},
		Before: func(d *Daemon) error {
			if src == nil {
				e.gen, _ = d.Images().Current("compute")
				return nil
			}
			m, err := d.ImportImage(ImportRequest{Image: "compute", Kernel: src[image.FileKernel], Initrd: src[image.FileInitrd], Rootfs: src[image.FileRootfs], Publish: true})
			if err != nil {
				return err
			}
			e.gen = m.ID
			return nil
		}})
	e.d = e.env.D
	e.base = e.env.HTTPBase()
}

// stop stops the daemon (the test's cleanup would otherwise).
func (e *testEnv) stop() {
	if err := e.env.Stop(); err != nil {
		e.t.Errorf("Run: %v", err)
	}
}

func (e *testEnv) get(path string) (int, []byte) {
	e.t.Helper()
	resp, err := http.Get(e.base + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (e *testEnv) state(node string) bootstate.NodeState {
	st, _ := e.d.NodeState(node)
	return st
}

func TestHTTPBootFlow(t *testing.T) {
	e := startDaemon(t)
	code, script := e.get("/boot/52:54:00:00:00:02.ipxe")
	if code != 200 {
		t.Fatalf("script: %d %s", code, script)
	}
	s := string(script)
	for _, want := range []string{"#!ipxe", "/images/compute/" + e.gen + "/vmlinuz?node=n02", "netbootui.node=n02",
		"netbootui.token=" + e.d.Token("n02"), "console=ttyS0", "quiet", "root=live:" + e.base + "/images/compute/" + e.gen + "/rootfs.squashfs"} {
		if !strings.Contains(s, want) {
			t.Errorf("script lacks %q:\n%s", want, s)
		}
	}
	// Asked for by MAC: served, a claim (an unproven config mark), the
	// stage unmoved; the fetches with n02's key below prove it.
	if st := e.state("n02"); st.Stage != bootstate.StageUnknown || len(st.Timeline) != 1 || !st.Timeline[0].Unproven || st.Timeline[0].Stage != bootstate.StageConfig {
		t.Fatalf("after script: stage %q, timeline %+v", st.Stage, st.Timeline)
	}
	for _, f := range image.BootFiles {
		code, body := e.get("/images/compute/" + e.gen + "/" + f + "?node=n02&auth=" + e.d.FetchKey("n02"))
		if code != 200 || !bytes.Equal(body, e.files[f]) {
			t.Fatalf("%s: code %d, %d bytes (want %d)", f, code, len(body), len(e.files[f]))
		}
	}
	st := e.state("n02")
	if st.Stage != bootstate.StageRootfs || st.Bytes != int64(len(e.files[image.FileRootfs])) || st.Total != st.Bytes {
		t.Fatalf("after rootfs: %+v", st)
	}
	// A check-in with a wrong token changes nothing.
	form := url.Values{"node": {"n02"}, "token": {"0000"}, "generation": {e.gen}, "uptime": {"12.5"}, "overlay_bytes": {"0"},
		"boot_id": {"5d1c0e6a-0b7e-4a57-9f0a-3c2b1d4e5f60"}, "seq": {"1"}}
	resp, err := http.PostForm(e.base+"/checkin", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bad token: status %d", resp.StatusCode)
	}
	if st := e.state("n02"); st.Stage != bootstate.StageRootfs {
		t.Fatalf("bad token moved the node to %q", st.Stage)
	}
	// n01's token does not work for n02.
	form.Set("token", e.d.Token("n01"))
	resp, _ = http.PostForm(e.base+"/checkin", form)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("another node's token: status %d", resp.StatusCode)
	}
	form.Set("token", e.d.Token("n02"))
	resp, _ = http.PostForm(e.base+"/checkin", form)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("good check-in: %d", resp.StatusCode)
	}
	st = e.state("n02")
	if st.Stage != bootstate.StageBooted || st.Generation != e.gen || st.Uptime != 13*time.Second {
		t.Fatalf("after check-in: %+v", st)
	}
	var stages []bootstate.Stage
	for _, m := range st.Timeline {
		stages = append(stages, m.Stage)
	}
	want := []bootstate.Stage{bootstate.StageConfig, bootstate.StageKernel, bootstate.StageInitrd, bootstate.StageRootfs, bootstate.StageBooted}
	if fmt.Sprint(stages) != fmt.Sprint(want) {
		t.Fatalf("timeline %v, want %v", stages, want)
	}
	v, err := e.d.Node("n02")
	if err != nil || v.Dirty || v.Assigned != e.gen {
		t.Fatalf("view: %+v %v", v, err)
	}
	// The refused check-ins are in the history, without the token.
	var denied int
	for _, ev := range e.d.History("n02", 100) {
		if ev.Kind == bootstate.KindDenied {
			denied++
		}
		if strings.Contains(fmt.Sprintf("%+v", ev), e.d.Token("n01")) {
			t.Fatalf("event leaks a token: %+v", ev)
		}
	}
	if denied != 2 {
		t.Fatalf("denied events = %d, want 2", denied)
	}
	// Metrics are served and count the check-ins.
	_, metrics := e.get("/metrics")
	if !strings.Contains(string(metrics), `netbootui_checkins_total{result="ok"} 1`) ||
		!strings.Contains(string(metrics), `netbootui_nodes{stage="booted"} 1`) {
		t.Fatalf("metrics:\n%s", metrics)
	}
}

func TestUnknownMACAndBadRequests(t *testing.T) {
	e := startDaemon(t)
	code, body := e.get("/boot/aa-bb-cc-dd-ee-ff.ipxe")
	if code != 200 || !strings.Contains(string(body), "aa:bb:cc:dd:ee:ff") || !strings.HasPrefix(string(body), "#!ipxe") {
		t.Fatalf("unknown MAC: %d %s", code, body)
	}
	found := false
	for _, ev := range e.d.History("", 50) {
		if ev.Kind == bootstate.KindUnknown && ev.MAC == "aa:bb:cc:dd:ee:ff" {
			found = true
		}
	}
	if !found {
		t.Fatal("no unknown-node event")
	}
	if code, _ := e.get("/boot/not-a-mac.ipxe"); code != 400 {
		t.Fatalf("bad MAC: %d", code)
	}
	if code, _ := e.get("/images/compute/0123456789abcdef/vmlinuz?node=n01&auth=" + e.d.FetchKey("n01")); code != 404 {
		t.Fatalf("missing generation: %d", code)
	}
	if st := e.state("n01"); st.Stage != bootstate.StageFailed || !strings.Contains(st.Error, "404") {
		t.Fatalf("404 did not fail the node: %+v", st)
	}
}

func TestRangeRequests(t *testing.T) {
	e := startDaemon(t)
	whole := e.files[image.FileRootfs]
	path := e.base + "/images/compute/" + e.gen + "/rootfs.squashfs"
	cases := []struct {
		rng       string
		code      int
		from, end int // expected body whole[from:end]
	}{
		{"bytes=0-9", 206, 0, 10},
		{"bytes=100-", 206, 100, len(whole)},
		{"bytes=-5", 206, len(whole) - 5, len(whole)},
		{"bytes=10-5", 416, 0, 0},
		{fmt.Sprintf("bytes=%d-", len(whole)), 416, 0, 0},
		{"bytes=0-999999999", 206, 0, len(whole)},
		{"items=0-1", 416, 0, 0},
	}
	for _, c := range cases {
		req, _ := http.NewRequest("GET", path, nil)
		req.Header.Set("Range", c.rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s: status %d, want %d", c.rng, resp.StatusCode, c.code)
			continue
		}
		if c.code == 206 && !bytes.Equal(body, whole[c.from:c.end]) {
			t.Errorf("%s: wrong body (%d bytes)", c.rng, len(body))
		}
	}
	// Multi-range is answered correctly (by net/http).
	req, _ := http.NewRequest("GET", path, nil)
	req.Header.Set("Range", "bytes=0-1,4-5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("multi-range: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// HEAD sends the length and no body.
	resp, err = http.Head(path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != int64(len(whole)) {
		t.Fatalf("HEAD length %d", resp.ContentLength)
	}
}

// hostileNames are request names that must never reach a file outside the boot
// root. They are tried over HTTP here and over TFTP in tftp_e2e_test.go.
var hostileNames = []string{
	"../secret.txt", "../../secret.txt", "/etc/passwd", "..", "../", "./../secret.txt",
	"a/../../secret.txt", "a/b/../../../secret.txt", "..\\secret.txt", "..\\..\\etc\\passwd",
	"%2e%2e/secret.txt", "%2e%2e%2fsecret.txt", "..%2fsecret.txt", "%252e%252e/secret.txt",
	"secret.txt\x00.kpxe", "undionly.kpxe\x00", "\x00", "link-out", "link-out-dir/secret.txt",
	"dir-link/secret.txt", "....//secret.txt", ".../secret.txt", "..;/secret.txt",
	"C:\\secret.txt", "//etc/passwd", "/../secret.txt", "~/secret.txt", "$HOME/secret.txt",
	"\u2025/secret.txt", "..\u2215secret.txt", "%c0%ae%c0%ae/secret.txt", strings.Repeat("a/", 200) + "x",
	"fifo", "pxelinux.cfg/../../secret.txt", "images/../../secret.txt",
	"images/compute/../../../secret.txt", "pxelinux.cfg/01-../../secret",
}

const secretMarker = "TOP-SECRET-MARKER-7d1f"

// plantSecrets puts a secret beside the boot root and links out of it.
func plantSecrets(t *testing.T, e *testEnv) {
	t.Helper()
	root := e.d.Loaders().Dir
	os.WriteFile(filepath.Join(filepath.Dir(root), "secret.txt"), []byte(secretMarker), 0o644)
	os.MkdirAll(filepath.Join(e.dir, "outside"), 0o755)
	os.WriteFile(filepath.Join(e.dir, "outside", "secret.txt"), []byte(secretMarker), 0o644)
	os.Symlink(filepath.Join(filepath.Dir(root), "secret.txt"), filepath.Join(root, "link-out"))
	os.Symlink(filepath.Join(e.dir, "outside"), filepath.Join(root, "link-out-dir"))
	os.Symlink(filepath.Join(e.dir, "outside"), filepath.Join(root, "dir-link"))
}

func TestHostileHTTPNames(t *testing.T) {
	e := startDaemon(t)
	plantSecrets(t, e)
	if len(hostileNames) < 30 {
		t.Fatalf("only %d hostile names", len(hostileNames))
	}
	for _, name := range hostileNames {
		for _, prefix := range []string{"/loaders/", "/images/", "/boot/", "/"} {
			// Send the name raw, as a hostile client would, without Go's URL cleaning.
			raw := prefix + name
			req, err := http.NewRequest("GET", e.base+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = "//" + req.URL.Host + strings.ReplaceAll(raw, " ", "%20")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue // the client refused to send it: nothing served either
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte(secretMarker)) || bytes.Contains(body, []byte("root:x:0:0")) {
				t.Errorf("GET %q served a file outside the root", raw)
			}
			if resp.StatusCode == 200 && prefix == "/loaders/" {
				t.Errorf("GET %q: 200", raw)
			}
		}
	}
}

func TestInvalidReloadKeepsLastGood(t *testing.T) {
	e := startDaemon(t)
	rev := e.d.Inventory().Revision
	bad := strings.Replace(testInventory, "group: legacy", "group: nosuchgroup", 1)
	if err := os.WriteFile(e.inv, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	// An in-place write may be seen half-written first: wait for the final error.
	for !strings.Contains(e.d.InventoryStatus().ReloadErr, "nosuchgroup") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := e.d.InventoryStatus()
	if !strings.Contains(st.ReloadErr, "nodes.yaml:") || !strings.Contains(st.ReloadErr, "nosuchgroup") {
		t.Fatalf("reload error %q", st.ReloadErr)
	}
	if st.Revision != rev {
		t.Fatalf("revision moved to %s", st.Revision)
	}
	if code, body := e.get("/boot/52:54:00:00:01:01.ipxe"); code != 200 || !strings.Contains(string(body), "px1") {
		t.Fatalf("last good inventory not served: %d %s", code, body)
	}
	// A good file again is picked up.
	good := strings.Replace(testInventory, "name: px1", "name: px2", 1)
	os.WriteFile(e.inv, []byte(good), 0o644)
	for e.d.Inventory().Node("px2") == nil && time.Now().Before(deadline.Add(5*time.Second)) {
		time.Sleep(20 * time.Millisecond)
	}
	if e.d.Inventory().Node("px2") == nil || e.d.InventoryStatus().ReloadErr != "" {
		t.Fatalf("good inventory not loaded: %+v", e.d.InventoryStatus())
	}
}

// TestEditConflictsPerEntry: an edit made against a node's (or group's)
// entry revision conflicts only when that entry changed meanwhile, not when
// another node or group did; the file's comments stay.
func TestEditConflictsPerEntry(t *testing.T) {
	e := startDaemon(t)
	node := func(name string) NodeView {
		t.Helper()
		v, err := e.d.Node(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	px1, st1 := node("px1"), node("st1")
	legacy, err := e.d.Group("legacy")
	if err != nil || px1.Revision == "" || legacy.Revision == "" || px1.Revision == st1.Revision {
		t.Fatalf("entry revisions: px1 %q st1 %q legacy %q (%v)", px1.Revision, st1.Revision, legacy.Revision, err)
	}
	// someone else edits st1 and group compute: px1 (group legacy) is not touched
	if _, err := e.d.EditNode("st1", Edit{Set: map[string]any{"kernel_args": "quiet"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.EditGroup("compute", Edit{Set: map[string]any{"kernel_args": "console=ttyS1"}}); err != nil {
		t.Fatal(err)
	}
	stale := px1.Revision
	if got := node("px1").Revision; got != stale {
		t.Fatalf("px1's revision moved with other entries: %s -> %s", stale, got)
	}
	if _, err := e.d.PreviewEdit(EditPreview{Node: "px1", Edit: Edit{BaseEntry: stale, Set: map[string]any{"kernel_args": "a=1"}}}); err != nil {
		t.Fatalf("preview against px1's unchanged entry: %v", err)
	}
	if _, err := e.d.EditNode("px1", Edit{BaseRevision: "stale-file-revision", BaseEntry: stale, Set: map[string]any{"kernel_args": "a=1"}}); err != nil {
		t.Fatalf("edit of px1 refused after other entries changed: %v", err)
	}
	if _, err := e.d.EditGroup("legacy", Edit{BaseEntry: legacy.Revision, Set: map[string]any{"kernel_args": "b=2"}}); err != nil {
		t.Fatalf("edit of group legacy refused after others changed: %v", err)
	}
	// px1 itself changed since stale was read: a conflict, nothing written
	before, _ := os.ReadFile(e.inv)
	if _, err := e.d.EditNode("px1", Edit{BaseEntry: stale, Set: map[string]any{"kernel_args": "c=3"}}); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("edit against px1's old entry: %v, want a conflict", err)
	}
	if _, err := e.d.PreviewEdit(EditPreview{Node: "px1", Edit: Edit{BaseEntry: stale, Set: map[string]any{"kernel_args": "c=3"}}}); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("preview against px1's old entry: %v, want a conflict", err)
	}
	if _, err := e.d.EditGroup("legacy", Edit{BaseEntry: legacy.Revision, Set: map[string]any{"kernel_args": "d=4"}}); !errors.Is(err, inventory.ErrConflict) {
		t.Fatalf("edit against group legacy's old entry: %v, want a conflict", err)
	}
	after, _ := os.ReadFile(e.inv)
	if !bytes.Equal(before, after) || !strings.Contains(string(after), "# three nodes from one entry") {
		t.Fatalf("a conflicting edit changed the file:\n%s", after)
	}
}

func TestConcurrentEditsConflict(t *testing.T) {
	e := startDaemon(t)
	base := e.d.Inventory().Revision
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.d.EditNode("px1", Edit{BaseRevision: base, Set: map[string]any{"kernel_args": fmt.Sprintf("edit=%d", i)}})
		}()
	}
	wg.Wait()
	var ok, conflict int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, inventory.ErrConflict):
			conflict++
		default:
			t.Fatalf("edit: %v", err)
		}
	}
	if ok != 1 || conflict != 1 {
		t.Fatalf("ok=%d conflict=%d, want 1 and 1 (%v)", ok, conflict, errs)
	}
	b, _ := os.ReadFile(e.inv)
	if !strings.Contains(string(b), "# three nodes from one entry") || !strings.Contains(string(b), "edit=") {
		t.Fatalf("file after edit:\n%s", b)
	}
	if n := e.d.Inventory().Node("px1"); !strings.Contains(n.KernelArgs, "edit=") {
		t.Fatalf("edit not in force: %q", n.KernelArgs)
	}
	// An invalid override is refused and changes nothing.
	before, _ := os.ReadFile(e.inv)
	if _, err := e.d.EditNode("px1", Edit{Set: map[string]any{"boot_override.ipxe": "#!ipxe\nkernl http://x\n"}}); err == nil {
		t.Fatal("invalid override accepted")
	}
	after, _ := os.ReadFile(e.inv)
	if !bytes.Equal(before, after) {
		t.Fatal("refused edit changed the file")
	}
}

func TestStatePersistsAcrossRestart(t *testing.T) {
	e := startDaemon(t)
	e.get("/boot/52:54:00:00:00:01.ipxe")
	e.get("/images/compute/" + e.gen + "/vmlinuz?node=n01&auth=" + e.d.FetchKey("n01"))
	e.stop()
	e.start(nil)
	st := e.state("n01")
	if st.Stage != bootstate.StageKernel || len(e.d.History("n01", 10)) < 2 {
		t.Fatalf("after restart: %+v", st)
	}
}

// TestMalformedCorpusKeepsServing replaces a running daemon's inventory with
// every malformed inventory of the inventory package's corpus in turn: each
// reload fails with that file's golden error at its FILE:LINE:COL, and the
// daemon keeps booting nodes from the last good inventory.
func TestMalformedCorpusKeepsServing(t *testing.T) {
	e := startDaemon(t)
	good := e.d.Inventory().Revision
	bad, err := filepath.Glob("../inventory/testdata/bad/*.yaml")
	if err != nil || len(bad) < 15 {
		t.Fatalf("corpus: %d files, %v", len(bad), err)
	}
	for _, f := range bad {
		data, _ := os.ReadFile(f)
		golden, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
		if err != nil {
			t.Fatal(err)
		}
		// The golden error names testdata/bad/X.yaml; here the file is e.inv.
		want := strings.ReplaceAll(strings.TrimSpace(string(golden)), "testdata/bad/"+filepath.Base(f), e.inv)
		// The goldens are written against an IPMI-only registry (the
		// inventory's tests); the daemon knows every built-in backend.
		want = strings.ReplaceAll(want, "(protocols: ipmi)", "(protocols: ipmi, redfish)")
		want = strings.ReplaceAll(want, "ipmi, cipher_suites)", "ipmi, redfish, cipher_suites)")
		tmp := e.inv + ".new"
		os.WriteFile(tmp, data, 0o644)
		if err := os.Rename(tmp, e.inv); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Reload(); err == nil {
			t.Fatalf("%s: reload accepted a malformed inventory", f)
		}
		st := e.d.InventoryStatus()
		if first, _, _ := strings.Cut(st.ReloadErr, "\n"); first != want {
			t.Errorf("%s:\n got  %q\n want %q", filepath.Base(f), first, want)
		}
		if st.Revision != good {
			t.Fatalf("%s: revision changed to %s", f, st.Revision)
		}
		if code, body := e.get("/boot/52:54:00:00:01:01.ipxe"); code != 200 || !strings.Contains(string(body), "netbootui.node=px1") {
			t.Fatalf("%s: not serving the last good inventory: %d %s", f, code, body)
		}
	}
}
