package image

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/assets"
	"github.com/netbootui/netbootui/internal/atomicfile"
	"github.com/netbootui/netbootui/internal/image/liveinit"
)

// Build steps, in order, as reported in Progress.Step.
const (
	StepHash      = "hash"
	StepUnchanged = "unchanged" // the inputs hash as an existing generation's: nothing built
	StepRootfs    = "rootfs"
	StepOverlay   = "overlay"
	StepAgent     = "agent"
	StepKernel    = "kernel"
	StepInitramfs = "initramfs"
	StepSquashfs  = "squashfs"
	StepChecksums = "checksums"
	StepPublish   = "publish"
	StepDone      = "done"
)

// Progress is one build event: a step starting (Percent 0), a percentage of
// the step (mksquashfs), or a log line (Line).
type Progress struct {
	Image   string
	Step    string
	Percent float64
	Line    string
}

// BuildOptions adjust one build.
type BuildOptions struct {
	// KernelDir is the value of ${kernel_dir} in recipe paths (the folder
	// scripts/fetch-kernel.sh fills: vmlinuz, modules/).
	KernelDir string
	// Vars are further ${name} values.
	Vars map[string]string
	// Publish makes the new generation current.
	Publish bool
	// Force builds even when the inputs are unchanged.
	Force bool
	// RootCache, when set, is a folder that keeps debootstrap roots (after
	// their packages are installed) as tar archives named by their settings
	// (DebootstrapCacheKey): a later build of the same settings unpacks the
	// archive instead of running debootstrap and apt. Nothing is cached
	// when it is empty.
	RootCache string
	// Progress receives events (from the building goroutine); may be nil.
	Progress func(Progress)
	// Agent is the static node agent binary (cmd/netbootui-agent) the
	// image carries, for reboot-clean by kexec; "" builds without it.
	Agent string
}

func (o BuildOptions) vars() map[string]string {
	v := map[string]string{}
	for k, x := range o.Vars {
		v[k] = x
	}
	if o.KernelDir != "" {
		v["kernel_dir"] = o.KernelDir
	}
	return v
}

// Builder builds recipes into generations of a Store. One build per image
// runs at a time (in this process and across processes sharing the store);
// a second one waits.
type Builder struct {
	store *Store

	mu    sync.Mutex
	locks map[string]*sync.Mutex

	sq squasher
}

// squasher runs mksquashfs, asking it once whether it has -percentage.
type squasher struct {
	once    sync.Once
	percent bool
}

// NewBuilder returns a builder for s, after removing what crashed builds
// left in it (Store.CleanStale).
func NewBuilder(s *Store) (*Builder, error) {
	if _, err := s.CleanStale(); err != nil {
		return nil, fmt.Errorf("image store: cleaning stale builds: %w", err)
	}
	return &Builder{store: s, locks: map[string]*sync.Mutex{}}, nil
}

// Store is the builder's store.
func (b *Builder) Store() *Store { return b.store }

// buildVersion changes when the builder makes different output from the
// same inputs; it is part of the source hash.
const buildVersion = "netbootui-image-build 1"

// SourceHash hashes a recipe's inputs: the recipe file, the overlay and its
// variants, the root's source (directory tree, tar, OCI layout; for
// debootstrap only its settings), the busybox binary, the kernel, the
// modules the initramfs takes, and the node scripts every image carries.
func SourceHash(r *Recipe) (string, error) { return sourceHash(r, nil) }

