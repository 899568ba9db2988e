package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/netlimit"
	"github.com/netbootui/netbootui/internal/sshconsole"
)

func serveCmd() *cobra.Command {
	c := newVerb("serve", "run the daemon: boot servers (HTTP, TFTP, proxyDHCP), state, images, rollouts and the API", exactArgs(0), serveVerb)
	c.Long = "Run the daemon. API roles come from the caller's unix groups (--viewer-group, --operator-group,\n" +
		"--admin-group; root and the daemon's own user are admins)."
	return c
}

func serveVerb(fs *pflag.FlagSet) runner {
	var cfg daemon.Config
	fs.StringVar(&cfg.InventoryPath, "inventory", "/etc/netbootui/nodes.yaml", "inventory `file`")
	fs.StringVar(&cfg.DataDir, "data", "/var/lib/netbootui", "data `dir`: state database, image store, token key")
	fs.StringVar(&cfg.TFTPListen, "tftp-listen", ":69", "TFTP listen `address` (empty disables)")
	fs.StringVar(&cfg.HTTPListen, "http-listen", ":80", "HTTP boot server listen `address` (empty disables)")
	fs.StringVar(&cfg.AdvertiseURL, "advertise-url", "", "base `URL` nodes reach the HTTP server at (default: from the request, or the listen address)")
	fs.StringVar(&cfg.BootRoot, "boot-root", "", "`dir` of extra boot files served over TFTP and /loaders/")
	fs.StringVar(&cfg.TemplatesDir, "templates", "", "`dir` of boot-entry templates replacing the embedded ones")
	fs.DurationVar(&cfg.StallTimeout, "stall-timeout", 2*time.Minute, "a boot stage with no progress for this long is stalled")
	fs.DurationVar(&cfg.ReloadInterval, "reload-interval", 2*time.Second, "how often the inventory file is checked for changes")
	fs.StringVar(&cfg.KernelDir, "kernel-dir", os.Getenv("NETBOOTUI_KERNEL_DIR"), "`dir` holding vmlinuz and modules/ for recipes' ${kernel_dir}")
	fs.StringVar(&cfg.AgentBinary, "agent-binary", "", "static node agent `file` image builds put into the initramfs for reboot-clean by kexec (default: netbootui-agent beside this program, when there is one)")
	fs.DurationVar(&cfg.PowerPoll, "power-poll", 30*time.Second, "how often every BMC's power status is read (0 disables)")
	fs.DurationVar(&cfg.Power.CallTimeout, "power-timeout", 5*time.Second, "deadline of one BMC call, whatever its protocol")
	fs.DurationVar(&cfg.Power.CallTimeout, "ipmi-timeout", 5*time.Second, "old name of -power-timeout")
	fs.IntVar(&cfg.HTTPLimits.MaxConns, "http-max-conns", 0, "cap on open HTTP boot connections; more are closed unanswered (0: a quarter of the file descriptor limit after 256 kept for the rest)")
	fs.DurationVar(&cfg.HTTPLimits.ReadHeaderTimeout, "http-header-timeout", netlimit.DefaultReadHeaderTimeout, "time an HTTP client has to send a request's headers")
	fs.DurationVar(&cfg.HTTPLimits.ReadTimeout, "http-read-timeout", netlimit.DefaultReadTimeout, "time an HTTP client has to send a whole request (a check-in's body)")
	fs.DurationVar(&cfg.HTTPLimits.IdleTimeout, "http-idle-timeout", netlimit.DefaultIdleTimeout, "an HTTP keep-alive connection with no request for this long is closed")
	fs.DurationVar(&cfg.HTTPLimits.WriteTimeout, "http-write-timeout", netlimit.DefaultWriteTimeout, "every write to an HTTP client (every 512 KiB of a file) must complete within this; a download may take as long as the client keeps reading")
	socket := fs.String("api-socket", defaultSocket(), "unix socket `path` of the local API")
	socketGroup := fs.String("api-socket-group", "", "give the API socket to this unix `group` (mode 0660) so that its members can connect; their role comes from the role groups")
	var groups api.RoleGroups
	fs.StringVar(&groups.Viewer, "viewer-group", api.DefaultViewerGroup, "members of this unix `group` may read through the API socket")
	fs.StringVar(&groups.Operator, "operator-group", api.DefaultOperatorGroup, "members of this unix `group` may also power, reboot-clean, attach consoles and run/halt/resume rollouts")
	fs.StringVar(&groups.Admin, "admin-group", api.DefaultAdminGroup, "members of this unix `group` may do everything (inventory, images, staging); root and the daemon's user always may")
	sshListen := fs.String("ssh-listen", "", "serve the console over SSH on this `address` (empty disables)")
	authorizedKeys := fs.String("authorized-keys", "", "OpenSSH authorized keys `file` of the SSH console (reloaded on change)")
	var sshLim sshLimits
	fs.DurationVar(&sshLim.handshake, "ssh-handshake-timeout", sshconsole.DefaultHandshakeTimeout, "time an SSH connection has to finish its handshake and authenticate")
	fs.IntVar(&sshLim.maxUnauth, "ssh-max-unauthenticated", sshconsole.DefaultMaxUnauthenticated, "cap on SSH connections not yet authenticated; more are closed at once")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text or json")
	proxyDHCP := fs.String("proxydhcp", "", "answer PXE clients on this `interface` as a proxyDHCP (UDP 67 and 4011; never gives addresses, so the site's DHCP server keeps doing that); nodes are chained to --advertise-url, else the HTTP listen address, else the interface's IPv4 address with the HTTP port")
	proxyKnownOnly := fs.Bool("proxydhcp-known-only", false, "the proxyDHCP answers only the inventory's MACs (unknown PXE clients are still reported)")
	proxyEFILoader := fs.String("proxydhcp-efi-loader", "ipxe.efi", "what the proxyDHCP gives UEFI x86-64 PXE clients: ipxe.efi or snponly.efi")
	cluster := addClusterFlags(fs)
	return func(ctx context.Context, _ []string) error {
		if cfg.AgentBinary == "" {
			cfg.AgentBinary = besideExecutable("netbootui-agent")
		}
		return serve(ctx, cfg, serveOptions{cluster: cluster, socket: *socket, socketGroup: *socketGroup, groups: groups, sshListen: *sshListen,
			authorizedKeys: *authorizedKeys, sshLim: sshLim, logLevel: *logLevel, logFormat: *logFormat,
			proxy: daemon.ProxyDHCPOptions{Interface: *proxyDHCP, KnownOnly: *proxyKnownOnly, EFILoader: *proxyEFILoader}})
	}
}

