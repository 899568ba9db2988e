// Package labbuild builds, once per test binary, what end-to-end tests boot
// and run: the netbootui binary and a generation of the default recipe made
// by the real image pipeline. Test support only: the product never imports
// it. A test package that uses it removes the results in its TestMain with
// Cleanup.
package labbuild

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
)

var (
	mu   sync.Mutex
	dirs []string

	binOnce sync.Once
	binPath string
	binErr  error

	genOnce  sync.Once
	genFiles map[string]string
	genErr   error

	agentOnce sync.Once
	agentPath string
	agentErr  error

	agentGenOnce  sync.Once
	agentGenFiles map[string]string
	agentGenErr   error
)

// tempDir makes a folder that Cleanup removes, readable and searchable by
// every user (a test may run the binary as nobody).
func tempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	mu.Lock()
	dirs = append(dirs, dir)
	mu.Unlock()
	return dir, os.Chmod(dir, 0o755)
}

// Main runs a package's tests and then Cleanup: a test package that
// builds with labbuild has `func TestMain(m *testing.M) { labbuild.Main(m) }`.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Cleanup removes everything this package built. Call it from TestMain
// after m.Run (Main does).
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	for _, d := range dirs {
		os.RemoveAll(d)
	}
	dirs = nil
}

// Netbootui returns the path of cmd/netbootui built from this checkout
// (without -race: the daemon under test is not what is being raced).
func Netbootui(tb testing.TB) string {
	tb.Helper()
	lab.RequireTools(tb, "go")
	binOnce.Do(func() {
		root, err := lab.ModuleRoot()
		if err != nil {
			binErr = err
			return
		}
		dir, err := tempDir("netbootui-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "netbootui")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/netbootui")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building netbootui: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

// DefaultGeneration builds assets/recipes/default (Debian's kernel from
// scripts/fetch-kernel.sh, the live initramfs around busybox-static, a
// busybox squashfs root with the check-in agent) and returns its boot files
// by name (image.BootFiles), for a test's daemon to import.
func DefaultGeneration(tb testing.TB) map[string]string {
	tb.Helper()
	lab.RequireTools(tb, "mksquashfs")
	_, modules := lab.Kernel(tb)
	genOnce.Do(func() {
		genFiles, genErr = buildDefault(filepath.Dir(modules))
	})
	if genErr != nil {
		tb.Fatal(genErr)
	}
	return genFiles
}

// NodeAgent returns the path of cmd/netbootui-agent built statically from
// this checkout (CGO_ENABLED=0, as the initramfs needs it).
func NodeAgent(tb testing.TB) string {
	tb.Helper()
	lab.RequireTools(tb, "go")
	agentOnce.Do(func() {
		dir, err := tempDir("netbootui-agent-")
		if err != nil {
			agentErr = err
			return
		}
		agentPath, agentErr = BuildAgent(dir)
	})
	if agentErr != nil {
		tb.Fatal(agentErr)
	}
	return agentPath
}

// BuildAgent builds cmd/netbootui-agent statically into dir and returns its
// path (for callers without a testing.TB: bench/kexec).
func BuildAgent(dir string) (string, error) {
	root, err := lab.ModuleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "netbootui-agent")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", p, "./cmd/netbootui-agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building netbootui-agent: %v\n%s", err, out)
	}
	return p, nil
}

// AgentGeneration is DefaultGeneration with the node agent in its
// initramfs (NodeAgent): the image reboot-clean can kexec.
func AgentGeneration(tb testing.TB) map[string]string {
	tb.Helper()
	lab.RequireTools(tb, "mksquashfs")
	_, modules := lab.Kernel(tb)
	agent := NodeAgent(tb)
	agentGenOnce.Do(func() {
		agentGenFiles, agentGenErr = BuildGeneration(filepath.Dir(modules), agent)
	})
	if agentGenErr != nil {
		tb.Fatal(agentGenErr)
	}
	return agentGenFiles
}

func buildDefault(kernelDir string) (map[string]string, error) { return BuildGeneration(kernelDir, "") }

// BuildGeneration builds assets/recipes/default with the kernel of
// kernelDir and, when agent is not "", the node agent at that path, into a
// store of its own (removed by Cleanup) and returns its boot files by name.
func BuildGeneration(kernelDir, agent string) (map[string]string, error) {
	root, err := lab.ModuleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := tempDir("netbootui-image-")
	if err != nil {
		return nil, err
	}
	store, err := image.OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		return nil, err
	}
	b, err := image.NewBuilder(store)
	if err != nil {
		return nil, err
	}
	m, err := b.Build(context.Background(), filepath.Join(root, "assets/recipes/default"), image.BuildOptions{KernelDir: kernelDir, Agent: agent})
	if err != nil {
		return nil, fmt.Errorf("building the default recipe: %w", err)
	}
	files := map[string]string{}
	for _, f := range image.BootFiles {
		if files[f], err = store.Path(m.Image, m.ID, f); err != nil {
			return nil, err
		}
	}
	return files, nil
}
