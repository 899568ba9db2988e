package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/lab/labbuild"
)

// TestProxyDHCPRefusals runs the real `netbootui serve --proxydhcp` where it
// cannot answer: it must exit at once with an error naming the interface,
// the port and what is missing, before it opens anything.
func TestProxyDHCPRefusals(t *testing.T) {
	t.Parallel()
	lab.RequireTools(t, "setpriv")
	bin := labbuild.Netbootui(t)
	ns := lab.NewNetns(t)
	ns.IP(t, "link", "add", "dm0", "type", "bridge") // an interface without IPv4
	ns.IP(t, "link", "set", "dm0", "up")
	data := t.TempDir() // never created: serve must stop before it
	for _, tc := range []struct {
		name   string
		prefix []string
		args   string // --proxydhcp's value, then more flags
		want   []string
	}{
		{"unprivileged", []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, lab.NetnsBridge,
			[]string{"cannot bind UDP port 67 on interface br0: permission denied", "root or the CAP_NET_BIND_SERVICE capability"}},
		{"no such interface", nil, "nbt-none0", []string{`interface "nbt-none0": no such network interface`}},
		{"no IPv4 address", nil, "dm0", []string{"interface dm0 has no IPv4 address"}},
		{"unknown UEFI loader", nil, lab.NetnsBridge + " --proxydhcp-efi-loader grub.efi", []string{`--proxydhcp br0: dhcp: UEFI loader "grub.efi": want ipxe.efi or snponly.efi`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append(append([]string{}, tc.prefix...), bin, "serve", "--proxydhcp"), strings.Fields(tc.args)...)
			args = append(args,
				"--inventory", filepath.Join(data, "nodes.yaml"), "--data", filepath.Join(data, "data"),
				"--api-socket", filepath.Join(data, "api.sock"), "--http-listen", "10.99.0.1:8080", "--tftp-listen", "")
			cmd := ns.Command(args[0], args[1:]...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("serve neither started nor refused in 20 s: %s", stderr.String())
			}
			if err == nil {
				t.Fatalf("serve started: %s", stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q, want %q", stderr.String(), w)
				}
			}
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v to refuse", time.Since(start))
			}
			if _, err := os.Stat(filepath.Join(data, "data")); err == nil {
				t.Errorf("the data dir was created before the refusal")
			}
		})
	}
}

// cliEvents returns a node's events as `netbootui events --node NODE -o
// json` prints them.
func cliEvents(t *testing.T, bin, socket, node string) []bootstate.Event {
	t.Helper()
	out, err := exec.Command(bin, "events", "--api-socket", socket, "--node", node, "-n", "500", "-o", "json").Output()
	if err != nil {
		t.Fatalf("netbootui events: %v", err)
	}
	var evs []bootstate.Event
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var ev bootstate.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("events output: %v\n%s", err, out)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestProxyDHCPInventoryReload serves the responder from a daemon (Go API)
// on a namespace's br0 and asks it from a raw DHCP client on the segment:
// an unknown MAC raises an unknown event naming the MAC and arch (once,
// however often it asks); once the inventory file gains a node with that
// MAC and is reloaded, the same client moves the node to the dhcp stage.
func TestProxyDHCPInventoryReload(t *testing.T) {
	t.Parallel()
	server, client := lab.NewNetns(t), lab.NewNetns(t)
	client.IP(t, "link", "del", lab.NetnsBridge) // its 10.99.0.1 would shadow the server's
	server.IP(t, "link", "add", "vp0", "type", "veth", "peer", "name", "pc0", "netns", client.Name())
	server.IP(t, "link", "set", "vp0", "master", lab.NetnsBridge)
	server.IP(t, "link", "set", "vp0", "up")
	client.IP(t, "link", "set", "pc0", "up")

	// The daemon is set up inside the server's namespace: the proxyDHCP
	// binds its bridge, HTTP its loopback.
	env := daemontest.Start(t, daemontest.Options{Inventory: "nodes:\n  - name: other\n    nics: [{mac: \"52:54:00:6e:01:01\"}]\n",
		Config: Config{ProxyDHCP: ProxyDHCPOptions{Interface: lab.NetnsBridge}, Logger: testLogger(t)},
		In:     server.Do})
	d := env.D
	inv := env.InventoryPath

	var raw *nclient4.Client
	var mac string
	if err := client.Do(func() (err error) {
		raw, err = nclient4.New("pc0", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
		if err == nil {
			mac = raw.InterfaceAddr().String()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	discover := func() *dhcpv4.DHCPv4 {
		t.Helper()
		offer, err := raw.DiscoverOffer(context.Background(),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.INTEL_X86PC)))
		if err != nil {
			t.Fatalf("discover: %v", err)
		}
		return offer
	}
	for i := 0; i < 3; i++ {
		if o := discover(); o.BootFileName != "undionly.kpxe" {
			t.Fatalf("unknown BIOS client got %q, want undionly.kpxe (then the unknown-node script)", o.BootFileName)
		}
	}
	var unknown []bootstate.Event
	for _, ev := range d.History("", 100) {
		if ev.Kind == bootstate.KindUnknown && ev.MAC == mac {
			unknown = append(unknown, ev)
		}
	}
	if len(unknown) != 1 || !strings.Contains(unknown[0].Message, "bios (0)") || unknown[0].Node != "" {
		t.Fatalf("unknown events for %s: %+v, want one naming the arch", mac, unknown)
	}

	os.WriteFile(inv, []byte(fmt.Sprintf("nodes:\n  - name: other\n    nics: [{mac: \"52:54:00:6e:01:01\"}]\n  - name: newbie\n    loader: pxelinux\n    nics: [{mac: %q}]\n", mac)), 0o644)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if o := discover(); o.BootFileName != "pxelinux.0" {
		t.Fatalf("after the reload the node got %q, want its loader pxelinux.0", o.BootFileName)
	}
	// The DHCP request names newbie by its MAC only: a claim, seen in
	// its timeline, that moves nothing.
	st, _ := d.NodeState("newbie")
	if st.Stage != bootstate.StageUnknown || len(st.Timeline) != 1 || st.Timeline[0].Stage != bootstate.StageDHCP || !st.Timeline[0].Unproven {
		t.Fatalf("newbie after its DHCP request: stage %q, timeline %+v; want no stage and an unproven dhcp mark", st.Stage, st.Timeline)
	}
}
