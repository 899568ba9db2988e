package sshconsole

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/ui"
)

const inventory = `images:
  img: {}
groups:
  g: {image: img}
nodes:
  - name: n[1-2]
    group: g
    nics: [{mac: "52:54:00:aa:00:01"}]
  - name: solo
    group: g
    nics: [{mac: "52:54:00:bb:00:01"}]
`

// startDaemon runs a real daemon and its API; with a socket path, the API is
// served on a unix socket too (to check that socket callers keep their own
// identity).
func startDaemon(t *testing.T, withSocket bool) (*daemon.Daemon, *api.Server, string) {
	t.Helper()
	var srv *api.Server
	o := daemontest.Options{Inventory: inventory}
	if withSocket {
		o.API = func(d *daemon.Daemon) daemontest.APIServer { srv = &api.Server{D: d}; return srv }
	}
	e := daemontest.Start(t, o)
	if srv == nil {
		srv = &api.Server{D: e.D}
	}
	return e.D, srv, e.Socket
}

// syncBuf collects a session's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ansi.Strip(s.b.String())
}

// reset forgets the output so far.
func (s *syncBuf) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

// waitFor waits until the stripped output holds every string in want.
func (s *syncBuf) waitFor(t *testing.T, what string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		txt := s.text()
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(txt, w)
		}
		if ok {
			return txt
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q not seen in:\n%s", what, want, txt)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type fixture struct {
	srv      *Server
	addr     string
	keysPath string
	hostKey  string
	logs     *syncBuf
	mu       sync.Mutex
	backends map[string]*apiclient.Client // by caller
}

func (f *fixture) backend(who string) *apiclient.Client {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.backends[who]
}

