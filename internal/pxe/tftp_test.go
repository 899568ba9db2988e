package pxe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/tftp"
	"github.com/netbootui/netbootui/internal/tftp/tftptest"
)

const (
	tftpUndionly = "/usr/lib/ipxe/undionly.kpxe"
	tftpIPXEEFI  = "/usr/lib/ipxe/ipxe.efi"
)

// tftpRecorder is a TFTPSource over a FileRoot that records the names it
// was asked for.
type tftpRecorder struct {
	files FileRootSource
	mu    sync.Mutex
	asked []string
}

func (r *tftpRecorder) OpenTFTP(ctx context.Context, name string, client netip.AddrPort) (tftp.File, error) {
	r.mu.Lock()
	r.asked = append(r.asked, name)
	r.mu.Unlock()
	return r.files.OpenTFTP(ctx, name, client)
}

// tftpTestServer is the daemon's TFTP stack (NewTFTPServer over a FileRoot)
// on 127.0.0.1:0, with what its hooks saw.
type tftpTestServer struct {
	*tftp.Server
	addr      string // host:port
	port      string
	root      string // the served directory
	secretDir string // beside root, holds tftpSecretMarker
	src       *tftpRecorder

	mu        sync.Mutex
	transfers []tftp.Transfer
	denied    []string
}

func (ts *tftpTestServer) Transfers() []tftp.Transfer {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]tftp.Transfer(nil), ts.transfers...)
}

func (ts *tftpTestServer) Denied() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.denied...)
}

func (ts *tftpTestServer) Asked() []string {
	ts.src.mu.Lock()
	defer ts.src.mu.Unlock()
	return append([]string(nil), ts.src.asked...)
}

// waitIdle waits until no transfer is in progress.
func (ts *tftpTestServer) waitIdle(t testing.TB, d time.Duration) {
	t.Helper()
	lab.Eventually(t, "no TFTP transfer in progress", d, func() bool { return ts.Active() == 0 })
}

// startTFTP serves frTestRoot plus the ipxe loaders (as aliases).
func startTFTP(t *testing.T, modify func(*tftp.Server)) *tftpTestServer {
	t.Helper()
	root, secretDir := frTestRoot(t)
	aliases := map[string]string{}
	for name, p := range map[string]string{"undionly.kpxe": tftpUndionly, "ipxe.efi": tftpIPXEEFI} {
		if _, err := os.Stat(p); err == nil {
			aliases[name] = p
		}
	}
	src := &tftpRecorder{files: FileRootSource{&FileRoot{Dir: root, Aliases: aliases}}}
	ts := &tftpTestServer{root: root, secretDir: secretDir, src: src}
	srv := NewTFTPServer(src, func(client netip.AddrPort, name string, reason error) {
		if !client.IsValid() || reason == nil || !errors.Is(reason, ErrAccessDenied) && !errors.Is(reason, tftp.ErrDenied) {
			t.Errorf("OnDenied(%v, %q, %v): bad arguments", client, name, reason)
		}
		ts.mu.Lock()
		ts.denied = append(ts.denied, name)
		ts.mu.Unlock()
	})
	srv.Timeout, srv.Retries = 500*time.Millisecond, 3
	srv.OnTransfer = func(tr tftp.Transfer) {
		ts.mu.Lock()
		ts.transfers = append(ts.transfers, tr)
		ts.mu.Unlock()
	}
	if modify != nil {
		modify(srv)
	}
	ts.Server = srv
	ts.addr, ts.port = tftptest.Start(t, srv, "127.0.0.1:0")
	return ts
}