// serveOptions are serve's flags that are not the daemon's Config.
type serveOptions struct {
	cluster                   *clusterFlags
	socket, socketGroup       string
	groups                    api.RoleGroups
	sshListen, authorizedKeys string
	sshLim                    sshLimits
	logLevel, logFormat       string
	proxy                     daemon.ProxyDHCPOptions
}

func serve(ctx context.Context, cfg daemon.Config, o serveOptions) error {
	logger, err := newLogger(o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	cfg.ProxyDHCP = o.proxy
	if err := checkSSHFlags(o.sshListen, o.authorizedKeys); err != nil {
		return err
	}
	if cfg.State, err = o.cluster.open(cfg.DataDir); err != nil {
		return err
	}
	cfg.Peer = o.cluster.peer()
	d, err := daemon.New(cfg)
	if err != nil {
		var list inventory.ErrorList
		if errors.As(err, &list) {
			fmt.Fprintln(os.Stderr, list.Error())
			return exitError(1)
		}
		return err
	}
	// The daemon's lifecycle runs the API socket and the SSH console with
	// its boot servers: all bound or none, all stopped together.
	srv := &api.Server{D: d, Logger: logger, Groups: o.groups}
	d.Add("api", srv.Service(o.socket, o.socketGroup))
	if o.sshListen != "" {
		ssh, err := sshService(o.sshListen, o.authorizedKeys, cfg.DataDir, o.sshLim, srv, logger)
		if err != nil {
			d.Close()
			return err
		}
		d.Add("ssh", ssh)
	}
	if err := d.Listen(); err != nil {
		d.Close()
		return err
	}
	logger.Info("api listening", "socket", o.socket)
	return d.Run(ctx)
}

func defaultSocket() string {
	if s := os.Getenv("NETBOOTUI_SOCKET"); s != "" {
		return s
	}
	return apiclient.DefaultSocket
}

func newLogger(level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// besideExecutable is the path of name in this program's folder when such a
// file exists, else "".
func besideExecutable(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
		return ""
	}
	return p
}
