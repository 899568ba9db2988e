package dhcp

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/netbootui/netbootui/internal/golden"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/inventory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// testInventory is the inventory of the goldens and the real-server tests.
const testInventory = "testdata/nodes.yaml"

func loadTestNodes(t testing.TB) []*inventory.Node {
	t.Helper()
	inv, err := inventory.Load(testInventory)
	if err != nil {
		t.Fatal(err)
	}
	return inv.Nodes
}

// goldenVariant is one set of dhcp-config flags the goldens cover; the CLI
// test runs the same flags through the binary.
type goldenVariant struct {
	Name string
	Args []string // dhcp-config flags besides --format and --inventory
	Cfg  Config
}

const testHTTPBase = "http://10.99.0.1:8080"

var testNextServer = netip.MustParseAddr("10.99.0.1")

// GoldenVariants are the flag sets with golden files (exported to the
// package's tests only through this file; the CLI test has its own copy
// of the two flag lists, checked against the same files).
func goldenVariants() []goldenVariant {
	return []goldenVariant{
		{"default", []string{"--next-server", "10.99.0.1", "--http-base", testHTTPBase},
			Config{Options: Options{HTTPBase: testHTTPBase}, NextServer: testNextServer, Source: testInventory}},
		{"known-only-snponly", []string{"--next-server", "10.99.0.1", "--http-base", testHTTPBase, "--efi-loader", "snponly.efi", "--known-only"},
			Config{Options: Options{HTTPBase: testHTTPBase, EFILoader: "snponly.efi"}, NextServer: testNextServer, Source: testInventory, KnownOnly: true}},
	}
}

func goldenPath(variant string, f Format) string {
	return filepath.Join("testdata", "golden", variant+"."+string(f))
}

// TestGenerateGolden compares every format and flag set with its golden
// file, and shows the output does not depend on the nodes' order.
func TestGenerateGolden(t *testing.T) {
	nodes := loadTestNodes(t)
	for _, v := range goldenVariants() {
		for _, f := range Formats {
			t.Run(v.Name+"/"+string(f), func(t *testing.T) {
				var b bytes.Buffer
				if err := Generate(&b, f, nodes, v.Cfg); err != nil {
					t.Fatal(err)
				}
				golden.Check(t, goldenPath(v.Name, f), b.String(), *update, "go test ./internal/dhcp -update")
				checkParses(t, f, b.String(), nodes)
				shuffled := slices.Clone(nodes)
				r := rand.New(rand.NewPCG(1, 2))
				r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				var b2 bytes.Buffer
				if err := Generate(&b2, f, shuffled, v.Cfg); err != nil {
					t.Fatal(err)
				}
				if b2.String() != b.String() {
					t.Fatal("output depends on the order of the nodes")
				}
			})
		}
	}
}

