package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/image/liveinit"
	"github.com/netbootui/netbootui/internal/lab"
)

// TestImageSessionsLimitsAndDecisions: the daemon holds at most
// MaxSessions undecided sessions (the next one is refused with ErrBusy,
// which the API answers 409), a decision needs a known session of that
// image and a known action, a failing command is a session with its exit
// status, and every session is audited before it runs and when decided.
func TestImageSessionsLimitsAndDecisions(t *testing.T) {
	lab.RequireTools(t, "mksquashfs", "unsquashfs", "busybox", "chroot", "mount")
	if os.Geteuid() != 0 {
		lab.RequireTools(t, "root privileges (chroot and mount need them)")
	}
	e := startDaemon(t)
	tree := filepath.Join(e.dir, "tree")
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	bb, err := os.ReadFile(liveinit.DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "bin", "busybox"), bb, 0o755)
	for _, a := range []string{"sh", "true", "false", "touch"} {
		os.Symlink("busybox", filepath.Join(tree, "bin", a))
	}
	sq := filepath.Join(e.dir, "root.sqfs")
	if b, err := exec.Command("mksquashfs", tree, sq, "-noappend", "-quiet", "-comp", "gzip").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v %s", err, b)
	}
	m, err := e.d.ImportImage(ImportRequest{Image: "compute", Kernel: filepath.Join(e.dir, image.FileKernel),
		Initrd: filepath.Join(e.dir, image.FileInitrd), Rootfs: sq, Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ids []string
	for i := range MaxSessions {
		var out bytes.Buffer
		cmd := []string{"touch", "/f" + string(rune('0'+i))}
		if i == 0 {
			cmd = []string{"false"}
		}
		v, err := e.d.ExecImage(ctx, "compute", cmd, "tester", &out)
		if err != nil {
			t.Fatalf("session %d: %v (%s)", i, err, out.String())
		}
		if v.Parent != m.ID || (i == 0) != (v.Exit == 1) || (i > 0) != (v.Diff.Added == 1) {
			t.Fatalf("session %d: %+v, diff %+v", i, v, v.Diff)
		}
		ids = append(ids, v.ID)
	}
	if _, err := e.d.ExecImage(ctx, "compute", []string{"true"}, "tester", nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("session %d: %v, want ErrBusy", MaxSessions+1, err)
	}
	if _, err := e.d.DecideSession(ctx, "compute", ids[0], apitype.SessionDecision{Action: "keep"}, "tester"); err == nil {
		t.Error("an unknown action was taken")
	}
	if _, err := e.d.DecideSession(ctx, "other", ids[0], apitype.SessionDecision{Action: apitype.SessionDiscard}, "tester"); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("a session decided under another image's name: %v", err)
	}
	// The failed command changed nothing: committing it is refused, and
	// the session is gone either way.
	if _, err := e.d.DecideSession(ctx, "compute", ids[0], apitype.SessionDecision{Action: apitype.SessionCommit}, "tester"); err == nil ||
		!strings.Contains(err.Error(), "does not differ") {
		t.Errorf("commit of an unchanged copy: %v", err)
	}
	res, err := e.d.DecideSession(ctx, "compute", ids[1], apitype.SessionDecision{Action: apitype.SessionPublish}, "tester")
	if err != nil || res.Manifest == nil || !res.Published || res.Manifest.Provenance.Parent != m.ID {
		t.Fatalf("publish: %+v, %v", res, err)
	}
	if cur, _ := e.d.Images().Current("compute"); cur != res.Manifest.ID {
		t.Errorf("current %s, want the published %s", cur, res.Manifest.ID)
	}
	if _, err := e.d.DecideSession(ctx, "compute", ids[1], apitype.SessionDecision{Action: apitype.SessionDiscard}, "tester"); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("a session decided twice: %v", err)
	}
	// Two slots are free again.
	v, err := e.d.ExecImage(ctx, "compute", []string{"true"}, "tester", nil)
	if err != nil || v.Parent != res.Manifest.ID {
		t.Fatalf("a session after two decisions: %+v, %v", v, err)
	}
	var started, decided int
	for _, a := range e.d.Audit(0) {
		switch {
		case a.Action == "image exec" && a.Result == "started":
			started++
		case strings.HasPrefix(a.Action, "image session "):
			decided++
		}
	}
	if started != MaxSessions+2 || decided != 2 { // the refused commit and the publish
		t.Errorf("audit: %d exec starts (want %d), %d decisions", started, MaxSessions+2, decided)
	}

	// An undecided session expires: discarded, its working copy gone,
	// audited.
	e.d.SetSessionTTL(200 * time.Millisecond)
	v, err = e.d.ExecImage(ctx, "compute", []string{"touch", "/late"}, "tester", nil)
	if err != nil {
		t.Fatal(err)
	}
	lab.Eventually(t, "the session's expiry", 10*time.Second, func() bool {
		_, err := e.d.Session("compute", v.ID)
		return errors.Is(err, image.ErrNotFound)
	})
	lab.Eventually(t, "the expiry's audit entry", 5*time.Second, func() bool {
		for _, a := range e.d.Audit(0) {
			if a.Action == "image session discard" && strings.HasPrefix(a.Result, "expired undecided after 200ms") {
				return true
			}
		}
		return false
	})
	ents, _ := os.ReadDir(filepath.Join(e.dir, "data", "images", "compute", "generations"))
	var work int
	for _, en := range ents {
		if strings.HasPrefix(en.Name(), ".build-session-") {
			work++
		}
	}
	if work != MaxSessions-1 { // the sessions left undecided above, not the expired one
		t.Errorf("%d working copies, want %d", work, MaxSessions-1)
	}
}
