package inventory

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/power"
)

// vendorOpts is what the test protocol "vendor" reads from bmc.vendor.
type vendorOpts struct {
	System   string
	Insecure bool
	CA       string
}

// twoProtocols registers IPMI and a second protocol with options of other
// kinds, as a Redfish backend would have.
func twoProtocols(t *testing.T) Option {
	t.Helper()
	vendor := power.Protocol{Name: "vendor", Port: 443, User: "root", Keys: []string{"system", "insecure", "ca"},
		Options: func(r power.OptionReader) any {
			o := vendorOpts{System: "/redfish/v1/Systems/1"}
			if s, ok := r.String("system"); ok {
				if !strings.HasPrefix(s, "/") {
					r.Errorf("system", "%s %q: must start with /", r.Path("system"), s)
				}
				o.System = s
			}
			if b, ok := r.Bool("insecure"); ok {
				o.Insecure = b
			}
			if f, ok := r.File("ca"); ok {
				o.CA = f
			}
			return o
		},
		Machine: func(o any) string { return o.(vendorOpts).System },
		Open:    func(power.Settings) (power.Backend, error) { return nil, fmt.Errorf("not for this test") }}
	reg, err := power.NewRegistry(ipmi.Protocol(ipmi.Options{}), vendor)
	if err != nil {
		t.Fatal(err)
	}
	return WithProtocols(reg)
}

