package qemubmc

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
)

// requireTool skips when a program is missing, or fails when
// NETBOOTUI_REQUIRE_TOOLS=1 (CI).
func requireTool(t *testing.T, names ...string) {
	t.Helper()
	lab.RequireTools(t, names...)
}

func TestOptionsCheck(t *testing.T) {
	good := Options{Dir: "/tmp/x", MAC: "52:54:00:6e:00:01", BootURL: "http://10.0.2.2:8080/boot/52:54:00:6e:00:01.ipxe"}
	tests := []struct {
		name   string
		edit   func(*Options)
		errHas string
	}{
		{"ok", func(*Options) {}, ""},
		{"tftp url", func(o *Options) { o.BootURL = "tftp://127.0.0.2/undionly.kpxe" }, ""},
		{"no dir", func(o *Options) { o.Dir = "" }, "Dir is required"},
		{"bad mac", func(o *Options) { o.MAC = "52:54:00" }, `MAC "52:54:00"`},
		{"no url", func(o *Options) { o.BootURL = "" }, "boot URL"},
		{"ftp url", func(o *Options) { o.BootURL = "ftp://h/x" }, "boot URL"},
		{"quote in dir", func(o *Options) { o.Dir = "/tmp/a'b" }, "quote"},
		{"comma in url", func(o *Options) { o.BootURL = "http://10.0.2.2:1/a,b" }, "comma"},
		{"dollar in url", func(o *Options) { o.BootURL = "http://10.0.2.2:1/${mac}" }, "$"},
		{"space in name", func(o *Options) { o.Name = "a b" }, "space"},
		{"memory", func(o *Options) { o.Memory = 10 }, "memory 10 MiB"},
	}
	for _, tc := range tests {
		o := good
		tc.edit(&o)
		err := o.check()
		if tc.errHas == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.errHas)
		}
	}
}

// FuzzOptionsCheck: whatever check accepts is safe to put between single
// quotes in the chassis script and into a QEMU option list.
func FuzzOptionsCheck(f *testing.F) {
	f.Add("/tmp/x", "n1", "http://10.0.2.2:80/boot/a.ipxe")
	f.Add("/tmp/x'", "n;1", "http://10.0.2.2:80/$(reboot)")
	f.Fuzz(func(t *testing.T, dir, name, url string) {
		o := Options{Dir: dir, Name: name, MAC: "52:54:00:6e:00:01", BootURL: url}
		if o.check() != nil {
			return
		}
		for _, s := range []string{o.Dir, o.Name, o.BootURL} {
			if strings.ContainsAny(s, "'\n,$`\"\\ ") {
				t.Fatalf("accepted %q", s)
			}
		}
	})
}

func TestWriteChassisControl(t *testing.T) {
	dir := t.TempDir()
	o := Options{Dir: dir, Name: "lab01", MAC: "52:54:00:6e:00:01", BootURL: "http://10.0.2.2:8080/boot/x.ipxe", SerialPort: 4444}
	p := filepath.Join(dir, "chassis_control")
	if err := WriteChassisControl(p, o); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	for _, want := range []string{"dir='" + dir + "'", "-name 'lab01'", "host=127.0.0.1,port=4444,reconnect=1", "mac=52:54:00:6e:00:01",
		"bootfile='http://10.0.2.2:8080/boot/x.ipxe'", "-accel tcg", "-daemonize -pidfile"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("script lacks %q", want)
		}
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if err := WriteChassisControl(p, Options{Dir: dir, MAC: o.MAC, BootURL: o.BootURL}); err == nil || !strings.Contains(err.Error(), "serial port 0") {
		t.Errorf("no serial port: %v", err)
	}
	// The script answers ipmi_sim's calls: off until powered on, boot
	// device recorded.
	out, err := exec.Command(p, "get", "power", "boot").CombinedOutput()
	if err != nil || string(out) != "power:0\nboot:default\n" {
		t.Errorf("get: %q %v", out, err)
	}
	if out, err := exec.Command(p, "set", "boot", "pxe").CombinedOutput(); err != nil {
		t.Fatalf("set boot: %s %v", out, err)
	}
	out, _ = exec.Command(p, "get", "boot").CombinedOutput()
	if string(out) != "boot:pxe\n" {
		t.Errorf("after set boot pxe: %q", out)
	}
}

func ipmitool(t *testing.T, n *Node, pw string, args ...string) string {
	t.Helper()
	base := []string{"-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(n.Port()), "-U", "admin", "-P", pw}
	out, err := exec.Command("ipmitool", append(base, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ipmitool %v: %v\n%s\nchassis log:\n%s", args, err, out, n.ChassisLog())
	}
	return string(out)
}

// TestPowerStartsAndStopsQEMU: power on over IPMI (ipmitool against
// ipmi_sim) starts a QEMU process from the node's folder, power off stops
// it, power on again and Stop leaves no process of the node's folder.
func TestPowerStartsAndStopsQEMU(t *testing.T) {
	requireTool(t, "qemu-system-x86_64", "ipmi_sim", "ipmitool")
	dir, err := os.MkdirTemp("", "nbqb-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	// Nothing answers on port 9 (discard): the VM's iPXE just retries.
	n, err := Start(Options{Dir: dir, Name: "t1", MAC: "52:54:00:6e:00:09", BootURL: "http://10.0.2.2:9/boot/x.ipxe", Password: "pw1", Memory: 128})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			n.Stop()
		}
	}()
	if n.QEMUPid() != 0 {
		t.Fatal("QEMU runs before power on")
	}
	if got := Procs(dir); len(got) != 1 || got[0] != n.BMCPid() {
		t.Errorf("Procs before power on = %v, want only ipmi_sim %d", got, n.BMCPid())
	}
	ipmitool(t, n, "pw1", "chassis", "power", "on")
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out; chassis log:\n%s", what, n.ChassisLog())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("QEMU up", func() bool { return n.QEMUPid() != 0 })
	first := n.QEMUPid()
	if !strings.Contains(ipmitool(t, n, "pw1", "chassis", "power", "status"), "is on") {
		t.Error("power status is not on")
	}
	ipmitool(t, n, "pw1", "chassis", "power", "off")
	waitFor("QEMU gone", func() bool { return !alive(first) })
	ipmitool(t, n, "pw1", "chassis", "power", "on")
	waitFor("QEMU up again", func() bool { return n.QEMUPid() != 0 })
	second := n.QEMUPid()
	bmc := n.BMCPid()
	stopped = true
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if alive(second) || alive(bmc) {
		t.Errorf("after Stop: qemu %d alive %v, ipmi_sim %d alive %v", second, alive(second), bmc, alive(bmc))
	}
	if left := Procs(dir); len(left) != 0 {
		t.Errorf("processes left in %s: %v", dir, left)
	}
	if err := n.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	log := n.ChassisLog()
	if !strings.Contains(log, "set power 1") || !strings.Contains(log, "set power 0") {
		t.Errorf("chassis log:\n%s", log)
	}
}