// TestGenerateRulesFollowChoose shows every boot file Choose gives for the
// architectures it knows appears in each format, and nothing for the ones
// it refuses: the generators restate no table of their own.
func TestGenerateRulesFollowChoose(t *testing.T) {
	nodes := loadTestNodes(t)
	for _, v := range goldenVariants() {
		for _, f := range Formats {
			var b bytes.Buffer
			if err := Generate(&b, f, nodes, v.Cfg); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			for _, a := range Arches() {
				for _, l := range []inventory.Loader{inventory.LoaderIPXE, inventory.LoaderPxelinux} {
					boot, err := Choose(Client{Arch: a, ArchKnown: true}, l, "", "${mac}", v.Cfg.Options)
					tag := fmt.Sprintf("%d", uint16(a))
					if f == FormatISC {
						tag = fmt.Sprintf("%02x:%02x", byte(a>>8), byte(a))
					}
					if err != nil {
						if strings.Contains(out, "arch "+a.String()) {
							t.Errorf("%s/%s: a rule for %s, which has no loader", v.Name, f, a)
						}
						continue
					}
					if !strings.Contains(out, boot.File) || !strings.Contains(out, tag) {
						t.Errorf("%s/%s: %s %s: %q or its class %s missing", v.Name, f, a, l, boot.File, tag)
					}
				}
			}
			ipxe, _ := Choose(Client{IPXE: true}, "", "", "${mac}", v.Cfg.Options)
			if !strings.Contains(out, ipxe.File) {
				t.Errorf("%s/%s: the iPXE chain %q is missing", v.Name, f, ipxe.File)
			}
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	good := Config{Options: Options{HTTPBase: testHTTPBase}, NextServer: testNextServer, Source: "nodes.yaml"}
	node := func(name, mac, ip string) *inventory.Node {
		n := &inventory.Node{Name: name, Defined: inventory.Pos{File: "nodes.yaml", Line: 7, Col: 5}}
		if mac != "" {
			m, _ := net.ParseMAC(mac)
			n.NICs = []inventory.NIC{{MAC: m}}
		}
		if ip != "" {
			n.IP = netip.MustParseAddr(ip)
		}
		return n
	}
	ok := node("n1", "52:54:00:00:00:01", "10.0.0.1")
	with := func(f func(*Config)) Config { c := good; f(&c); return c }
	cases := []struct {
		name   string
		format Format
		nodes  []*inventory.Node
		cfg    Config
		err    string
	}{
		{"unknown format", "bind", []*inventory.Node{ok}, good, `unknown config format "bind"`},
		{"no MAC", FormatDnsmasq, []*inventory.Node{node("n2", "", "")}, good, `nodes.yaml:7:5: node "n2": no boot NIC`},
		{"name with a comma", FormatDnsmasq, []*inventory.Node{node("a,b", "52:54:00:00:00:02", "")}, good, `node "a,b": the name is not a valid DHCP hostname`},
		{"name with a quote", FormatISC, []*inventory.Node{node(`a";x`, "52:54:00:00:00:02", "")}, good, `node "a\";x"`},
		{"name with a dot", FormatKea, []*inventory.Node{node("a.b", "52:54:00:00:00:02", "")}, good, "not a valid DHCP hostname"},
		{"IPv6 address", FormatDnsmasq, []*inventory.Node{node("n3", "52:54:00:00:00:03", "fd00::3")}, good, `node "n3": ip fd00::3 is not IPv4`},
		{"duplicate MAC", FormatISC, []*inventory.Node{ok, node("n4", "52:54:00:00:00:01", "")}, good, `node "n4": MAC 52:54:00:00:00:01 is node n1's too`},
		{"duplicate IP", FormatKea, []*inventory.Node{ok, node("n5", "52:54:00:00:00:05", "10.0.0.1")}, good, `ip 10.0.0.1 is node n1's too`},
		{"URL with a comma", FormatDnsmasq, []*inventory.Node{ok}, with(func(c *Config) { c.HTTPBase = "http://h,x" }), `boot URL "http://h,x"`},
		{"URL with a quote", FormatISC, []*inventory.Node{ok}, with(func(c *Config) { c.HTTPBase = `http://h"x` }), "boot URL"},
		{"URL with a slash at the end", FormatKea, []*inventory.Node{ok}, with(func(c *Config) { c.HTTPBase = "http://h/" }), "no trailing slash"},
		{"bad UEFI loader", FormatKea, []*inventory.Node{ok}, with(func(c *Config) { c.EFILoader = "grub.efi" }), `"grub.efi"`},
		{"IPv6 next server", FormatDnsmasq, []*inventory.Node{ok}, with(func(c *Config) { c.NextServer = netip.MustParseAddr("fd00::1") }), `next server "fd00::1"`},
		{"no next server", FormatDnsmasq, []*inventory.Node{ok}, with(func(c *Config) { c.NextServer = netip.Addr{} }), "next server"},
		{"name twice", FormatDnsmasq, []*inventory.Node{ok, node("n1", "52:54:00:00:00:06", "")}, good, `node "n1": the name is given twice`},
		{"loopback address", FormatISC, []*inventory.Node{node("n7", "52:54:00:00:00:07", "127.0.0.7")}, good, "ip 127.0.0.7 is not a unicast host address"},
		{"newline in the source", FormatDnsmasq, []*inventory.Node{ok}, with(func(c *Config) { c.Source = "a\ndhcp-boot=x" }), "inventory name"},
		{"newline in the selection", FormatISC, []*inventory.Node{ok}, with(func(c *Config) { c.Selection = "n1\n}" }), "selection"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			err := Generate(&b, tc.format, tc.nodes, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one containing %q", err, tc.err)
			}
			if b.Len() != 0 {
				t.Fatalf("wrote %d bytes on error", b.Len())
			}
		})
	}
}

// FuzzGenerate feeds hostile node names, boot URLs and addresses to every
// generator: each either refuses them or writes a config whose parse has
// exactly the nodes' host entries, with their names and nothing else.
func FuzzGenerate(f *testing.F) {
	for _, s := range []struct{ name, url string }{
		{"n01", testHTTPBase},
		{"a,b", testHTTPBase},
		{"n1\ndhcp-boot=evil", testHTTPBase},
		{`x"; filename "evil`, testHTTPBase},
		{"x', 'y", "http://h"},
		{"ok", "http://h/x,y"},
		{"ok", `http://h/"}`},
		{"ok", "http://h/#x"},
		{strings.Repeat("a", 63), "https://[fd00::1]:8080"},
		{"-bad", testHTTPBase},
		{"ok", "http://h/${x}"},
	} {
		f.Add(s.name, s.url, []byte{10, 0, 0, 1}, true)
	}
	f.Fuzz(func(t *testing.T, name, url string, ip []byte, pxelinux bool) {
		n := &inventory.Node{Name: name, NICs: []inventory.NIC{{MAC: net.HardwareAddr{0x52, 0x54, 0, 1, 2, 3}}}}
		if a, ok := netip.AddrFromSlice(ip); ok {
			n.IP = a
		}
		if pxelinux {
			n.Loader = inventory.LoaderPxelinux
		}
		other := &inventory.Node{Name: "z9", NICs: []inventory.NIC{{MAC: net.HardwareAddr{0x52, 0x54, 0, 1, 2, 4}}}}
		nodes := []*inventory.Node{n, other}
		cfg := Config{Options: Options{HTTPBase: url}, NextServer: testNextServer, Source: "fuzz.yaml"}
		for _, f := range Formats {
			var b bytes.Buffer
			err := Generate(&b, f, nodes, cfg)
			valid := hostnameRe.MatchString(name) && name != "z9" && cfg.Options.Validate() == nil && urlRe.MatchString(url) &&
				(!n.IP.IsValid() || n.IP.Unmap().Is4() && n.IP.Unmap().IsGlobalUnicast())
			if err != nil {
				if valid {
					t.Fatalf("%s: refused valid input (name %q, url %q, ip %v): %v", f, name, url, n.IP, err)
				}
				continue
			}
			if !valid {
				t.Fatalf("%s: accepted invalid input (name %q, url %q, ip %v)", f, name, url, n.IP)
			}
			checkParses(t, f, b.String(), nodes)
		}
	})
}

// checkParses parses a generated config with this test's own reader of
// each format and checks it holds exactly one host entry per node, with the
// node's name, and only directives the generator writes.
func checkParses(t testing.TB, f Format, text string, nodes []*inventory.Node) {
	t.Helper()
	var names []string
	var err error
	switch f {
	case FormatDnsmasq:
		names, err = parseDnsmasq(text)
	case FormatISC:
		names, err = parseISC(text)
	case FormatKea:
		names, err = parseKea(text)
	}
	if err != nil {
		t.Fatalf("%s output does not parse: %v\n%s", f, err, text)
	}
	var want []string
	for _, n := range nodes {
		want = append(want, n.Name)
	}
	slices.Sort(want)
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("%s output has hosts %q, want %q\n%s", f, names, want, text)
	}
}

