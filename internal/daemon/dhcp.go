package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/dhcp"
	"github.com/netbootui/netbootui/internal/dhcp/proxy"
)

// proxyDHCP is the proxyDHCP responder in the daemon's lifecycle: Listen
// binds its interface's ports 67 and 4011, Serve answers until Close.
type proxyDHCP struct {
	d *Daemon
	// base is the boot URL (http://HOST:PORT) nodes are chained to; ""
	// means the HTTP server's bound port on the interface's address, or on
	// the listener's own address when listenerHost is set.
	base         string
	listenerHost bool
	opts         ProxyDHCPOptions
	conn         *proxy.Conn
	ctx          context.Context
	cancel       context.CancelFunc
}

// ProxyDHCPOptions choose the proxyDHCP responder's interface and answers.
type ProxyDHCPOptions struct {
	// Interface is where PXE clients are answered ("": no responder).
	Interface string
	// KnownOnly answers only the inventory's MACs (unknown ones are still
	// reported).
	KnownOnly bool
	// EFILoader is what UEFI x86-64 PXE clients get: ipxe.efi (default) or
	// snponly.efi.
	EFILoader string
}

// newProxyDHCP checks the options (nil, nil when o.Interface is "") and
// that the interface's ports can be bound (a trial bind, released at once:
// the lifecycle's Listen binds them for good), so that New refuses a bad
// loader, a missing permission, interface or address, naming the interface
// and the port, before it reads the inventory or opens the data
// directory. The boot URL
// nodes are chained to is cfg.AdvertiseURL when set, else the HTTP
// listener's address when it names one, else the interface's IPv4 address
// with the HTTP port.
func newProxyDHCP(o ProxyDHCPOptions, cfg Config) (*proxyDHCP, error) {
	iface := o.Interface
	if iface == "" {
		return nil, nil
	}
	if err := (dhcp.Options{HTTPBase: "http://x", EFILoader: o.EFILoader}).Validate(); err != nil {
		return nil, fmt.Errorf("--proxydhcp %s: %w", iface, err)
	}
	p := &proxyDHCP{opts: o}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	switch {
	case cfg.AdvertiseURL != "":
		p.base = strings.TrimSuffix(cfg.AdvertiseURL, "/")
		if err := (dhcp.Options{HTTPBase: p.base, EFILoader: o.EFILoader}).Validate(); err != nil {
			return nil, fmt.Errorf("--proxydhcp %s: %w", iface, err)
		}
	case cfg.HTTPListen == "":
		return nil, fmt.Errorf("--proxydhcp %s: the HTTP boot server is disabled: set --http-listen or --advertise-url", iface)
	default:
		host, _, err := net.SplitHostPort(cfg.HTTPListen)
		if err != nil {
			return nil, fmt.Errorf("--proxydhcp %s: HTTP listen address %q: %w", iface, cfg.HTTPListen, err)
		}
		if ip, err := netip.ParseAddr(host); err == nil && ip.Is4() && !ip.IsUnspecified() {
			p.listenerHost = true
		}
	}
	trial, err := proxy.Listen(iface)
	if err != nil {
		return nil, err
	}
	trial.Close()
	return p, nil
}

// Listen binds the interface's proxyDHCP ports (errors name the interface
// and the port).
func (p *proxyDHCP) Listen() error {
	conn, err := proxy.Listen(p.opts.Interface)
	if err != nil {
		return err
	}
	p.conn = conn
	return nil
}

// Close stops Serve and releases the sockets.
func (p *proxyDHCP) Close() error {
	p.cancel()
	if p.conn == nil {
		return nil
	}
	return p.conn.Close()
}

// Serve answers PXE clients on p's interface until Close, with the
// inventory in force (reloads included) and the tracker's view of each
// node, and records what it sees as events: dhcp for a known node's
// firmware, info for an iPXE asking again after its loader, unknown (rate
// limited per MAC) for a MAC the inventory does not know.
func (p *proxyDHCP) Serve() error {
	d := p.d
	base := p.base
	if base == "" {
		host, port := p.conn.IP.String(), "80"
		if a, ok := d.HTTPAddr().(*net.TCPAddr); ok {
			port = fmt.Sprint(a.Port)
			if p.listenerHost {
				host = a.IP.String()
			}
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	r, err := proxy.New(proxy.Config{
		ServerIP:  p.conn.IP,
		Boot:      dhcp.Options{HTTPBase: base, EFILoader: p.opts.EFILoader},
		KnownOnly: p.opts.KnownOnly,
		Lookup: func(mac net.HardwareAddr) (proxy.Node, bool) {
			n := d.Inventory().NodeByMAC(mac)
			if n == nil {
				return proxy.Node{}, false
			}
			return proxy.Node{Name: n.Name, Loader: n.Loader, Arch: n.Arch}, true
		},
		Stage: func(node string) bootstate.Stage {
			st, _ := d.tracker.Get(node)
			return st.Stage
		},
		Events: d.apply,
		Logger: d.log,
	})
	if err != nil {
		// The base was validated by newProxyDHCP or built from addresses.
		return fmt.Errorf("interface %s: %w", p.conn.Interface, err)
	}
	d.log.Info("proxydhcp listening", "interface", p.conn.Interface, "server", p.conn.IP.String(),
		"ports", fmt.Sprintf("%d,%d", proxy.PortDHCP, proxy.PortPXE), "boot_url", base)
	if err := r.Serve(p.ctx, p.conn); err != nil {
		return fmt.Errorf("interface %s: %w", p.conn.Interface, err)
	}
	return nil
}
