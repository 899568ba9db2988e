package floodtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/lifecycle"
	"github.com/netbootui/netbootui/internal/netlimit"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/sshconsole"
	"github.com/netbootui/netbootui/internal/ui"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

const bmcPassword = "Fl00d-bmc"

// nodeMACs are the simulated nodes: n1 boots through iPXE, n2 through
// pxelinux (everything but the root over TFTP).
var nodeMACs = map[string]string{"n1": "52:54:00:f1:00:01", "n2": "52:54:00:f1:00:02"}

// head is a running head node on loopback.
type head struct {
	t        *testing.T
	dir      string
	d        *daemon.Daemon
	api      *apiclient.Client
	sock     string
	ssh      *sshconsole.Server
	sshKey   gossh.Signer
	logs     *lab.Buffer // the daemon's log
	nodes    map[string]*simnode.Node
	httpAddr string
	tftpAddr string
}

// limits are the head's limits in these tests: the defaults' shape, with
// short timeouts so that the suite ends in seconds.
var limits = netlimit.Limits{ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 4 * time.Second,
	IdleTimeout: 4 * time.Second, WriteTimeout: 10 * time.Second, MaxConns: 1000}

const (
	sshHandshake = 3 * time.Second
	sshMaxUnauth = 16
)

func writeInventory(t *testing.T, dir string, ports map[string]int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("settings: {secrets: secrets.yaml}\nimages:\n  compute: {}\ngroups:\n  g: {image: compute, bmc: {password: lab}}\nnodes:\n")
	for _, name := range []string{"n1", "n2"} {
		loader := "ipxe"
		if name == "n2" {
			loader = "pxelinux"
		}
		fmt.Fprintf(&b, "  - name: %s\n    group: g\n    loader: %s\n    nics: [{mac: %q}]\n", name, loader, nodeMACs[name])
		if p := ports[name]; p != 0 {
			fmt.Fprintf(&b, "    bmc: {host: 127.0.0.1, port: %d}\n", p)
		}
	}
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("bmc_passwords:\n  lab: "+bmcPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startHead runs a daemon (HTTP and TFTP on loopback, a published image, a
// boot root with the two bootloaders and a 256 KiB file), its API on a unix
// socket, the SSH console, and the two simulated nodes with their BMCs in
// the inventory.
func startHead(t *testing.T) *head {
	t.Helper()
	dir := t.TempDir()
	h := &head{t: t, dir: dir, logs: &lab.Buffer{}, nodes: map[string]*simnode.Node{}}
	root := filepath.Join(dir, "bootroot")
	os.MkdirAll(root, 0o755)
	for name, size := range map[string]int{"undionly.kpxe": 64 << 10, "pxelinux.0": 40 << 10, "flood.bin": 256 << 10} {
		os.WriteFile(filepath.Join(root, name), bytes.Repeat([]byte{'b'}, size), 0o644)
	}
	files := map[string]string{}
	for i, name := range image.BootFiles {
		p := filepath.Join(dir, name)
		size := 64<<10 + i*1000
		if name == image.FileRootfs {
			size = 2 << 20
		}
		os.WriteFile(p, bytes.Repeat([]byte{byte('k' + i)}, size), 0o644)
		files[name] = p
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	h.sshKey, _ = gossh.NewSignerFromKey(priv)
	keys := filepath.Join(dir, "authorized_keys")
	os.WriteFile(keys, gossh.MarshalAuthorizedKey(h.sshKey.PublicKey()), 0o600)
	var srv *api.Server
	e := daemontest.Start(t, daemontest.Options{Dir: dir,
		Config: daemon.Config{InventoryPath: writeInventory(t, dir, nil), TFTPListen: "127.0.0.1:0", BootRoot: root,
			StallTimeout: time.Minute, ReloadInterval: 100 * time.Millisecond,
			Power: power.Config{CallTimeout: 3 * time.Second}, HTTPLimits: limits,
			Logger: slog.New(slog.NewTextHandler(h.logs, nil))},
		API: func(d *daemon.Daemon) daemontest.APIServer { srv = &api.Server{D: d}; return srv },
		// The SSH console runs in the daemon's lifecycle, as serve runs it.
		Add: func(d *daemon.Daemon) (err error) {
			h.ssh, err = sshconsole.New(sshconsole.Config{AuthorizedKeys: keys, HostKey: filepath.Join(dir, "data", sshconsole.HostKeyFile),
				HandshakeTimeout: sshHandshake, MaxUnauthenticated: sshMaxUnauth,
				Backend: func(who string, role apitype.Role) (ui.Backend, func()) { return srv.InProcessClient(who, role) }})
			if err != nil {
				return err
			}
			d.Add("ssh", lifecycle.Funcs{ListenFunc: func() error { return h.ssh.Listen("127.0.0.1:0") },
				ServeFunc: h.ssh.Serve, CloseFunc: h.ssh.Close})
			return nil
		},
		Before: func(d *daemon.Daemon) error {
			m, err := d.Images().Import("compute", files, "flood")
			if err != nil {
				return err
			}
			return d.Images().Publish("compute", m.ID)
		}})
	d := e.D
	h.d, h.sock, h.api = d, e.Socket, e.Client
	h.httpAddr, h.tftpAddr = d.HTTPAddr().String(), d.TFTPAddr().String()

	ports := map[string]int{}
	for name, mac := range nodeMACs {
		loader := "ipxe"
		if name == "n2" {
			loader = "pxelinux"
		}
		n, err := simnode.Start(simnode.Options{MAC: mac, Password: bmcPassword, BaseURL: "http://" + h.httpAddr,
			TFTPAddr: h.tftpAddr, Loader: loader, PXEFirst: true, Retries: 5, RetryAfter: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		h.nodes[name], ports[name] = n, n.Port()
	}
	writeInventory(t, dir, ports)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	return h
}

// power runs a power operation on both nodes through the API.
func (h *head) power(op string) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := h.api.Power(ctx, op, "n1,n2")
	if err != nil {
		h.t.Fatalf("power %s: %v", op, err)
	}
	for _, r := range res {
		if r.Error != "" {
			h.t.Fatalf("power %s %s: %s", op, r.Node, r.Error)
		}
	}
}

// waitBooted waits until every node has checked in `boots` times.
func (h *head) waitBooted(boots int, within time.Duration) {
	h.t.Helper()
	for name, n := range h.nodes {
		if !simnode.WaitFor(within, func() bool { return n.Stats().Checkins >= boots }) {
			st := n.Stats()
			h.t.Fatalf("%s did not boot (boot %d) within %v: %+v", name, boots, within, st)
		}
	}
}

// sshLogin logs in with the authorized key and closes the connection.
func (h *head) sshLogin() error {
	c, err := gossh.Dial("tcp", h.ssh.Addr().String(), &gossh.ClientConfig{User: "admin",
		Auth: []gossh.AuthMethod{gossh.PublicKeys(h.sshKey)}, HostKeyCallback: gossh.FixedHostKey(h.ssh.HostKey()),
		Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	return c.Close()
}

// usage is what the process holds.
type usage struct{ fds, goroutines int }

func (u usage) String() string { return fmt.Sprintf("%d fds, %d goroutines", u.fds, u.goroutines) }

func measure() usage {
	ents, _ := os.ReadDir("/proc/self/fd")
	return usage{fds: len(ents), goroutines: runtime.NumGoroutine()}
}