// sourceHash is SourceHash with a cache of file sums (nil: none).
func sourceHash(r *Recipe, c *hashCache) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", buildVersion)
	put := func(what, p string) error {
		fmt.Fprintf(h, "%s\n", what)
		if err := hashPath(h, p, c); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	if err := put("recipe", r.File); err != nil {
		return "", err
	}
	fmt.Fprintf(h, "resolved %+v %+v %+v %q %q %q\n", r.Rootfs, r.Kernel, r.Initramfs, r.Compression, r.Name, r.Overlay)
	if r.Overlay != "" {
		if err := put("overlay", r.Overlay); err != nil {
			return "", err
		}
	}
	if r.Variants != "" {
		if err := put("overlay.d", r.Variants); err != nil {
			return "", err
		}
	}
	switch r.Rootfs.Kind {
	case RootfsDir, RootfsTar, RootfsOCI:
		if err := put("rootfs", r.Rootfs.Path); err != nil {
			return "", fmt.Errorf("%s: %w", r.Rootfs.Pos, err)
		}
	case RootfsBusybox:
		bb := r.Rootfs.Busybox
		if bb == "" {
			bb = liveinit.DefaultBusybox
		}
		if err := put("busybox", bb); err != nil {
			return "", fmt.Errorf("%s: %w", r.Rootfs.Pos, err)
		}
	}
	if r.Agent != "" {
		if err := put("node agent", r.Agent); err != nil {
			return "", err
		}
	}
	if r.Kernel.File != "" {
		if err := put("kernel", r.Kernel.File); err != nil {
			return "", fmt.Errorf("%s: %w", r.Kernel.Pos, err)
		}
	}
	if r.Initramfs.Kind == InitramfsBuiltin {
		if r.Rootfs.Kind != RootfsBusybox {
			if err := put("initramfs busybox", liveinit.DefaultBusybox); err != nil {
				return "", err
			}
		}
		if len(r.Initramfs.Modules) > 0 && r.Kernel.Modules != "" {
			files, err := liveinit.ResolveModules(r.Kernel.Modules, r.Initramfs.Modules)
			if err != nil {
				return "", fmt.Errorf("%s: %w", r.Initramfs.Pos, err)
			}
			for _, f := range append([]string{"modules.dep"}, files...) {
				if err := put("module "+f, filepath.Join(r.Kernel.Modules, f)); err != nil {
					return "", err
				}
			}
		}
	}
	assetDirs := []string{"scripts"}
	if r.Initramfs.Kind == InitramfsDracut {
		assetDirs = append(assetDirs, "dracut")
	}
	for _, dir := range assetDirs {
		if err := fs.WalkDir(assets.FS, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(assets.FS, p)
			fmt.Fprintf(h, "asset %s %x\n", p, sha256.Sum256(b))
			return err
		}); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// imageLock serialises builds of one image: a mutex in this process and an
// flock on <image>/.build.lock across processes. It waits until ctx is done.
func (b *Builder) imageLock(ctx context.Context, image string) (func(), error) {
	b.mu.Lock()
	m := b.locks[image]
	if m == nil {
		m = new(sync.Mutex)
		b.locks[image] = m
	}
	b.mu.Unlock()
	for !m.TryLock() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	dir := filepath.Join(b.store.dir, image)
	if err := os.MkdirAll(filepath.Join(dir, "generations"), 0o755); err != nil {
		m.Unlock()
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".build.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		m.Unlock()
		return nil, err
	}
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		select {
		case <-ctx.Done():
			f.Close()
			m.Unlock()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return func() { f.Close(); m.Unlock() }, nil
}

// buildLog streams a build's events to its log file and the callback.
type buildLog struct {
	image string
	step  string
	w     *bufio.Writer
	f     *os.File
	cb    func(Progress)
	start time.Time
}

func (l *buildLog) emit(p Progress) {
	p.Image = l.image
	if l.cb != nil {
		l.cb(p)
	}
}

func (l *buildLog) begin(step string) {
	l.step = step
	l.printf("== %s", step)
	l.emit(Progress{Step: step})
}

func (l *buildLog) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if l.w != nil {
		fmt.Fprintf(l.w, "%7.2fs %s\n", time.Since(l.start).Seconds(), line)
		l.w.Flush()
	}
	l.emit(Progress{Step: l.step, Line: line})
}

func (l *buildLog) percent(p float64) {
	if l.w != nil {
		fmt.Fprintf(l.w, "%7.2fs %s %.0f%%\n", time.Since(l.start).Seconds(), l.step, p)
		l.w.Flush()
	}
	l.emit(Progress{Step: l.step, Percent: p})
}

// Build builds the recipe in recipeDir into a new generation and returns
// its manifest. When the inputs hash as an existing generation's
// (SourceHash) and opts.Force is false, nothing is built: the existing
// generation is returned (and published when opts.Publish), and a
// StepUnchanged event says so.
//
// The build happens in a ".build-*" directory below the image's
// generations; the finished generation is renamed into place, so a failed,
// cancelled or killed build leaves no generation and changes no published
// pointer. Cancelling ctx kills running tools (mksquashfs, debootstrap).
func (b *Builder) Build(ctx context.Context, recipeDir string, opts BuildOptions) (*Manifest, error) {
	r, err := LoadRecipe(recipeDir, opts.vars())
	if err != nil {
		return nil, err
	}
	return b.BuildRecipe(ctx, r, opts)
}

// BuildRecipe is Build for a loaded recipe.
func (b *Builder) BuildRecipe(ctx context.Context, r *Recipe, opts BuildOptions) (*Manifest, error) {
	start := time.Now()
	if opts.Agent != "" {
		rc := *r
		rc.Agent = opts.Agent
		r = &rc
	}
	lg := &buildLog{image: r.Name, cb: opts.Progress, start: start}
	unlock, err := b.imageLock(ctx, r.Name)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", r.Name, err)
	}
	defer unlock()

	lg.begin(StepHash)
	hc := loadHashCache(b.hashCachePath(r.Name))
	type hashed struct {
		src string
		err error
	}
	hashDone := make(chan hashed, 1)
	hash := func() {
		src, err := sourceHash(r, hc)
		if err == nil {
			hc.save(b.hashCachePath(r.Name))
		}
		hashDone <- hashed{src, err}
	}
	// The source hash decides whether the build is a no-op. When it cannot
	// be one (Force, or no generation to compare with), it is only needed
	// for the manifest and is taken alongside the build.
	var src string
	existing, err := b.store.Generations(r.Name)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", r.Name, err)
	}
	early := !opts.Force && len(existing) > 0
	waitHash := func() error {
		h := <-hashDone
		if h.err != nil {
			return h.err
		}
		src = h.src
		lg.printf("hashed %d files (%d from the cache of file sums)", hc.files, hc.hits)
		lg.printf("source hash %s", src)
		return nil
	}
	if early {
		hash()
		if err := waitHash(); err != nil {
			return nil, fmt.Errorf("build %s: %w", r.Name, err)
		}
	} else {
		go hash()
		lg.printf("source hash taken alongside the build (nothing to compare it with)")
	}
	if early {
		if m, err := b.sameSource(r.Name, src); err != nil {
			return nil, err
		} else if m != nil {
			cur, _ := b.store.Current(r.Name)
			lg.begin(StepUnchanged)
			if cur == m.ID {
				lg.printf("unchanged: current generation %s was built from the same inputs", m.ID)
			} else {
				lg.printf("unchanged: generation %s was built from the same inputs", m.ID)
				if opts.Publish {
					if err := b.store.Publish(r.Name, m.ID); err != nil {
						return nil, err
					}
					lg.printf("published %s", m.ID)
				}
			}
			return m, nil
		}
	}

	work, done, err := b.store.workDir(r.Name, "")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", r.Name, err)
	}
	defer done()
	gen := filepath.Join(work, "gen")
	root := filepath.Join(work, "root")
	if err := os.Mkdir(gen, 0o755); err != nil {
		return nil, fmt.Errorf("build %s: %w", r.Name, err)
	}
	logf, err := os.Create(filepath.Join(gen, FileLog))
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", r.Name, err)
	}
	defer logf.Close()
	lg.f, lg.w = logf, bufio.NewWriter(logf)
	lg.printf("image %s from %s", r.Name, r.File)

	prov, err := provenance(r)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", r.Name, err)
	}
	m, err := b.steps(ctx, r, work, root, gen, opts.RootCache, prov, lg)
	if err == nil {
		err = ctx.Err()
	}
	if !early {
		if herr := waitHash(); err == nil && herr != nil {
			err = fmt.Errorf("build %s: %w", r.Name, herr)
		}
	}
	if err == nil {
		lg.begin(StepChecksums)
		m.Image, m.SourceHash, m.Log = r.Name, src, FileLog
		m.Source = "recipe " + r.File
		m.Provenance = prov
		m.Created = time.Now().UTC().Truncate(time.Second)
		m.BuildSeconds = float64(time.Since(start).Milliseconds()) / 1000
		lg.printf("build took %.1fs", m.BuildSeconds)
		if err = lg.w.Flush(); err == nil {
			err = logf.Sync()
		}
		if err == nil {
			m, err = b.store.commitBuilt(r.Name, gen, m)
		}
	}
	if err == nil {
		err = ctx.Err() // a cancel that came during the checksums still wins
		if err != nil {
			// the generation exists now but is not published: harmless
			err = fmt.Errorf("build %s: %w (generation %s was stored, not published)", r.Name, err, m.ID)
		}
	}
	if err != nil {
		lg.printf("FAILED: %v", err)
		lg.w.Flush()
		b.keepFailedLog(r.Name, filepath.Join(gen, FileLog))
		if !strings.HasPrefix(err.Error(), "build "+r.Name) {
			err = fmt.Errorf("build %s: %s: %w", r.Name, lg.step, err)
		}
		return nil, err
	}
	lg.emit(Progress{Step: StepChecksums, Line: "generation " + m.ID})
	if opts.Publish {
		lg.emit(Progress{Step: StepPublish})
		if err := b.store.Publish(r.Name, m.ID); err != nil {
			return nil, fmt.Errorf("build %s: publish %s: %w", r.Name, m.ID, err)
		}
		lg.emit(Progress{Step: StepPublish, Line: "published " + m.ID})
	}
	lg.emit(Progress{Step: StepDone, Percent: 100, Line: "generation " + m.ID})
	return m, nil
}

