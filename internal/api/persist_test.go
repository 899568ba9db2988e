package api

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// TestPersistViewAndWipe: a viewer reads what a node of an nfs group keeps
// under its persisted paths; an operator may not wipe them (403, audited);
// an admin's wipe empties them, keeps the directories, answers the view
// read again and is audited under the admin's name; a node that persists
// nothing says why and is refused a wipe; an unknown node is not found.
func TestPersistViewAndWipe(t *testing.T) {
	dir := t.TempDir()
	var srv *Server
	e := daemontest.Start(t, daemontest.Options{Dir: dir, Inventory: `settings:
  nfs: {server: 10.0.2.2, export: /netbootui, dir: ` + filepath.Join(dir, "nfs") + `}
images:
  live-nfs: {root: nfs}
  live: {}
groups:
  lab: {image: live-nfs, persist: [/var/log, /var/lib/keys]}
nodes:
  - {name: p1, group: lab, ip: 127.0.0.10, nics: [{mac: "52:54:00:cc:00:01"}]}
  - {name: plain, image: live, nics: [{mac: "52:54:00:cc:00:02"}]}
`, API: func(d *daemon.Daemon) daemontest.APIServer { srv = &Server{D: d}; return srv }})
	d := e.D
	site := pxe.NFSSite(d.Inventory().Settings.NFS)
	logDir := filepath.Join(nfs.NodeDirPath(site, "p1"), "var/log")
	if err := os.WriteFile(filepath.Join(logDir, "syslog"), make([]byte, 300), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	viewer, stopV := srv.InProcessClient("persist viewer", apitype.RoleViewer)
	defer stopV()
	v, err := viewer.Persist(ctx, "p1")
	if err != nil || v.Export != "10.0.2.2:/netbootui/nodes/p1" || len(v.Paths) != 2 ||
		v.Paths[0] != (apitype.PersistPath{Path: "/var/log", Bytes: 300, Files: 1}) || v.Paths[1] != (apitype.PersistPath{Path: "/var/lib/keys"}) {
		t.Fatalf("persist view of p1: %+v, %v", v, err)
	}
	if v, err := viewer.Persist(ctx, "plain"); err != nil || v.Note == "" || len(v.Paths) != 0 {
		t.Fatalf("persist view of a node that persists nothing: %+v, %v", v, err)
	}
	var apiErr *apitype.Error
	if _, err := viewer.Persist(ctx, "nosuch"); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeNotFound {
		t.Fatalf("persist view of an unknown node: %v", err)
	}

	op, stopO := srv.InProcessClient("persist operator", apitype.RoleOperator)
	defer stopO()
	if _, err := op.WipePersist(ctx, "p1"); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeForbidden {
		t.Fatalf("an operator's wipe: %v", err)
	}
	if _, err := os.Stat(filepath.Join(logDir, "syslog")); err != nil {
		t.Fatalf("a refused wipe removed a file: %v", err)
	}

	const who = "persist admin"
	adm, stopA := srv.InProcessClient(who, apitype.RoleAdmin)
	defer stopA()
	if _, err := adm.WipePersist(ctx, "plain"); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeInvalid {
		t.Fatalf("wipe of a node that persists nothing: %v", err)
	}
	v, err = adm.WipePersist(ctx, "p1")
	if err != nil || v.Removed != 1 || len(v.Paths) != 2 || v.Paths[0].Files != 0 {
		t.Fatalf("admin's wipe: %+v, %v", v, err)
	}
	if ents, err := os.ReadDir(logDir); err != nil || len(ents) != 0 {
		t.Fatalf("/var/log of p1 after the wipe: %d entries, %v", len(ents), err)
	}
	var audited []string
	for _, en := range d.Audit(0) {
		audited = append(audited, en.Who+" | "+en.Action+" | "+en.Target+" | "+en.Result)
	}
	all := strings.Join(audited, "\n")
	for _, want := range []string{
		"persist operator | refused persist wipe | /v1/nodes/p1/persist/wipe | forbidden",
		who + " | persist wipe | p1 | ok: 1 entries removed",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no audit entry %q in:\n%s", want, all)
		}
	}
}
