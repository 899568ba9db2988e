package redfish

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/power"
)

// Name is the protocol's name in the inventory (bmc.protocol: redfish) and
// in the power registry.
const Name = "redfish"

// DefaultPort is the HTTPS port a BMC listens on when the inventory names none.
const DefaultPort = 443

// DefaultUser is the BMC user when the inventory names none.
const DefaultUser = "root"

// DefaultSystem is the ComputerSystem a BMC's node is when bmc.redfish.system
// is not set: the first member of /redfish/v1/Systems is used.
const DefaultSystem = ""

// BMCOptions are Redfish's own settings of a BMC: the inventory's
// bmc.redfish section. They travel in power.Target.Options.
type BMCOptions struct {
	// System is the path of the node's ComputerSystem
	// ("/redfish/v1/Systems/1"); empty: the only (first) member of the
	// Systems collection.
	System string `json:"system,omitempty"`
	// CA is a PEM file of the certificate authorities the BMC's TLS
	// certificate is verified against; empty: the system's roots.
	CA string `json:"ca,omitempty"`
	// Insecure turns certificate verification off; it must be set
	// explicitly and excludes CA.
	Insecure bool `json:"insecure,omitempty"`
	// IPMISOL tells the no-console error that the same BMC also speaks IPMI
	// serial-over-LAN (bmc.redfish.ipmi_sol: true), to name it as the way
	// to the console.
	IPMISOL bool `json:"ipmi_sol,omitempty"`
	// HTTPBoot makes the one-time boot override of a UEFI node UEFI HTTP
	// boot (UefiHttp, HttpBootUri = the node's boot URL: the daemon's
	// /loaders/ipxe.efi) instead of Pxe (bmc.redfish.http_boot: true).
	HTTPBoot bool `json:"http_boot,omitempty"`
}

// Options configure the backend. Zero values take the defaults.
type Options struct {
	// CallTimeout is the per-call deadline (power.DefaultCallTimeout when
	// zero), for error texts and for bounding retries and task polls.
	CallTimeout time.Duration
	// Logger receives the backend's own lines; nil discards them. Passwords
	// are never logged.
	Logger *slog.Logger
}

// Protocol declares the Redfish backend to a power.Registry: its name, its
// defaults, its inventory section and how to open it with opts (zero values
// take the defaults; CallTimeout and Logger come from the power.Service).
func Protocol(opts Options) power.Protocol {
	return power.Protocol{
		Name:    Name,
		Port:    DefaultPort,
		User:    DefaultUser,
		Keys:    []string{"system", "ca", "insecure", "ipmi_sol", "http_boot"},
		Options: ReadOptions,
		Open: func(s power.Settings) (power.Backend, error) {
			o := opts
			o.CallTimeout, o.Logger = s.Fill(o.CallTimeout, o.Logger)
			return New(o), nil
		},
	}
}

// ReadOptions reads a bmc.redfish section (Protocol.Options): system, a path
// under /redfish/v1/Systems/; ca, a CA file; insecure, which must not be
// combined with ca; ipmi_sol; http_boot.
func ReadOptions(r power.OptionReader) any {
	var o BMCOptions
	if s, ok := r.String("system"); ok {
		if err := checkSystemPath(s); err != nil {
			r.Errorf("system", "%s %q: %v", r.Path("system"), s, err)
		} else {
			o.System = s
		}
	}
	if f, ok := r.File("ca"); ok {
		o.CA = f
	}
	if b, ok := r.Bool("insecure"); ok {
		o.Insecure = b
	}
	if o.Insecure && o.CA != "" {
		r.Errorf("insecure", "%s: true turns certificate checks off, so %s is ignored: set one of them", r.Path("insecure"), r.Path("ca"))
	}
	if b, ok := r.Bool("ipmi_sol"); ok {
		o.IPMISOL = b
	}
	if b, ok := r.Bool("http_boot"); ok {
		o.HTTPBoot = b
	}
	return o
}

// systemsPrefix is where every ComputerSystem lives.
const systemsPrefix = "/redfish/v1/Systems/"

// checkSystemPath accepts /redfish/v1/Systems/ID (one path segment, no
// query, no dot segments).
func checkSystemPath(s string) error {
	id, ok := strings.CutPrefix(s, systemsPrefix)
	switch {
	case !ok:
		return fmt.Errorf("want a path starting with %s (e.g. %s1)", systemsPrefix, systemsPrefix)
	case id == "" || strings.ContainsAny(id, "/?#%\\ \t") || id == "." || id == "..":
		return fmt.Errorf("want one system id after %s (e.g. %s1)", systemsPrefix, systemsPrefix)
	}
	return nil
}

// target is a power.Target as this backend uses it: defaults applied, the
// options read. Its password is only handed to gofish.
type target struct {
	node     string
	host     string
	port     int
	user     string
	password power.Secret
	efi      bool
	bootURL  string
	opts     BMCOptions
}

func fromTarget(t power.Target) target {
	o, _ := t.Options.(BMCOptions)
	if p, ok := t.Options.(*BMCOptions); ok && p != nil {
		o = *p
	}
	tg := target{node: t.Node, host: t.Host, port: t.Port, user: t.User, password: t.Password, efi: t.EFI, bootURL: t.BootURL, opts: o}
	if tg.port == 0 {
		tg.port = DefaultPort
	}
	if tg.user == "" {
		tg.user = DefaultUser
	}
	return tg
}

// addr is the BMC's host:port.
func (t target) addr() string { return power.Target{Host: t.host, Port: t.port}.Addr() }

// key identifies a session: one per BMC address, user, password and TLS
// settings (a changed password or CA makes a new session).
func (t target) key() string {
	return strings.Join([]string{t.addr(), t.user, t.opts.CA, fmt.Sprint(t.opts.Insecure)}, "\x00")
}

// validate checks what Redfish needs before any packet is sent.
func (t target) validate() error {
	switch {
	case t.host == "":
		return fmt.Errorf("node %s: no BMC host", t.node)
	case t.port <= 0 || t.port > 65535:
		return fmt.Errorf("node %s: BMC port %d out of range", t.node, t.port)
	case t.opts.System != "" && checkSystemPath(t.opts.System) != nil:
		return fmt.Errorf("node %s: bmc.redfish.system %q: %v", t.node, t.opts.System, checkSystemPath(t.opts.System))
	}
	return nil
}
