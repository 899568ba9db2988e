package image

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
)

// requireTool skips (or, with NETBOOTUI_REQUIRE_TOOLS=1, fails) a test that
// needs programs not installed here.
func requireTool(t testing.TB, names ...string) {
	t.Helper()
	lab.RequireTools(t, names...)
}

// copyDir copies a recipe folder into a fresh temp folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func defaultRecipe(t *testing.T) string {
	t.Helper()
	root, err := lab.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return copyDir(t, filepath.Join(root, "assets", "recipes", "default"))
}

// events collects progress events.
type events struct {
	mu sync.Mutex
	ev []Progress
}

func (e *events) add(p Progress) { e.mu.Lock(); e.ev = append(e.ev, p); e.mu.Unlock() }

func (e *events) steps() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[string]int{}
	for _, p := range e.ev {
		m[p.Step]++
	}
	return m
}

func (e *events) percents(step string) []float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []float64
	for _, p := range e.ev {
		if p.Step == step && p.Percent > 0 {
			out = append(out, p.Percent)
		}
	}
	return out
}

func newBuilder(t *testing.T, dir string) *Builder {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBuilder(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDefaultRecipeBuildNoopChangeRollbackGC(t *testing.T) {
	requireTool(t, "mksquashfs", "unsquashfs", "busybox")
	vmlinuz, _ := lab.Kernel(t)
	kdir := filepath.Dir(vmlinuz)
	recipe := defaultRecipe(t)
	b := newBuilder(t, t.TempDir())
	s := b.Store()

	var ev events
	opts := BuildOptions{KernelDir: kdir, Publish: true, Progress: ev.add}
	m1, err := b.Build(context.Background(), recipe, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Image != "default" || m1.SourceHash == "" || m1.Log != FileLog {
		t.Fatalf("manifest %+v", m1)
	}
	if cur, _ := s.Current("default"); cur != m1.ID {
		t.Fatalf("current %q, want %q", cur, m1.ID)
	}
	if err := s.Verify("default", m1.ID); err != nil {
		t.Fatal(err)
	}
	steps := ev.steps()
	for _, st := range []string{StepHash, StepRootfs, StepOverlay, StepAgent, StepKernel, StepInitramfs, StepSquashfs, StepChecksums, StepPublish, StepDone} {
		if steps[st] == 0 {
			t.Errorf("no %s event; got %v", st, steps)
		}
	}
	if p := ev.percents(StepSquashfs); len(p) == 0 || p[len(p)-1] != 100 {
		t.Errorf("squashfs progress %v, want it to end at 100", p)
	}
	sq, _ := s.Path("default", m1.ID, FileRootfs)
	out, err := exec.Command("unsquashfs", "-l", sq).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs: %v: %s", err, out)
	}
	for _, want := range []string{"squashfs-root/bin/busybox", "squashfs-root/sbin/init", "squashfs-root/usr/sbin/netbootui-checkin", "squashfs-root/etc/motd", "squashfs-root/etc/inittab"} {
		if !bytes.Contains(out, []byte(want+"\n")) {
			t.Errorf("unsquashfs -l lacks %s", want)
		}
	}
	logp, _ := s.Path("default", m1.ID, FileLog)
	if lb, err := os.ReadFile(logp); err != nil || !bytes.Contains(lb, []byte("mksquashfs")) {
		t.Errorf("build log: %v, %.200q", err, lb)
	}
	// The kernel is Debian's, byte for byte.
	want, _ := os.ReadFile(vmlinuz)
	kp, _ := s.Path("default", m1.ID, FileKernel)
	if got, _ := os.ReadFile(kp); !bytes.Equal(got, want) {
		t.Error("generation kernel differs from the recipe's")
	}

	// Unchanged: a no-op that says so, fast, nothing new on disk.
	var ev2 events
	start := time.Now()
	m, err := b.Build(context.Background(), recipe, BuildOptions{KernelDir: kdir, Publish: true, Progress: ev2.add})
	if err != nil || m.ID != m1.ID {
		t.Fatalf("rebuild: %v, %v", m, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("no-op rebuild took %v", d)
	}
	t.Logf("no-op rebuild: %v", time.Since(start))
	if st := ev2.steps(); st[StepUnchanged] == 0 || st[StepSquashfs] != 0 {
		t.Fatalf("no-op rebuild steps %v", st)
	}
	if gens, _ := s.Generations("default"); len(gens) != 1 {
		t.Fatalf("%d generations after a no-op", len(gens))
	}

	// A changed overlay file: a new generation, published.
	if err := os.WriteFile(filepath.Join(recipe, "overlay", "etc", "motd"), []byte("second\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m2, err := b.Build(context.Background(), recipe, opts)
	if err != nil {
		t.Fatal(err)
	}
	if m2.ID == m1.ID || m2.SourceHash == m1.SourceHash {
		t.Fatalf("changed overlay gave the same generation %s", m2.ID)
	}
	if cur, _ := s.Current("default"); cur != m2.ID {
		t.Fatalf("current %s, want %s", cur, m2.ID)
	}
	// Rollback moves current back; the history pops.
	if id, err := s.Rollback("default"); err != nil || id != m1.ID {
		t.Fatalf("rollback = %q, %v; want %s", id, err, m1.ID)
	}
	if cur, _ := s.Current("default"); cur != m1.ID {
		t.Fatalf("current after rollback %s", cur)
	}
	if _, err := s.Rollback("default"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second rollback: %v, want ErrNotFound", err)
	}
	// GC keeping none: current (m1) stays, m2 is in use and stays.
	if rm, err := s.GC("default", 0, map[string]bool{m2.ID: true}); err != nil || len(rm) != 0 {
		t.Fatalf("gc with m2 in use removed %v, %v", rm, err)
	}
	rm, err := s.GC("default", 0, nil)
	if err != nil || len(rm) != 1 || rm[0] != m2.ID {
		t.Fatalf("gc removed %v, %v; want [%s]", rm, err, m2.ID)
	}
	if err := s.Verify("default", m1.ID); err != nil {
		t.Fatal(err)
	}
}

// bigRecipe writes a recipe with a directory root of mb MiB of random
// (incompressible) data, a dummy kernel and a module-less built-in init.
func bigRecipe(t *testing.T, mb int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "big")
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 1<<20)
	for i := 0; i < mb; i++ {
		rng.Read(buf)
		if err := os.WriteFile(filepath.Join(root, "data", "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "vmlinuz"), []byte("not really a kernel"), 0o644)
	os.WriteFile(filepath.Join(dir, RecipeFile), []byte(
		"name: big\nrootfs: {dir: root}\nkernel: {file: vmlinuz}\ninitramfs: {builtin: {}}\ncompression: gzip\n"), 0o644)
	return dir
}

// oldGeneration imports and publishes a small generation and returns its
// manifest and file contents.
func oldGeneration(t *testing.T, s *Store, image string) (*Manifest, map[string][]byte) {
	t.Helper()
	files := writeFiles(t, t.TempDir(), map[string]string{FileKernel: "old-k", FileInitrd: "old-i", FileRootfs: "old-r"})
	m, err := s.Import(image, files, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(image, m.ID); err != nil {
		t.Fatal(err)
	}
	content := map[string][]byte{}
	for _, f := range BootFiles {
		p, _ := s.Path(image, m.ID, f)
		content[f], _ = os.ReadFile(p)
	}
	return m, content
}

// checkUntouched asserts that old is the only, current, byte-identical
// generation and that no build directory is left.
func checkUntouched(t *testing.T, s *Store, image string, old *Manifest, content map[string][]byte) {
	t.Helper()
	if cur, err := s.Current(image); err != nil || cur != old.ID {
		t.Errorf("current = %q, %v; want %s", cur, err, old.ID)
	}
	gens, _ := s.Generations(image)
	if len(gens) != 1 || gens[0].ID != old.ID {
		t.Errorf("generations %v, want only %s", gens, old.ID)
	}
	for f, want := range content {
		p, _ := s.Path(image, old.ID, f)
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s changed: %q, %v", f, got, err)
		}
	}
	if err := s.Verify(image, old.ID); err != nil {
		t.Error(err)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Dir(), image, "generations"))
	for _, e := range ents {
		if e.Name() != old.ID {
			t.Errorf("left in generations: %s", e.Name())
		}
	}
}

func TestCancelMidSquashfs(t *testing.T) {
	requireTool(t, "mksquashfs", "busybox")
	recipe := bigRecipe(t, 48)
	b := newBuilder(t, t.TempDir())
	old, content := oldGeneration(t, b.Store(), "big")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	var cancelledAt time.Time
	opts := BuildOptions{Publish: true, Progress: func(p Progress) {
		if p.Step == StepSquashfs && p.Percent > 0 {
			once.Do(func() { cancelledAt = time.Now(); cancel() })
		}
	}}
	_, err := b.Build(ctx, recipe, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build = %v, want context.Canceled", err)
	}
	if cancelledAt.IsZero() {
		t.Fatal("no squashfs progress seen before the end")
	}
	if d := time.Since(cancelledAt); d > 3*time.Second {
		t.Errorf("build returned %v after the cancel", d)
	}
	checkUntouched(t, b.Store(), "big", old, content)
}

const helperEnv = "NETBOOTUI_IMAGE_TEST_HELPER"

// TestHelperBuild is the child of TestSIGKILLMidBuild and
// TestSIGKILLInChrootLeavesNoMounts: it builds the recipe in
// $NETBOOTUI_IMAGE_TEST_HELPER into the store in its argument and prints
// every step's percentages and every log line.
func TestHelperBuild(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process only")
	}
	recipe, store, _ := strings.Cut(spec, "|")
	s, err := OpenStore(store)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBuilder(s)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Build(context.Background(), recipe, BuildOptions{Publish: true, Progress: func(p Progress) {
		if p.Percent > 0 {
			os.Stdout.WriteString("STEP " + p.Step + " percent\n")
		}
		if p.Line != "" {
			os.Stdout.WriteString("LINE " + p.Line + "\n")
		}
	}})
	t.Fatalf("the build should have been killed; it returned %v", err)
}

func TestSIGKILLMidBuild(t *testing.T) {
	requireTool(t, "mksquashfs", "busybox")
	recipe := bigRecipe(t, 48)
	store := t.TempDir()
	s, _ := OpenStore(store)
	old, content := oldGeneration(t, s, "big")

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperBuild$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+recipe+"|"+store)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := make(chan bool, 1)
	go func() {
		buf := make([]byte, 4096)
		var all []byte
		for {
			n, err := stdout.Read(buf)
			all = append(all, buf[:n]...)
			if bytes.Contains(all, []byte("STEP squashfs percent")) {
				seen <- true
				io := stdout
				for { // drain
					if _, err := io.Read(buf); err != nil {
						return
					}
				}
			}
			if err != nil {
				seen <- false
				return
			}
		}
	}()
	select {
	case ok := <-seen:
		if !ok {
			cmd.Wait()
			t.Fatal("helper ended before mksquashfs ran")
		}
	case <-time.After(120 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("helper never reached mksquashfs")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// mksquashfs dies with its parent (Pdeathsig); give it a moment.
	time.Sleep(300 * time.Millisecond)

	// The killed build's directory is there but not a generation.
	s2, _ := OpenStore(store)
	gens, _ := s2.Generations("big")
	if len(gens) != 1 || gens[0].ID != old.ID {
		t.Fatalf("generations after SIGKILL: %v", gens)
	}
	if cur, _ := s2.Current("big"); cur != old.ID {
		t.Fatalf("current after SIGKILL: %s", cur)
	}
	// A new builder cleans it away.
	var removed []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		removed, err = s2.CleanStale()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || len(removed) != 1 {
		t.Fatalf("CleanStale removed %v, %v; want the killed build's directory", removed, err)
	}
	checkUntouched(t, s2, "big", old, content)
}

func TestFullDisk(t *testing.T) {
	requireTool(t, "mksquashfs", "busybox")
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		if os.Getenv(lab.RequireEnv) == "1" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("mount tmpfs: %v", err)
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	recipe := bigRecipe(t, 6)
	b := newBuilder(t, dir)
	old, content := oldGeneration(t, b.Store(), "big")
	_, err := b.Build(context.Background(), recipe, BuildOptions{Publish: true})
	if err == nil {
		t.Fatal("build on a full disk succeeded")
	}
	if !strings.Contains(err.Error(), "no space left on device") && !strings.Contains(err.Error(), "No space left") {
		t.Errorf("error does not say the disk is full: %v", err)
	}
	t.Logf("full disk: %v", err)
	checkUntouched(t, b.Store(), "big", old, content)
}

func TestQueueOneBuildPerImage(t *testing.T) {
	requireTool(t, "mksquashfs", "busybox")
	recipe := bigRecipe(t, 2)
	b := newBuilder(t, t.TempDir())
	q := NewQueue(b, 2)
	var mu sync.Mutex
	running, maxRunning := 0, 0
	opts := BuildOptions{Force: true, Progress: func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		switch p.Step {
		case StepHash:
			if p.Line == "" {
				running++
				maxRunning = max(maxRunning, running)
			}
		case StepDone:
			running--
		}
	}}
	var jobs []*Job
	for i := 0; i < 3; i++ {
		j, err := q.Submit(context.Background(), recipe, opts)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	jobs[2].Cancel()
	for i, j := range jobs[:2] {
		if _, err := j.Wait(); err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if j.State() != JobDone {
			t.Errorf("job %d state %s", i, j.State())
		}
	}
	jobs[2].Wait()
	if st := jobs[2].State(); st != JobCancelled && st != JobDone {
		t.Errorf("cancelled job state %s", st)
	}
	if maxRunning != 1 {
		t.Errorf("%d builds of one image ran at once", maxRunning)
	}
	if _, err := q.Submit(context.Background(), t.TempDir(), opts); err == nil {
		t.Error("a folder without image.yaml was queued")
	}
}
