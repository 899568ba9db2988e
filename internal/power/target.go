package power

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strconv"
)

const redacted = "[redacted]"

// Secret is a BMC password. None of its printed forms (fmt verbs, JSON,
// slog) shows it: they print "[redacted]" ("" when it is empty). Reveal
// hands it to the protocol library, the one place it is needed.
type Secret struct {
	// A closure: fmt prints a func as an address, even through reflection
	// on a struct that holds a Secret, where Secret's own methods are not
	// called.
	v func() string
}

// NewSecret wraps a password.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{v: func() string { return s }}
}

// Reveal returns the password, for the protocol library only.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return s.v()
}

// Empty reports whether there is no password.
func (s Secret) Empty() bool { return s.v == nil }

// IsZero is Empty (for the omitzero JSON option).
func (s Secret) IsZero() bool { return s.Empty() }

// String returns "[redacted]" ("" for no password).
func (s Secret) String() string {
	if s.Empty() {
		return ""
	}
	return redacted
}

// GoString is String, quoted, for %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format prints the redacted form for every verb.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprint(f, s.String())
}

// MarshalJSON encodes "[redacted]" ("" for no password).
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// LogValue makes slog print the redacted form.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// BootKind is the device a one-time boot override names.
type BootKind string

// Boot devices. BootPXE is what reboot-clean sets; BootHTTP (UEFI HTTP boot
// from BootDevice.URL) is for backends that offer it.
const (
	BootPXE  BootKind = "pxe"
	BootHTTP BootKind = "http"
)

// BootDevice is a one-time boot override.
type BootDevice struct {
	Kind BootKind
	EFI  bool   // the node boots UEFI (from its inventory arch): ask for the EFI variant
	URL  string // BootHTTP only: the URL the firmware fetches
}

// Target is one node's BMC, as the inventory describes it, with the
// password from the secrets file. None of its printed forms (fmt verbs,
// JSON, slog) shows the password.
type Target struct {
	Node     string // node name, for results and errors
	Protocol string // the backend's name ("ipmi")
	Host     string // BMC address or host name
	Port     int    // 0: the protocol's default port
	User     string // "": the protocol's default user
	Password Secret
	EFI      bool   // the node boots UEFI: a PXE boot override asks for EFI
	BootURL  string // the node's HTTP boot URL, for backends that offer HTTP boot ("" none)
	// Options are the protocol's own settings, as its inventory reader
	// (Protocol.Options) returned them from bmc.PROTOCOL; nil means the
	// protocol's defaults.
	Options any
}

// Addr returns the BMC's host:port.
func (t Target) Addr() string {
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// String describes the target without its password.
func (t Target) String() string {
	return fmt.Sprintf("node %s BMC %s %s@%s", t.Node, t.Protocol, t.User, t.Addr())
}

// GoString describes the target for %#v with the password redacted.
func (t Target) GoString() string {
	return fmt.Sprintf("power.Target{Node:%q, Protocol:%q, Host:%q, Port:%d, User:%q, Password:%#v, EFI:%t, BootURL:%q, Options:%#v}",
		t.Node, t.Protocol, t.Host, t.Port, t.User, t.Password, t.EFI, t.BootURL, t.Options)
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
		Node     string `json:"node"`
		Protocol string `json:"protocol"`
		Host     string `json:"host"`
		Port     int    `json:"port,omitempty"`
		User     string `json:"user,omitempty"`
		Password Secret `json:"password,omitzero"`
		EFI      bool   `json:"efi,omitempty"`
		BootURL  string `json:"boot_url,omitempty"`
		Options  any    `json:"options,omitempty"`
	}{t.Node, t.Protocol, t.Host, t.Port, t.User, t.Password, t.EFI, t.BootURL, t.Options})
}

// LogValue makes slog print the target without its password.
func (t Target) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("node", t.Node),
		slog.String("protocol", t.Protocol),
		slog.String("bmc", t.Addr()),
		slog.String("user", t.User),
	)
}
