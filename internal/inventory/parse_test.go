package inventory

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/power"
)

var update = flag.Bool("update", false, "rewrite the golden .err files of testdata/bad")

// withIPMI parses with the IPMI backend registered, as the daemon does.
func withIPMI() Option {
	reg, err := power.NewRegistry(ipmi.Protocol(ipmi.Options{}))
	if err != nil {
		panic(err)
	}
	return WithProtocols(reg)
}

// suites are a BMC's IPMI cipher suites.
func suites(b BMC) []int {
	o, _ := b.Options.(ipmi.BMCOptions)
	return o.CipherSuites
}

const examplePath = "../../examples/nodes.yaml"

// TestBadCorpus parses every testdata/bad/*.yaml and compares the first error
// with the golden .err file next to it.
func TestBadCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("only %d malformed inventories in testdata/bad", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			inv, err := Parse(f, data, withIPMI())
			if err == nil {
				t.Fatalf("Parse accepted a malformed inventory (%d nodes)", len(inv.Nodes))
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is %T, want a non-empty ErrorList: %v", err, err)
			}
			checkPositions(t, f, data, list)
			got := list[0].Error()
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no golden file (run go test -run TestBadCorpus -update): %v", err)
			}
			if got != strings.TrimSpace(string(want)) {
				t.Errorf("first error\n got %s\nwant %s", got, strings.TrimSpace(string(want)))
			}
		})
	}
}

// checkPositions fails when an error's position is outside the file.
func checkPositions(t *testing.T, file string, data []byte, list ErrorList) {
	t.Helper()
	lines := strings.Split(string(data), "\n")
	for i, e := range list {
		if e.Pos.File != file {
			t.Errorf("error %q names file %q, want %q", e, e.Pos.File, file)
		}
		if e.Pos.Line < 1 || e.Pos.Line > len(lines) {
			t.Errorf("error %q: line %d outside 1..%d", e, e.Pos.Line, len(lines))
			continue
		}
		if n := len([]rune(lines[e.Pos.Line-1])); e.Pos.Col < 1 || e.Pos.Col > n+1 {
			t.Errorf("error %q: column %d outside 1..%d", e, e.Pos.Col, n+1)
		}
		if i > 0 {
			p := list[i-1].Pos
			if p.Line > e.Pos.Line || (p.Line == e.Pos.Line && p.Col > e.Pos.Col) {
				t.Errorf("errors out of file order: %q before %q", list[i-1], e)
			}
		}
	}
}

