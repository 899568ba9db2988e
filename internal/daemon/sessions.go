package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
)

// Admins' sessions on images (issue 20): a writable working copy of an
// image's current generation (image.Session) in which the daemon runs a
// command (exec) or an interactive shell (shell), chrooted in a mount
// namespace of its own. The caller never names a path: the daemon unpacks
// its own store and runs the root's own programs. The session then waits,
// with its diff, for the admin's decision (publish, commit, discard);
// undecided, it is discarded after SessionTTL. Only admins reach these
// (the API's route table), and every step is audited before it acts.

// ErrBusy is returned when the daemon holds as many sessions as it
// allows (the API answers 409 conflict).
var ErrBusy = errors.New("try again later")

// SessionTTL is how long an undecided session is kept, unless
// Config.SessionTTL says otherwise.
const SessionTTL = 15 * time.Minute

// maxSessions bounds the working copies held at once (each is a whole
// unpacked root).
const maxSessions = 4

// ShellCommand is what an interactive session runs.
var ShellCommand = []string{"/bin/sh", "-i"}

// shellChange names an interactive shell in a generation's change.
const shellChange = "interactive shell"

type imageSession struct {
	id      string
	x       *image.Session
	exit    int
	diff    *image.Diff
	expires time.Time
	timer   *time.Timer
	busy    bool // a command runs or a decision is being carried out
	// ptmx is the leader side of the pty of the interactive shell that
	// runs in the session (nil when none runs).
	ptmx *os.File
}

// sessionTable holds the daemon's open sessions (zero value ready).
type sessionTable struct {
	mu sync.Mutex
	m  map[string]*imageSession
}

func newSessionID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// openSession makes a working copy of image's current generation and
// registers it, busy.
func (d *Daemon) openSession(ctx context.Context, name string) (*imageSession, error) {
	if !image.ValidImageName(name) {
		return nil, fmt.Errorf("image %q: %w", name, image.ErrNotFound)
	}
	t := &d.sessions
	t.mu.Lock()
	if len(t.m) >= maxSessions {
		t.mu.Unlock()
		return nil, fmt.Errorf("%d image sessions are open already: publish or discard one first: %w", maxSessions, ErrBusy)
	}
	if t.m == nil {
		t.m = map[string]*imageSession{}
	}
	s := &imageSession{id: newSessionID(), busy: true}
	t.m[s.id] = s // holds the slot while the copy is made
	t.mu.Unlock()
	x, err := d.images.OpenSession(ctx, name)
	if err != nil {
		t.mu.Lock()
		delete(t.m, s.id)
		t.mu.Unlock()
		return nil, err
	}
	s.x = x
	return s, nil
}

// idle marks a session as waiting for its decision and (re)arms its expiry.
func (d *Daemon) idle(s *imageSession) {
	t := &d.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	ttl := d.cfg.SessionTTL
	if ttl <= 0 {
		ttl = SessionTTL
	}
	s.busy = false
	s.expires = time.Now().Add(ttl)
	if s.timer != nil {
		s.timer.Stop()
	}
	s.timer = time.AfterFunc(ttl, func() {
		if s := d.takeSession(s.x.Image(), s.id); s != nil {
			s.x.Discard()
			d.auditRecord(audit.Entry{Who: "daemon", Action: "image session discard", Target: s.x.Image(),
				Result: "expired undecided after " + ttl.String(), Details: []string{"session " + s.id}})
		}
	})
}

// takeSession removes an idle session of image from the table and
// returns it (nil when there is none such or it is busy).
func (d *Daemon) takeSession(name, id string) *imageSession {
	t := &d.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s == nil || s.busy || s.x == nil || s.x.Image() != name {
		return nil
	}
	delete(t.m, id)
	if s.timer != nil {
		s.timer.Stop()
	}
	return s
}

// closeSessions discards every session (the daemon stops).
func (d *Daemon) closeSessions() {
	t := &d.sessions
	t.mu.Lock()
	ss := t.m
	t.m = nil
	t.mu.Unlock()
	for _, s := range ss {
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.x != nil {
			s.x.Discard()
		}
	}
}

func (d *Daemon) sessionView(s *imageSession) *apitype.SessionView {
	return &apitype.SessionView{ID: s.id, Image: s.x.Image(), Parent: s.x.Parent(), Commands: s.x.Commands(),
		Exit: s.exit, Diff: DiffView(s.diff), Expires: s.expires}
}

