package backup_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/backup"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/rollout"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

const (
	nodeMAC  = "52:54:00:bb:00:01"
	password = "backup-lab"
)

const labInventory = `images:
  compute: {}
groups:
  g:
    image: compute
nodes:
  - name: b1
    group: g
    nics: [{mac: "` + nodeMAC + `"}]
`

// bootSim powers a simulated machine with nodeMAC on through its BMC and
// waits until it has booted from the daemon at httpAddr and checked in.
func bootSim(t *testing.T, httpAddr string) {
	t.Helper()
	n, err := simnode.Start(simnode.Options{MAC: nodeMAC, Password: password, BaseURL: "http://" + httpAddr,
		PXEFirst: true, POST: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	pool := ipmi.New(ipmi.Options{CallTimeout: 3 * time.Second})
	defer pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := pool.Power(ctx, power.Target{Node: nodeMAC, Protocol: "ipmi", Host: "127.0.0.1", Port: n.Port(), User: "admin",
		Password: power.NewSecret(password)}, power.OpOn); err != nil {
		t.Fatal(err)
	}
	if !simnode.WaitFor(30*time.Second, func() bool { return n.Stats().Checkins > 0 }) {
		t.Fatalf("the simulated node did not boot: %+v", n.Stats())
	}
}

func waitBooted(t *testing.T, d *daemon.Daemon, gen string) apitype.NodeView {
	t.Helper()
	var v apitype.NodeView
	ok := simnode.WaitFor(10*time.Second, func() bool {
		var err error
		v, err = d.Node("b1")
		return err == nil && v.State.Stage == apitype.StageBooted && v.State.Generation == gen
	})
	if !ok {
		t.Fatalf("b1: stage %s generation %q, want booted %s", v.State.Stage, v.State.Generation, gen)
	}
	return v
}

// TestBackupRestoreBoot backs up a running daemon through its API after a
// simulated node booted and an admin edited it, restores the file into an
// empty folder, starts a daemon there and boots the node from it: the
// generation, the boot state, the edit, the audit log and the token key
// all came across.
func TestBackupRestoreBoot(t *testing.T) {
	apiOf := func(d *daemon.Daemon) daemontest.APIServer { return &api.Server{D: d} }
	e := daemontest.Start(t, daemontest.Options{Inventory: labInventory, API: apiOf,
		Config: daemon.Config{ReloadInterval: 50 * time.Millisecond}})
	src := map[string]string{}
	for i, name := range image.BootFiles {
		p := filepath.Join(e.Dir, name)
		os.WriteFile(p, bytes.Repeat([]byte{byte('a' + i)}, 64<<10), 0o644)
		src[name] = p
	}
	m, err := e.D.ImportImage(daemon.ImportRequest{Image: "compute", Kernel: src[image.FileKernel], Initrd: src[image.FileInitrd],
		Rootfs: src[image.FileRootfs], Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	bootSim(t, e.D.HTTPAddr().String())
	waitBooted(t, e.D, m.ID)
	ctx := context.Background()
	if _, err := e.Client.EditNode(ctx, "b1", apitype.Edit{Set: map[string]any{"kernel_args": "restored=yes"}}); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(t.TempDir(), "site.backup")
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Backup(ctx, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	oldKey, _ := os.ReadFile(filepath.Join(e.DataDir, local.TokenKey))
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	oldSeen := checkinOf(t, e.DataDir, "b1")
	if oldSeen.BootID == "" {
		t.Fatal("the daemon kept no check-in record of b1")
	}

	dir := t.TempDir()
	sum, err := backup.Restore(file, filepath.Join(dir, "data"), filepath.Join(dir, "nodes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Nodes != 1 || sum.Checkins != 1 || sum.Images != 1 || sum.Generations != 1 || sum.Audit < 1 || len(sum.Documents) != 0 {
		t.Errorf("summary %+v", sum)
	}
	newKey, _ := os.ReadFile(filepath.Join(dir, "data", local.TokenKey))
	if st, err := os.Stat(filepath.Join(dir, "data", local.TokenKey)); err != nil || st.Mode().Perm() != 0o600 || !bytes.Equal(oldKey, newKey) || len(newKey) == 0 {
		t.Fatalf("token key: %v, mode %v, same as the backed-up daemon's: %v", err, st.Mode(), bytes.Equal(oldKey, newKey))
	}

	if seen := checkinOf(t, filepath.Join(dir, "data"), "b1"); fmt.Sprint(seen) != fmt.Sprint(oldSeen) {
		t.Fatalf("restored check-in record %+v, want %+v", seen, oldSeen)
	}

	e2 := daemontest.Start(t, daemontest.Options{Dir: dir, API: apiOf, Config: daemon.Config{ReloadInterval: 50 * time.Millisecond}})
	v := waitBooted(t, e2.D, m.ID) // the boot state came across
	if !strings.Contains(v.KernelArgs, "restored=yes") {
		t.Errorf("b1's kernel args %q: the edit was not restored", v.KernelArgs)
	}
	var edits int
	for _, a := range e2.D.Audit(0) {
		if a.Action == "edit node b1" && strings.Contains(a.Result, "ok") {
			edits++
		}
	}
	if edits != 1 {
		t.Errorf("restored audit log has %d edits of b1: %+v", edits, e2.D.Audit(0))
	}
	if cur, err := e2.D.Images().Current("compute"); err != nil || cur != m.ID {
		t.Fatalf("restored current generation %q (%v), want %s", cur, err, m.ID)
	}
	if _, err := e2.D.Images().CheckFiles("compute", m.ID); err != nil {
		t.Fatal(err)
	}
	// The node boots from the restored daemon.
	bootSim(t, e2.D.HTTPAddr().String())
	waitBooted(t, e2.D, m.ID)
}

// checkinOf reads node's check-in replay record in a data folder no
// daemon holds.
func checkinOf(t *testing.T, dataDir, node string) state.CheckinSeen {
	t.Helper()
	st, err := local.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	seen, _, err := st.Checkins().Get(node)
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

// smallBackup is a backup written straight from a local store and an image
// store: one node's boot state, two audit entries, a rollouts document, a
// published generation and the inventory.
func smallBackup(t testing.TB) []byte {
	t.Helper()
	dir := t.TempDir()
	st, err := local.Open(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now().UTC()
	if err := st.BootStates().Write(&bootstate.Batch{States: []bootstate.NodeState{{Node: "b1", Stage: bootstate.StageBooted, Power: "on"}},
		Events: []bootstate.BatchEvent{{Event: bootstate.Event{Seq: 1, Time: now, Node: "b1", Kind: bootstate.KindCheckin}}}, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"edit node", "image publish"} {
		if err := st.Audit().Record(audit.Entry{Who: "uid 0 (root)", Action: a, Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Documents().Put(rollout.DocumentName, []byte(`{"version":1}`), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Checkins().Put("b1", state.CheckinSeen{BootID: "boot-1", Seq: 7, Left: []string{"boot-0"}}, 0); err != nil {
		t.Fatal(err)
	}
	imgs, err := image.OpenStore(filepath.Join(dir, "data", "images"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for i, name := range image.BootFiles {
		p := filepath.Join(dir, name)
		os.WriteFile(p, bytes.Repeat([]byte{byte('x' + i)}, 1500), 0o644)
		files[name] = p
	}
	m, err := imgs.Import("compute", files, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := imgs.Publish("compute", m.ID); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(inv, []byte(labInventory), 0o644)
	var b bytes.Buffer
	if err := backup.Write(&b, backup.Source{State: st, Images: imgs, Inventory: inv, Documents: []string{rollout.DocumentName}}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// entries reads a tar archive's files, or nil when it cannot.
func entries(b []byte) map[string]string {
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			return nil
		}
		c, err := io.ReadAll(tr)
		if err != nil {
			return nil
		}
		out[h.Name] = string(c)
	}
}

// untouched checks that a refused restore left no trace: the data folder
// and inventory absent (or the data folder as it was) and no staging
// folder beside it.
func untouched(t *testing.T, parent string) {
	t.Helper()
	ents, _ := os.ReadDir(parent)
	for _, e := range ents {
		if e.Name() != "backup" && e.Name() != "data" {
			t.Errorf("a refused restore left %s", e.Name())
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(parent, "data")); len(ents) > 0 {
		t.Errorf("a refused restore wrote into the data folder: %v", ents)
	}
}

func TestRestoreRefusesDamage(t *testing.T) {
	good := smallBackup(t)
	if sum, err := backup.Verify(bytes.NewReader(good)); err != nil || sum.Nodes != 1 || sum.Checkins != 1 || sum.Audit != 2 || sum.Generations != 1 || len(sum.Documents) != 1 {
		t.Fatalf("the good backup: %+v, %v", sum, err)
	}
	restore := func(t *testing.T, b []byte) error {
		parent := t.TempDir()
		file := filepath.Join(parent, "backup")
		os.WriteFile(file, b, 0o600)
		_, err := backup.Restore(file, filepath.Join(parent, "data"), filepath.Join(parent, "nodes.yaml"))
		if err != nil {
			untouched(t, parent)
		}
		return err
	}
	if err := restore(t, good); err != nil {
		t.Fatal(err)
	}
	cut := func(n int) []byte { return bytes.Clone(good[:n]) }
	withIndexFormat := bytes.Replace(good, []byte(`{"format":1,"entries"`), []byte(`{"format":2,"entries"`), 1)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"not tar", []byte("hello, this is not a backup\n"), "truncated or damaged"},
		{"cut in the first entry", cut(700), "truncated"},
		{"cut in the middle", cut(len(good) / 2), "truncated"},
		{"cut before the index", cut(bytes.LastIndex(good, []byte("index.json")) - 10), "truncated"},
		{"cut in the end blocks", cut(len(good) - 1), "truncated"},
		{"another format", withIndexFormat, "format 2"},
		{"an entry after the index", append(cut(len(good)-1024), good[:1024]...), "follow the index"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := backup.Verify(bytes.NewReader(tc.b))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify: %v, want %q", err, tc.want)
			}
			if err := restore(t, tc.b); err == nil || !strings.Contains(err.Error(), "nothing was restored") {
				t.Fatalf("Restore: %v", err)
			}
		})
	}

	// A flipped byte anywhere is refused, unless it lies in tar padding,
	// where it changes no entry.
	want := entries(good)
	refused := 0
	for i := 0; i < len(good); i += 37 {
		b := bytes.Clone(good)
		b[i] ^= 0x20
		if _, err := backup.Verify(bytes.NewReader(b)); err != nil {
			refused++
			continue
		}
		got := entries(b)
		if len(got) != len(want) {
			t.Fatalf("byte %d flipped: accepted with %d entries, want %d", i, len(got), len(want))
		}
		for name, c := range want {
			if got[name] != c {
				t.Fatalf("byte %d flipped: accepted with %s changed", i, name)
			}
		}
	}
	if refused < len(good)/37/4 {
		t.Fatalf("only %d of %d flips refused", refused, len(good)/37)
	}
	t.Run("a damaged file restores nothing", func(t *testing.T) {
		b := bytes.Clone(good)
		i := bytes.Index(b, bytes.Repeat([]byte{'y'}, 100)) // the initrd's content
		b[i+50] = 'z'
		if err := restore(t, b); err == nil || !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("Restore: %v", err)
		}
	})
}

func TestRestoreRefusesUsedPaths(t *testing.T) {
	good := smallBackup(t)
	parent := t.TempDir()
	file := filepath.Join(parent, "backup")
	os.WriteFile(file, good, 0o600)
	data := filepath.Join(parent, "data")
	os.Mkdir(data, 0o750)
	os.WriteFile(filepath.Join(data, "state.db"), []byte("live"), 0o600)
	if _, err := backup.Restore(file, data, filepath.Join(parent, "nodes.yaml")); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("non-empty data folder: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "state.db")); string(b) != "live" {
		t.Fatal("the data folder was changed")
	}
	os.Remove(filepath.Join(data, "state.db"))
	inv := filepath.Join(parent, "nodes.yaml")
	os.WriteFile(inv, []byte("mine"), 0o644)
	if _, err := backup.Restore(file, data, inv); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("existing inventory: %v", err)
	}
	if b, _ := os.ReadFile(inv); string(b) != "mine" {
		t.Fatal("the inventory was changed")
	}
	os.Remove(inv)
	// An empty data folder is filled, keeping its mode.
	if _, err := backup.Restore(file, data, inv); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(data); st.Mode().Perm() != 0o750 {
		t.Errorf("data folder mode %v, want 0750", st.Mode().Perm())
	}
	st, err := local.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if doc, rev, err := st.Documents().Get(rollout.DocumentName); err != nil || rev == 0 || string(doc) != `{"version":1}` {
		t.Errorf("rollouts: %q %d %v", doc, rev, err)
	}
	if a := st.Audit().Recent(0); len(a) != 2 || a[0].Action != "edit node" || a[0].Time.IsZero() {
		t.Errorf("audit: %+v", a)
	}
	snap, err := st.BootStates().Load(100)
	if err != nil || len(snap.States) != 1 || snap.States[0].Stage != bootstate.StageBooted || len(snap.History["b1"]) != 1 || snap.Seq != 1 {
		t.Errorf("boot states: %+v %v", snap, err)
	}
	if seen, rev, err := st.Checkins().Get("b1"); err != nil || rev == 0 || seen.BootID != "boot-1" || seen.Seq != 7 || len(seen.Left) != 1 {
		t.Errorf("check-ins: %+v %d %v", seen, rev, err)
	}
}

// FuzzVerify: no input makes Verify panic, and what it accepts has an
// index that matches.
func FuzzVerify(f *testing.F) {
	good := smallBackup(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("not a backup"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sum, err := backup.Verify(bytes.NewReader(b))
		if err == nil && (sum == nil || sum.Header.Format != backup.Format) {
			t.Fatalf("accepted %+v", sum)
		}
	})
}