func TestExample(t *testing.T) {
	inv, err := Load(examplePath, withIPMI())
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Nodes) != 12 {
		t.Errorf("%d nodes, want 12", len(inv.Nodes))
	}
	n05 := inv.Node("n05")
	if n05 == nil {
		t.Fatal("no n05")
	}
	want := &Node{
		Name:  "n05",
		Group: "compute",
		NICs: []NIC{
			{Name: "eno1", MAC: mustMAC("52:54:00:00:01:05"), Boot: true},
			{Name: "eno2", MAC: mustMAC("52:54:00:00:02:05")},
		},
		IP:         netip.MustParseAddr("10.1.0.15"),
		Arch:       ArchBIOS,
		Loader:     LoaderIPXE,
		BMC:        BMC{Protocol: "ipmi", Host: "10.2.0.15", Port: 623, User: "admin", PasswordRef: "compute-bmc", Options: ipmi.BMCOptions{CipherSuites: []int{17, 3}}},
		Image:      "compute",
		KernelArgs: "console=ttyS0,115200",
		Defined:    Pos{File: examplePath, Line: n05.Defined.Line, Col: 11},
		Range:      "n[01-08]",
	}
	if got, w := fmt.Sprintf("%+v", *n05), fmt.Sprintf("%+v", *want); got != w {
		t.Errorf("n05\n got %s\nwant %s", got, w)
	}
	gpu2 := inv.Node("gpu2")
	if gpu2.Arch != ArchUEFI || gpu2.Image != "gpu" || gpu2.Generation != "2024-06-01-a1b2c3" ||
		gpu2.KernelArgs != "console=ttyS0,115200 nomodeset pci=noaer" || gpu2.BMC.User != "root" ||
		gpu2.BMC.PasswordRef != "gpu-bmc" || gpu2.BMC.Host != "bmc-gpu2.example.net" {
		t.Errorf("gpu2 = %+v", *gpu2)
	}
	login := inv.Node("login1")
	if login.Loader != LoaderPxelinux || !strings.HasPrefix(login.Override.Pxelinux, "DEFAULT live\n") || login.Override.IPXE != "" {
		t.Errorf("login1 = %+v", *login)
	}
	if s := inv.Node("storage1"); s.Group != "" || s.BMC.Host != "" || s.Arch != ArchBIOS || !slices.Equal(suites(s.BMC), []int{17, 3}) {
		t.Errorf("storage1 = %+v", *s)
	}
	if inv.Settings.OverlayDirtyBytes != 32<<20 || inv.SecretsPath() != filepath.Join("../../examples", "secrets.yaml") {
		t.Errorf("settings = %+v, secrets path %s", inv.Settings, inv.SecretsPath())
	}
	if img := inv.Images["gpu"]; img == nil || img.Recipe != "images/gpu" || img.KernelArgs != "quiet" {
		t.Errorf("image gpu = %+v", img)
	}
	if c, g := inv.Images["compute"], inv.Images["gpu"]; c == nil || c.Root != "http-live" || g == nil || g.Root != "" {
		t.Errorf("image roots: compute %+v, gpu %+v (want http-live and the default)", c, g)
	}
	if g := inv.Groups["gpu"]; g == nil || g.Arch != ArchUEFI || g.BMC.User != "ADMIN" || g.BMC.Port != 0 {
		t.Errorf("group gpu = %+v", g)
	}
	data, _ := os.ReadFile(examplePath)
	if inv.Revision != Revision(data) || len(inv.Revision) != 64 {
		t.Errorf("revision %q", inv.Revision)
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestLookups(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	// Add a group that no node uses.
	data = []byte(strings.Replace(string(data), "groups:\n", "groups:\n  empty: {arch: uefi}\n", 1))
	inv, err := Parse(examplePath, data, withIPMI())
	if err != nil {
		t.Fatal(err)
	}
	if n := inv.NodeByMAC(mustMAC("52:54:00:00:02:08")); n == nil || n.Name != "n08" {
		t.Errorf("NodeByMAC(second NIC of n08) = %v", n)
	}
	if n := inv.NodeByMAC(mustMAC("52:54:00:00:05:01")); n == nil || n.Name != "storage1" {
		t.Errorf("NodeByMAC(dash-form MAC) = %v", n)
	}
	if n := inv.NodeByMAC(mustMAC("52:54:00:00:01:09")); n != nil {
		t.Errorf("NodeByMAC(past the range) = %s", n.Name)
	}
	if n := inv.NodeByIP(netip.MustParseAddr("10.1.0.102")); n == nil || n.Name != "gpu2" {
		t.Errorf("NodeByIP = %v", n)
	}
	if n := inv.NodeByIP(netip.MustParseAddr("::ffff:10.1.0.11")); n == nil || n.Name != "n01" {
		t.Errorf("NodeByIP(mapped) = %v", n)
	}
	if n := inv.NodeByIP(netip.MustParseAddr("10.1.0.19")); n != nil {
		t.Errorf("NodeByIP(unused) = %s", n.Name)
	}
	if inv.Node("n09") != nil {
		t.Error("Node(n09) is not nil")
	}
	if got := names(inv.GroupNodes("gpu")); !slices.Equal(got, []string{"gpu1", "gpu2"}) {
		t.Errorf("GroupNodes(gpu) = %v", got)
	}
	if got := inv.GroupNodes("nope"); got != nil {
		t.Errorf("GroupNodes(nope) = %v", got)
	}

	tests := []struct {
		expr string
		want []string
		err  string
	}{
		{expr: "n[01-03]", want: []string{"n01", "n02", "n03"}},
		{expr: "gpu2,n01,gpu2", want: []string{"gpu2", "n01"}},
		{expr: "@gpu", want: []string{"gpu1", "gpu2"}},
		{expr: "@gpu,n08,gpu1", want: []string{"gpu1", "gpu2", "n08"}},
		{expr: "@compute", want: []string{"n01", "n02", "n03", "n04", "n05", "n06", "n07", "n08", "login1"}},
		{expr: "", err: "empty node selection"},
		{expr: "  ", err: "empty node selection"},
		{expr: "n[07-10]", err: `selection "n[07-10]": no such node: n[09-10]`},
		{expr: "@gpus,x1", err: `no such node: x1; no such group: @gpus`},
		{expr: "n[2-1]", err: "range 2-1 is reversed"},
		{expr: "n01,@empty", err: "group without nodes: @empty"},
	}
	for _, tc := range tests {
		got, err := inv.Select(tc.expr)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Select(%q) = %v, %v; want error containing %q", tc.expr, names(got), err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(names(got), tc.want) {
			t.Errorf("Select(%q) = %v, %v; want %v", tc.expr, names(got), err, tc.want)
		}
	}
}

