package power

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"time"
)

// Backend is one BMC protocol's implementation: what a new power protocol
// writes. It keeps its own sessions (pooled per BMC as the protocol wants)
// and classifies its errors as *BMCError values (NewError) with the kinds
// of this package. The Service calls it with a context bounded by the
// per-call deadline (WithDeadline); fan-out, the per-BMC breaker and rate
// limit, the results and the progress reports are the Service's. A Backend
// must be safe for concurrent use; calls for one BMC may overlap.
type Backend interface {
	// Power runs OpStatus (reads the power state, changes nothing), OpOn,
	// OpOff, OpSoft, OpCycle (a node that is off is powered on) or
	// OpReset. Outcome.Power is "on" or "off" when the call learned it.
	Power(ctx context.Context, t Target, op Op) (Outcome, error)
	// BootOnce sets the node's next boot, once, to dev (PXE, legacy or EFI;
	// HTTP where the BMC offers it) and reads it back: a BMC that did not
	// keep it is an ErrRefused error. A device the backend cannot set is
	// an ErrUnsupported error.
	BootOnce(ctx context.Context, t Target, dev BootDevice) (Outcome, error)
	// Facts reads what the BMC tells of the machine. It fails only when it
	// could read nothing; facts it could not read are left empty, with
	// their errors in Facts.Unread.
	Facts(ctx context.Context, t Target) (Facts, error)
	// Close ends every session. The Service calls it once.
	Close() error
}

// SerialConsole is implemented by a Backend that reaches the node's serial
// port (IPMI serial-over-LAN). A Backend without one makes Service.Console
// fail with an error that says so (ErrNoConsole).
type SerialConsole interface {
	// Console attaches to t's serial console: bytes read from in go to the
	// node, its output is written to out. It returns nil when in reaches
	// EOF, ctx's error when ctx ends, ErrSessionAged when it stopped for a
	// planned hand-over to a new session (call it again at once), and a
	// *BMCError when the BMC cannot be reached or refuses. Setting the
	// session up is bounded by Settings.CallTimeout; the stream is not.
	Console(ctx context.Context, t Target, in io.Reader, out io.Writer, opts ConsoleOptions) error
}

// ConsoleAlternative is implemented by a Backend without a SerialConsole
// that can name another way to t's console (Redfish: the same BMC's IPMI
// serial-over-LAN). Service.Console adds it to its ErrNoConsole error.
type ConsoleAlternative interface {
	ConsoleAlternative(t Target) string
}

// Prober is implemented by a Backend with a cheap reachability check that
// needs no session (IPMI's RMCP presence ping). The Service calls Probe
// outside its concurrency bound, so that silent BMCs cost a socket rather
// than a slot; a Probe that knows the BMC is reachable (an open session)
// returns nil at once.
type Prober interface {
	Probe(ctx context.Context, t Target) error
}

// ConsoleOptions tune a serial console session.
type ConsoleOptions struct {
	// OnActive, if set, is called once the console is active, before any
	// byte flows.
	OnActive func()
}

// Outcome is what a power or boot call did or read.
type Outcome struct {
	Power  string // "on" or "off" when the call learned it
	Detail string // what was done or read, for people ("power cycle requested")
	// MACs are the machine's NIC MACs a facts read learned (the seam's
	// deviceid); backends leave them nil.
	MACs []string
}

// Facts is what a BMC tells of its machine. Every field is optional.
type Facts struct {
	// Device is a one-line summary for people (IPMI: "device 32 rev 1,
	// firmware 1.02, IPMI 2.0, manufacturer 343, product 7").
	Device       string
	Manufacturer string
	Model        string
	Serial       string
	Firmware     string   // BMC or BIOS firmware version
	Power        string   // "on" or "off"
	Boot         string   // the next-boot setting as read ("pxe, once, efi, valid")
	MACs         []string // the machine's NIC MACs, where the BMC knows them
	// Unread names the facts that could not be read ("power", "boot"), with
	// why.
	Unread map[string]error
}

// Settings are what the Service gives a backend it opens.
type Settings struct {
	// CallTimeout is the per-call deadline the Service applies (for error
	// texts such as "no answer within 5s", and for retries within it).
	CallTimeout time.Duration
	// Logger receives the backend's own lines; never passwords.
	Logger *slog.Logger
}

// Fill returns timeout and log, each replaced by the Service's setting when
// unset (zero or nil): a backend's own options win over the Service's.
func (s Settings) Fill(timeout time.Duration, log *slog.Logger) (time.Duration, *slog.Logger) {
	if timeout <= 0 {
		timeout = s.CallTimeout
	}
	if log == nil {
		log = s.Logger
	}
	return timeout, log
}

