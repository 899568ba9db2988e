package inventory

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/netbootui/netbootui/internal/power"
)

// DefaultBMCProtocol is a BMC's protocol when neither its node nor its group
// names one. Every other BMC default (port, user, the protocol's own
// options) is the protocol's: see power.Protocol.
const DefaultBMCProtocol = "ipmi"

// Keys every bmc entry may have whatever its protocol; a group's has no
// host. The protocols add their section (bmc.NAME) and their flat keys.
var (
	bmcCommonKeys = []string{"protocol", "host", "port", "user", "password"}
	groupBMCKeys  = []string{"protocol", "port", "user", "password"}
	nodeBMCKeys   = bmcCommonKeys
)

// Option changes how Parse, Load, Watch and Update read an inventory.
type Option func(*parser)

// WithProtocols checks the BMCs against the protocols of reg instead of the
// built-in ones (internal/power/backends): for a caller that registered a
// backend of its own, as a daemon given Config.Backends does. Either way
// bmc.protocol must name a registered protocol (an error at FILE:LINE:COL
// lists them), its bmc.NAME section is read by the protocol, and a BMC's
// port and user default to the protocol's.
func WithProtocols(reg *power.Registry) Option {
	return func(p *parser) { p.protos = reg }
}

// passwordUse is a password reference as written, and the protocol of a BMC
// that uses it (a group's reference is used by each of its nodes).
type passwordUse struct {
	at       *yaml.Node
	protocol string
}

// optVal is one protocol option's value as written, and where.
type optVal struct {
	v         *yaml.Node
	path      string // "bmc.ipmi.cipher_suites" or "bmc.cipher_suites"
	fromGroup bool   // inherited: its errors were reported with the group
}

// bmcSpec is what a group's or node's bmc entry says.
type bmcSpec struct {
	protocol setting[string]
	host     setting[string]
	port     setting[int]
	user     setting[string]
	password setting[string]
	sections map[string]*yaml.Node // protocol name -> its section's mapping node (key node for position)
	opts     map[string]map[string]optVal
	flat     map[string]optVal // flat keys (cipher_suites) by key
}

// bmcKeys lists what a bmc entry allows: the common keys, then each
// protocol's section name and flat keys.
func (p *parser) bmcKeys(common []string) []string {
	keys := slices.Clone(common)
	names := p.protos.Names()
	keys = append(keys, names...)
	for _, n := range names {
		pr, _ := p.protos.Lookup(n)
		for _, f := range pr.Flat {
			if !slices.Contains(keys, f) {
				keys = append(keys, f)
			}
		}
	}
	return keys
}

// parseBMCEntry reads a bmc mapping into sp.
func (p *parser) parseBMCEntry(v *yaml.Node, what string, common []string, sp *bmcSpec) {
	p.mapping(v, what+": bmc", p.bmcKeys(common), func(key string, k, v *yaml.Node) {
		if slices.Contains(common, key) {
			p.parseBMC(what, key, v, sp)
			return
		}
		if pr, ok := p.protos.Lookup(key); ok {
			p.parseSection(what, pr, k, v, sp)
			return
		}
		// A flat key of some protocol.
		if sp.flat == nil {
			sp.flat = map[string]optVal{}
		}
		if !isNull(v) {
			sp.flat[key] = optVal{v: v, path: "bmc." + key}
		}
	})
}

// parseSection reads bmc.NAME: its keys are checked against the protocol's
// and kept for the protocol to read.
func (p *parser) parseSection(what string, pr power.Protocol, k, v *yaml.Node, sp *bmcSpec) {
	if sp.sections == nil {
		sp.sections, sp.opts = map[string]*yaml.Node{}, map[string]map[string]optVal{}
	}
	sp.sections[pr.Name] = k
	vals := map[string]optVal{}
	sp.opts[pr.Name] = vals
	allowed := pr.Keys
	if allowed == nil {
		allowed = []string{}
	}
	p.mapping(v, what+": bmc."+pr.Name, allowed, func(key string, _, v *yaml.Node) {
		if !isNull(v) {
			vals[key] = optVal{v: v, path: "bmc." + pr.Name + "." + key}
		}
	})
}