// keepFailedLog copies the log of a failed build to <image>/failed-build.log
// (best effort: the disk may be full).
func (b *Builder) keepFailedLog(image, log string) {
	data, err := os.ReadFile(log)
	if err != nil {
		return
	}
	writeFileAtomic(filepath.Join(b.store.dir, image, "failed-build.log"), data)
}

// sameSource finds a generation built from inputs with hash src.
func (b *Builder) sameSource(image, src string) (*Manifest, error) {
	if cur, err := b.store.Current(image); err == nil {
		if m, err := b.store.Generation(image, cur); err == nil && m.SourceHash == src {
			return m, nil
		}
	}
	gens, err := b.store.Generations(image)
	if err != nil {
		return nil, err
	}
	for _, m := range gens {
		if m.SourceHash == src {
			return m, nil
		}
	}
	return nil, nil
}

func (b *Builder) steps(ctx context.Context, r *Recipe, work, root, gen, cache string, prov *Provenance, lg *buildLog) (*Manifest, error) {
	lg.begin(StepRootfs)
	if err := makeRootfs(ctx, r, root, work, cache, prov, lg); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lg.begin(StepOverlay)
	if r.Overlay != "" {
		if err := copyTree(ctx, r.Overlay, root); err != nil {
			return nil, fmt.Errorf("overlay %s: %w", r.Overlay, err)
		}
		lg.printf("laid %s over the root", r.Overlay)
	}
	if r.Variants != "" {
		dst := filepath.Join(root, "etc", "netbootui", "overlay.d")
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return nil, err
		}
		if err := copyTree(ctx, r.Variants, dst); err != nil {
			return nil, fmt.Errorf("overlay.d %s: %w", r.Variants, err)
		}
		lg.printf("variants %s shipped at /etc/netbootui/overlay.d", r.Variants)
	}
	lg.begin(StepAgent)
	if err := installAgent(root, r, lg); err != nil {
		return nil, err
	}
	pkgs, err := rootPackages(root)
	if err != nil {
		return nil, fmt.Errorf("the root's packages: %w", err)
	}
	if prov.Packages = pkgs; len(pkgs) > 0 {
		lg.printf("the root has %d Debian packages installed", len(pkgs))
	}

	lg.begin(StepKernel)
	kernel, modules := r.Kernel.File, r.Kernel.Modules
	kver := ""
	if r.Kernel.FromRootfs {
		var err error
		if kernel, modules, kver, err = rootfsKernel(root); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Kernel.Pos, err)
		}
	}
	if _, err := copyHashed(kernel, filepath.Join(gen, FileKernel)); err != nil {
		return nil, fmt.Errorf("%s: kernel: %w", r.Kernel.Pos, err)
	}
	lg.printf("kernel %s", kernel)

	lg.begin(StepInitramfs)
	// The built-in initramfs needs nothing from the squashfs step, nor it
	// from the initramfs: it is made alongside mksquashfs, and waited for
	// after it.
	builtin := make(chan error, 1)
	switch r.Initramfs.Kind {
	case InitramfsBuiltin:
		opt := liveinit.Options{KernelModulesDir: modules, Modules: r.Initramfs.Modules, Programs: r.Initramfs.Programs, Agent: r.Agent}
		if r.Rootfs.Kind == RootfsBusybox {
			opt.Busybox = r.Rootfs.Busybox
		}
		lg.printf("built-in live init with modules %s (made alongside the squashfs)", strings.Join(r.Initramfs.Modules, " "))
		go func() { builtin <- liveinit.BuildFile(filepath.Join(gen, FileInitrd), opt) }()
	case InitramfsDracut:
		builtin <- nil
		if kver == "" {
			kver = filepath.Base(modules)
		}
		if err := runDracut(ctx, r.Initramfs, root, kver, filepath.Join(gen, FileInitrd), lg); err != nil {
			return nil, fmt.Errorf("%s: %w", r.Initramfs.Pos, err)
		}
	}
	if err := ctx.Err(); err != nil {
		<-builtin
		return nil, err
	}

	lg.begin(StepSquashfs)
	err = b.sq.mksquashfs(ctx, root, filepath.Join(gen, FileRootfs), r.Compression, r.CompressionLevel, r.Rootfs.Kind == RootfsBusybox, lg)
	if ierr := <-builtin; ierr != nil {
		return nil, fmt.Errorf("%s: built-in initramfs: %w", r.Initramfs.Pos, ierr)
	}
	if err != nil {
		return nil, err
	}
	return &Manifest{}, nil
}