func tftpSHA(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// tftpCurlURL makes a tftp URL that makes curl send name exactly: curl decodes
// the path, so every byte but the unreserved ones is escaped.
func tftpCurlURL(addr, name string) string {
	var b strings.Builder
	b.WriteString("tftp://" + addr + "/")
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// TestTFTPRealClientsFetchPackageFile: a package's bootloader, served as a
// FileRoot alias, reaches tftp-hpa, curl and a raw client intact, also by
// a name with a leading slash (CleanName drops it).
func TestTFTPRealClientsFetchPackageFile(t *testing.T) {
	tftpRequireTool(t, tftpUndionly)
	ts := startTFTP(t, nil)
	want, err := os.ReadFile(tftpUndionly)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Run("tftp-hpa", func(t *testing.T) {
		tftpRequireTool(t, "tftp")
		out := filepath.Join(dir, "hpa")
		msg, err := exec.Command("tftp", "-m", "binary", "127.0.0.1", ts.port, "-c", "get", "undionly.kpxe", out).CombinedOutput()
		if got, _ := os.ReadFile(out); err != nil || len(msg) != 0 || tftpSHA(got) != tftpSHA(want) {
			t.Fatalf("tftp: %v: %s; %d bytes", err, msg, len(got))
		}
	})
	t.Run("curl", func(t *testing.T) {
		tftpRequireTool(t, "curl")
		out := filepath.Join(dir, "curl")
		msg, err := exec.Command("curl", "-sS", "--tftp-blksize", "1468", "-o", out, tftpCurlURL(ts.addr, "undionly.kpxe")).CombinedOutput()
		if got, _ := os.ReadFile(out); err != nil || tftpSHA(got) != tftpSHA(want) {
			t.Fatalf("curl: %v: %s; %d bytes", err, msg, len(got))
		}
	})
	t.Run("leading slash", func(t *testing.T) {
		res, err := tftptest.Fetch(netip.Addr{}, ts.addr, "/undionly.kpxe", time.Second, 3, "blksize", "1468", "tsize", "0")
		if err != nil || tftpSHA(res.Data) != tftpSHA(want) || res.OACK["tsize"] != strconv.Itoa(len(want)) {
			t.Fatalf("got %d bytes, OACK %v, %v", len(res.Data), res.OACK, err)
		}
	})
	ts.waitIdle(t, 5*time.Second)
	for _, name := range ts.Asked() {
		if name != "undionly.kpxe" {
			t.Errorf("the source was asked for %q, want the clean name", name)
		}
	}
}

// tftpWireHostile lists names for the wire: every CleanName refusal plus names
// that are clean but lead out of the root on disk.
func tftpWireHostile() []struct {
	name string
	code int
} {
	var out []struct {
		name string
		code int
	}
	for _, h := range cleanNameHostile {
		code := tftptest.ErrAccess
		if strings.ContainsRune(h.name, 0) {
			code = tftptest.ErrIllegalOp // the NUL ends the name; the rest is read as the mode
		}
		out = append(out, struct {
			name string
			code int
		}{h.name, code})
	}
	for _, n := range []struct {
		name string
		code int
	}{
		{"/etc/passwd", tftptest.ErrNotFound}, // "etc/passwd" below the root: absent
		{"//etc//passwd", tftptest.ErrNotFound},
		{"passwd-abs", tftptest.ErrAccess},
		{"passwd-rel", tftptest.ErrAccess},
		{"sub/deep-rel", tftptest.ErrAccess},
		{"secretdir/passwd", tftptest.ErrAccess},
		{"secretdir/a.txt", tftptest.ErrAccess},
		{"etc-link/passwd", tftptest.ErrAccess},
		{"loop", tftptest.ErrAccess},
		{"dir", tftptest.ErrAccess},
		{"fifo", tftptest.ErrAccess},
		{"sock", tftptest.ErrAccess},
		{"../secret/passwd", tftptest.ErrAccess},
		{"/../secret/passwd", tftptest.ErrAccess},
		{"sub/../../secret/passwd", tftptest.ErrAccess},
	} {
		out = append(out, n)
	}
	return out
}

func TestTFTPHostileNames(t *testing.T) {
	ts := startTFTP(t, nil)
	hostile := tftpWireHostile()
	if len(hostile) < 30 {
		t.Fatalf("only %d hostile names", len(hostile))
	}
	curlExit := map[int]int{tftptest.ErrNotFound: 68, tftptest.ErrAccess: 69, tftptest.ErrIllegalOp: 71}
	for i, h := range hostile {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			// Raw request: the exact error code.
			reply := tftptest.Reply(t, ts.addr, tftptest.Request(tftptest.OpRRQ, h.name, "octet"), 2*time.Second)
			if got := tftptest.ErrorCode(reply); got != h.code {
				t.Fatalf("%q: reply %q, want error code %d", h.name, reply, h.code)
			}
			if bytes.Contains(reply, []byte(tftpSecretMarker)) {
				t.Fatalf("%q: secret in reply", h.name)
			}
			// A client that retries and asks for options.
			res, err := tftptest.Fetch(netip.Addr{}, ts.addr, h.name, time.Second, 2, "blksize", "1468", "tsize", "0")
			if err == nil || tftptest.ErrorCode(res.Error) != h.code {
				t.Fatalf("%q: fetch got %d bytes, err %v; want error code %d", h.name, len(res.Data), err, h.code)
			}
			if bytes.Contains(res.Data, []byte(tftpSecretMarker)) {
				t.Fatalf("%q: secret served", h.name)
			}
			// curl, for every name a URL can carry.
			if h.name == "" || strings.ContainsRune(h.name, 0) {
				return
			}
			tftpRequireTool(t, "curl")
			out := filepath.Join(t.TempDir(), "out")
			cmd := exec.Command("curl", "-sS", "--path-as-is", "--tftp-blksize", "1468", "-o", out, tftpCurlURL(ts.addr, h.name))
			msg, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != curlExit[h.code] {
				t.Fatalf("%q: curl exit %v (%s), want %d", h.name, err, msg, curlExit[h.code])
			}
			b, _ := os.ReadFile(out)
			if bytes.Contains(b, []byte(tftpSecretMarker)) || bytes.Contains(msg, []byte(tftpSecretMarker)) {
				t.Fatalf("%q: secret served to curl", h.name)
			}
		})
	}
	// tftp-hpa for the classics (it exits 0 on errors: read its output).
	t.Run("tftp-hpa", func(t *testing.T) {
		tftpRequireTool(t, "tftp")
		for _, h := range []struct{ name, want string }{
			{"../secret/passwd", "Error code 2: access violation"},
			{"/etc/passwd", "Error code 1: file not found"},
			{"passwd-abs", "Error code 2: access violation"},
		} {
			out := filepath.Join(t.TempDir(), "out")
			msg, _ := exec.Command("tftp", "-m", "binary", "127.0.0.1", ts.port, "-c", "get", h.name, out).CombinedOutput()
			if !bytes.Contains(msg, []byte(h.want)) {
				t.Errorf("tftp-hpa get %q: %s, want %q", h.name, msg, h.want)
			}
			if b, _ := os.ReadFile(out); bytes.Contains(b, []byte(tftpSecretMarker)) {
				t.Errorf("tftp-hpa get %q: secret served", h.name)
			}
		}
	})
	ts.waitIdle(t, 5*time.Second)
	// Names refused by CleanName never reached the Source, and were reported.
	for _, tr := range ts.Transfers() {
		if tr.Err == nil {
			t.Errorf("transfer of %q succeeded", tr.Name)
		}
	}
	denied := map[string]int{}
	for _, n := range ts.Denied() {
		denied[n]++
	}
	for _, h := range cleanNameHostile {
		if strings.ContainsRune(h.name, 0) {
			continue
		}
		if denied[h.name] == 0 {
			t.Errorf("%q not reported to OnDenied", h.name)
		}
	}
	for _, name := range ts.Asked() {
		if _, err := CleanName(name); err != nil || name != strings.TrimLeft(name, "/") {
			t.Errorf("refused or unclean name %q reached the Source", name)
		}
	}
}