func (p *parser) parseBMC(what, key string, v *yaml.Node, sp *bmcSpec) {
	switch key {
	case "protocol":
		if s, ok := p.str(v, what+": bmc.protocol"); ok {
			if _, known := p.protos.Lookup(s); !known {
				p.errorf(v, "%s: unknown bmc.protocol %q (protocols: %s)", what, s, strings.Join(p.protos.Names(), ", "))
				return
			}
			sp.protocol.put(s, v)
		}
	case "host":
		if s, ok := p.str(v, what+": bmc.host"); ok {
			if _, err := netip.ParseAddr(s); err != nil && !hostRE.MatchString(s) {
				p.errorf(v, "%s: bad bmc.host %q: not an IP address or host name", what, s)
				return
			}
			if a, err := netip.ParseAddr(s); err == nil && a.Zone() != "" {
				p.errorf(v, "%s: bad bmc.host %q: zoned addresses are not supported", what, s)
				return
			}
			sp.host.put(s, v)
		}
	case "port":
		if n, ok := p.integer(v, what+": bmc.port"); ok {
			if n < 1 || n > 65535 {
				p.errorf(v, "%s: bad bmc.port %d: must be 1-65535", what, n)
				return
			}
			sp.port.put(int(n), v)
		}
	case "user":
		if s, ok := p.str(v, what+": bmc.user"); ok {
			sp.user.put(s, v)
		}
	case "password":
		if s, ok := p.str(v, what+": bmc.password"); ok {
			if s == "" {
				p.errorf(v, "%s: bmc.password is empty: it names an entry of the secrets file", what)
				return
			}
			sp.password.put(s, v)
		}
	}
}

// protocolOptions gathers the values protocol pr reads for an entry: the
// group's (fromGroup) under the entry's own, each entry's flat keys as if
// written in its section. Flat keys of another protocol, a section of
// another protocol than the one the entry sets, or a key set both flat and
// in the section are errors.
func (p *parser) protocolOptions(what string, pr power.Protocol, own, group *bmcSpec, strict bool) map[string]optVal {
	vals := map[string]optVal{}
	for _, sp := range []*bmcSpec{group, own} {
		if sp == nil {
			continue
		}
		inherited := sp == group
		for k, ov := range sp.flat {
			if !slices.Contains(pr.Flat, k) {
				if !inherited && strict {
					p.errorf(ov.v, "%s: bmc.%s is not an option of protocol %s", what, k, pr.Name)
				}
				continue
			}
			if sec, dup := sp.opts[pr.Name][k]; dup && !inherited {
				p.errorf(sec.v, "%s: %s repeats bmc.%s (at %d:%d): set one of them", what, sec.path, k, ov.v.Line, ov.v.Column)
			}
			ov.fromGroup = inherited
			vals[k] = ov
		}
		for k, ov := range sp.opts[pr.Name] {
			ov.fromGroup = inherited
			vals[k] = ov
		}
		if !inherited && sp.protocol.set {
			for name, at := range sp.sections {
				if name != pr.Name {
					p.errorf(at, "%s: bmc.%s does not apply: bmc.protocol is %s", what, name, pr.Name)
				}
			}
		}
	}
	return vals
}

// readOptions runs the protocol's reader over vals; errors about inherited
// values are dropped (they were reported with the group).
func (p *parser) readOptions(what string, pr power.Protocol, vals map[string]optVal, at *yaml.Node) any {
	if pr.Options == nil {
		return nil
	}
	return pr.Options(&optionReader{p: p, what: what, vals: vals, at: at})
}

// optionReader is the power.OptionReader of one entry's protocol section.
type optionReader struct {
	p    *parser
	what string
	vals map[string]optVal
	at   *yaml.Node // the entry, for errors about keys that are not set
}

// muted runs f and drops the errors it reported when ov is inherited.
func (r *optionReader) muted(ov optVal, f func()) {
	n := len(r.p.errs)
	f()
	if ov.fromGroup {
		r.p.errs = r.p.errs[:n]
	}
}

func (r *optionReader) Ints(key, item string, lo, hi int) (out []int, ok bool) {
	ov, set := r.vals[key]
	if !set {
		return nil, false
	}
	r.muted(ov, func() {
		items, isList := r.p.sequence(ov.v, r.what+": "+ov.path)
		if !isList {
			return
		}
		vals := make([]int, 0, len(items))
		for _, it := range items {
			n, good := r.p.integer(it, r.what+": "+item)
			if !good {
				if isNull(it) {
					r.p.errorf(it, "%s: empty %s", r.what, item)
				}
				return
			}
			if n < int64(lo) || n > int64(hi) {
				r.p.errorf(it, "%s: bad %s %d: must be %d-%d", r.what, item, n, lo, hi)
				return
			}
			vals = append(vals, int(n))
		}
		out, ok = vals, true
	})
	return out, ok
}

func (r *optionReader) String(key string) (out string, ok bool) {
	ov, set := r.vals[key]
	if !set {
		return "", false
	}
	r.muted(ov, func() { out, ok = r.p.str(ov.v, r.what+": "+ov.path) })
	return out, ok
}

func (r *optionReader) Bool(key string) (out bool, ok bool) {
	ov, set := r.vals[key]
	if !set {
		return false, false
	}
	r.muted(ov, func() { out, ok = r.p.boolean(ov.v, r.what+": "+ov.path) })
	return out, ok
}

