package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/power"
)

// readAdoptBMCs reads the NIC MACs of the machines behind addrs (BMC
// addresses, "HOST" or "HOST:PORT") with the group's BMC settings, through
// the power seam (its deadline, breaker, rate limit and fan-out): one
// machine per BMC, its MACs as the BMC reports them. Any BMC that cannot be
// read, reports no MAC, or is already a node's fails the whole read.
func (d *Daemon) readAdoptBMCs(ctx context.Context, group string, addrs []string) ([]adoptMachine, error) {
	inv := d.Inventory()
	g := inv.Groups[group]
	if g.BMC.PasswordRef == "" {
		return nil, fmt.Errorf("adopt: group %s has no bmc.password, so its machines' BMCs cannot be read", group)
	}
	secrets, err := d.secrets(inv)
	if err != nil {
		return nil, err
	}
	if _, ok := secrets.Password(g.BMC.PasswordRef); !ok {
		return nil, fmt.Errorf("adopt: group %s's BMC password %q is neither in the secrets file nor in $%s",
			group, g.BMC.PasswordRef, inventory.EnvPasswordVar(g.BMC.PasswordRef))
	}
	machines := make([]adoptMachine, len(addrs))
	targets := make([]power.Target, len(addrs))
	for i, a := range addrs {
		host, port, err := parseBMCAddr(a)
		if err != nil {
			return nil, err
		}
		b := g.BMC
		b.Protocol, b.Host, b.Port = cmp.Or(b.Protocol, inventory.DefaultBMCProtocol), host, cmp.Or(port, b.Port)
		n := &inventory.Node{Name: "adopted by BMC " + a, Group: group, Arch: g.Arch, BMC: b}
		t, err := n.BMCTarget(secrets)
		if err != nil {
			return nil, fmt.Errorf("adopt: %w", err)
		}
		if t, err = d.power.Registry().WithDefaults(t); err != nil {
			return nil, fmt.Errorf("adopt: group %s: %w", group, err)
		}
		for _, o := range inv.Nodes {
			if o.BMC.Host == t.Host && o.BMC.Port == t.Port && o.BMC.Protocol == t.Protocol && d.machine(o.BMC.Protocol, o.BMC.Options) == d.machine(t.Protocol, t.Options) {
				return nil, fmt.Errorf("adopt: BMC %s is node %s's", t.Addr(), o.Name)
			}
		}
		if j := slices.IndexFunc(targets[:i], func(o power.Target) bool { return o.Addr() == t.Addr() }); j >= 0 {
			return nil, fmt.Errorf("adopt: BMC %s is named twice (%s, %s)", t.Addr(), addrs[j], a)
		}
		targets[i] = t
		machines[i] = adoptMachine{bmc: a, host: host, port: port}
	}
	res, err := d.power.Bulk(ctx, targets, power.OpDeviceID, power.BulkOptions{})
	if err != nil {
		return nil, fmt.Errorf("adopt: %w", err)
	}
	var errs []error
	for i, r := range res {
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("adopt: reading the NICs of %s: %w", addrs[i], r.Err))
			continue
		}
		badMAC := false
		for _, m := range r.MACs {
			hw, err := net.ParseMAC(m)
			if err != nil || len(hw) != 6 {
				errs = append(errs, fmt.Errorf("adopt: BMC %s reports a bad MAC %q", r.BMC, m))
				badMAC = true
				continue
			}
			if !slices.Contains(machines[i].macs, hw.String()) {
				machines[i].macs = append(machines[i].macs, hw.String())
			}
		}
		if len(machines[i].macs) == 0 && !badMAC {
			errs = append(errs, fmt.Errorf("adopt: BMC %s reports no NIC MAC (a %s BMC may not tell them; adopt the machine by the MAC it PXE-boots with)", r.BMC, r.Protocol))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return machines, nil
}

// machine names the machine a BMC's options pick behind its address
// (power.Protocol.Machine: a Redfish system path), as the inventory tells
// two nodes on one BMC apart; "" for a protocol with one machine per BMC.
func (d *Daemon) machine(protocol string, options any) string {
	if pr, ok := d.power.Registry().Lookup(protocol); ok && pr.Machine != nil {
		return pr.Machine(options)
	}
	return ""
}

// parseBMCAddr reads a BMC address as an admin types it: HOST, HOST:PORT,
// an IPv6 address, or [IPv6]:PORT. Port 0 means the default.
func parseBMCAddr(s string) (host string, port int, err error) {
	bad := fmt.Errorf("adopt: bad BMC address %q (want HOST or HOST:PORT)", s)
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.String(), 0, nil
	}
	host, p, err := net.SplitHostPort(s)
	if err != nil {
		host, p = s, ""
	}
	if host == "" || len(host) > 253 || strings.ContainsFunc(host, func(r rune) bool {
		return !(r == '.' || r == '-' || r == '_' || r == ':' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
	}) {
		return "", 0, bad
	}
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return "", 0, bad
		}
		host = a.String()
	}
	if p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", 0, bad
		}
		port = n
	}
	return host, port, nil
}
