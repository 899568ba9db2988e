package ipmi

import (
	"fmt"
	"slices"

	"github.com/netbootui/netbootui/internal/power"
)

// Name is the protocol's name in the inventory (bmc.protocol: ipmi, the
// default) and in the power registry.
const Name = "ipmi"

// DefaultPort is the RMCP port a BMC listens on when the inventory names none.
const DefaultPort = 623

// DefaultUser is the BMC user when the inventory names none.
const DefaultUser = "admin"

// MaxPassword is the longest password IPMI 2.0 (RMCP+) carries, in bytes.
const MaxPassword = 20

// DefaultCipherSuites are the RMCP+ cipher suites tried in order when a
// BMC's inventory entry names none: 17 (HMAC-SHA256, AES) first, then 3
// (HMAC-SHA1, AES), which older BMCs and ipmi_sim accept.
var DefaultCipherSuites = []int{17, 3}

// BMCOptions are IPMI's own settings of a BMC: the inventory's bmc.ipmi
// section (cipher_suites may also be written directly under bmc, as older
// inventories do). They travel in power.Target.Options.
type BMCOptions struct {
	// CipherSuites are tried in order; empty means DefaultCipherSuites.
	CipherSuites []int `json:"cipher_suites,omitempty"`
}

// Protocol declares the IPMI backend to a power.Registry: its name, its
// defaults, its inventory section and how to open it with opts (zero values
// take the defaults; CallTimeout and Logger come from the power.Service).
func Protocol(opts Options) power.Protocol {
	return power.Protocol{
		Name:        Name,
		Title:       "IPMI",
		Port:        DefaultPort,
		User:        DefaultUser,
		MaxPassword: MaxPassword,
		Keys:        []string{"cipher_suites"},
		Flat:        []string{"cipher_suites"},
		Options:     ReadOptions,
		Open: func(s power.Settings) (power.Backend, error) {
			o := opts
			o.CallTimeout, o.Logger = s.Fill(o.CallTimeout, o.Logger)
			return New(o), nil
		},
	}
}

// ReadOptions reads a bmc.ipmi section (Protocol.Options): cipher_suites, a
// non-empty list of suites 0-255, DefaultCipherSuites when not set.
func ReadOptions(r power.OptionReader) any {
	o := BMCOptions{CipherSuites: slices.Clone(DefaultCipherSuites)}
	if cs, ok := r.Ints("cipher_suites", "cipher suite", 0, 255); ok {
		if len(cs) == 0 {
			r.Errorf("cipher_suites", "%s is empty: list at least one suite (e.g. [17, 3]) or remove the key", r.Path("cipher_suites"))
		} else {
			o.CipherSuites = cs
		}
	}
	return o
}

// target is a power.Target as this backend uses it: defaults applied, the
// options read. It never leaves the package; its password is only handed
// to go-ipmi.
type target struct {
	node     string
	host     string
	port     int
	user     string
	password power.Secret
	suites   []int
	efi      bool
}

func fromTarget(t power.Target) target {
	o, _ := t.Options.(BMCOptions)
	if p, ok := t.Options.(*BMCOptions); ok && p != nil {
		o = *p
	}
	tg := target{node: t.Node, host: t.Host, port: t.Port, user: t.User, password: t.Password, suites: o.CipherSuites, efi: t.EFI}
	if tg.port == 0 {
		tg.port = DefaultPort
	}
	if tg.user == "" {
		tg.user = DefaultUser
	}
	if len(tg.suites) == 0 {
		tg.suites = DefaultCipherSuites
	}
	return tg
}

// addr is the BMC's host:port.
func (t target) addr() string { return power.Target{Host: t.host, Port: t.port}.Addr() }

// validate checks what IPMI needs before any packet is sent.
func (t target) validate() error {
	switch {
	case t.host == "":
		return fmt.Errorf("node %s: no BMC host", t.node)
	case t.port < 0 || t.port > 65535:
		return fmt.Errorf("node %s: BMC port %d out of range", t.node, t.port)
	case len(t.user) > 16:
		return fmt.Errorf("node %s: BMC user name longer than 16 bytes", t.node)
	case len(t.password.Reveal()) > MaxPassword:
		return fmt.Errorf("node %s: BMC password longer than %d bytes (IPMI 2.0 limit)", t.node, MaxPassword)
	}
	for _, cs := range t.suites {
		if cs < 0 || cs > 255 {
			return fmt.Errorf("node %s: cipher suite %d out of range", t.node, cs)
		}
	}
	return nil
}