// TestTFTPWriteRefused: write and malformed requests are refused and
// reported to the same OnDenied as refused names; nothing is written.
func TestTFTPWriteRefused(t *testing.T) {
	ts := startTFTP(t, nil)
	if reply := tftptest.Reply(t, ts.addr, tftptest.Request(tftptest.OpWRQ, "upload.bin", "octet"), 2*time.Second); tftptest.ErrorCode(reply) != tftptest.ErrAccess ||
		!bytes.Contains(reply, []byte("read-only server")) {
		t.Fatalf("WRQ reply %q, want access violation, read-only server", reply)
	}
	if reply := tftptest.Reply(t, ts.addr, tftptest.Request(tftptest.OpRRQ, "a.txt", "mail"), 2*time.Second); tftptest.ErrorCode(reply) != tftptest.ErrIllegalOp {
		t.Fatalf("malformed reply %q, want illegal operation", reply)
	}
	local := filepath.Join(t.TempDir(), "local")
	if err := os.WriteFile(local, []byte("upload"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("tftp-hpa", func(t *testing.T) {
		tftpRequireTool(t, "tftp")
		msg, _ := exec.Command("tftp", "-m", "binary", "127.0.0.1", ts.port, "-c", "put", local, "hpa-upload.bin").CombinedOutput()
		if !bytes.Contains(msg, []byte("Error code 2: read-only server")) {
			t.Fatalf("tftp put: %s", msg)
		}
	})
	entries, _ := os.ReadDir(ts.root)
	for _, e := range entries {
		if strings.Contains(e.Name(), "upload") {
			t.Fatalf("%s appeared in the root", e.Name())
		}
	}
	if d := ts.Denied(); len(d) < 2 || d[0] != "upload.bin" || d[1] != "a.txt" {
		t.Fatalf("refusals reported to OnDenied: %q", d)
	}
	if len(ts.Asked()) != 0 {
		t.Fatalf("the source was asked for %q", ts.Asked())
	}
}

// TestTFTPNoFDLeak makes 500 failing requests of every kind the boot root
// can cause (refused names, missing files, links out of the root, write
// requests, clients that go away mid-transfer) and checks that the number
// of open file descriptors does not grow.
func TestTFTPNoFDLeak(t *testing.T) {
	tftpRequireTool(t, tftpIPXEEFI)
	ts := startTFTP(t, func(s *tftp.Server) { s.Timeout = 50 * time.Millisecond; s.Retries = 2; s.MaxPerClient = 1000 })
	tftptest.Fetch(netip.Addr{}, ts.addr, "a.txt", time.Second, 2) // warm up
	ts.waitIdle(t, 5*time.Second)
	expect := func(pkt []byte, code int) error {
		if got := tftptest.ErrorCode(tftptest.Reply(t, ts.addr, pkt, 2*time.Second)); got != code {
			return fmt.Errorf("error code %d, want %d", got, code)
		}
		return nil
	}
	kinds := []func(i int) error{
		func(i int) error {
			return expect(tftptest.Request(tftptest.OpRRQ, fmt.Sprintf("../x%d", i), "octet"), tftptest.ErrAccess)
		},
		func(i int) error {
			return expect(tftptest.Request(tftptest.OpRRQ, fmt.Sprintf("missing%d", i), "octet"), tftptest.ErrNotFound)
		},
		func(i int) error { return expect(tftptest.Request(tftptest.OpWRQ, "w", "octet"), tftptest.ErrAccess) },
		func(i int) error {
			return expect(tftptest.Request(tftptest.OpRRQ, "passwd-abs", "octet"), tftptest.ErrAccess)
		},
		func(i int) error { // an open file, a client that goes away
			reply := tftptest.Exchange(t, ts.addr, tftptest.Request(tftptest.OpRRQ, "ipxe.efi", "octet"), 2*time.Second, false)
			if tftptest.Opcode(reply) != tftptest.OpDATA {
				return fmt.Errorf("reply %q, want DATA", reply)
			}
			return nil
		},
	}
	before, after := tftptest.CheckNoFDLeak(t, 500, func() { ts.waitIdle(t, 10*time.Second) }, kinds...)
	t.Logf("fds before %d, after %d; %d transfers reported, %d denials", before, after, len(ts.Transfers()), len(ts.Denied()))
}