// OptionReader reads a protocol's own section of a node's or group's bmc
// entry (bmc.PROTOCOL, see Protocol.Options). The inventory implements it;
// every problem it or the protocol reports carries the FILE:LINE:COL of the
// value and the entry's name ("node n01: ...").
type OptionReader interface {
	// Ints reads a list of whole numbers in [lo, hi]; item names one of
	// them in messages ("cipher suite"). ok is false when the key is not
	// set or a value is wrong (reported).
	Ints(key, item string, lo, hi int) (v []int, ok bool)
	// String reads a string; ok is false when not set or wrong (reported).
	String(key string) (v string, ok bool)
	// Bool reads true or false; ok is false when not set or wrong (reported).
	Bool(key string) (v bool, ok bool)
	// File reads a file name (a CA bundle, say) and returns it resolved
	// against the inventory file's folder; ok is false when not set or
	// wrong (reported). Whether the file exists is the backend's to check
	// when it opens it.
	File(key string) (path string, ok bool)
	// Path is how the key is written in the file ("bmc.ipmi.cipher_suites",
	// or "bmc.cipher_suites" for a key accepted flat), for messages.
	Path(key string) string
	// Errorf reports a problem at key's value (at the section when key is
	// not set), prefixed with the entry's name.
	Errorf(key, format string, a ...any)
}

// Protocol declares a power backend: its name in the inventory
// (bmc.protocol), its defaults, how to read its own inventory section and
// how to open it. A backend package exports one; registering it (one line)
// is all it takes to make the inventory accept it and the daemon use it.
type Protocol struct {
	// Name is bmc.protocol's value and the name of the bmc.NAME section.
	Name string
	// Title is how people write the protocol's name ("IPMI"; "" is Name).
	Title string
	// Port and User are a BMC's port and user when the inventory names
	// none: the one place these defaults are defined.
	Port int
	User string
	// MaxPassword is the longest password the protocol carries, in bytes
	// (0: no limit); the inventory refuses a longer one at its reference.
	MaxPassword int
	// Keys are the keys its bmc.NAME section allows; Flat those of them also
	// accepted directly under bmc, for compatibility (IPMI's cipher_suites).
	Keys []string
	Flat []string
	// Options reads bmc.NAME (a node's keys over its group's) and returns
	// the protocol's settings, kept in the inventory and in Target.Options.
	// It is called for every node with the protocol, section or not, so it
	// returns the defaults of what is not set. nil: no options.
	Options func(OptionReader) any
	// Machine, when set, names the machine a BMC's options pick behind its
	// address (a Redfish system path on a chassis manager): the inventory
	// refuses two nodes on one BMC address unless their machines differ.
	// nil: one machine per BMC address (IPMI).
	Machine func(options any) string
	// Open starts the backend. The Service opens each protocol once, when
	// a target first needs it.
	Open func(Settings) (Backend, error)
}

// Registry is the set of backends a daemon (or a command) knows, by
// protocol name. It is a value the caller owns, never package state: the
// daemon gets one in its Config; a test adds its own backend to it.
type Registry struct {
	protos map[string]Protocol
}

// NewRegistry returns a registry of the given protocols.
func NewRegistry(ps ...Protocol) (*Registry, error) {
	r := &Registry{protos: map[string]Protocol{}}
	for _, p := range ps {
		if err := r.Register(p); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a protocol. Its name must be new, a lower-case word, and
// Open must be set.
func (r *Registry) Register(p Protocol) error {
	if !validName(p.Name) {
		return fmt.Errorf("power: protocol name %q: want [a-z][a-z0-9-]*", p.Name)
	}
	if p.Open == nil {
		return fmt.Errorf("power: protocol %s has no Open", p.Name)
	}
	for _, k := range p.Flat {
		if !slices.Contains(p.Keys, k) {
			return fmt.Errorf("power: protocol %s: flat key %q is not one of its keys", p.Name, k)
		}
	}
	if _, dup := r.protos[p.Name]; dup {
		return fmt.Errorf("power: protocol %s registered twice", p.Name)
	}
	r.protos[p.Name] = p
	return nil
}

func validName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Lookup returns the protocol registered under name.
func (r *Registry) Lookup(name string) (Protocol, bool) {
	if r == nil {
		return Protocol{}, false
	}
	p, ok := r.protos[name]
	return p, ok
}

// CheckPassword says whether the protocol can carry pw. Its error never
// contains the password.
func (p Protocol) CheckPassword(pw string) error {
	if p.MaxPassword > 0 && len(pw) > p.MaxPassword {
		title := p.Title
		if title == "" {
			title = p.Name
		}
		return fmt.Errorf("%d bytes, longer than the %d bytes %s allows", len(pw), p.MaxPassword, title)
	}
	return nil
}

// Names returns the registered protocol names, sorted.
func (r *Registry) Names() []string {
	if r == nil {
		return nil
	}
	n := make([]string, 0, len(r.protos))
	for k := range r.protos {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// WithDefaults fills t's port and user from its protocol's defaults.
func (r *Registry) WithDefaults(t Target) (Target, error) {
	p, ok := r.Lookup(t.Protocol)
	if !ok {
		return t, unknownProtocol(t, r)
	}
	if t.Port == 0 {
		t.Port = p.Port
	}
	if t.User == "" {
		t.User = p.User
	}
	return t, nil
}

func unknownProtocol(t Target, r *Registry) error {
	return fmt.Errorf("node %s: %w %q (registered: %s)", t.Node, ErrUnknownProtocol, t.Protocol, joinNames(r.Names()))
}

func joinNames(n []string) string {
	if len(n) == 0 {
		return "none"
	}
	s := n[0]
	for _, x := range n[1:] {
		s += ", " + x
	}
	return s
}