// startSSH serves consoles over the daemon's in-process API on 127.0.0.1.
func startSSH(t *testing.T, apiSrv *api.Server, keysPath, hostKey string) *fixture {
	t.Helper()
	f := &fixture{keysPath: keysPath, hostKey: hostKey, logs: &syncBuf{}, backends: map[string]*apiclient.Client{}}
	srv, err := New(Config{
		AuthorizedKeys: keysPath,
		HostKey:        hostKey,
		Logger:         slog.New(slog.NewTextHandler(f.logs, nil)),
		UI:             ui.Options{Dark: true},
		Backend: func(who string, role apitype.Role) (ui.Backend, func()) {
			c, stop := apiSrv.InProcessClient(who, role)
			f.mu.Lock()
			f.backends[who] = c
			f.mu.Unlock()
			return c, stop
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	f.srv, f.addr = srv, srv.Addr().String()
	return f
}

func dial(addr string, hostKey gossh.PublicKey, auth ...gossh.AuthMethod) (*gossh.Client, error) {
	return gossh.Dial("tcp", addr, &gossh.ClientConfig{
		User:            "admin",
		Auth:            auth,
		HostKeyCallback: gossh.FixedHostKey(hostKey),
		Timeout:         10 * time.Second,
	})
}

func writeKeys(t *testing.T, path string, lines ...string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestConsoleOverSSH(t *testing.T) {
	d, apiSrv, sock := startDaemon(t, true)
	dir := t.TempDir()
	alice, aliceLine := newKey(t)
	keysPath := filepath.Join(dir, "authorized_keys")
	writeKeys(t, keysPath, "# console admins", RoleOption+`="admin" `+aliceLine+" alice@laptop")
	f := startSSH(t, apiSrv, keysPath, filepath.Join(dir, "data", HostKeyFile))

	c, err := dial(f.addr, f.srv.HostKey(), gossh.PublicKeys(alice))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	out := &syncBuf{}
	sess.Stdout = out
	stdin, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm-256color", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}

	// The nodes view at 80x24: short column titles (ASSIGNED and GROUP
	// stay). The footer offers no e (the SSH console has no editor) and
	// the detail's no c (no serial console): both are refused here.
	// (The renderer sends only the cells that change, so until a full
	// redraw the text of a line may be split across updates.)
	screen := out.waitFor(t, "first screen", "netbootui nodes", "NAME", "STAGE", "solo", "ASSIGNED", "SEEN", "?:help")
	if strings.Contains(screen, "CHECK-IN") || strings.Contains(screen, "e:edit") {
		t.Fatalf("wide titles, or e offered, at 80 columns over SSH:\n%s", screen)
	}
	stdin.Write([]byte("\r")) // the detail of the first node
	screen = out.waitFor(t, "detail", "esc:back", "p:power")
	if strings.Contains(screen, "c:console") || strings.Contains(screen, "E:group") {
		t.Fatalf("the detail offers keys the SSH console refuses:\n%s", screen)
	}
	stdin.Write([]byte("\x1b"))
	// A window change to 120x40 brings the wide titles.
	if err := sess.WindowChange(40, 120); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "after window change", "CHECK-IN", "3 nodes · 0 marked")

	// The session's caller is the key's fingerprint and comment.
	fp := gossh.FingerprintSHA256(alice.PublicKey())
	who := "ssh " + fp + " (alice@laptop)"
	f.logs.waitFor(t, "login log", "ssh console opened", fp)
	be := f.backend(who)
	if be == nil {
		t.Fatalf("no backend made for %q (logs:\n%s)", who, f.logs.text())
	}
	// An edit made by this console's backend is audited under the key...
	ctx := context.Background()
	if _, err := be.EditNode(ctx, "solo", apitype.Edit{Set: map[string]any{"kernel_args": "console=ttyS0"}}); err != nil {
		t.Fatal(err)
	}
	// ...while a unix-socket client keeps its own (SO_PEERCRED) identity.
	sockClient := apiclient.New(sock)
	if _, err := sockClient.EditNode(ctx, "solo", apitype.Edit{Set: map[string]any{"kernel_args": "quiet"}}); err != nil {
		t.Fatal(err)
	}
	entries := d.Audit(0)
	var sshEntry, sockEntry string
	for _, e := range entries {
		if e.Action == "edit node solo" {
			if strings.HasPrefix(e.Who, "ssh ") {
				sshEntry = e.Who
			} else {
				sockEntry = e.Who
			}
		}
	}
	if sshEntry != who {
		t.Fatalf("audit entry of the SSH console's edit names %q, want %q (all: %+v)", sshEntry, who, entries)
	}
	if sockEntry == "" || strings.Contains(sockEntry, "SHA256") || !strings.Contains(sockEntry, "uid ") {
		t.Fatalf("unix-socket edit audited as %q (all: %+v)", sockEntry, entries)
	}

	// An action taken in the console itself: p (power menu), o (on), then y
	// in the confirmation, once the dialog's guard against keys typed
	// before it appeared has passed. n1 has no BMC, so the power-on fails,
	// and the audit entry names the key.
	send := func(k string) {
		t.Helper()
		if _, err := stdin.Write([]byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	send("p")
	out.waitFor(t, "power menu", "Power:")
	send("o")
	out.waitFor(t, "confirmation", "Yes")
	time.Sleep(400 * time.Millisecond)
	send("y")
	deadline := time.Now().Add(15 * time.Second)
	for {
		var found bool
		for _, e := range d.Audit(0) {
			found = found || (e.Action == "power on" && e.Who == who && e.Target == "n1")
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit entry of the console's power on by %q: %+v\nscreen:\n%s", who, d.Audit(0), out.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// esc goes back to the nodes view; q must not follow it in the same
	// read, or the pair is alt+q.
	out.reset()
	send("\x1b")
	out.waitFor(t, "back to the nodes", "q:quit")

	// q quits the console and ends the session.
	if _, err := stdin.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("session ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session still open 10s after q")
	}
	f.logs.waitFor(t, "logout log", "ssh console closed")
}

func TestRefusals(t *testing.T) {
	_, apiSrv, _ := startDaemon(t, false)
	dir := t.TempDir()
	alice, aliceLine := newKey(t)
	bob, bobLine := newKey(t)
	keysPath := filepath.Join(dir, "authorized_keys")
	writeKeys(t, keysPath, aliceLine+" alice")
	f := startSSH(t, apiSrv, keysPath, filepath.Join(dir, HostKeyFile))
	hk := f.srv.HostKey()

	login := func(auth ...gossh.AuthMethod) error {
		c, err := dial(f.addr, hk, auth...)
		if err == nil {
			c.Close()
		}
		return err
	}
	for _, tc := range []struct {
		name string
		auth []gossh.AuthMethod
		ok   bool
	}{
		{"authorized key", []gossh.AuthMethod{gossh.PublicKeys(alice)}, true},
		{"password", []gossh.AuthMethod{gossh.Password("secret")}, false},
		{"keyboard-interactive", []gossh.AuthMethod{gossh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
			return []string{"secret"}, nil
		})}, false},
		{"no auth", nil, false},
		{"unknown key", []gossh.AuthMethod{gossh.PublicKeys(bob)}, false},
		{"unknown key then password", []gossh.AuthMethod{gossh.PublicKeys(bob), gossh.Password("secret")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := login(tc.auth...)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "unable to authenticate")) {
				t.Fatalf("login: %v, want refused", err)
			}
		})
	}
	// The server offers public keys and nothing else.
	c, err := dial(f.addr, hk, gossh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) { return nil, nil }))
	if err == nil {
		c.Close()
		t.Fatal("keyboard-interactive login accepted")
	}
	if msg := err.Error(); !strings.Contains(msg, "no supported methods remain") {
		t.Fatalf("refusal: %v", err)
	}

	// The file is read again when it changes: bob is added...
	writeKeys(t, keysPath, aliceLine+" alice", bobLine+" bob")
	if err := login(gossh.PublicKeys(bob)); err != nil {
		t.Fatalf("bob after being added: %v", err)
	}
	// ...a broken file changes nothing and is logged with its position...
	writeKeys(t, keysPath, aliceLine+" alice", "ssh-ed25519 nonsense")
	if err := login(gossh.PublicKeys(bob)); err != nil {
		t.Fatalf("bob after a broken edit: %v", err)
	}
	f.logs.waitFor(t, "reload error", "authorized keys not reloaded", keysPath+":2:1: not a public key")
	// ...and removing bob refuses him.
	writeKeys(t, keysPath, aliceLine+" alice")
	if err := login(gossh.PublicKeys(bob)); err == nil {
		t.Fatal("bob still admitted after removal")
	}
	if err := login(gossh.PublicKeys(alice)); err != nil {
		t.Fatal(err)
	}

	// A session without a pty gets no console.
	c, err = dial(f.addr, hk, gossh.PublicKeys(alice))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var buf syncBuf
	sess.Stdout, sess.Stderr = &buf, &buf
	err = sess.Run("")
	var exit *gossh.ExitError
	if err == nil || !asExit(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(buf.text(), "PTY") {
		t.Fatalf("session without pty: %v, output %q", err, buf.text())
	}
}

func asExit(err error, target **gossh.ExitError) bool {
	e, ok := err.(*gossh.ExitError)
	if ok {
		*target = e
	}
	return ok
}

func TestHostKeyPersistsAcrossRestarts(t *testing.T) {
	_, apiSrv, _ := startDaemon(t, false)
	dir := t.TempDir()
	alice, aliceLine := newKey(t)
	keysPath := filepath.Join(dir, "authorized_keys")
	writeKeys(t, keysPath, aliceLine)
	hostKey := filepath.Join(dir, "data", HostKeyFile)

	seen := func() string {
		f := startSSH(t, apiSrv, keysPath, hostKey)
		var got gossh.PublicKey
		c, err := gossh.Dial("tcp", f.addr, &gossh.ClientConfig{
			User: "admin", Auth: []gossh.AuthMethod{gossh.PublicKeys(alice)}, Timeout: 10 * time.Second,
			HostKeyCallback: func(_ string, _ net.Addr, k gossh.PublicKey) error { got = k; return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		f.srv.Close()
		return gossh.FingerprintSHA256(got)
	}
	first := seen()
	second := seen()
	if first != second || !strings.HasPrefix(first, "SHA256:") {
		t.Fatalf("host key fingerprint %s, then %s after a restart", first, second)
	}
	if st, err := os.Stat(hostKey); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("host key file %v %v", st, err)
	}
}

// openConsole starts a pty session on c and returns its output and input.
func openConsole(t *testing.T, c *gossh.Client, w, h int) (*gossh.Session, *syncBuf, io.Writer) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	out := &syncBuf{}
	sess.Stdout = out
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.RequestPty("xterm", h, w, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	if err := sess.Shell(); err != nil {
		t.Fatal(err)
	}
	return sess, out, in
}

func waitEnd(t *testing.T, sess *gossh.Session) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("session ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session still open 10s after q")
	}
}

// Two sessions on one connection get two consoles: marks made in one are
// not in the other, and quitting one leaves the other running.
func TestSessionsAreIndependent(t *testing.T) {
	_, apiSrv, _ := startDaemon(t, false)
	dir := t.TempDir()
	alice, aliceLine := newKey(t)
	keysPath := filepath.Join(dir, "authorized_keys")
	writeKeys(t, keysPath, aliceLine+" alice")
	f := startSSH(t, apiSrv, keysPath, filepath.Join(dir, HostKeyFile))
	c, err := dial(f.addr, f.srv.HostKey(), gossh.PublicKeys(alice))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	sa, outA, inA := openConsole(t, c, 80, 24)
	sb, outB, inB := openConsole(t, c, 100, 30)
	outA.waitFor(t, "console A", "netbootui nodes", "solo")
	outB.waitFor(t, "console B", "netbootui nodes", "solo")
	outB.reset()
	inA.Write([]byte(" "))
	outA.waitFor(t, "mark in A", "* n1")
	// The renderer sends only the cells that change: a window change makes
	// each console draw its whole screen again.
	outA.reset()
	if err := sa.WindowChange(24, 90); err != nil {
		t.Fatal(err)
	}
	outA.waitFor(t, "A after resize", "3 nodes · 1 marked")
	// B redraws on a window change and still has no mark.
	if err := sb.WindowChange(30, 110); err != nil {
		t.Fatal(err)
	}
	if txt := outB.waitFor(t, "B after resize", "0 marked"); strings.Contains(txt, "1 marked") {
		t.Fatalf("A's mark shows in B:\n%s", txt)
	}
	inA.Write([]byte("q"))
	waitEnd(t, sa)
	outB.reset()
	if err := sb.WindowChange(24, 80); err != nil {
		t.Fatal(err)
	}
	outB.waitFor(t, "B after A quit", "netbootui nodes")
	inB.Write([]byte("q"))
	waitEnd(t, sb)

	deadline := time.Now().Add(5 * time.Second)
	for {
		f.srv.mu.Lock()
		n, live := f.srv.sessions, len(f.srv.live)
		f.srv.mu.Unlock()
		if n == 0 && live == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions, %d live entries after both quit", n, live)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Sessions beyond MaxSessions are refused with a message; the ones open
// keep running.
func TestMaxSessions(t *testing.T) {
	srv, alice := configuredServer(t, func(c *Config) { c.MaxSessions = 1 })
	c, err := dial(srv.Addr().String(), srv.HostKey(), gossh.PublicKeys(alice))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	first, out, in := openConsole(t, c, 80, 24)
	out.waitFor(t, "first console", "solo")

	second, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var msg syncBuf
	second.Stdout, second.Stderr = &msg, &msg
	if err := second.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	err = second.Run("")
	var exit *gossh.ExitError
	if !asExit(err, &exit) || exit.ExitStatus() != 1 || !strings.Contains(msg.text(), "too many console sessions") {
		t.Fatalf("second session: %v, %q", err, msg.text())
	}
	in.Write([]byte("q"))
	waitEnd(t, first)
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	_, aLine := newKey(t)
	keys := filepath.Join(dir, "authorized_keys")
	writeKeys(t, keys, aLine)
	be := func(string, apitype.Role) (ui.Backend, func()) { return nil, nil }
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"no backend", Config{AuthorizedKeys: keys, HostKey: filepath.Join(dir, "k1")}, "Backend is nil"},
		{"no keys file", Config{AuthorizedKeys: filepath.Join(dir, "nope"), HostKey: filepath.Join(dir, "k2"), Backend: be}, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
	s, err := New(Config{AuthorizedKeys: keys, HostKey: filepath.Join(dir, "k3"), Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err == nil {
		t.Fatal("Serve before Listen succeeded")
	}
	if err := s.Listen("256.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "256.0.0.1:0") {
		t.Fatalf("bad listen address: %v", err)
	}
}

// TestKeyRoles: a key's sessions act with its role. bob, listed without a
// role option, is a viewer: his console shows the nodes, and the power-on
// he confirms in it is refused by the API and audited under his key; carol,
// an operator, may power but not edit.
func TestKeyRoles(t *testing.T) {
	d, apiSrv, _ := startDaemon(t, false)
	dir := t.TempDir()
	bob, bobLine := newKey(t)
	carol, carolLine := newKey(t)
	keysPath := filepath.Join(dir, "authorized_keys")
	writeKeys(t, keysPath, bobLine+" bob", RoleOption+`="operator" `+carolLine+" carol")
	f := startSSH(t, apiSrv, keysPath, filepath.Join(dir, HostKeyFile))

	login := func(key gossh.Signer, comment string) (*apiclient.Client, *syncBuf, io.Writer, string) {
		t.Helper()
		c, err := dial(f.addr, f.srv.HostKey(), gossh.PublicKeys(key))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_, out, in := openConsole(t, c, 100, 30)
		out.waitFor(t, comment+"'s console", "netbootui nodes", "solo")
		who := "ssh " + gossh.FingerprintSHA256(key.PublicKey()) + " (" + comment + ")"
		be := f.backend(who)
		if be == nil {
			t.Fatalf("no backend for %s", who)
		}
		return be, out, in, who
	}
	ctx := context.Background()

	_, out, in, bobWho := login(bob, "bob")
	in.Write([]byte("p"))
	out.waitFor(t, "power menu", "Power:")
	in.Write([]byte("o"))
	out.waitFor(t, "confirmation", "Yes")
	time.Sleep(400 * time.Millisecond)
	in.Write([]byte("y"))
	out.waitFor(t, "refusal on bob's screen", "operator role")
	var refused bool
	for _, e := range d.Audit(0) {
		refused = refused || (e.Who == bobWho && e.Action == "refused power")
		if e.Who == bobWho && e.Action == "power on" {
			t.Fatalf("bob's power-on ran: %+v", e)
		}
	}
	if !refused {
		t.Fatalf("bob's refusal is not audited: %+v", d.Audit(0))
	}

	carolBe, _, _, _ := login(carol, "carol")
	if _, err := carolBe.Power(ctx, apitype.OpOn, "n1"); err != nil {
		t.Fatalf("operator power: %v", err)
	}
	var ae *apitype.Error
	if _, err := carolBe.EditNode(ctx, "solo", apitype.Edit{Set: map[string]any{"kernel_args": "quiet"}}); !errors.As(err, &ae) ||
		ae.Code != apitype.CodeForbidden || !strings.Contains(ae.Message, "needs the admin role") {
		t.Fatalf("operator edit: %v", err)
	}
}