// TestBMCProtocols: bmc.protocol picks the backend (ipmi by default), its
// section bmc.NAME holds the protocol's options (the node's keys over the
// group's), the flat cipher_suites of older inventories still counts for
// IPMI, port and user default to the protocol's, and every mistake is
// reported at its value with the valid choices.
func TestBMCProtocols(t *testing.T) {
	const head = `groups:
  ipmi: {bmc: {password: p, ipmi: {cipher_suites: [3]}}}
  flat: {bmc: {cipher_suites: [3, 17]}}
  rf: {bmc: {protocol: vendor, password: p, vendor: {system: /redfish/v1/Systems/7}}}
nodes:
`
	tests := []struct {
		name  string
		nodes string
		check func(t *testing.T, inv *Inventory)
		err   string
	}{
		{name: "ipmi section inherited", nodes: `  - {name: a, group: ipmi, bmc: {host: h}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			check: func(t *testing.T, inv *Inventory) {
				b := inv.Node("a").BMC
				if b.Protocol != "ipmi" || b.Port != 623 || b.User != "admin" || !slices.Equal(suites(b), []int{3}) {
					t.Errorf("%+v", b)
				}
			}},
		{name: "node section over group flat", nodes: `  - {name: a, group: flat, bmc: {ipmi: {cipher_suites: [17]}}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			check: func(t *testing.T, inv *Inventory) {
				if b := inv.Node("a").BMC; !slices.Equal(suites(b), []int{17}) {
					t.Errorf("%+v", b)
				}
				if g := inv.Groups["flat"].BMC; !slices.Equal(suites(g), []int{3, 17}) || g.Protocol != "" || g.Port != 0 {
					t.Errorf("group %+v", g)
				}
			}},
		{name: "other protocol, its defaults and options", nodes: `  - {name: a, group: rf, bmc: {host: h, vendor: {insecure: true, ca: certs/ca.pem}}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			check: func(t *testing.T, inv *Inventory) {
				b := inv.Node("a").BMC
				if b.Protocol != "vendor" || b.Port != 443 || b.User != "root" ||
					b.Options != (vendorOpts{System: "/redfish/v1/Systems/7", Insecure: true, CA: "certs/ca.pem"}) {
					t.Errorf("%+v", b)
				}
			}},
		{name: "node switches protocol", nodes: `  - {name: a, group: rf, bmc: {protocol: ipmi, port: 1623}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			check: func(t *testing.T, inv *Inventory) {
				b := inv.Node("a").BMC
				if b.Protocol != "ipmi" || b.Port != 1623 || b.User != "admin" || !slices.Equal(suites(b), []int{17, 3}) {
					t.Errorf("%+v", b)
				}
			}},
		{name: "two systems behind one BMC", nodes: `  - {name: a, group: rf, bmc: {host: h, vendor: {system: /S/1}}, nics: [{mac: "02:00:00:00:00:01"}]}
  - {name: b, group: rf, bmc: {host: h, vendor: {system: /S/2}}, nics: [{mac: "02:00:00:00:00:02"}]}`,
			check: func(t *testing.T, inv *Inventory) {
				if a, b := inv.Node("a").BMC, inv.Node("b").BMC; a.Host != b.Host || a.Options == b.Options {
					t.Errorf("%+v %+v", a, b)
				}
			}},
		{name: "one system twice", nodes: `  - {name: a, group: rf, bmc: {host: h}, nics: [{mac: "02:00:00:00:00:01"}]}
  - {name: b, group: rf, bmc: {host: h}, nics: [{mac: "02:00:00:00:00:02"}]}`,
			err: `7:38: duplicate BMC h:443: node a has it too (t.yaml:6:38); node b would power that machine`},
		{name: "unknown protocol", nodes: `  - {name: a, bmc: {protocol: redfsh}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			err: `6:31: node a: unknown bmc.protocol "redfsh" (protocols: ipmi, vendor)`},
		{name: "section of another protocol", nodes: `  - {name: a, bmc: {protocol: ipmi, vendor: {insecure: true}}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			err: `6:37: node a: bmc.vendor does not apply: bmc.protocol is ipmi`},
		{name: "flat key of another protocol", nodes: `  - {name: a, group: rf, bmc: {cipher_suites: [3]}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			err: `6:47: node a: bmc.cipher_suites is not an option of protocol vendor`},
		{name: "bad option value", nodes: `  - {name: a, bmc: {protocol: vendor, vendor: {system: Systems/1}}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			err: `6:56: node a: bmc.vendor.system "Systems/1": must start with /`},
		{name: "option of the wrong type", nodes: `  - {name: a, bmc: {protocol: vendor, vendor: {insecure: yes please}}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			err: `6:58: node a: bmc.vendor.insecure must be true or false, got a string ("yes please")`},
		{name: "empty file name", nodes: `  - {name: a, bmc: {protocol: vendor, vendor: {ca: ""}}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			err: `6:52: node a: bmc.vendor.ca is empty: name a file or remove the key`},
		{name: "nested cipher suite range", nodes: `  - {name: a, bmc: {ipmi: {cipher_suites: [17, 256]}}, nics: [{mac: "02:00:00:00:00:01"}]}`,
			err: `6:48: node a: bad cipher suite 256: must be 0-255`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list := checkRule(t, head+tc.nodes+"\n", tc.check, tc.err, twoProtocols(t))
			if len(list) > 1 {
				t.Errorf("%d errors, want 1 (an inherited value is reported once, at the group):\n%v", len(list), list)
			}
		})
	}
}

// TestOptionFileResolved: a file option is resolved against the inventory
// file's folder; an absolute one is kept.
func TestOptionFileResolved(t *testing.T) {
	src := `nodes:
  - {name: a, bmc: {protocol: vendor, vendor: {ca: certs/ca.pem}}, nics: [{mac: "02:00:00:00:00:01"}]}
  - {name: b, bmc: {protocol: vendor, vendor: {ca: /srv/ca.pem}}, nics: [{mac: "02:00:00:00:00:02"}]}
`
	inv, err := Parse("/etc/nb/nodes.yaml", []byte(src), twoProtocols(t))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := inv.Node("a").BMC.Options.(vendorOpts).CA, inv.Node("b").BMC.Options.(vendorOpts).CA; a != "/etc/nb/certs/ca.pem" || b != "/srv/ca.pem" {
		t.Errorf("ca %q, %q", a, b)
	}
}

// TestGroupOptionErrorOnce: a bad option in a group is reported once, at
// the group, however many nodes inherit it.
func TestGroupOptionErrorOnce(t *testing.T) {
	src := `groups:
  g: {bmc: {ipmi: {cipher_suites: [999]}}}
nodes:
  - {name: "n[1-4]", group: g, nics: [{mac: "02:00:00:00:00:01"}]}
  - {name: m, group: g, nics: [{mac: "02:00:00:00:01:01"}]}
`
	_, err := Parse("t.yaml", []byte(src), withIPMI())
	list, ok := err.(ErrorList)
	if !ok || len(list) != 1 || list[0].Error() != "t.yaml:2:36: group g: bad cipher suite 999: must be 0-255" {
		t.Fatalf("%v", err)
	}
}

// TestBuiltinProtocols: without WithProtocols the inventory knows the
// built-in backends (internal/power/backends): IPMI's section is read and
// its defaults apply; Redfish is known too; any other protocol is unknown.
func TestBuiltinProtocols(t *testing.T) {
	src := `groups:
  g: {bmc: {cipher_suites: [3]}}
nodes:
  - {name: a, group: g, bmc: {host: h}, nics: [{mac: "02:00:00:00:00:01"}]}
`
	inv, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if b := inv.Node("a").BMC; b.Protocol != "ipmi" || b.Port != 623 || b.User != "admin" || !slices.Equal(suites(b), []int{3}) {
		t.Errorf("%+v", b)
	}
	_, err = Parse("t.yaml", []byte("groups:\n  g: {bmc: {protocol: vendor}}\n"))
	if err == nil || err.Error() != `t.yaml:2:23: group g: unknown bmc.protocol "vendor" (protocols: ipmi, redfish)` {
		t.Errorf("%v", err)
	}
}

// TestBMCTarget: a node's power target carries its resolved BMC, its
// protocol's options and the password from the secrets (or the
// environment), and never prints it; what is missing is named.
func TestBMCTarget(t *testing.T) {
	src := `groups:
  g: {arch: uefi, bmc: {password: ref, ipmi: {cipher_suites: [3]}}}
nodes:
  - {name: a, group: g, bmc: {host: 10.0.0.9}, nics: [{mac: "02:00:00:00:00:01"}]}
  - {name: nohost, group: g, nics: [{mac: "02:00:00:00:00:02"}]}
  - {name: noref, bmc: {host: h}, nics: [{mac: "02:00:00:00:00:03"}]}
  - {name: unknown, bmc: {host: h2, password: other}, nics: [{mac: "02:00:00:00:00:04"}]}
`
	inv, err := Parse("t.yaml", []byte(src), withIPMI())
	if err != nil {
		t.Fatal(err)
	}
	sec := newSecrets(map[string]string{"ref": "Pa55-word"})
	tg, err := inv.Node("a").BMCTarget(sec)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Node != "a" || tg.Protocol != "ipmi" || tg.Addr() != "10.0.0.9:623" || tg.User != "admin" || !tg.EFI ||
		tg.Password.Reveal() != "Pa55-word" || !slices.Equal(tg.Options.(ipmi.BMCOptions).CipherSuites, []int{3}) {
		t.Errorf("%#v", tg)
	}
	if s := fmt.Sprintf("%v %+v %#v", tg, tg, tg); strings.Contains(s, "Pa55") {
		t.Errorf("password printed: %s", s)
	}
	t.Setenv(EnvPasswordVar("other"), "from-env")
	if tg, err := inv.Node("unknown").BMCTarget(sec); err != nil || tg.Password.Reveal() != "from-env" {
		t.Errorf("environment override: %v", err)
	}
	for node, want := range map[string]string{
		"nohost": "node nohost: no BMC host in the inventory",
		"noref":  "node noref: BMC h has no password reference (bmc.password in the inventory)",
	} {
		if _, err := inv.Node(node).BMCTarget(sec); err == nil || err.Error() != want {
			t.Errorf("%s: %v, want %s", node, err, want)
		}
	}
	os.Unsetenv(EnvPasswordVar("other"))
	if _, err := inv.Node("unknown").BMCTarget(sec); err == nil || !strings.Contains(err.Error(), `BMC password "other" is neither in the secrets file nor in $NETBOOTUI_BMC_PASSWORD_OTHER`) {
		t.Errorf("unknown reference: %v", err)
	}
}

// TestPasswordLengthIsTheProtocols: how long a password may be is its BMC's
// protocol's rule: 40 bytes pass for a protocol without a limit and fail
// for IPMI (20), once per reference, at the reference.
func TestPasswordLengthIsTheProtocols(t *testing.T) {
	dir := t.TempDir()
	inv := `settings: {secrets: secrets.yaml}
groups:
  rf: {bmc: {protocol: vendor, password: long}}
nodes:
  - {name: a, group: rf, bmc: {host: h1}, nics: [{mac: "02:00:00:00:00:01"}]}
  - {name: b, group: rf, bmc: {host: h2, protocol: ipmi}, nics: [{mac: "02:00:00:00:00:02"}]}
  - {name: c, group: rf, bmc: {host: h3, protocol: ipmi}, nics: [{mac: "02:00:00:00:00:03"}]}
`
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  long: "+strings.Repeat("z", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p, twoProtocols(t))
	list, ok := err.(ErrorList)
	want := p + `:3:42: password "long" (from secrets.yaml or NETBOOTUI_BMC_PASSWORD_LONG): 40 bytes, longer than the 20 bytes IPMI allows`
	if !ok || len(list) != 1 || list[0].Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
}
