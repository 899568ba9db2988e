package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Session is an admin's writable working copy of one generation: its
// squashfs unpacked into a scratch directory of the store (".build-session-*",
// locked while the session lives, so that CleanStale removes what a killed
// daemon left), in which commands run chrooted (Run) in a mount namespace
// of their own with /proc, /sys, /dev and the host's resolv.conf (read-only)
// mounted: those mounts die with the command, even when the daemon is
// SIGKILLed. Diff says what the commands changed; Commit makes the working
// copy a new generation whose manifest records its parent and the change;
// Discard removes it. A session is never published by itself.
type Session struct {
	store         *Store
	image, parent string
	dir, root     string
	done          func()
	sq            squasher

	mu       sync.Mutex
	commands []string
	closed   bool
}

// ErrSessionClosed is returned by a session already committed or discarded.
var ErrSessionClosed = errors.New("the session is closed")

// OpenSession unpacks the current generation of image into a new working
// copy, after rereading its files against its manifest (a damaged
// generation is refused: its root would not be what its manifest says,
// and its kernel and initramfs are the new generation's).
func (s *Store) OpenSession(ctx context.Context, image string) (*Session, error) {
	cur, err := s.Current(image)
	if err != nil {
		return nil, err
	}
	checks, err := s.CheckFiles(image, cur)
	if err != nil {
		return nil, err
	}
	for _, c := range checks {
		if !c.OK() {
			return nil, fmt.Errorf("image %s generation %s: %s differs from its manifest (image verify %s %s): a session starts from a sound generation", image, cur, c.Name, image, cur)
		}
	}
	p, err := s.Path(image, cur, FileRootfs)
	if err != nil {
		return nil, err
	}
	dir, done, err := s.workDir(image, "session")
	if err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	if err := unsquash(ctx, p, root); err != nil {
		done()
		return nil, fmt.Errorf("image %s generation %s: %w", image, cur, err)
	}
	return &Session{store: s, image: image, parent: cur, dir: dir, root: root, done: done}, nil
}

// Image is the session's image.
func (x *Session) Image() string { return x.image }

// Parent is the generation the working copy was made from.
func (x *Session) Parent() string { return x.parent }

// Commands lists what ran in the session ("interactive shell" for a shell).
func (x *Session) Commands() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.commands...)
}

// Stdio is where a session's command reads and writes. TTY, when set, is
// the command's controlling terminal (the follower side of a pty) and its
// stdin, stdout and stderr; In, Out and Err are then unused.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
	TTY      *os.File
	// Term is the TERM of an interactive command ("dumb" when empty).
	Term string
}

// Run runs argv chrooted in the working copy, in a private mount
// namespace, and waits for it; what names the command in the change the
// manifest records (argv joined when empty). Cancelling ctx kills the
// command's process group.
func (x *Session) Run(ctx context.Context, argv []string, what string, stdio Stdio) error {
	if len(argv) == 0 {
		return errors.New("run: no command")
	}
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return ErrSessionClosed
	}
	if what == "" {
		what = strings.Join(argv, " ")
	}
	x.commands = append(x.commands, what)
	x.mu.Unlock()
	// The mount points the chroot needs and the root lacks are made for
	// the command and removed after it (when it left them empty), so they
	// are no change of the admin's.
	var made []string
	for _, d := range []string{"proc", "sys", "dev"} {
		if p := filepath.Join(x.root, d); !exists(p) {
			made = append(made, p)
		}
	}
	defer func() {
		for _, p := range made {
			os.Remove(p)
		}
	}()
	cmd, err := chrootCmd(ctx, x.root, argv)
	if err != nil {
		return err
	}
	isolate(cmd, true)
	if stdio.TTY != nil {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.TTY, stdio.TTY, stdio.TTY
		cmd.SysProcAttr.Setpgid = false
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
		term := stdio.Term
		if term == "" {
			term = "dumb"
		}
		cmd.Env = append(withoutTerm(cmd.Env), "TERM="+term)
	} else {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	}
	// No service starts in the working copy (invoke-rc.d asks
	// policy-rc.d); the file is gone again before the diff.
	if noStart := filepath.Join(x.root, "usr", "sbin", "policy-rc.d"); dirExists(filepath.Dir(noStart)) && !exists(noStart) {
		if err := noSymlinkParents(x.root, filepath.Dir(noStart)); err != nil {
			return err
		}
		if err := os.WriteFile(noStart, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
			return err
		}
		defer os.Remove(noStart)
	}
	err = cmd.Start()
	if err == nil {
		err = cmd.Wait()
		// What the command left running in its group goes with it.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func dirExists(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.IsDir()
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func withoutTerm(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if !strings.HasPrefix(e, "TERM=") {
			out = append(out, e)
		}
	}
	return out
}

// Diff compares the working copy with its parent generation (its boot
// files are the parent's: Boot is empty).
func (x *Session) Diff(ctx context.Context) (*Diff, error) {
	x.mu.Lock()
	closed := x.closed
	x.mu.Unlock()
	if closed {
		return nil, ErrSessionClosed
	}
	parent, err := x.store.Tree(ctx, x.image, x.parent)
	if err != nil {
		return nil, err
	}
	work, err := readTree(x.root)
	if err != nil {
		return nil, fmt.Errorf("working copy: %w", err)
	}
	d := &Diff{A: GenRef{x.image, x.parent}, B: GenRef{x.image, "working copy"}}
	d.Files, d.Packages = DiffTrees(parent, work)
	d.count()
	return d, nil
}

// Discard removes the working copy; nothing is kept.
func (x *Session) Discard() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.closed {
		x.closed = true
		x.done()
	}
}