func makeRootfs(ctx context.Context, r *Recipe, root, work, cache string, prov *Provenance, lg *buildLog) error {
	s := r.Rootfs
	switch s.Kind {
	case RootfsBusybox:
		if err := liveinit.BuildRootfs(root, liveinit.RootfsOptions{Busybox: s.Busybox, Name: "netbootui " + r.Name}); err != nil {
			return fmt.Errorf("%s: %w", s.Pos, err)
		}
		lg.printf("busybox root")
		return nil
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	switch s.Kind {
	case RootfsDir:
		if fi, err := os.Stat(s.Path); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s: rootfs dir %s: not a directory (%v)", s.Pos, s.Path, err)
		}
		// Hard links cost no copy of the tree. Only when no tool runs in
		// the root (dracut does): the pipeline's own steps replace files,
		// never write into them, so the source tree stays as it was.
		cp := copyTree
		if r.Initramfs.Kind == InitramfsBuiltin {
			cp = linkTree
		}
		if err := cp(ctx, s.Path, root); err != nil {
			return fmt.Errorf("%s: %w", s.Pos, err)
		}
	case RootfsTar:
		f, err := os.Open(s.Path)
		if err != nil {
			return fmt.Errorf("%s: rootfs tar: %w", s.Pos, err)
		}
		defer f.Close()
		rd, err := maybeDecompress(f)
		if err != nil {
			return fmt.Errorf("%s: rootfs tar %s: %w", s.Pos, s.Path, err)
		}
		if err := extractTar(ctx, rd, root); err != nil {
			return fmt.Errorf("%s: rootfs tar %s: %w", s.Pos, s.Path, err)
		}
	case RootfsOCI:
		digest, err := extractOCI(ctx, s.Path, root, work)
		if err != nil {
			return fmt.Errorf("%s: rootfs oci: %w", s.Pos, err)
		}
		prov.OCIDigest = digest
		lg.printf("OCI image %s", digest)
	case RootfsDebootstrap:
		if err := cachedDebootstrap(ctx, s.Debootstrap, root, cache, lg); err != nil {
			return fmt.Errorf("%s: %w", s.Pos, err)
		}
		lg.printf("debootstrap root %s with %s", s.Debootstrap.Suite, strings.Join(s.Debootstrap.Packages, " "))
		return nil
	}
	lg.printf("%s root from %s", s.Kind, s.Path)
	return nil
}