var dnsmasqKeys = map[string]bool{"dhcp-userclass": true, "dhcp-match": true, "dhcp-host": true, "dhcp-boot": true, "dhcp-option-force": true}

// parseDnsmasq reads key=value lines and returns the dhcp-host names.
func parseDnsmasq(text string) ([]string, error) {
	var names []string
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok || !dnsmasqKeys[key] {
			return nil, fmt.Errorf("line %d: %q is not a generated directive", i+1, line)
		}
		if strings.ContainsAny(val, " \t\"'#") {
			return nil, fmt.Errorf("line %d: %q: quote, blank or comment character in a value", i+1, line)
		}
		if key != "dhcp-host" && !strings.HasPrefix(val, "tag:") && !strings.HasPrefix(val, "set:") {
			return nil, fmt.Errorf("line %d: %q: a generated %s always starts with its tags", i+1, line, key)
		}
		if key == "dhcp-host" {
			fields := strings.Split(val, ",")
			if _, err := net.ParseMAC(fields[0]); err != nil || len(fields) < 2 || len(fields) > 4 {
				return nil, fmt.Errorf("line %d: %q: want MAC[,set:tag][,IP],NAME", i+1, line)
			}
			names = append(names, fields[len(fields)-1])
		}
	}
	return names, nil
}

