package lab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/kernelcache"
)

// fakeTB records what RequireTools and Kernel do to a test.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Skipf(format string, args ...any)  { f.skipped = fmt.Sprintf(format, args...) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.failed = fmt.Sprintf(format, args...) }

func TestRequireTools(t *testing.T) {
	for _, tc := range []struct {
		name, env string
		tools     []string
		skip      bool
		fail      bool
	}{
		{"present", "", []string{"sh"}, false, false},
		{"present, required", "1", []string{"sh"}, false, false},
		{"missing skips", "", []string{"sh", "no-such-tool-nbui"}, true, false},
		{"missing fails when required", "1", []string{"no-such-tool-nbui"}, false, true},
		{"other values skip", "yes", []string{"no-such-tool-nbui"}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.env)
			f := &fakeTB{TB: t}
			RequireTools(f, tc.tools...)
			if (f.skipped != "") != tc.skip || (f.failed != "") != tc.fail {
				t.Fatalf("skipped %q failed %q; want skip %v fail %v", f.skipped, f.failed, tc.skip, tc.fail)
			}
			if msg := f.skipped + f.failed; msg != "" && !strings.Contains(msg, "no-such-tool-nbui") {
				t.Errorf("message %q does not name the tool", msg)
			}
		})
	}
}

func TestKernel(t *testing.T) {
	fetched := func(dir string) string {
		if err := os.MkdirAll(filepath.Join(dir, "modules"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"vmlinuz", "modules/modules.dep"} {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	good := fetched(t.TempDir())
	cache := t.TempDir()
	inCache := fetched(filepath.Join(cache, "kernel"))
	for _, tc := range []struct {
		name, dir, cache, env string
		want                  string
		skip, fail            bool
	}{
		{"found", good, "", "", good, false, false},
		{"found in NETBOOTUI_CACHE", "", cache, "", inCache, false, false},
		{"NETBOOTUI_KERNEL_DIR first", good, cache, "", good, false, false},
		{"absent skips", t.TempDir(), "", "", "", true, false},
		{"absent fails when required", t.TempDir(), "", "1", "", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(KernelDirEnv, tc.dir)
			t.Setenv(kernelcache.CacheEnv, tc.cache)
			t.Setenv(RequireEnv, tc.env)
			f := &fakeTB{TB: t}
			vmlinuz, mods := Kernel(f)
			if (f.skipped != "") != tc.skip || (f.failed != "") != tc.fail {
				t.Fatalf("skipped %q failed %q", f.skipped, f.failed)
			}
			if !tc.skip && !tc.fail {
				if vmlinuz != filepath.Join(tc.want, "vmlinuz") || mods != filepath.Join(tc.want, "modules") {
					t.Fatalf("Kernel = %s, %s", vmlinuz, mods)
				}
			} else if !strings.Contains(f.skipped+f.failed, "fetch-kernel.sh") {
				t.Errorf("message %q does not say how to get a kernel", f.skipped+f.failed)
			}
		})
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.Contains(string(b), "module github.com/netbootui/netbootui") {
		t.Fatalf("ModuleRoot %s: %v", root, err)
	}
}

func TestMAC(t *testing.T) {
	for _, tc := range []struct {
		i    int
		want string
	}{{0, "52:54:00:6e:00:00"}, {1, "52:54:00:6e:00:01"}, {258, "52:54:00:6e:01:02"}, {65535, "52:54:00:6e:ff:ff"}} {
		if got := MAC(tc.i); got != tc.want {
			t.Errorf("MAC(%d) = %s, want %s", tc.i, got, tc.want)
		}
		if _, err := net.ParseMAC(MAC(tc.i)); err != nil {
			t.Error(err)
		}
	}
}

func TestStartVMBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  VMOptions
		want string
	}{
		{"neither", VMOptions{}, "set exactly one of Kernel"},
		{"both", VMOptions{Kernel: "k", BootURL: "http://x/"}, "set exactly one of Kernel"},
		{"bad mac", VMOptions{Kernel: "k", MAC: "zz"}, "bad MAC"},
		{"comma in url", VMOptions{BootURL: "http://x/a,b"}, "cannot go into a QEMU option list"},
		{"no qemu", VMOptions{Kernel: "k", QEMU: "/nonexistent/qemu"}, "/nonexistent/qemu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vm, err := StartVM(context.Background(), tc.opt)
			if err == nil {
				vm.Stop()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestVMDirectBoot boots the test kernel without a root: it panics on the
// serial console. The test reads the log in order, uses the monitor, resets
// the VM (the kernel boots again) and stops it.
func TestVMDirectBoot(t *testing.T) {
	t.Parallel()
	RequireTools(t, "qemu-system-x86_64")
	vmlinuz, _ := Kernel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	vm, err := StartVM(ctx, VMOptions{Name: "panic", Kernel: vmlinuz, Append: "console=ttyS0 panic=0", Memory: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()

	m, err := vm.WaitSerial(ctx, regexp.MustCompile(`Linux version (\S+)`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m[1], "amd64") {
		t.Errorf("kernel version %q", m[1])
	}
	if _, err := vm.WaitSerial(ctx, regexp.MustCompile(`Kernel panic`)); err != nil {
		t.Fatal(err)
	}
	status, err := vm.Monitor("info status")
	if err != nil || !strings.Contains(status, "running") {
		t.Fatalf("info status: %q, %v", status, err)
	}

	// Nothing new matches yet: the wait ends with the context, quoting the log.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = vm.WaitSerial(short, regexp.MustCompile(`Linux version`))
	cancelShort()
	if err == nil || !strings.Contains(err.Error(), "Kernel panic") {
		t.Fatalf("wait past the end: %v", err)
	}

	if err := vm.Reset(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.WaitSerial(ctx, regexp.MustCompile(`Linux version`)); err != nil {
		t.Fatalf("no second boot after Reset: %v", err)
	}
	if _, err := vm.QMP("no-such-command", nil); err == nil || !strings.Contains(err.Error(), "CommandNotFound") {
		t.Errorf("bad QMP command: %v", err)
	}

	pid := vm.Pid()
	if err := vm.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.Done():
	default:
		t.Fatal("Stop returned before QEMU exited")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("qemu pid %d still exists", pid)
	}
	if _, err := vm.Monitor("info status"); err == nil {
		t.Fatal("monitor answers after Stop")
	}
	if err := vm.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

// TestVMNetworkBoot boots through QEMU's iPXE ROM from an HTTP server on
// loopback: the DHCP boot file is an iPXE script that loads the test kernel.
func TestVMNetworkBoot(t *testing.T) {
	t.Parallel()
	RequireTools(t, "qemu-system-x86_64")
	vmlinuz, _ := Kernel(t)
	var scriptHits, kernelHits atomic.Int32
	var userAgent atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("/boot.ipxe", func(w http.ResponseWriter, r *http.Request) {
		scriptHits.Add(1)
		userAgent.Store(r.UserAgent())
		fmt.Fprint(w, "#!ipxe\nkernel http://${next-server}:"+r.URL.Query().Get("port")+"/vmlinuz console=ttyS0 panic=0 nbui.mac=${mac}\nboot\n")
	})
	mux.HandleFunc("/vmlinuz", func(w http.ResponseWriter, r *http.Request) {
		kernelHits.Add(1)
		http.ServeFile(w, r, vmlinuz)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	dir := t.TempDir()
	vm, err := StartVM(ctx, VMOptions{
		Name: "pxe", MAC: MAC(7), BootURL: "http://10.0.2.2:" + port + "/boot.ipxe?port=" + port,
		Dir: dir, Memory: 256,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	m, err := vm.WaitSerial(ctx, regexp.MustCompile(`Command line: .*nbui\.mac=(\S+)`))
	if err != nil {
		t.Fatal(err)
	}
	if m[1] != MAC(7) {
		t.Errorf("iPXE saw MAC %s, want %s", m[1], MAC(7))
	}
	if scriptHits.Load() != 1 || kernelHits.Load() != 1 {
		t.Errorf("script fetched %d times, kernel %d times", scriptHits.Load(), kernelHits.Load())
	}
	if ua, _ := userAgent.Load().(string); !strings.Contains(ua, "iPXE") {
		t.Errorf("boot script fetched by %q, not iPXE", ua)
	}
	if vm.SerialLog() != filepath.Join(dir, "serial.log") {
		t.Errorf("serial log at %s", vm.SerialLog())
	}
}

// TestFetchKernelScript checks scripts/fetch-kernel.sh statically and, with
// a kernel already fetched, that a second run downloads and changes nothing.
func TestFetchKernelScript(t *testing.T) {
	RequireTools(t, "shellcheck")
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "scripts", "fetch-kernel.sh")
	if out, err := exec.Command("shellcheck", "-s", "sh", script).CombinedOutput(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
	dir, err := KernelDir()
	if err != nil {
		t.Skipf("no fetched kernel to re-run against: %v", err)
	}
	before, err := os.Stat(filepath.Join(dir, "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "already holds kernel") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	after, err := os.Stat(filepath.Join(dir, "vmlinuz"))
	if err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("second run touched vmlinuz: %v", err)
	}
}