// runInSession runs argv in a new session of image and leaves the
// session waiting with its diff. A command that fails is not an error:
// its exit status is in the view.
func (d *Daemon) runInSession(ctx context.Context, name, who, what string, argv []string, stdio image.Stdio, ready func(id string)) (*apitype.SessionView, error) {
	if err := d.AuditRecord(audit.Entry{Who: who, Action: "image " + map[bool]string{true: "shell", false: "exec"}[what == shellChange],
		Target: name, Result: "started", Details: []string{what}}); err != nil {
		return nil, fmt.Errorf("refused, nothing was done: audit log: %w", err)
	}
	s, err := d.openSession(ctx, name)
	if err != nil {
		return nil, err
	}
	if ready != nil {
		ready(s.id)
	}
	err = s.x.Run(ctx, argv, what, stdio)
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		s.exit, err = ee.ExitCode(), nil
	case err != nil:
		s.exit = -1
	}
	if err == nil {
		s.diff, err = s.x.Diff(context.WithoutCancel(ctx))
	}
	if err != nil {
		d.dropSession(s)
		d.auditRecord(audit.Entry{Who: who, Action: "image session discard", Target: name, Result: err.Error()})
		return nil, err
	}
	d.idle(s)
	d.auditRecord(audit.Entry{Who: who, Action: "image session", Target: name,
		Result: fmt.Sprintf("session %s: exit %d, %s", s.id, s.exit, s.diff.Summary())})
	return d.sessionView(s), nil
}

func (d *Daemon) dropSession(s *imageSession) {
	d.sessions.mu.Lock()
	delete(d.sessions.m, s.id)
	d.sessions.mu.Unlock()
	s.x.Discard()
}

// ExecImage runs argv chrooted in a working copy of image's current
// generation, writing its output to out, and returns the session waiting
// for a decision (DecideSession).
func (d *Daemon) ExecImage(ctx context.Context, name string, argv []string, who string, out io.Writer) (*apitype.SessionView, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("image exec: no command")
	}
	argv = image.ExecCommand(argv)
	return d.runInSession(ctx, name, who, strings.Join(argv, " "), argv, image.Stdio{Out: out, Err: out}, nil)
}

// ShellImage runs an interactive shell in a working copy of image's
// current generation on a pty whose other side is in and out (the
// caller's terminal, raw, of size rows, cols); ready is called with the
// session's id once the working copy is made, before the shell starts. It
// returns when the shell exits, the session waiting for a decision.
func (d *Daemon) ShellImage(ctx context.Context, name, who, term string, size [2]uint16, in io.Reader, out io.Writer, ready func(id string)) (*apitype.SessionView, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("image shell: %w", err)
	}
	defer ptmx.Close()
	pty.Setsize(ptmx, &pty.Winsize{Rows: size[0], Cols: size[1]})
	copied := make(chan struct{})
	started := false
	var id string
	v, err := d.runInSession(ctx, name, who, shellChange, ShellCommand, image.Stdio{TTY: tty, Term: term}, func(sid string) {
		started, id = true, sid
		d.setSessionPTY(id, ptmx)
		if ready != nil {
			ready(id)
		}
		go func() { defer close(copied); io.Copy(out, ptmx) }()
		go io.Copy(ptmx, in)
	})
	tty.Close()
	if started {
		d.setSessionPTY(id, nil) // before the deferred Close: no resize after it
		select {                 // the shell's last words, until the pty reports its end
		case <-copied:
		case <-time.After(2 * time.Second):
		}
	}
	return v, err
}

// setSessionPTY records (or, nil, forgets) the pty of the shell that runs
// in session id.
func (d *Daemon) setSessionPTY(id string, ptmx *os.File) {
	t := &d.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.m[id]; s != nil {
		s.ptmx = ptmx
	}
}

// ResizeSession gives the pty of the interactive shell running in session
// id of image a new size (the caller's terminal was resized): the kernel
// sends SIGWINCH to the shell's foreground programs. Sizes are from 1 to
// 1000.
func (d *Daemon) ResizeSession(name, id string, rows, cols int) error {
	if rows < 1 || rows > 1000 || cols < 1 || cols > 1000 {
		return fmt.Errorf("terminal size %dx%d: want rows and cols from 1 to 1000", rows, cols)
	}
	t := &d.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s == nil || s.x == nil || s.x.Image() != name || s.ptmx == nil {
		return fmt.Errorf("image %s has no session %q running a shell: %w", name, id, image.ErrNotFound)
	}
	return pty.Setsize(s.ptmx, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)})
}

// recipeOverlay finds the overlay folder of image's recipe (the
// inventory's), for a session saved to its recipe.
func (d *Daemon) recipeOverlay(name string) (string, error) {
	dir, err := d.recipeDir(BuildRequest{Image: name})
	if err != nil {
		return "", err
	}
	r, err := image.LoadRecipe(dir, map[string]string{"kernel_dir": d.cfg.KernelDir})
	if err != nil {
		return "", err
	}
	if r.Overlay != "" {
		return r.Overlay, nil
	}
	return filepath.Join(dir, "overlay"), nil
}

