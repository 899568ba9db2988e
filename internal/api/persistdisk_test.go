package api

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/backup"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
)

// TestPersistDiskViewAndWipe: a node of a RAM-root group with persist_disk
// shows its disk, its paths (held on the node) and what its check-ins
// say; an operator may not wipe it; an admin's wipe records a new wipe id
// (audited), rendered on the node's command line from then on and shown
// pending until the node's check-in says it applied it; the wipe survives
// a restart of the daemon (the state document) and is in a backup.
func TestPersistDiskViewAndWipe(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"k", "i", "r"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	var srv *Server
	opts := daemontest.Options{Dir: dir, Inventory: `images:
  live: {}
groups:
  lab: {image: live, persist: [/var/log], persist_disk: {label: SCRATCH}}
nodes:
  - {name: d1, group: lab, nics: [{mac: "52:54:00:cd:00:01"}]}
`, API: func(d *daemon.Daemon) daemontest.APIServer { srv = &Server{D: d}; return srv },
		Before: func(d *daemon.Daemon) error {
			_, err := d.ImportImage(daemon.ImportRequest{Image: "live", Kernel: filepath.Join(dir, "k"),
				Initrd: filepath.Join(dir, "i"), Rootfs: filepath.Join(dir, "r"), Publish: true})
			return err
		}}
	e := daemontest.Start(t, opts)
	d := e.D
	ctx := context.Background()
	viewer, stopV := srv.InProcessClient("persist viewer", apitype.RoleViewer)
	defer stopV()
	v, err := viewer.Persist(ctx, "d1")
	if err != nil || v.Note != "" || v.Disk == nil || *v.Disk != (apitype.PersistDisk{Label: "SCRATCH", Missing: "fail"}) ||
		len(v.Paths) != 1 || v.Paths[0] != (apitype.PersistPath{Path: "/var/log", OnNode: true}) {
		t.Fatalf("persist view of d1: %+v (disk %+v), %v", v, v.Disk, err)
	}
	entry, err := d.BootEntry("d1", "ipxe")
	if err != nil || !strings.Contains(entry, " netbootui.persist=/var/log netbootui.persist_disk=SCRATCH:fail ") || strings.Contains(entry, "persist_wipe") {
		t.Fatalf("d1's entry before a wipe: %v\n%s", err, entry)
	}

	op, stopO := srv.InProcessClient("persist operator", apitype.RoleOperator)
	defer stopO()
	var apiErr *apitype.Error
	if _, err := op.WipePersist(ctx, "d1"); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeForbidden {
		t.Fatalf("an operator's wipe: %v", err)
	}
	const who = "persist admin"
	adm, stopA := srv.InProcessClient(who, apitype.RoleAdmin)
	defer stopA()
	v, err = adm.WipePersist(ctx, "d1")
	if err != nil || v.Disk == nil || len(v.Disk.Wipe) != 16 || !v.Disk.WipePending || v.Disk.WipeBy != who || v.Disk.WipeAt.IsZero() {
		t.Fatalf("admin's wipe: %+v (disk %+v), %v", v, v.Disk, err)
	}
	first := v.Disk.Wipe
	entry, _ = d.BootEntry("d1", "ipxe")
	if !strings.Contains(entry, " netbootui.persist_wipe="+first+" ") {
		t.Fatalf("d1's entry after the wipe has no netbootui.persist_wipe=%s:\n%s", first, entry)
	}
	found := false
	for _, en := range d.Audit(0) {
		if en.Who == who && en.Action == "persist wipe" && en.Target == "d1" && strings.Contains(en.Result, "requested wipe "+first) {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit entry of the wipe: %+v", d.Audit(0))
	}

	// The node's check-in says where its paths are and which wipe its disk
	// applied: no longer pending.
	token := regexp.MustCompile(`netbootui\.token=(\S+)`).FindStringSubmatch(entry)
	if token == nil {
		t.Fatalf("no token in %s", entry)
	}
	state := "disk SCRATCH on /dev/vda, wipe " + first + " applied"
	form := url.Values{"node": {"d1"}, "token": {token[1]}, "boot_id": {"b1"}, "seq": {"1"}, "persist": {state}}
	resp, err := http.PostForm(e.HTTPBase()+"/checkin", form)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("check-in: %v %v", resp, err)
	}
	resp.Body.Close()
	v, err = viewer.Persist(ctx, "d1")
	if err != nil || v.Disk.Reported != state || v.Disk.WipePending || v.Disk.ReportedAt.IsZero() {
		t.Fatalf("view after the node's check-in: %+v, %v", v.Disk, err)
	}

	// A second wipe is a new id, pending again.
	v, err = adm.WipePersist(ctx, "d1")
	if err != nil || v.Disk.Wipe == first || !v.Disk.WipePending {
		t.Fatalf("second wipe: %+v, %v", v.Disk, err)
	}
	second := v.Disk.Wipe

	// A backup keeps the wipes.
	var buf bytes.Buffer
	if err := d.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if sum, err := backup.Verify(&buf); err != nil || !slices.Contains(sum.Documents, daemon.PersistWipesDocument) {
		t.Fatalf("backup: %+v, %v; want the %s document in it", sum, err, daemon.PersistWipesDocument)
	}

	// The wipe is in the state store: a restarted daemon renders it.
	e.Stop()
	opts.Before = nil
	e2 := daemontest.Start(t, opts)
	if entry, _ := e2.D.BootEntry("d1", "ipxe"); !strings.Contains(entry, " netbootui.persist_wipe="+second+" ") {
		t.Fatalf("after a restart, d1's entry has no netbootui.persist_wipe=%s:\n%s", second, entry)
	}
}