func (r *optionReader) File(key string) (path string, ok bool) {
	s, ok := r.String(key)
	if !ok {
		return "", false
	}
	if s == "" {
		r.Errorf(key, "%s is empty: name a file or remove the key", r.Path(key))
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(filepath.Dir(r.p.file), s)
	}
	return s, true
}

func (r *optionReader) Path(key string) string {
	if ov, set := r.vals[key]; set {
		return ov.path
	}
	return "bmc." + key
}

func (r *optionReader) Errorf(key, format string, a ...any) {
	ov, set := r.vals[key]
	at := r.at
	if set {
		at = ov.v
	}
	r.muted(ov, func() { r.p.errorf(at, "%s: %s", r.what, fmt.Sprintf(format, a...)) })
}

// resolveBMC is a node's BMC: its entry's values over its group's over the
// protocol's defaults, with the protocol's options read.
func (p *parser) resolveBMC(what string, own, group *bmcSpec, at *yaml.Node) BMC {
	b := BMC{
		Protocol:    pick(own.protocol, group.protocol, DefaultBMCProtocol),
		Host:        own.host.v,
		Port:        pick(own.port, group.port, 0),
		User:        pick(own.user, group.user, ""),
		PasswordRef: pick(own.password, group.password, ""),
	}
	if own.password.set {
		p.passwords = append(p.passwords, passwordUse{at: own.password.at, protocol: b.Protocol})
	} else if group.password.set {
		p.passwords = append(p.passwords, passwordUse{at: group.password.at, protocol: b.Protocol})
	}
	pr, ok := p.protos.Lookup(b.Protocol)
	if !ok {
		if !own.protocol.set && !group.protocol.set {
			p.errorOnce("noproto"+p.pos(at).String(), at, "%s: the default bmc.protocol %s is not available (protocols: %s)",
				what, b.Protocol, strings.Join(p.protos.Names(), ", "))
		}
		return b
	}
	if b.Port == 0 {
		b.Port = pr.Port
	}
	if b.User == "" {
		b.User = pr.User
	}
	b.Options = p.readOptions(what, pr, p.protocolOptions(what, pr, own, group, true), at)
	return b
}

// groupBMC is a group's own BMC settings; its protocol options are read
// here (for the protocol it names, else for every protocol it has a section
// or flat keys of), so that their errors are reported once, at the group.
func (p *parser) groupBMC(what string, sp *bmcSpec, at *yaml.Node) BMC {
	b := BMC{Protocol: sp.protocol.v, Port: sp.port.v, User: sp.user.v, PasswordRef: sp.password.v}
	if sp.password.set {
		p.passwords = append(p.passwords, passwordUse{at: sp.password.at, protocol: pick(sp.protocol, setting[string]{}, DefaultBMCProtocol)})
	}
	var protos []power.Protocol
	if sp.protocol.set {
		pr, _ := p.protos.Lookup(sp.protocol.v)
		protos = append(protos, pr)
	} else {
		for _, n := range p.protos.Names() {
			pr, _ := p.protos.Lookup(n)
			_, sec := sp.sections[n]
			flat := false
			for k := range sp.flat {
				flat = flat || slices.Contains(pr.Flat, k)
			}
			if sec || flat {
				protos = append(protos, pr)
			}
		}
	}
	for _, pr := range protos {
		o := p.readOptions(what, pr, p.protocolOptions(what, pr, sp, nil, sp.protocol.set), at)
		if pr.Name == pick(sp.protocol, setting[string]{}, DefaultBMCProtocol) {
			b.Options = o
		}
	}
	return b
}

// BMCTarget is the power target of the node's BMC, with the password from
// the secrets file (or its environment override, see EnvPasswordVar). The
// error names the node when it has no BMC host, no password reference, or a
// reference with no password. EFI follows the node's arch.
func (n *Node) BMCTarget(s *Secrets) (power.Target, error) {
	b := n.BMC
	if b.Host == "" {
		return power.Target{}, fmt.Errorf("node %s: no BMC host in the inventory", n.Name)
	}
	if b.PasswordRef == "" {
		return power.Target{}, fmt.Errorf("node %s: BMC %s has no password reference (bmc.password in the inventory)", n.Name, b.Host)
	}
	pw, ok := s.Password(b.PasswordRef)
	if !ok {
		return power.Target{}, fmt.Errorf("node %s: BMC password %q is neither in the secrets file nor in $%s",
			n.Name, b.PasswordRef, EnvPasswordVar(b.PasswordRef))
	}
	return power.Target{
		Node:     n.Name,
		Protocol: b.Protocol,
		Host:     b.Host,
		Port:     b.Port,
		User:     b.User,
		Password: power.NewSecret(pw),
		EFI:      n.Arch == ArchUEFI,
		Options:  b.Options,
	}, nil
}