// DebootstrapArgs is the command line (argv, debootstrap first) that makes
// the bare suite in target; the recipe's packages are installed after it
// with apt (AptArgs), which resolves alternatives and virtual packages.
func DebootstrapArgs(d DebootstrapSpec, target string) []string {
	return []string{"debootstrap", "--variant=" + d.Variant, d.Suite, target, d.Mirror}
}

// DracutArgs is the command line, run chrooted in the root (ChrootArgs),
// that makes a livenet initramfs for kernel kver with the image's own
// dracut; the initramfs is written to out, a path inside the root.
// netbootui's own module (DracutModule) is always added.
func DracutArgs(s InitramfsSpec, kver, out string) []string {
	mods := s.DracutModules
	if !slices.Contains(mods, DracutModule) {
		mods = append(slices.Clip(mods), DracutModule)
	}
	args := []string{"dracut", "--no-hostonly", "--no-hostonly-cmdline", "--force",
		"--add", strings.Join(mods, " ")}
	if s.DracutCompress != "" {
		args = append(args, "--compress", s.DracutCompress)
	}
	return append(args, "--kver", kver, out)
}

func runDracut(ctx context.Context, s InitramfsSpec, root, kver, dst string, lg *buildLog) error {
	if _, err := os.Stat(filepath.Join(root, "usr", "bin", "dracut")); err != nil {
		if _, err2 := os.Stat(filepath.Join(root, "sbin", "dracut")); err2 != nil {
			return fmt.Errorf("dracut: the root has no dracut (add dracut dracut-live to its packages)")
		}
	}
	if err := installDracutModule(root, lg); err != nil {
		return err
	}
	const out = "/tmp/netbootui-initrd.img"
	args := DracutArgs(s, kver, out)
	lg.printf("chroot: %s", strings.Join(args, " "))
	if err := runChroot(ctx, root, args, lg); err != nil {
		return err
	}
	p := filepath.Join(root, out)
	if _, err := copyHashed(p, dst); err != nil {
		return fmt.Errorf("dracut output: %w", err)
	}
	return os.Remove(p)
}

