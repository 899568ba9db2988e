package pxe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/inventory"
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
	cmd := exec.CommandContext(ctx, qemu,
		"-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none", "-serial", "none",
		"-netdev", "user,id=n0,bootfile="+guestBase+"/chain.ipxe",
		"-device", "virtio-net-pci,netdev=n0,mac="+macStr,
		"-boot", "n")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()

	select {
	case <-booted:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("iPXE did not get through the scripts in time; requests: %v; qemu: %s", log, stderr.String())
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"chain", "script1", "kernel-404", "script2", "kernel node=q01", "initrd node=q01", "booted"}
	if strings.Join(log, "|") != strings.Join(want, "|") {
		t.Errorf("request sequence %q, want %q", log, want)
	}
}
