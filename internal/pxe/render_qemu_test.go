package pxe

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/pin/tftp/v3"
)

// TestIPXEBootsRenderedScripts runs the rendered scripts in QEMU's real iPXE
// ROM (TCG, user-mode networking; 10.0.2.2 is this host's loopback):
//
//  1. the ROM fetches ChainIPXE's script, which must chain
//     /boot/${mac}.ipxe with iPXE's ${mac} equal to net.HardwareAddr.String;
//  2. the first node script names a kernel that answers 404: the script must
//     print the failure, sleep and chain its own URL again (no shell);
//  3. the second names a kernel and initrd that exist: iPXE must fetch both
//     (the initrd under --name initrd) and boot the kernel. The "kernel"
//     is itself an iPXE script that reports back, since no Linux kernel is
//     at hand here; that proves kernel, initrd and boot ran in order.
func TestIPXEBootsRenderedScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boot skipped in -short")
	}
	qemu := renderRequireTool(t, "qemu-system-x86_64")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	guestBase := fmt.Sprintf("http://10.0.2.2:%d", port)

	const macStr = "52:54:00:12:34:56"
	node := testNode("q01", inventory.ArchBIOS, inventory.LoaderIPXE, macStr)
	r := mustRenderer(t)

	var mu sync.Mutex
	var log []string
	scriptServed := 0
	booted := make(chan string, 1)
	record := func(s string) {
		mu.Lock()
		log = append(log, s)
		mu.Unlock()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/chain.ipxe", func(w http.ResponseWriter, req *http.Request) {
		record("chain")
		fmt.Fprint(w, ChainIPXE(guestBase))
	})
	mux.HandleFunc("/boot/", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/boot/"+macStr+".ipxe" {
			record("bad-script-path " + req.URL.Path)
			http.NotFound(w, req)
			return
		}
		mu.Lock()
		scriptServed++
		n := scriptServed
		mu.Unlock()
		record(fmt.Sprintf("script%d", n))
		p := paramsFor(node, testGen)
		p.BaseURL = guestBase
		p.CheckinURL = guestBase + "/checkin"
		p.ScriptURL = guestBase + "/boot/" + macStr + ".ipxe"
		if n == 1 {
			p.KernelURL = guestBase + "/missing/vmlinuz?node=q01"
		} else {
			p.KernelURL = guestBase + "/img/vmlinuz?node=q01"
			p.InitrdURL = guestBase + "/img/initrd?node=q01"
		}
		out, err := r.IPXE(p)
		if err != nil {
			record("render error " + err.Error())
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, out)
	})
	mux.HandleFunc("/missing/", func(w http.ResponseWriter, req *http.Request) {
		record("kernel-404")
		http.NotFound(w, req)
	})
	mux.HandleFunc("/img/vmlinuz", func(w http.ResponseWriter, req *http.Request) {
		record("kernel " + req.URL.RawQuery)
		fmt.Fprintf(w, "#!ipxe\nchain %s/booted?image=${selected-image}\n", guestBase)
	})
	mux.HandleFunc("/img/initrd", func(w http.ResponseWriter, req *http.Request) {
		record("initrd " + req.URL.RawQuery)
		w.Write(make([]byte, 4096))
	})
	mux.HandleFunc("/booted", func(w http.ResponseWriter, req *http.Request) {
		record("booted")
		select {
		case booted <- req.URL.RawQuery:
		default:
		}
		fmt.Fprint(w, "#!ipxe\nsleep 600\n")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	vm, err := lab.StartVM(ctx, lab.VMOptions{Name: "q01", QEMU: qemu, Memory: 256, MAC: macStr, BootURL: guestBase + "/chain.ipxe"})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()

	select {
	case <-booted:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("iPXE did not get through the scripts in time; requests: %v", log)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"chain", "script1", "kernel-404", "script2", "kernel node=q01", "initrd node=q01", "booted"}
	if strings.Join(log, "|") != strings.Join(want, "|") {
		t.Errorf("request sequence %q, want %q", log, want)
	}
}

// TestPxelinuxBootsRenderedConfigs runs the rendered configs in Debian's
// real pxelinux, loaded by QEMU's iPXE ROM from a TFTP server on a random
// 127.x.y.z:69 (QEMU's own TFTP answers 10.0.2.2):
//
//  1. the first config is the no-generation entry: pxelinux must show it,
//     wait (PROMPT 1, TIMEOUT 100) and load its own config again (CONFIG);
//     (CONFIG restarts ldlinux.c32, which is fetched again);
//  2. the second boots a generation: pxelinux must fetch the KERNEL path
//     and then the INITRD path, once per attempt (the APPEND line also
//     names it with initrd=, and syslinux loads only the first). The kernel
//     is not a real Linux kernel, so the attempt fails and pxelinux tries
//     the DEFAULT again after TIMEOUT; the fetches are the proof.
func TestPxelinuxBootsRenderedConfigs(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU boot skipped in -short")
	}
	qemu := renderRequireTool(t, "qemu-system-x86_64")
	files := map[string]string{
		"pxelinux.0":  "/usr/lib/PXELINUX/pxelinux.0",
		"ldlinux.c32": "/usr/lib/syslinux/modules/bios/ldlinux.c32",
	}
	for _, f := range files {
		lab.RequireTools(t, f) // packages pxelinux, syslinux-common
	}

	const macStr = "52:54:00:12:34:57"
	cfgName := "pxelinux.cfg/01-52-54-00-12-34-57"
	node := testNode("q02", inventory.ArchBIOS, inventory.LoaderPxelinux, macStr)
	r := mustRenderer(t)

	var mu sync.Mutex
	var log []string
	var cfgTimes []time.Time
	cfgServed := 0
	gotInitrd := make(chan struct{}, 1)
	handler := func(name string, rf io.ReaderFrom) error {
		name = strings.TrimPrefix(name, "/")
		var data []byte
		switch {
		case files[name] != "":
			b, err := os.ReadFile(files[name])
			if err != nil {
				return err
			}
			data = b
		case name == cfgName:
			mu.Lock()
			cfgServed++
			n := cfgServed
			cfgTimes = append(cfgTimes, time.Now())
			mu.Unlock()
			gen := ""
			if n > 1 {
				gen = testGen
			}
			out, err := r.Pxelinux(paramsFor(node, gen))
			if err != nil {
				return err
			}
			data = []byte(out)
			name = fmt.Sprintf("config%d", n)
		case name == "images/rocky9/"+testGen+"/vmlinuz":
			data = bytes.Repeat([]byte{0}, 64<<10)
			name = "kernel"
		case name == "images/rocky9/"+testGen+"/initrd":
			data = bytes.Repeat([]byte{0}, 4<<10)
			name = "initrd"
			select {
			case gotInitrd <- struct{}{}:
			default:
			}
		default:
			if !strings.HasPrefix(name, "pxelinux.cfg/") {
				mu.Lock()
				log = append(log, "unexpected "+name)
				mu.Unlock()
			}
			return fmt.Errorf("%s: not found", name)
		}
		mu.Lock()
		log = append(log, name)
		mu.Unlock()
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ot.SetSize(int64(len(data)))
		}
		_, err := rf.ReadFrom(bytes.NewReader(data))
		return err
	}
	ip := fmt.Sprintf("127.%d.%d.%d", 10+rand.IntN(200), rand.IntN(250), 2+rand.IntN(250))
	conn, err := net.ListenPacket("udp4", ip+":69")
	if err != nil {
		t.Skipf("cannot bind TFTP on %s:69 (needs root): %v", ip, err)
	}
	srv := tftp.NewServer(handler, nil)
	srv.SetTimeout(2 * time.Second)
	go srv.Serve(conn)
	defer srv.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	vm, err := lab.StartVM(ctx, lab.VMOptions{Name: "p01", QEMU: qemu, Memory: 256, MAC: macStr, BootURL: "tftp://" + ip + "/pxelinux.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Stop()
	select {
	case <-gotInitrd:
		time.Sleep(2 * time.Second) // a second initrd fetch would come now
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("pxelinux did not get through the configs in time; files: %v", log)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "pxelinux.0|ldlinux.c32|config1|ldlinux.c32|config2|kernel|initrd"
	got := strings.Join(log, "|")
	for strings.HasSuffix(got, "|kernel|initrd") && len(got) > len(want) {
		got = strings.TrimSuffix(got, "|kernel|initrd") // later attempts
	}
	if got != want {
		t.Errorf("TFTP sequence %q, want %q then only kernel|initrd pairs", log, want)
	}
	if len(cfgTimes) >= 2 {
		gap := cfgTimes[1].Sub(cfgTimes[0])
		t.Logf("no-generation entry waited %v before reloading its config", gap)
		if gap < 8*time.Second {
			t.Errorf("config reloaded after %v, want about %d s (TIMEOUT)", gap, WaitSeconds)
		}
	}
}