// rootfsKernel finds the newest /boot/vmlinuz-<ver> of a root and its
// modules folder.
func rootfsKernel(root string) (kernel, modules, kver string, err error) {
	matches, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	best := ""
	for _, m := range matches {
		v := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
		if best == "" || versionLess(best, v) {
			best = v
		}
	}
	if best == "" {
		return "", "", "", fmt.Errorf("kernel from_rootfs: the root has no /boot/vmlinuz-*")
	}
	for _, d := range []string{"lib/modules", "usr/lib/modules"} {
		p := filepath.Join(root, d, best)
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			modules = p
			break
		}
	}
	return filepath.Join(root, "boot", "vmlinuz-"+best), modules, best, nil
}

var numRE = regexp.MustCompile(`\d+|\D+`)

// versionLess compares version strings piecewise, numbers as numbers.
func versionLess(a, b string) bool {
	pa, pb := numRE.FindAllString(a, -1), numRE.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}

// runCmd runs a build tool, its output streamed into the log, killed with
// its process group when ctx is done (and with this process). newNS runs
// it in a private mount namespace of its own: what it mounts goes away
// with it.
func runCmd(ctx context.Context, cmd *exec.Cmd, newNS bool, lg *buildLog) error {
	bin := cmd.Path
	isolate(cmd, newNS)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	var tail []string
	go func() {
		defer close(done)
		scanLines(pr, func(line string) {
			lg.printf("%s", line)
			tail = append(tail, line)
			if len(tail) > 5 {
				tail = tail[1:]
			}
		})
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%s: %v: %s%s", filepath.Base(bin), err, strings.Join(tail, " / "), diskFull(lg.f.Name()))
	}
	return nil
}

