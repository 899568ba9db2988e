package lab

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// FreePort returns a port on 127.0.0.1 that was free for both TCP and UDP a
// moment ago (listeners on :0, closed): for servers that take a port number,
// not a listener.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if u, err := net.ListenPacket("udp", net.JoinHostPort("", strconv.Itoa(port))); err == nil {
			u.Close()
			return port
		}
	}
	tb.Fatal("lab: no port free for both TCP and UDP")
	return 0
}

// Ganesha is an nfs-ganesha server (user space, NFSv4 over TCP only) a test
// started on 127.0.0.1. A QEMU guest on user-mode networking reaches it at
// 10.0.2.2:Port.
type Ganesha struct {
	Port int
	Dir  string // its configuration, log and pid file
	*Process
}

// StartGanesha starts ganesha.nfsd in the foreground on 127.0.0.1:port (a
// FreePort when 0) with exports, a list of EXPORT blocks, and waits until
// it accepts connections. It is stopped when the test ends.
func StartGanesha(tb testing.TB, port int, exports string) *Ganesha {
	tb.Helper()
	RequireTools(tb, "ganesha.nfsd")
	if port == 0 {
		port = FreePort(tb)
	}
	dir := tb.TempDir()
	conf := fmt.Sprintf(`NFS_CORE_PARAM {
	Bind_addr = 127.0.0.1;
	NFS_Port = %d;
	Protocols = 4;
	Enable_UDP = false;
	Enable_NLM = false;
	Enable_RQUOTA = false;
}
NFSV4 {
	Graceless = true;
	RecoveryRoot = %q;
	# Owners as numbers: a node whose root is on NFS cannot run the
	# kernel's idmap helper (request-key) from that root (see
	# internal/roottransport/nfs's README).
	Only_Numeric_Owners = true;
}
NFS_KRB5 { Active_krb5 = false; }
%s`, port, filepath.Join(dir, "recovery"), exports)
	confPath := filepath.Join(dir, "ganesha.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("ganesha.nfsd", "-F", "-f", confPath, "-L", filepath.Join(dir, "ganesha.log"),
		"-p", filepath.Join(dir, "ganesha.pid"))
	g := &Ganesha{Port: port, Dir: dir, Process: StartProcess(tb, "ganesha.nfsd", cmd)}
	tb.Cleanup(func() {
		g.Stop()
		if tb.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "ganesha.log"))
			tb.Logf("ganesha.log:\n%s", Tail(string(log), 40))
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return g
		}
		select {
		case <-g.Exited:
			log, _ := os.ReadFile(filepath.Join(dir, "ganesha.log"))
			tb.Fatalf("ganesha.nfsd exited at start:\n%s\n%s", g.Out.String(), Tail(string(log), 40))
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("ganesha.nfsd does not listen on %s after 30 s", addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
