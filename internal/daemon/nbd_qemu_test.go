package daemon_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/image/liveinit"
	"github.com/netbootui/netbootui/internal/lab"
)

var nbdReadRE = regexp.MustCompile(`netbootui: nbd0: read_kb=(\d+) size_kb=(\d+)`)

// TestQEMUNBDRoot boots the default recipe's root as a network block device
// served by Debian's nbd-server (the configuration netbootui writes), and
// the same generation over http-live beside it, and prints the RAM each
// uses once its root is up and how much of the device the NBD node read.
// The NBD node's initramfs is the default recipe's plus nbd-client and its
// libraries (liveinit Programs).
func TestQEMUNBDRoot(t *testing.T) {
	t.Parallel()
	l := newNBDLab(t)
	inv := nbdImages(l.port, `  live-http: {kernel_args: "console=ttyS0 panic=-1"}
`) + fmt.Sprintf(`nodes:
  - {name: q-nbd, image: live-nbd, nics: [{mac: %q}]}
  - {name: q-http2, image: live-http, nics: [{mac: %q}]}
`, lab.MAC(40), lab.MAC(41))
	l.start(t, inv, map[string]string{"live-nbd": l.initrd, "live-http": l.files["initrd"]}, ballastRootfs(t, l.files["rootfs.squashfs"], 48))
	env, d, gens, conf := l.env, l.env.D, l.gens, l.conf
	sq, _ := d.Images().Path("live-nbd", gens["live-nbd"], image.FileRootfs)
	if !strings.Contains(conf, "[live-nbd."+gens["live-nbd"]+"]\n\texportname = "+sq+"\n\treadonly = true") || strings.Contains(conf, "live-http") {
		t.Fatalf("nbd-server configuration:\n%s", conf)
	}

	base := "http://10.0.2.2:" + env.HTTPPort()
	vmCtx, vmCancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer vmCancel()
	httpVM := bootVM(vmCtx, t, "q-http2", lab.MAC(41), base)
	nbdVM := bootVM(vmCtx, t, "q-nbd", lab.MAC(40), base)
	nbdSt := waitBooted(t, d, nbdVM, "q-nbd", gens["live-nbd"], 4*time.Minute)
	waitBooted(t, d, httpVM, "q-http2", gens["live-http"], 4*time.Minute)
	for _, m := range nbdSt.Timeline {
		if m.Stage == bootstate.StageRootfs {
			t.Errorf("q-nbd fetched a rootfs over HTTP: %v", stagesOf(nbdSt))
		}
	}
	if !strings.Contains(nbdVM.Serial(), "netbootui: attaching nbd root 10.0.2.2:") {
		t.Errorf("q-nbd serial does not show the NBD attach:\n%s", lab.Tail(nbdVM.Serial(), 30))
	}
	rd := nbdReadRE.FindStringSubmatch(nbdVM.Serial())
	if rd == nil {
		t.Fatalf("q-nbd printed no nbd0 line:\n%s", lab.Tail(nbdVM.Serial(), 30))
	}
	usedNBD, usedHTTP := usedKiB(t, nbdVM), usedKiB(t, httpVM)
	read, size := atoi(rd[1]), atoi(rd[2])
	t.Logf("RAM used once the root is up (MemTotal-MemAvailable, same %d KiB generation with 48 MiB nobody reads): nbd %d KiB, http-live %d KiB; the NBD node read %d KiB of the device",
		size, usedNBD, usedHTTP, read)
	// The NBD node reads what it uses, not the ballast; the http-live
	// node holds the whole squashfs in RAM.
	if read > size/2 {
		t.Errorf("the NBD node read %d KiB of %d KiB: not on demand", read, size)
	}
	if usedHTTP-usedNBD < 32<<10 {
		t.Errorf("RAM used: nbd %d KiB, http-live %d KiB: want the 48 MiB squashfs to show", usedNBD, usedHTTP)
	}
}

// usedKiB is the last "netbootui: memory" line of vm's serial log: used_kb.
func usedKiB(t *testing.T, vm *lab.VM) int {
	t.Helper()
	m := memRE.FindAllStringSubmatch(vm.Serial(), -1)
	if len(m) == 0 {
		t.Fatalf("no memory line:\n%s", lab.Tail(vm.Serial(), 30))
	}
	return atoi(m[len(m)-1][3])
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// tcpListening says whether a TCP socket listens on port, from
// /proc/net/tcp and tcp6 (state 0A is LISTEN).
func tcpListening(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				return true
			}
		}
	}
	return false
}