// Session returns an open session of image.
func (d *Daemon) Session(name, id string) (*apitype.SessionView, error) {
	t := &d.sessions
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.m[id]
	if s == nil || s.x == nil || s.x.Image() != name {
		return nil, fmt.Errorf("image %s has no session %q: %w", name, id, image.ErrNotFound)
	}
	return d.sessionView(s), nil
}

// DecideSession ends a session: publish or commit makes the working copy
// a new generation (its manifest names the parent and the change), and
// publish makes it current; discard removes it. SaveToRecipe first writes
// the change into the image's recipe overlay.
func (d *Daemon) DecideSession(ctx context.Context, name, id string, dec apitype.SessionDecision, who string) (res apitype.SessionResult, err error) {
	switch dec.Action {
	case apitype.SessionPublish, apitype.SessionCommit, apitype.SessionDiscard:
	default:
		return res, fmt.Errorf("session decision %q: want %s, %s or %s", dec.Action, apitype.SessionPublish, apitype.SessionCommit, apitype.SessionDiscard)
	}
	s := d.takeSession(name, id)
	if s == nil {
		return res, fmt.Errorf("image %s has no session %q waiting for a decision: %w", name, id, image.ErrNotFound)
	}
	defer s.x.Discard()
	defer func() {
		r := "ok"
		switch {
		case err != nil:
			r = err.Error()
		case res.Manifest != nil:
			r = "generation " + res.Manifest.ID + map[bool]string{true: ", published"}[res.Published]
		}
		details := []string{"session " + id, "parent " + s.x.Parent(), "change: " + strings.Join(s.x.Commands(), "; "), "diff: " + s.diff.Summary()}
		if res.Overlay != "" {
			details = append(details, fmt.Sprintf("saved %d paths to %s", res.Saved, res.Overlay))
		}
		d.auditRecord(audit.Entry{Who: who, Action: "image session " + dec.Action, Target: name, Result: r, Details: details})
	}()
	if dec.SaveToRecipe && dec.Action != apitype.SessionDiscard {
		overlay, err := d.recipeOverlay(name)
		if err != nil {
			return res, fmt.Errorf("save to recipe: %w", err)
		}
		res.Overlay = overlay
		if res.Saved, res.NotSaved, err = s.x.SaveToRecipe(s.diff, overlay); err != nil {
			return res, fmt.Errorf("save to recipe %s: %w", overlay, err)
		}
	}
	if dec.Action == apitype.SessionDiscard {
		return res, nil
	}
	m, _, err := s.x.Commit(ctx, who)
	if err != nil {
		return res, err
	}
	res.Manifest = ManifestView(m)
	d.tracker.Apply(bootstate.Event{Kind: bootstate.KindInfo, Proto: "image",
		Message: fmt.Sprintf("image %s generation %s made from %s by %s: %s", name, m.ID, s.x.Parent(), who, s.diff.Summary())})
	if dec.Action == apitype.SessionPublish {
		if err := d.PublishImage(name, m.ID); err != nil {
			return res, err
		}
		res.Published = true
	}
	return res, nil
}

// VerifyImage rereads every file of a generation against its manifest.
func (d *Daemon) VerifyImage(name, gen string) (apitype.VerifyResult, error) {
	checks, err := d.images.CheckFiles(name, gen)
	if err != nil {
		return apitype.VerifyResult{}, err
	}
	return VerifyView(name, gen, checks), nil
}

// DiffImages compares two generations, each "IMAGE:GEN" or "IMAGE" (its
// current generation).
func (d *Daemon) DiffImages(ctx context.Context, a, b string) (*apitype.ImageDiff, error) {
	ra, err := d.genRef(a)
	if err != nil {
		return nil, err
	}
	rb, err := d.genRef(b)
	if err != nil {
		return nil, err
	}
	diff, err := d.images.Diff(ctx, ra, rb)
	if err != nil {
		return nil, err
	}
	return DiffView(diff), nil
}

// genRef resolves "IMAGE:GEN" or "IMAGE" (the current generation).
func (d *Daemon) genRef(s string) (image.GenRef, error) {
	name, gen, ok := strings.Cut(s, ":")
	if !ok || gen == "" {
		cur, err := d.images.Current(name)
		if err != nil {
			return image.GenRef{}, err
		}
		gen = cur
	}
	if _, err := d.images.Generation(name, gen); err != nil {
		return image.GenRef{}, err
	}
	return image.GenRef{Image: name, ID: gen}, nil
}
