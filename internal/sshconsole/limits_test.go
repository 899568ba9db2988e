package sshconsole

import (
	"bufio"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/ui"
)

// configuredServer serves consoles on 127.0.0.1 over a real daemon, with
// its Config changed by set; alice's key is authorized.
func configuredServer(t *testing.T, set func(*Config)) (*Server, gossh.Signer) {
	t.Helper()
	_, apiSrv, _ := startDaemon(t, false)
	dir := t.TempDir()
	alice, aliceLine := newKey(t)
	keysPath := filepath.Join(dir, "authorized_keys")
	writeKeys(t, keysPath, aliceLine)
	cfg := Config{AuthorizedKeys: keysPath, HostKey: filepath.Join(dir, HostKeyFile),
		Backend: func(who string, role apitype.Role) (ui.Backend, func()) { return apiSrv.InProcessClient(who, role) }}
	set(&cfg)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	return srv, alice
}

// limitedServer has a handshake timeout and a cap of maxUnauth
// unauthenticated connections.
func limitedServer(t *testing.T, handshake time.Duration, maxUnauth int) (*Server, gossh.Signer) {
	t.Helper()
	return configuredServer(t, func(c *Config) { c.HandshakeTimeout, c.MaxUnauthenticated = handshake, maxUnauth })
}

// The version line read "SSH-2.0-SSH-2.0-netbootui".
func TestVersionLine(t *testing.T) {
	srv, _ := limitedServer(t, time.Second, 4)
	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "SSH-2.0-netbootui\r\n" {
		t.Fatalf("version line %q, %v; want SSH-2.0-netbootui", line, err)
	}
}

// Connections that never authenticate are closed after the handshake
// timeout; over the cap they are closed at once; an authorized key logs in
// once the stalled ones are gone.
func TestUnauthenticatedConnections(t *testing.T) {
	const handshake, max = 700 * time.Millisecond, 4
	srv, alice := limitedServer(t, handshake, max)
	addr := srv.Addr().String()
	stall := func(sendVersion bool) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if sendVersion {
			io.WriteString(c, "SSH-2.0-stall\r\n") // then nothing
		}
		return c
	}
	var held []net.Conn
	for i := range max {
		held = append(held, stall(i%2 == 0))
	}
	deadline := time.Now().Add(2 * time.Second)
	for srv.Unauthenticated() < max && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Over the cap: closed before the version line.
	over := stall(false)
	over.SetReadDeadline(time.Now().Add(handshake / 2))
	if b, _ := io.ReadAll(over); len(b) != 0 || srv.Refused() != 1 {
		t.Fatalf("over the cap: read %q, refused %d; want nothing, 1", b, srv.Refused())
	}
	if _, err := dial(addr, srv.HostKey(), gossh.PublicKeys(alice)); err == nil {
		t.Fatal("an SSH client got in over the cap")
	}
	// The stalled ones are cut at the handshake timeout.
	start := time.Now()
	for i, c := range held {
		if !lab.ClosedWithin(c, handshake+3*time.Second) {
			t.Fatalf("stalled connection %d still open after %v", i, time.Since(start))
		}
	}
	deadline = time.Now().Add(2 * time.Second)
	for srv.Unauthenticated() != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := srv.Unauthenticated(); n != 0 {
		t.Fatalf("%d unauthenticated slots still taken", n)
	}
	c, err := dial(addr, srv.HostKey(), gossh.PublicKeys(alice))
	if err != nil {
		t.Fatalf("alice after the flood: %v", err)
	}
	defer c.Close()
	sess, out, in := openConsole(t, c, 80, 24)
	out.waitFor(t, "console", "solo")
	// A session frees the slot: the cap counts only the unauthenticated.
	if n := srv.Unauthenticated(); n != 0 {
		t.Errorf("%d slots taken with one console open", n)
	}
	if strings.Contains(out.text(), "too many") {
		t.Errorf("console refused: %q", out.text())
	}
	in.Write([]byte("q"))
	waitEnd(t, sess)
}