// nbdLab is the NBD tests' setting: the default generation, an initramfs
// with nbd-client, a port for nbd-server; then (start) a daemon and the
// nbd-server serving its nbd images.
type nbdLab struct {
	files  map[string]string
	dir    string
	initrd string
	port   int
	env    *daemontest.Env
	gens   map[string]string // image -> its published generation
	conf   string            // nbd-server's configuration
	srv    *nbdServer
}

func newNBDLab(t *testing.T) *nbdLab {
	t.Helper()
	lab.RequireTools(t, "qemu-system-x86_64", "nbd-server", "nbd-client", "ldd")
	l := &nbdLab{files: testImage(t), dir: t.TempDir(), port: lab.FreePort(t)}
	_, modules := lab.Kernel(t)
	l.initrd = nbdInitrd(t, l.dir, modules)
	return l
}

// start starts the daemon on inv, publishes the default generation's
// kernel with rootfs and each image's initramfs, and starts nbd-server
// with the daemon's configuration (stopped when the test ends).
func (l *nbdLab) start(t *testing.T, inv string, initrds map[string]string, rootfs string) {
	t.Helper()
	l.env = daemontest.Start(t, daemontest.Options{Dir: l.dir, Inventory: inv, Config: rootLabConfig(t),
		Before: func(d *Daemon) (err error) {
			l.gens, err = publishAll(d, l.files, initrds, rootfs)
			natAdvertise(d)
			return err
		}})
	conf, err := l.env.D.NBDServerConfig("127.0.0.1", l.port)
	if err != nil {
		t.Fatal(err)
	}
	l.conf = conf
	l.srv = startNBDServer(t, l.dir, conf, l.port)
	t.Cleanup(func() { l.srv.stop() })
}

// nbdImages is the settings and images of an NBD test's inventory: the
// site's nbd-server at 10.0.2.2:port, image live-nbd on it, then more.
func nbdImages(port int, more string) string {
	return fmt.Sprintf(`settings:
  nbd: {server: 10.0.2.2, port: %d}
images:
  live-nbd: {root: nbd, kernel_args: "console=ttyS0 panic=-1"}
%s`, port, more)
}

// nbdInitrd builds the NBD tests' initramfs in dir: the default recipe's
// modules plus nbd (and nfsv4), with nbd-client and its libraries.
func nbdInitrd(t *testing.T, dir, modules string) string {
	t.Helper()
	nbdClient, _ := exec.LookPath("nbd-client")
	initrd := filepath.Join(dir, "initrd-nbd")
	if err := liveinit.BuildFile(initrd, liveinit.Options{KernelModulesDir: modules,
		Modules:  []string{"virtio_pci", "virtio_net", "e1000", "loop", "squashfs", "overlay", "nfsv4", "nbd"},
		Programs: []string{nbdClient}}); err != nil {
		t.Fatal(err)
	}
	return initrd
}

// nbdServer is a Debian nbd-server the test started with netbootui's
// configuration.
type nbdServer struct {
	pidFile string
}

// startNBDServer writes conf into dir and starts nbd-server on it; it
// returns once the server listens on port.
func startNBDServer(t *testing.T, dir, conf string, port int) *nbdServer {
	t.Helper()
	confPath := filepath.Join(dir, "nbd-server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// nbd-server forks a server per client; in its no-fork mode (-d) it
	// serves one connection only. It runs in the background, stopped by
	// its pid file; a probe connection would use up -d, so readiness is
	// seen as the port being taken.
	s := &nbdServer{pidFile: filepath.Join(dir, "nbd-server.pid")}
	os.Remove(s.pidFile)
	if out, err := exec.Command("nbd-server", "-C", confPath, "-p", s.pidFile).CombinedOutput(); err != nil {
		t.Fatalf("nbd-server: %v\n%s", err, out)
	}
	// Readiness is read from the kernel's socket table: a probe that binds
	// the port itself could take it from under nbd-server, which then
	// exits with "address in use".
	lab.Eventually(t, "nbd-server listens", 20*time.Second, func() bool { return tcpListening(port) })
	return s
}

// stop kills the server and the children serving its connections (each
// client's connection drops, as when the server host goes away).
func (s *nbdServer) stop() {
	b, err := os.ReadFile(s.pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	syscall.Kill(pid, syscall.SIGSTOP) // no new children while they are found
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range procs {
		st, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold blanks, so read after ")".
		fields := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			if child, err := strconv.Atoi(filepath.Base(filepath.Dir(f))); err == nil {
				syscall.Kill(child, syscall.SIGKILL)
			}
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	os.Remove(s.pidFile)
}
