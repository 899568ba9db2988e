package dhcp

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/lab"
)

// dhcpServer runs one real DHCP server on a generated config: the site's
// own part (interface, subnet, pool) is written around the generated file
// the way a site would include it.
type dhcpServer struct {
	format Format
	tool   string
	// site writes the site config that includes gen (forTest: the syntax
	// check outside any namespace) and returns its path.
	site func(dir, gen string, forTest bool) string
	// check is the server's own syntax check of a site config.
	check func(site string) *exec.Cmd
	// run starts the server in the foreground inside the namespace.
	run func(n *lab.Netns, dir, site string) *exec.Cmd
	// ra is true when the server itself sends IPv6 router advertisements.
	ra bool
}

// Bridge addresses as the site configs and the checks use them.
const (
	poolFirst = "10.99.0.100"
	poolLast  = "10.99.0.199"
)

var dhcpServers = []dhcpServer{
	{
		format: FormatDnsmasq, tool: "dnsmasq", ra: true,
		site: func(dir, gen string, _ bool) string {
			return writeFile(dir, "dnsmasq.conf", fmt.Sprintf(`port=0
interface=%[1]s
bind-interfaces
dhcp-range=%[2]s,%[3]s,255.255.255.0,1h
dhcp-range=::,constructor:%[1]s,ra-only
enable-ra
dhcp-authoritative
no-ping
dhcp-leasefile=%[4]s
conf-file=%[5]s
`, lab.NetnsBridge, poolFirst, poolLast, filepath.Join(dir, "dnsmasq.leases"), gen))
		},
		check: func(site string) *exec.Cmd { return exec.Command("dnsmasq", "--test", "--conf-file="+site) },
		run: func(n *lab.Netns, dir, site string) *exec.Cmd {
			return n.Command("dnsmasq", "--keep-in-foreground", "--conf-file="+site, "--log-facility=-", "--log-dhcp",
				"--pid-file="+filepath.Join(dir, "dnsmasq.pid"), "--user=root", "--group=root")
		},
	},
	{
		format: FormatISC, tool: "dhcpd",
		site: func(dir, gen string, _ bool) string {
			return writeFile(dir, "dhcpd.conf", fmt.Sprintf(`authoritative;
ping-check false;
default-lease-time 600;
subnet 10.99.0.0 netmask 255.255.255.0 {
  range %s %s;
}
include "%s";
`, poolFirst, poolLast, gen))
		},
		check: func(site string) *exec.Cmd { return exec.Command("dhcpd", "-t", "-4", "-cf", site) },
		run: func(n *lab.Netns, dir, site string) *exec.Cmd {
			leases := writeFile(dir, "dhcpd.leases", "")
			return n.Command("dhcpd", "-f", "-d", "-4", "-cf", site, "-lf", leases, "-pf", filepath.Join(dir, "dhcpd.pid"), lab.NetnsBridge)
		},
	},
	{
		format: FormatKea, tool: "kea-dhcp4",
		site: func(dir, gen string, forTest bool) string {
			// The bridge has no carrier until QEMU opens its tap, and Kea
			// opens no socket on an interface that is not running: it
			// retries every 0.5 s (a race the VM usually won, not always).
			iface := lab.NetnsBridge
			if forTest {
				iface = "*" // the syntax check runs outside the namespace
			}
			return writeFile(dir, "kea-dhcp4.conf", fmt.Sprintf(`{"Dhcp4": {
  "interfaces-config": {"interfaces": [%q], "service-sockets-max-retries": 600, "service-sockets-retry-wait-time": 500},
  "lease-database": {"type": "memfile", "persist": false},
  "valid-lifetime": 600,
  "subnet4": [{"id": 1, "subnet": "10.99.0.0/24", "pools": [{"pool": "%s - %s"}]}],
  "loggers": [{"name": "kea-dhcp4", "output_options": [{"output": "stdout"}], "severity": "INFO"}],
  <?include %q?>
}}
`, iface, poolFirst, poolLast, gen))
		},
		check: func(site string) *exec.Cmd { return keaEnv(exec.Command("kea-dhcp4", "-t", site), filepath.Dir(site)) },
		run: func(n *lab.Netns, dir, site string) *exec.Cmd {
			return keaEnv(n.Command("kea-dhcp4", "-c", site), dir)
		},
	},
}

// keaEnv keeps Kea's lock and pid files in the test's folder.
func keaEnv(cmd *exec.Cmd, dir string) *exec.Cmd {
	cmd.Env = append(os.Environ(), "KEA_LOCKFILE_DIR="+dir, "KEA_PIDFILE_DIR="+dir)
	return cmd
}

func writeFile(dir, name, text string) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		panic(err)
	}
	return path
}

// generate writes the format's config for nodes into dir.
func generate(t testing.TB, dir string, f Format, nodes []*inventory.Node, cfg Config) string {
	t.Helper()
	var b bytes.Buffer
	if err := Generate(&b, f, nodes, cfg); err != nil {
		t.Fatal(err)
	}
	return writeFile(dir, "generated."+string(f), b.String())
}

// TestServersAcceptConfigs runs each server's own syntax check on every
// golden file and on configs for edge-case names the validation lets
// through (longest label, digits only, upper case, inner hyphens).
func TestServersAcceptConfigs(t *testing.T) {
	edge := []*inventory.Node{
		{Name: strings.Repeat("a", 63), NICs: []inventory.NIC{{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}}, IP: netip.MustParseAddr("10.99.0.50")},
		{Name: "123", NICs: []inventory.NIC{{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}}, Loader: inventory.LoaderPxelinux},
		{Name: "Node-A-1", NICs: []inventory.NIC{{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}}}},
	}
	for _, s := range dhcpServers {
		t.Run(string(s.format), func(t *testing.T) {
			t.Parallel()
			lab.RequireTools(t, s.tool)
			var files []string
			for _, v := range goldenVariants() {
				p, err := filepath.Abs(goldenPath(v.Name, s.format))
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, p)
			}
			files = append(files, generate(t, t.TempDir(), s.format, edge, goldenVariants()[0].Cfg))
			for _, gen := range files {
				site := s.site(t.TempDir(), gen, true)
				if out, err := s.check(site).CombinedOutput(); err != nil {
					gb, _ := os.ReadFile(gen)
					t.Errorf("%s rejects %s: %v\n%s\n%s", s.tool, gen, err, lab.Tail(string(out), 15), gb)
				}
			}
			// And the check can fail: a config with a broken line.
			bad := writeFile(t.TempDir(), "bad", map[Format]string{
				FormatDnsmasq: "dhcp-boot=tag:nb-ipxe\ndhcp-host=zz\n",
				FormatISC:     "host x { hardware ethernet zz; }\n",
				FormatKea:     `"reservations": [{"hw-address": 5}]` + "\n",
			}[s.format])
			if out, err := s.check(s.site(t.TempDir(), bad, true)).CombinedOutput(); err == nil {
				t.Errorf("%s accepts a broken config:\n%s", s.tool, out)
			}
		})
	}
}

// startServer starts s on the generated config gen in n.
func startServer(t *testing.T, n *lab.Netns, s dhcpServer, gen string) *lab.Process {
	t.Helper()
	dir := t.TempDir()
	return lab.StartProcess(t, s.tool, s.run(n, dir, s.site(dir, gen, false)))
}
