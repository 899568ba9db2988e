package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeUnwindsWhenAServerCannotListen: the daemon's lifecycle binds
// every server or none. With the SSH console's port taken, `serve` exits
// with an error naming the SSH server and its address, and what was bound
// before it is released: the API socket is gone, the HTTP and TFTP ports
// are free, and the data directory is unlocked (a second serve on it comes
// up).
func TestServeUnwindsWhenAServerCannotListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// Ports for HTTP and TFTP that the failed serve must give back.
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := httpLn.Addr().String()
	httpLn.Close()
	tftpConn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tftpAddr := tftpConn.LocalAddr().String()
	tftpConn.Close()

	inv := copyExample(t)
	dir := filepath.Dir(inv)
	keys := filepath.Join(dir, "authorized_keys")
	os.WriteFile(keys, nil, 0o600)
	data := filepath.Join(dir, "data")
	socket := filepath.Join(data, "api.sock")
	_, errOut, code := runCLI(t, "serve", "--inventory", inv, "--data", data, "--api-socket", socket,
		"--http-listen", httpAddr, "--tftp-listen", tftpAddr, "--power-poll", "0",
		"--ssh-listen", taken.Addr().String(), "--authorized-keys", keys)
	if code == 0 {
		t.Fatalf("serve ran with its SSH port taken:\n%s", errOut)
	}
	if want := "ssh: ssh console: listen " + taken.Addr().String(); !strings.Contains(errOut, want) {
		t.Errorf("stderr %q, want it to say %q", errOut, want)
	}
	if _, err := os.Stat(socket); err == nil {
		t.Error("the API socket was left behind")
	}
	if ln, err := net.Listen("tcp", httpAddr); err != nil {
		t.Errorf("HTTP port still bound: %v", err)
	} else {
		ln.Close()
	}
	if c, err := net.ListenPacket("udp", tftpAddr); err != nil {
		t.Errorf("TFTP port still bound: %v", err)
	} else {
		c.Close()
	}
	p, st := startServeWith(t, inv, data)
	defer p.stop(t)
	if st.Inventory.Nodes != 12 {
		t.Errorf("second serve: %+v", st)
	}
}
