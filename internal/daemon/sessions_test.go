package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"io"
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

// importBusyboxImage imports and publishes image: a root of the build
// host's static busybox with links for applets in /bin.
func importBusyboxImage(t *testing.T, e *testEnv, name string, applets ...string) *image.Manifest {
	t.Helper()
	tree := filepath.Join(e.dir, "tree-"+name)
	os.MkdirAll(filepath.Join(tree, "bin"), 0o755)
	bb, err := os.ReadFile(liveinit.DefaultBusybox)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tree, "bin", "busybox"), bb, 0o755)
	for _, a := range applets {
		os.Symlink("busybox", filepath.Join(tree, "bin", a))
	}
	sq := filepath.Join(e.dir, name+".sqfs")
	if b, err := exec.Command("mksquashfs", tree, sq, "-noappend", "-quiet", "-comp", "gzip").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v %s", err, b)
	}
	m, err := e.d.ImportImage(ImportRequest{Image: name, Kernel: filepath.Join(e.dir, image.FileKernel),
		Initrd: filepath.Join(e.dir, image.FileInitrd), Rootfs: sq, Publish: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

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
	m := importBusyboxImage(t, e, "compute", "sh", "true", "false", "touch")
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

// TestImageShellResize: while a session's shell runs, ResizeSession gives
// its pty a new size, which `stty size` in the shell then says; sizes out
// of range, another image's name, an unknown session and a session whose
// shell has exited are refused.
func TestImageShellResize(t *testing.T) {
	lab.RequireTools(t, "mksquashfs", "unsquashfs", "busybox", "chroot", "mount")
	if os.Geteuid() != 0 {
		lab.RequireTools(t, "root privileges (chroot and mount need them)")
	}
	e := startDaemon(t)
	importBusyboxImage(t, e, "compute", "sh", "stty")
	inR, inW := io.Pipe()
	defer inW.Close()
	var out lab.Buffer
	ids := make(chan string, 1)
	type result struct {
		v   *apitype.SessionView
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := e.d.ShellImage(context.Background(), "compute", "tester", "dumb", [2]uint16{24, 80}, inR, &out, func(id string) { ids <- id })
		done <- result{v, err}
	}()
	var id string
	select {
	case id = <-ids:
	case r := <-done:
		t.Fatalf("the shell did not start: %v", r.err)
	}
	for _, tc := range []struct {
		name, image, id string
		rows, cols      int
		notFound        bool
	}{
		{"no rows", "compute", id, 0, 80, false},
		{"too wide", "compute", id, 24, 1001, false},
		{"another image", "other", id, 30, 100, true},
		{"unknown session", "compute", "nosuchsession", 30, 100, true},
	} {
		if err := e.d.ResizeSession(tc.image, tc.id, tc.rows, tc.cols); err == nil || errors.Is(err, image.ErrNotFound) != tc.notFound {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if err := e.d.ResizeSession("compute", id, 30, 100); err != nil {
		t.Fatal(err)
	}
	io.WriteString(inW, "stty size\n")
	lab.Eventually(t, "stty size after the resize", 20*time.Second, func() bool { return strings.Contains(out.String(), "30 100") })
	io.WriteString(inW, "exit\n")
	r := <-done
	if r.err != nil {
		t.Fatalf("shell: %v\n%s", r.err, out.String())
	}
	if err := e.d.ResizeSession("compute", id, 40, 120); !errors.Is(err, image.ErrNotFound) {
		t.Errorf("a resize after the shell exited: %v", err)
	}
	if _, err := e.d.DecideSession(context.Background(), "compute", id, apitype.SessionDecision{Action: apitype.SessionDiscard}, "tester"); err != nil {
		t.Fatal(err)
	}
}