var iscToken = regexp.MustCompile(`^(?:\s+|#[^\n]*|"[^"\\\n]*"|[{};()=,]|[A-Za-z0-9_.:/${}-]+)`)

// parseISC tokenizes the file, checks braces and statements nest, and
// returns the names of the host declarations, each checked against its
// option host-name.
func parseISC(text string) ([]string, error) {
	var names []string
	var toks []string
	for rest := text; rest != ""; {
		m := iscToken.FindString(rest)
		if m == "" {
			return nil, fmt.Errorf("cannot tokenize at %q", first(rest, 30))
		}
		rest = rest[len(m):]
		if s := strings.TrimSpace(m); s != "" && !strings.HasPrefix(s, "#") {
			toks = append(toks, s)
		}
	}
	depth := 0
	hostDepth := -1
	hostName := ""
	for i, tok := range toks {
		switch tok {
		case "{":
			depth++
		case "}":
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("token %d: unbalanced }", i)
			}
			if depth == hostDepth {
				hostDepth = -1
			}
		case "host":
			if depth != 0 || i+2 >= len(toks) || toks[i+2] != "{" {
				return nil, fmt.Errorf("token %d: host declaration out of place", i)
			}
			hostName = toks[i+1]
			hostDepth = 0
			names = append(names, hostName)
		case "host-name":
			if i+2 >= len(toks) || toks[i+1] != `"`+hostName+`"` || toks[i+2] != ";" {
				return nil, fmt.Errorf("token %d: host-name of host %s is %q", i, hostName, toks[i+1])
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("%d unclosed braces", depth)
	}
	return names, nil
}

// parseKea wraps the members in an object, drops comment lines, decodes the
// JSON strictly and returns the reservations' hostnames.
func parseKea(text string) ([]string, error) {
	var body []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "#") {
			body = append(body, line)
		}
	}
	dec := json.NewDecoder(strings.NewReader("{" + strings.Join(body, "\n") + "}"))
	dec.DisallowUnknownFields()
	var frag keaFragment
	if err := dec.Decode(&frag); err != nil {
		return nil, err
	}
	var names []string
	for _, r := range frag.Reservations {
		names = append(names, r.Hostname)
	}
	return names, nil
}

func first(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// TestCheckParsesCatchesInjection shows the fuzz target's readers fail on
// what an unescaped name would have made of a config.
func TestCheckParsesCatchesInjection(t *testing.T) {
	nodes := loadTestNodes(t)
	for _, tc := range []struct {
		f          Format
		old, new   string
		wantErrMsg string
	}{
		{FormatDnsmasq, "dhcp-host=52:54:00:6e:01:01,10.99.0.11,n01", "dhcp-host=52:54:00:6e:01:01,10.99.0.11,n01\ndhcp-boot=evil", "starts with its tags"},
		{FormatDnsmasq, ",n01\n", ",n01 x\n", "blank"},
		{FormatDnsmasq, ",n01\n", ",evil\n", "hosts"},
		{FormatISC, `option host-name "n01";`, `option host-name "n01"; } host evil { hardware ethernet 1:2:3:4:5:6;`, "hosts"},
		{FormatISC, `option host-name "n01";`, `option host-name "n0"1";`, "tokenize"},
		{FormatISC, `option host-name "n01";`, `option host-name "n02";`, "host-name of host n01"},
		{FormatKea, `"hostname": "n01"`, `"hostname": "n01", "evil": 1`, "unknown field"},
		{FormatKea, `"hostname": "n01"`, `"hostname": "n01"}, {"hw-address": "x", "hostname": "evil"`, "hosts"},
	} {
		var b bytes.Buffer
		if err := Generate(&b, tc.f, nodes, goldenVariants()[0].Cfg); err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(b.String(), tc.old, tc.new, 1)
		if text == b.String() {
			t.Fatalf("%s: %q not in the output", tc.f, tc.old)
		}
		ft := &fakeTB{TB: t}
		func() {
			defer func() { recover() }()
			checkParses(ft, tc.f, text, nodes)
		}()
		if ft.msg == "" || !strings.Contains(ft.msg, tc.wantErrMsg) {
			t.Errorf("%s: %q -> %q: reader said %q, want a failure naming %q", tc.f, tc.old, tc.new, ft.msg, tc.wantErrMsg)
		}
	}
}

// fakeTB records the first Fatalf of checkParses and stops it there.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, a ...any) {
	f.msg = fmt.Sprintf(format, a...)
	panic(f.msg)
}
