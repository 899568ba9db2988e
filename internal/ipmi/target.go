package ipmi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/netbootui/netbootui/internal/inventory"
)

// DefaultPort is the RMCP port a BMC listens on when the inventory names none.
const DefaultPort = 623

// DefaultUser is the BMC user when the inventory names none.
const DefaultUser = "admin"

// DefaultCipherSuites are the RMCP+ cipher suites tried in order when a
// target names none: 17 (HMAC-SHA256, AES) first, then 3 (HMAC-SHA1, AES),
// which older BMCs and ipmi_sim accept.
var DefaultCipherSuites = []int{17, 3}

const redacted = "[redacted]"

// Target is one BMC to talk to on behalf of one node. None of its printed
// forms (fmt verbs, JSON, slog) shows the password.
type Target struct {
	Node         string // node name, for results and errors
	Host         string // BMC address or host name
	Port         int    // 0 means DefaultPort
	User         string // "" means DefaultUser
	Password     string
	CipherSuites []int // tried in order; nil means DefaultCipherSuites
	EFI          bool  // the node boots UEFI: PXE boot flags ask for EFI boot
}

// TargetFor builds the Target of an inventory node, taking the password
// from the secrets file (or its environment override, see
// inventory.EnvPasswordVar). The error names the node when the node has no
// BMC host, no password reference, or a reference with no password.
func TargetFor(n *inventory.Node, s *inventory.Secrets) (Target, error) {
	if n == nil {
		return Target{}, fmt.Errorf("ipmi: no node")
	}
	b := n.BMC
	if b.Host == "" {
		return Target{}, fmt.Errorf("node %s: no BMC host in the inventory", n.Name)
	}
	if b.PasswordRef == "" {
		return Target{}, fmt.Errorf("node %s: BMC %s has no password reference (bmc.password in the inventory)", n.Name, b.Host)
	}
	pw, ok := s.Password(b.PasswordRef)
	if !ok {
		return Target{}, fmt.Errorf("node %s: BMC password %q is neither in the secrets file nor in $%s",
			n.Name, b.PasswordRef, inventory.EnvPasswordVar(b.PasswordRef))
	}
	t := Target{
		Node:         n.Name,
		Host:         b.Host,
		Port:         b.Port,
		User:         b.User,
		Password:     pw,
		CipherSuites: append([]int(nil), b.CipherSuites...),
		EFI:          n.Arch == inventory.ArchUEFI,
	}
	return t.withDefaults(), nil
}

// withDefaults fills the port, user and cipher suites.
func (t Target) withDefaults() Target {
	if t.Port == 0 {
		t.Port = DefaultPort
	}
	if t.User == "" {
		t.User = DefaultUser
	}
	if len(t.CipherSuites) == 0 {
		t.CipherSuites = DefaultCipherSuites
	}
	return t
}

// Addr returns the BMC's host:port (the default port when none is set).
func (t Target) Addr() string {
	p := t.Port
	if p == 0 {
		p = DefaultPort
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(p))
}

// validate checks what a call needs before any packet is sent.
func (t Target) validate() error {
	switch {
	case t.Host == "":
		return fmt.Errorf("node %s: no BMC host", t.Node)
	case t.Port < 0 || t.Port > 65535:
		return fmt.Errorf("node %s: BMC port %d out of range", t.Node, t.Port)
	case len(t.User) > 16:
		return fmt.Errorf("node %s: BMC user name longer than 16 bytes", t.Node)
	case len(t.Password) > 20:
		return fmt.Errorf("node %s: BMC password longer than 20 bytes (IPMI 2.0 limit)", t.Node)
	}
	for _, cs := range t.CipherSuites {
		if cs < 0 || cs > 255 {
			return fmt.Errorf("node %s: cipher suite %d out of range", t.Node, cs)
		}
	}
	return nil
}

func (t Target) pw() string {
	if t.Password == "" {
		return ""
	}
	return redacted
}

// String describes the target without its password.
func (t Target) String() string {
	u := t.User
	if u == "" {
		u = DefaultUser
	}
	return fmt.Sprintf("node %s BMC %s@%s", t.Node, u, t.Addr())
}

// GoString describes the target for %#v with the password redacted.
func (t Target) GoString() string {
	return fmt.Sprintf("ipmi.Target{Node:%q, Host:%q, Port:%d, User:%q, Password:%q, CipherSuites:%#v, EFI:%t}",
		t.Node, t.Host, t.Port, t.User, t.pw(), t.CipherSuites, t.EFI)
}

// Format prints the redacted description for every fmt verb.
func (t Target) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, t.GoString())
		return
	}
	fmt.Fprint(f, t.String())
}

// MarshalJSON encodes the target with the password replaced by "[redacted]".
func (t Target) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Node         string `json:"node"`
		Host         string `json:"host"`
		Port         int    `json:"port,omitempty"`
		User         string `json:"user,omitempty"`
		Password     string `json:"password,omitempty"`
		CipherSuites []int  `json:"cipher_suites,omitempty"`
		EFI          bool   `json:"efi,omitempty"`
	}{t.Node, t.Host, t.Port, t.User, t.pw(), t.CipherSuites, t.EFI})
}

// LogValue makes slog print the target without its password.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("node", t.Node),
		slog.String("bmc", t.Addr()),
		slog.String("user", t.User),
	)
}