// Commit packs the working copy into a new generation of the session's
// image (not published) and closes the session. The manifest's provenance
// names the parent and the change (the commands and the diff's summary);
// the kernel and initramfs are the parent's. A working copy that does not
// differ from its parent is refused.
func (x *Session) Commit(ctx context.Context, who string) (*Manifest, *Diff, error) {
	d, err := x.Diff(ctx)
	if err != nil {
		return nil, nil, err
	}
	if d.Empty() {
		return nil, d, fmt.Errorf("image %s: the working copy does not differ from generation %s: nothing to commit", x.image, x.parent)
	}
	x.mu.Lock()
	if x.closed {
		x.mu.Unlock()
		return nil, nil, ErrSessionClosed
	}
	x.closed = true // no command runs while it is packed
	x.mu.Unlock()
	defer x.done()
	m, err := x.commit(ctx, who, d)
	return m, d, err
}

func (x *Session) commit(ctx context.Context, who string, d *Diff) (*Manifest, error) {
	start := time.Now()
	pm, err := x.store.Generation(x.image, x.parent)
	if err != nil {
		return nil, err
	}
	gen := filepath.Join(x.dir, "gen")
	if err := os.Mkdir(gen, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(gen, FileLog))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	lg := &buildLog{image: x.image, step: StepSquashfs, f: logf, w: bufio.NewWriter(logf), start: start}
	change := &Change{Command: strings.Join(x.Commands(), "; "), Who: who, Summary: d.Summary()}
	lg.printf("working copy of %s generation %s after: %s", x.image, x.parent, change.Command)
	lg.printf("diff: %s", change.Summary)
	for _, f := range d.Files {
		lg.printf("%s %s %s", f.Kind, f.Path, strings.Join(f.What, ","))
	}
	for _, name := range []string{FileKernel, FileInitrd} {
		src, err := x.store.Path(x.image, x.parent, name)
		if err != nil {
			return nil, err
		}
		if err := os.Link(src, filepath.Join(gen, name)); err != nil {
			if _, err := copyHashed(src, filepath.Join(gen, name)); err != nil {
				return nil, fmt.Errorf("%s of generation %s: %w", name, x.parent, err)
			}
		}
	}
	src, err := x.store.Path(x.image, x.parent, FileRootfs)
	if err != nil {
		return nil, err
	}
	// Compressed as the parent was (compressor and level).
	comp, level, err := squashfsCompression(src)
	if err != nil {
		return nil, err
	}
	if err := x.sq.mksquashfs(ctx, x.root, filepath.Join(gen, FileRootfs), comp, level, false, lg); err != nil {
		return nil, err
	}
	work, err := readTree(x.root)
	if err != nil {
		return nil, err
	}
	prov := &Provenance{Builder: BuilderVersion(), Parent: x.parent, Change: change, Packages: work.Packages}
	if pp := pm.Provenance; pp != nil {
		prov.RecipeHash, prov.OCIDigest, prov.Debootstrap = pp.RecipeHash, pp.OCIDigest, pp.Debootstrap
	}
	m := &Manifest{Image: x.image, Source: "session on generation " + x.parent, SourceHash: "",
		Log: FileLog, Provenance: prov}
	m.Created = time.Now().UTC().Truncate(time.Second)
	m.BuildSeconds = float64(time.Since(start).Milliseconds()) / 1000
	if err := lg.w.Flush(); err != nil {
		return nil, err
	}
	if err := logf.Sync(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return x.store.commitBuilt(x.image, gen, m)
}

// SaveToRecipe writes what the session added and changed into overlay, a
// recipe's overlay folder, so that the next build of the recipe keeps it:
// regular files, symlinks and directories with their modes and owners. A
// removed path cannot be expressed by an overlay: those are returned, not
// saved. Call it before Commit or Discard.
func (x *Session) SaveToRecipe(d *Diff, overlay string) (saved int, notSaved []string, err error) {
	x.mu.Lock()
	closed := x.closed
	x.mu.Unlock()
	if closed {
		return 0, nil, ErrSessionClosed
	}
	if err := os.MkdirAll(overlay, 0o755); err != nil {
		return 0, nil, err
	}
	root := os.Geteuid() == 0
	for _, f := range d.Files {
		if f.Kind == ChangeRemoved {
			notSaved = append(notSaved, f.Path)
			continue
		}
		if f.New.Mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 {
			notSaved = append(notSaved, f.Path)
			continue
		}
		rel := filepath.FromSlash(strings.TrimPrefix(f.Path, "/"))
		if rel == "" {
			continue // the root folder's own mode: not an overlay's to say
		}
		target := filepath.Join(overlay, rel)
		if err := noSymlinkParents(overlay, filepath.Dir(target)); err != nil {
			return saved, notSaved, fmt.Errorf("%s: %w", f.Path, err)
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return saved, notSaved, err
		}
		src := filepath.Join(x.root, rel)
		fi, err := os.Lstat(src)
		if err != nil {
			return saved, notSaved, err
		}
		if err := place(src, target, fi, root); err != nil {
			return saved, notSaved, fmt.Errorf("%s: %w", f.Path, err)
		}
		saved++
	}
	return saved, notSaved, nil
}

// ExecCommand is the command line Run gets for `image exec NAME -- CMD`:
// CMD run by the root's /bin/sh when it is one word with shell syntax,
// as given otherwise.
func ExecCommand(args []string) []string {
	if len(args) == 1 && strings.ContainsAny(args[0], " ;|&<>$`'\"") {
		return []string{"/bin/sh", "-c", args[0]}
	}
	return args
}