func names(ns []*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

const base = `images:
  compute: {recipe: images/compute}
  gpu: {}
groups:
  compute:
    image: compute
    arch: uefi
    loader: pxelinux
    kernel_args: console=ttyS0
    bmc: {port: 1623, user: root, password: pw, cipher_suites: [3]}
    boot_override: {ipxe: "#!ipxe"}
nodes:
`

// TestRules checks inheritance, range increments and each validation rule.
func TestRules(t *testing.T) {
	tests := []struct {
		name  string
		nodes string
		check func(t *testing.T, inv *Inventory)
		err   string // the first error's "LINE:COL: message", "" for valid
	}{
		{
			name:  "inherit",
			nodes: "  - {name: a, group: compute, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			check: func(t *testing.T, inv *Inventory) {
				n := inv.Node("a")
				if n.Arch != ArchUEFI || n.Loader != LoaderPxelinux || n.KernelArgs != "console=ttyS0" || n.Image != "compute" ||
					n.BMC.Port != 1623 || n.BMC.User != "root" || n.BMC.PasswordRef != "pw" || !slices.Equal(suites(n.BMC), []int{3}) ||
					n.Override.IPXE != "#!ipxe" {
					t.Errorf("%+v", *n)
				}
			},
		},
		{
			name: "node wins, kernel args append",
			nodes: `  - name: a
    group: compute
    arch: bios
    loader: ipxe
    image: gpu@g1
    kernel_args: " quiet "
    bmc: {host: "fd00::1", port: 624, user: u, password: p2, cipher_suites: [17]}
    boot_override: {pxelinux: "DEFAULT x"}
    nics: [{mac: "02:00:00:00:00:01"}]`,
			check: func(t *testing.T, inv *Inventory) {
				n := inv.Node("a")
				if n.Arch != ArchBIOS || n.Loader != LoaderIPXE || n.KernelArgs != "console=ttyS0 quiet" || n.Image != "gpu" || n.Generation != "g1" ||
					fmt.Sprint(n.BMC) != fmt.Sprint(BMC{Protocol: "ipmi", Host: "fd00::1", Port: 624, User: "u", PasswordRef: "p2", Options: ipmi.BMCOptions{CipherSuites: []int{17}}}) || !slices.Equal(suites(n.BMC), []int{17}) ||
					n.Override != (Override{IPXE: "#!ipxe", Pxelinux: "DEFAULT x"}) {
					t.Errorf("%+v", *n)
				}
			},
		},
		{
			name:  "defaults without group",
			nodes: "  - {name: a, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			check: func(t *testing.T, inv *Inventory) {
				n := inv.Node("a")
				if n.Arch != ArchBIOS || n.Loader != LoaderIPXE || n.BMC.Port != 623 || n.BMC.User != "admin" || !slices.Equal(suites(n.BMC), []int{17, 3}) || n.Image != "" || n.IP.IsValid() {
					t.Errorf("%+v", *n)
				}
			},
		},
		{
			name: "range increments ip, bmc ipv4 and every mac",
			nodes: `  - name: r[1-2]-n[09-10]
    ip: 10.0.0.254
    bmc: {host: 10.9.0.255}
    nics: [{mac: "02:00:00:00:00:ff"}, {mac: "02:00:00:00:01:ff", boot: true}]`,
			check: func(t *testing.T, inv *Inventory) {
				if got := names(inv.Nodes); !slices.Equal(got, []string{"r1-n09", "r1-n10", "r2-n09", "r2-n10"}) {
					t.Fatalf("nodes %v", got)
				}
				n := inv.Node("r2-n10")
				if n.IP.String() != "10.0.1.1" || n.BMC.Host != "10.9.1.2" || n.NICs[0].MAC.String() != "02:00:00:00:01:02" ||
					n.BootMAC().String() != "02:00:00:00:02:02" || n.Range != "r[1-2]-n[09-10]" {
					t.Errorf("%+v", *n)
				}
			},
		},
		{
			name: "range keeps a host-name bmc and increments ipv6",
			nodes: `  - name: n[1-2]
    ip: "fd00::ffff"
    bmc: {host: bmc.example}
    nics: [{mac: "02:00:00:00:00:01"}]`,
			check: func(t *testing.T, inv *Inventory) {
				n := inv.Node("n2")
				if n.IP.String() != "fd00::1:0" || n.BMC.Host != "bmc.example" {
					t.Errorf("%+v", *n)
				}
			},
		},
		{name: "unknown key lists allowed", nodes: "  - {name: a, nics: [{mac: \"02:00:00:00:00:01\"}], colour: red}",
			err: `13:51: unknown key "colour" in node a (allowed: name, group, ip, arch, loader, image, kernel_args, nics, bmc, boot_override, user_data, vendor_data)`},
		{name: "wrong type", nodes: "  - {name: a, ip: [1], nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:19: node a: ip must be a string, got a list`},
		{name: "duplicate name", nodes: "  - {name: a, nics: [{mac: \"02:00:00:00:00:01\"}]}\n  - {name: a, nics: [{mac: \"02:00:00:00:00:02\"}]}",
			err: `14:12: duplicate node a: also defined by t.yaml:13:12`},
		{name: "duplicate mac in one node", nodes: "  - {name: a, nics: [{mac: \"02:00:00:00:00:01\"}, {mac: \"02-00-00-00-00-01\"}]}",
			err: `13:56: duplicate MAC 02:00:00:00:00:01: node a lists it twice (first at t.yaml:13:28)`},
		{name: "range against range mac", nodes: "  - {name: \"a[1-3]\", nics: [{mac: \"02:00:00:00:00:01\"}]}\n  - {name: \"b[1-3]\", nics: [{mac: \"02:00:00:00:00:03\"}]}",
			err: `14:35: duplicate MAC 02:00:00:00:00:03: node a3 has it too (t.yaml:13:35)`},
		{name: "duplicate ip", nodes: "  - {name: a, ip: 10.0.0.1, nics: [{mac: \"02:00:00:00:00:01\"}]}\n  - {name: b, ip: 10.0.0.1, nics: [{mac: \"02:00:00:00:00:02\"}]}",
			err: `14:19: duplicate ip 10.0.0.1: node a has it too (t.yaml:13:19)`},
		{name: "zoned ip", nodes: "  - {name: a, ip: \"fe80::1%eth0\", nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:19: node a: bad ip "fe80::1%eth0": zoned addresses are not supported`},
		{name: "multicast ip", nodes: "  - {name: a, ip: 224.0.0.1, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:19: node a: bad ip "224.0.0.1": not a unicast address`},
		{name: "mac 8 bytes", nodes: "  - {name: a, nics: [{mac: \"02:00:00:00:00:00:00:01\"}]}",
			err: `13:28: node a: nics[0]: bad mac "02:00:00:00:00:00:00:01": write 6 bytes as hex pairs separated by ':' or '-'`},
		{name: "mac mixed separators", nodes: "  - {name: a, nics: [{mac: \"02:00-00:00:00:01\"}]}",
			err: `13:28: node a: nics[0]: bad mac "02:00-00:00:00:01": write 6 bytes as hex pairs separated by ':' or '-'`},
		{name: "generation too long", nodes: "  - {name: a, image: compute@" + strings.Repeat("a", 65) + ", nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:22: node a: bad generation id "` + strings.Repeat("a", 65) + `" in "compute@` + strings.Repeat("a", 65) + `": must match [a-z0-9][a-z0-9-]{0,63}`},
		{name: "empty generation", nodes: "  - {name: a, image: compute@, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:22: node a: bad generation id "" in "compute@": must match [a-z0-9][a-z0-9-]{0,63}`},
		{name: "port zero", nodes: "  - {name: a, bmc: {port: 0}, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:27: node a: bad bmc.port 0: must be 1-65535`},
		{name: "cipher suite range", nodes: "  - {name: a, bmc: {cipher_suites: [300]}, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:37: node a: bad cipher suite 300: must be 0-255`},
		{name: "empty cipher suites", nodes: "  - {name: a, bmc: {cipher_suites: []}, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:36: node a: bmc.cipher_suites is empty: list at least one suite (e.g. [17, 3]) or remove the key`},
		{name: "empty password ref", nodes: "  - {name: a, bmc: {password: \"\"}, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:31: node a: bmc.password is empty: it names an entry of the secrets file`},
		{name: "nic without mac", nodes: "  - {name: a, nics: [{name: eth0}]}",
			err: `13:22: node a: nics[0] has no mac`},
		{name: "nic not a mapping", nodes: "  - {name: a, nics: [\"02:00:00:00:00:01\"]}",
			err: `13:22: node a: nics[0] must be a mapping like {mac: "52:54:00:12:34:56"}, got a string ("02:00:00:00:00:01")`},
		{name: "node not a mapping", nodes: "  - a",
			err: `13:5: nodes[0] must be a mapping with name, nics and other keys, got a string ("a")`},
		{name: "bad node name in list", nodes: "  - {name: \"a,_b\", nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:12: bad node name "_b": use letters, digits, '.', '_' and '-', starting with a letter or digit`},
		{name: "range too big", nodes: "  - {name: \"n[1-200000]\", nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:12: node n[1-200000]: the inventory would hold more than 100000 nodes`},
		{name: "bmc overflow", nodes: "  - {name: \"n[1-2]\", bmc: {host: 255.255.255.255}, nics: [{mac: \"02:00:00:00:00:01\"}]}",
			err: `13:34: node n[1-2]: bmc.host 255.255.255.255 + 1 overflows for node n2`},
		{name: "null nics", nodes: "  - {name: a, nics: }",
			err: `13:21: node a: nics is empty: list at least the boot NIC's mac`},
		{name: "int as string", nodes: "  - {name: 1, nics: [{mac: \"02:00:00:00:00:01\", name: 0}]}",
			check: func(t *testing.T, inv *Inventory) {
				if n := inv.Node("1"); n == nil || n.NICs[0].Name != "0" {
					t.Errorf("nodes %v", names(inv.Nodes))
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkRule(t, base+tc.nodes+"\n", tc.check, tc.err, withIPMI())
		})
	}
}

// checkRule parses src as t.yaml: valid, it runs check on the inventory;
// else the first error must be want ("LINE:COL: message") and every error
// must point into the file. It returns the errors.
func checkRule(t *testing.T, src string, check func(*testing.T, *Inventory), want string, opts ...Option) ErrorList {
	t.Helper()
	inv, err := Parse("t.yaml", []byte(src), opts...)
	if want == "" {
		if err != nil {
			t.Fatalf("unexpected error:\n%v", err)
		}
		check(t, inv)
		return nil
	}
	if err == nil {
		t.Fatalf("accepted; want %s", want)
	}
	list := err.(ErrorList)
	checkPositions(t, "t.yaml", []byte(src), list)
	if got := strings.TrimPrefix(list[0].Error(), "t.yaml:"); got != want {
		t.Errorf("first error\n got %s\nwant %s", got, want)
	}
	return list
}

func TestAddAddr(t *testing.T) {
	for _, tc := range []struct {
		a    string
		n    int
		want string // "" for overflow
	}{
		{"10.0.0.1", 0, "10.0.0.1"},
		{"10.0.0.255", 1, "10.0.1.0"},
		{"255.255.255.254", 1, "255.255.255.255"},
		{"255.255.255.255", 1, ""},
		{"fd00::ffff:ffff:ffff:ffff", 1, "fd00:0:0:1::"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 2, ""},
	} {
		got, ok := addAddr(netip.MustParseAddr(tc.a), tc.n)
		if (tc.want == "") == ok || (ok && got.String() != tc.want) {
			t.Errorf("addAddr(%s, %d) = %s, %v; want %q", tc.a, tc.n, got, ok, tc.want)
		}
	}
	for _, tc := range []struct {
		m    string
		n    int
		want string
	}{
		{"02:00:00:00:00:ff", 1, "02:00:00:00:01:00"},
		{"ff:ff:ff:ff:ff:ff", 1, ""},
	} {
		got, ok := addMAC(mustMAC(tc.m), tc.n)
		if (tc.want == "") == ok || (ok && got.String() != tc.want) {
			t.Errorf("addMAC(%s, %d) = %s, %v; want %q", tc.m, tc.n, got, ok, tc.want)
		}
	}
}
