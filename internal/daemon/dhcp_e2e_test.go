package daemon_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/lab/labbuild"
)

// TestQEMUProxyDHCPBesideDnsmasq is the proxyDHCP's end to end: the site's
// DHCP server (dnsmasq, addresses and router advertisements only, no boot
// options) runs in its own namespace plugged into the boot segment; the real
// `netbootui serve --proxydhcp br0` serves TFTP and HTTP on 10.99.0.1; two
// QEMU nodes on taps get their address from dnsmasq and their boot file
// from us, boot and check in:
//   - q-bios: SeaBIOS with QEMU's iPXE ROM (the firmware is iPXE, chained
//     straight to its script);
//   - q-uefi: OVMF, whose EDK2 PXE takes our proxy offer, asks port 4011 for
//     its boot file, fetches ipxe.efi over TFTP; that iPXE asks DHCP again
//     (reported as info, same boot) and is chained to its script.
//
// `netbootui events` shows each node's dhcp stage before the next stage.
func TestQEMUProxyDHCPBesideDnsmasq(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "dnsmasq")
	ovmf := "/usr/share/ovmf/OVMF.fd"
	if _, err := os.Stat(ovmf); err != nil {
		lab.RequireTools(t, ovmf+" (package ovmf)")
	}
	files := testImage(t)
	bin := labbuild.Netbootui(t)
	server, site := lab.NewNetns(t), lab.NewNetns(t)
	// The site namespace is the DHCP server's host: one veth on the boot
	// segment, 10.99.0.2 (its own br0 would shadow the server's address).
	site.IP(t, "link", "del", lab.NetnsBridge)
	server.IP(t, "link", "add", "vs0", "type", "veth", "peer", "name", "site0", "netns", site.Name())
	server.IP(t, "link", "set", "vs0", "master", lab.NetnsBridge)
	server.IP(t, "link", "set", "vs0", "up")
	site.IP(t, "addr", "add", "10.99.0.2/24", "dev", "site0")
	site.IP(t, "addr", "add", "fd99::2/64", "dev", "site0", "nodad")
	site.IP(t, "link", "set", "site0", "up")

	dir := t.TempDir()
	conf := filepath.Join(dir, "dnsmasq.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`port=0
interface=site0
bind-interfaces
dhcp-range=10.99.0.100,10.99.0.199,255.255.255.0,1h
dhcp-range=fd99::,ra-only
enable-ra
dhcp-authoritative
dhcp-leasefile=%s
`, filepath.Join(dir, "dnsmasq.leases"))), 0o644)
	dnsmasqLog := lab.StartProcess(t, "dnsmasq", site.Command("dnsmasq", "--keep-in-foreground", "--conf-file="+conf, "--log-facility=-",
		"--log-dhcp", "--pid-file="+filepath.Join(dir, "dnsmasq.pid"), "--user=root", "--group=root"))

	inv := filepath.Join(dir, "nodes.yaml")
	os.WriteFile(inv, []byte(fmt.Sprintf(`images:
  live:
    kernel_args: "console=ttyS0 panic=-1"
groups:
  lab:
    image: live
nodes:
  - name: q-bios
    group: lab
    nics: [{mac: %q}]
  - name: q-uefi
    group: lab
    arch: uefi
    nics: [{mac: %q}]
`, lab.MAC(20), lab.MAC(21))), 0o644)
	socket := filepath.Join(dir, "api.sock")
	lab.StartProcess(t, "netbootui serve", server.Command(bin, "serve", "--proxydhcp", lab.NetnsBridge,
		"--inventory", inv, "--data", filepath.Join(dir, "data"), "--api-socket", socket,
		"--http-listen", lab.NetnsBridgeIPv4+":8080", "--tftp-listen", lab.NetnsBridgeIPv4+":69",
		"--power-poll", "0", "--log-level", "debug"))
	lab.Eventually(t, "API of netbootui serve", 30*time.Second, func() bool {
		return exec.Command(bin, "status", "--api-socket", socket).Run() == nil
	})
	if out, err := exec.Command(bin, "image", "import", "live", "--api-socket", socket, "--kernel", files["vmlinuz"],
		"--initrd", files["initrd"], "--rootfs", files["rootfs.squashfs"], "--publish").CombinedOutput(); err != nil {
		t.Fatalf("image import: %v\n%s", err, out)
	}

	vms := []struct {
		node, mac string
		extra     []string
		want      []bootstate.Stage // the booted timeline
		msgs      []string          // in the node's events, in this order
	}{
		{"q-bios", lab.MAC(20), nil, []bootstate.Stage{bootstate.StageDHCP, bootstate.StageConfig, bootstate.StageKernel,
			bootstate.StageInitrd, bootstate.StageRootfs, bootstate.StageBooted},
			[]string{"dhcp: bios (0), iPXE: offered http://10.99.0.1:8080/boot/" + lab.MAC(20) + ".ipxe"}},
		{"q-uefi", lab.MAC(21), []string{"-bios", ovmf, "-global", "virtio-net-pci.romfile="}, []bootstate.Stage{bootstate.StageDHCP, bootstate.StageNBP,
			bootstate.StageConfig, bootstate.StageKernel, bootstate.StageInitrd, bootstate.StageRootfs, bootstate.StageBooted},
			// EDK2 takes the proxy offer, then asks port 4011; the iPXE it
			// fetched asks again (info: the same boot goes on).
			[]string{"dhcp: efi-bc (7): offered ipxe.efi", "dhcp: efi-bc (7): acknowledged ipxe.efi on port 4011",
				"info: iPXE asked DHCP (efi-bc (7), iPXE): offered http://10.99.0.1:8080/boot/" + lab.MAC(21) + ".ipxe"}},
	}
	var wg sync.WaitGroup
	for i, v := range vms {
		tap := fmt.Sprintf("tap%d", i)
		server.AddTap(t, tap)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			ctx := t.Context()
			vm, err := lab.StartVM(ctx, lab.VMOptions{Name: v.node, MAC: v.mac, Netns: server.Name(), Tap: tap,
				Dir: t.TempDir(), ExtraArgs: v.extra})
			if err != nil {
				t.Error(err)
				return
			}
			defer vm.Stop()
			var evs []bootstate.Event
			for deadline := time.Now().Add(240 * time.Second); ; time.Sleep(500 * time.Millisecond) {
				evs = cliEvents(t, bin, socket, v.node)
				if len(evs) > 0 && evs[len(evs)-1].Kind == bootstate.KindCheckin {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%s did not check in in 240 s (TCG, loaded CI); events:\n%s\nserial:\n%s", v.node, eventLines(evs), lab.Tail(vm.Serial(), 30))
					return
				}
			}
			t.Logf("%s checked in %v after start", v.node, time.Since(start).Round(100*time.Millisecond))
			checkProxyBoot(t, v.node, v.mac, v.want, v.msgs, evs)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// The addresses came from dnsmasq, not from us.
	for _, v := range vms {
		if !regexp.MustCompile(`DHCPACK\(site0\) 10\.99\.0\.\d+ ` + v.mac).MatchString(dnsmasqLog.Out.String()) {
			t.Errorf("dnsmasq did not lease an address to %s:\n%s", v.mac, lab.Tail(dnsmasqLog.Out.String(), 40))
		}
	}
}

// checkProxyBoot checks one node's events: the stage changes of its last
// boot are want (dhcp first), the dhcp event names the arch and answer, an
// iPXE asking DHCP after its loader is info only.
func checkProxyBoot(t *testing.T, node, mac string, want []bootstate.Stage, msgs []string, evs []bootstate.Event) {
	t.Helper()
	var stages []bootstate.Stage
	sawDHCP := false
	for _, ev := range evs {
		if len(msgs) > 0 && strings.HasPrefix(string(ev.Kind)+": "+ev.Message, msgs[0]) {
			msgs = msgs[1:]
		}
		if ev.Kind == bootstate.KindDHCP {
			sawDHCP = true
			if ev.Stage != bootstate.StageDHCP || ev.MAC != mac || ev.Proto != "dhcp" || ev.Message == "" {
				t.Errorf("%s: dhcp event %+v", node, ev)
			}
		}
		if ev.Stage == "" || ev.Kind == bootstate.KindProgress {
			continue
		}
		if len(stages) == 0 || stages[len(stages)-1] != ev.Stage {
			stages = append(stages, ev.Stage)
		}
	}
	if ev := evs[len(evs)-1]; ev.Kind == bootstate.KindCheckin {
		stages = append(stages, bootstate.StageBooted)
	}
	if !sawDHCP || fmt.Sprint(stages) != fmt.Sprint(want) || len(msgs) > 0 {
		t.Errorf("%s: stages %v, want %v; missing events %q; events:\n%s", node, stages, want, msgs, eventLines(evs))
	}
	if testing.Verbose() {
		t.Logf("%s events:\n%s", node, eventLines(evs))
	}
}

func eventLines(evs []bootstate.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %s %s %s %s %s %s\n", ev.Kind, ev.Stage, ev.Path, ev.MAC, ev.Message, ev.Error)
	}
	return b.String()
}