// isolate makes cmd a tool of the pipeline: in a process group of its
// own, killed as a group when its context is done, and with this process
// (Pdeathsig); newNS runs it in a private mount namespace.
func isolate(cmd *exec.Cmd, newNS bool) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if newNS {
		cmd.SysProcAttr.Unshareflags = syscall.CLONE_NEWNS
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
}

// scanLines calls fn for every line of r, lines ending in \n or \r.
func scanLines(r io.Reader, fn func(string)) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			fn(line)
		}
	}
	io.Copy(io.Discard, r)
}

var (
	barRE     = regexp.MustCompile(`\]\s+(\d+)/(\d+)\s+(\d+)%\s*$`)
	percentRE = regexp.MustCompile(`^(\d{1,3})$`)
)

// ParseSquashfsProgress reads a progress percentage from one line (split
// at \r or \n) of mksquashfs output: its progress bar
// ("[===-  ] 300/12924   2%") or, with -percentage, a bare number.
func ParseSquashfsProgress(line string) (float64, bool) {
	line = strings.TrimSpace(line)
	if m := barRE.FindStringSubmatch(line); m != nil {
		done, _ := strconv.ParseFloat(m[1], 64)
		total, _ := strconv.ParseFloat(m[2], 64)
		if total > 0 && done <= total {
			return 100 * done / total, true
		}
		return 0, false
	}
	if m := percentRE.FindStringSubmatch(line); m != nil {
		n, _ := strconv.Atoi(m[1])
		if n <= 100 {
			return float64(n), true
		}
	}
	return 0, false
}

// MksquashfsArgs is the command line (after the program) that packs src
// into out with compressor comp; level, when not 0, is its
// -Xcompression-level. allRoot makes every file root's and times fixed (for the
// generated busybox root). percentage asks for -percentage output
// (squashfs-tools 4.6 and later).
func MksquashfsArgs(src, out, comp string, level int, allRoot, percentage bool) []string {
	args := []string{src, out, "-noappend", "-comp", comp, "-mkfs-time", "0"}
	if level != 0 {
		args = append(args, "-Xcompression-level", strconv.Itoa(level))
	}
	if allRoot {
		args = append(args, "-all-root", "-all-time", "0")
	}
	if percentage {
		args = append(args, "-percentage")
	} else {
		args = append(args, "-progress")
	}
	return args
}

func (q *squasher) mksquashfs(ctx context.Context, src, out, comp string, level int, allRoot bool, lg *buildLog) error {
	bin, err := exec.LookPath("mksquashfs")
	if err != nil {
		return fmt.Errorf("mksquashfs not found (apt-get install squashfs-tools): %w", err)
	}
	q.once.Do(func() {
		help, _ := exec.Command(bin, "-help").CombinedOutput()
		q.percent = bytes.Contains(help, []byte("-percentage"))
	})
	args := MksquashfsArgs(src, out, comp, level, allRoot, q.percent)
	lg.printf("mksquashfs %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	var tail []string
	cause := "" // mksquashfs's "Write failed because <strerror>", which its output's tail may not hold
	go func() {
		defer close(done)
		last := -1.0
		scanLines(pr, func(line string) {
			if strings.HasPrefix(line, "Write failed because ") && cause == "" {
				cause = line + " / "
			}
			if p, ok := ParseSquashfsProgress(line); ok {
				if p >= last+1 || (p == 100 && last != 100) {
					last = p
					lg.percent(p)
				}
				return
			}
			lg.printf("%s", line)
			tail = append(tail, line)
			if len(tail) > 3 {
				tail = tail[1:]
			}
		})
	}()
	err = cmd.Run()
	pw.Close()
	<-done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("mksquashfs: %v: %s%s%s", err, cause, strings.Join(tail, " / "), diskFull(filepath.Dir(out)))
	}
	return nil
}

// diskFull says so when the file system holding dir is (nearly) full, for
// tools whose own message does not.
func diskFull(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return ""
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < 1<<20 {
		return fmt.Sprintf(" (no space left on device: %d bytes free below %s)", free, dir)
	}
	return ""
}

// maybeDecompress undoes gzip compression of a tar (plain tars pass).
func maybeDecompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}

func writeFileAtomic(p string, data []byte) error { return atomicfile.Write(p, data, 0o644) }
