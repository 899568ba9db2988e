package pxe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

const (
	tftpUndionly = "/usr/lib/ipxe/undionly.kpxe"
	tftpIPXEEFI  = "/usr/lib/ipxe/ipxe.efi"
)

// tftpVirtual is served by tftpTestSource under "virtual/...": 1468*128
// bytes, a whole number of blocks at both 512 and 1468 bytes.
var tftpVirtual = func() []byte {
	b := make([]byte, 1468*128)
	r := rand.New(rand.NewChaCha8([32]byte{1, 2, 3}))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

// tftpTestSource serves a FileRoot plus generated files, and counts opens and
// closes of the generated ones.
type tftpTestSource struct {
	files   FileRootSource
	opened  atomic.Int64
	closed  atomic.Int64
	release chan struct{} // "virtual/block" reads block until it is closed
}

type tftpFailingReader struct{}

func (tftpFailingReader) Read([]byte) (int, error) {
	return 0, errors.New("disk on fire at /var/lib/secret/place")
}

type tftpBlockingReader struct{ release chan struct{} }

func (b tftpBlockingReader) Read(p []byte) (int, error) {
	<-b.release
	return 0, io.EOF
}

func (s *tftpTestSource) OpenTFTP(ctx context.Context, name string, client netip.AddrPort) (TFTPFile, error) {
	if !client.IsValid() || client.Port() == 0 {
		return TFTPFile{}, fmt.Errorf("bad client %v", client)
	}
	var f TFTPFile
	c := tftpVirtual
	switch name {
	case "virtual/known":
		f = TFTPFile{R: bytes.NewReader(c), Size: int64(len(c))}
	case "virtual/unknown": // not a Seeker: size stays unknown
		f = TFTPFile{R: struct{ io.Reader }{bytes.NewReader(c)}, Size: -1}
	case "virtual/seek": // a Seeker: the server measures it
		f = TFTPFile{R: bytes.NewReader(c), Size: -1}
	case "virtual/odd":
		f = TFTPFile{R: bytes.NewReader(c[:100001]), Size: 100001}
	case "virtual/empty":
		f = TFTPFile{R: bytes.NewReader(nil), Size: 0}
	case "virtual/fail":
		f = TFTPFile{R: io.MultiReader(bytes.NewReader(c[:5000]), tftpFailingReader{}), Size: int64(len(c))}
	case "virtual/short":
		f = TFTPFile{R: bytes.NewReader(c[:10000]), Size: int64(len(c))}
	case "virtual/long":
		f = TFTPFile{R: bytes.NewReader(c), Size: 10000}
	case "virtual/block":
		f = TFTPFile{R: tftpBlockingReader{s.release}, Size: -1}
	case "virtual/denied":
		return TFTPFile{}, fmt.Errorf("%w: policy says no", ErrAccessDenied)
	case "virtual/broken":
		return TFTPFile{}, errors.New("database at /var/lib/secret down")
	default:
		return s.files.OpenTFTP(ctx, name, client)
	}
	s.opened.Add(1)
	f.Close = func() error { s.closed.Add(1); return nil }
	return f, nil
}

// tftpTestServer is a TFTPServer on 127.0.0.1:0 with what its hooks saw.
type tftpTestServer struct {
	*TFTPServer
	addr      string // host:port
	port      string
	root      string // the served directory
	secretDir string // beside root, holds tftpSecretMarker
	src       *tftpTestSource

	mu        sync.Mutex
	transfers []TFTPTransfer
	denied    []string
}

func (ts *tftpTestServer) Transfers() []TFTPTransfer {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]TFTPTransfer(nil), ts.transfers...)
}

func (ts *tftpTestServer) Denied() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]string(nil), ts.denied...)
}

// activeTransfers reads the server's count of transfers in progress.
func (ts *tftpTestServer) activeTransfers() int {
	ts.TFTPServer.mu.Lock()
	defer ts.TFTPServer.mu.Unlock()
	return ts.TFTPServer.active
}

// waitIdle waits until no transfer is in progress.
func (ts *tftpTestServer) waitIdle(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for ts.activeTransfers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d transfers still active after %v", ts.activeTransfers(), d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startTFTP serves frTestRoot plus the ipxe loaders (as aliases) and the
// virtual files.
func startTFTP(t testing.TB, modify func(*TFTPServer)) *tftpTestServer {
	t.Helper()
	tt, ok := t.(*testing.T)
	if !ok {
		t.Fatal("startTFTP needs a *testing.T")
	}
	root, secretDir := frTestRoot(tt)
	aliases := map[string]string{}
	for name, p := range map[string]string{"undionly.kpxe": tftpUndionly, "ipxe.efi": tftpIPXEEFI} {
		if _, err := os.Stat(p); err == nil {
			aliases[name] = p
		}
	}
	src := &tftpTestSource{files: FileRootSource{&FileRoot{Dir: root, Aliases: aliases}}, release: make(chan struct{})}
	ts := &tftpTestServer{root: root, secretDir: secretDir, src: src}
	srv := &TFTPServer{
		Addr:    "127.0.0.1:0",
		Source:  src,
		Timeout: 500 * time.Millisecond,
		Retries: 3,
		OnTransfer: func(tr TFTPTransfer) {
			ts.mu.Lock()
			ts.transfers = append(ts.transfers, tr)
			ts.mu.Unlock()
		},
		OnDenied: func(client netip.AddrPort, name string, reason error) {
			if !client.IsValid() || reason == nil || !errors.Is(reason, ErrAccessDenied) {
				t.Errorf("OnDenied(%v, %q, %v): bad arguments", client, name, reason)
			}
			ts.mu.Lock()
			ts.denied = append(ts.denied, name)
			ts.mu.Unlock()
		},
	}
	if modify != nil {
		modify(srv)
	}
	ts.TFTPServer = srv
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ts.addr = srv.LocalAddr().String()
	_, ts.port, _ = net.SplitHostPort(ts.addr)
	if ts.port == "0" {
		t.Fatalf("LocalAddr %s has no port", ts.addr)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		close(src.release)
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve returned %v after Close", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after Close")
		}
		if o, c := src.opened.Load(), src.closed.Load(); o != c {
			t.Errorf("virtual files: %d opened, %d closed", o, c)
		}
	})
	return ts
}

func tftpSHA(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

func tftpReadFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tftpGoFetch fetches a file with pin/tftp's client. size is the tsize the
// server announced (ok false when it announced none).
func tftpGoFetch(addr, name string, blksize int, tsize bool) (data []byte, size int64, ok bool, err error) {
	c, err := tftp.NewClient(addr)
	if err != nil {
		return nil, 0, false, err
	}
	c.SetTimeout(2 * time.Second)
	c.SetRetries(3)
	c.SetBackoff(func(int) time.Duration { return 10 * time.Millisecond })
	if blksize != 0 {
		c.SetBlockSize(blksize)
	}
	c.RequestTSize(tsize)
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, 0, false, err
	}
	size, ok = wt.(tftp.IncomingTransfer).Size()
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return buf.Bytes(), size, ok, err
	}
	return buf.Bytes(), size, ok, nil
}

// tftpRawReply sends one datagram to the server and returns the first reply
// (nil if none came within wait).
func tftpRawReply(t testing.TB, addr string, pkt []byte, wait time.Duration) []byte {
	t.Helper()
	return tftpRawExchange(t, addr, pkt, wait, true)
}

// tftpRawExchange is tftpRawReply; when polite is false, the client goes away after
// the first reply without a word, as a crashed client would.
func tftpRawExchange(t testing.TB, addr string, pkt []byte, wait time.Duration, polite bool) []byte {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDP(pkt, ua); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 70000)
	n, from, err := conn.ReadFromUDP(buf)
	if err != nil {
		return nil
	}
	reply := append([]byte(nil), buf[:n]...)
	// Be a polite client: answer an OACK or DATA with an error so the
	// transfer ends at once.
	if op := binary.BigEndian.Uint16(reply); polite && (op == tftpOpOACK || op == tftpOpDATA) {
		conn.WriteToUDP(tftpErrorPacket(0, "test done"), from)
	}
	return reply
}

// rrq builds a read (or write) request with options as name, value pairs.
func tftpRRQ(op uint16, name, mode string, opts ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, mode...)
	b = append(b, 0)
	for _, o := range opts {
		b = append(b, o...)
		b = append(b, 0)
	}
	return b
}

// errorCode returns the code of an ERROR packet, or -1.
func tftpErrorCode(p []byte) int {
	if len(p) < 5 || binary.BigEndian.Uint16(p) != tftpOpERROR {
		return -1
	}
	return int(binary.BigEndian.Uint16(p[2:]))
}

// tftpOACK parses an OACK packet, or returns nil.
func tftpOACK(p []byte) map[string]string {
	if len(p) < 2 || binary.BigEndian.Uint16(p) != tftpOpOACK {
		return nil
	}
	f := strings.Split(strings.TrimSuffix(string(p[2:]), "\x00"), "\x00")
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[f[i]] = f[i+1]
	}
	return m
}

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

func TestTFTPRealClientsFetchPackageFile(t *testing.T) {
	tftpRequireTool(t, tftpUndionly)
	ts := startTFTP(t, nil)
	want := tftpReadFile(t, tftpUndionly)
	dir := t.TempDir()

	t.Run("tftp-hpa", func(t *testing.T) {
		tftpRequireTool(t, "tftp")
		out := filepath.Join(dir, "hpa")
		msg, err := exec.Command("tftp", "-m", "binary", "127.0.0.1", ts.port, "-c", "get", "undionly.kpxe", out).CombinedOutput()
		if err != nil || len(msg) != 0 {
			t.Fatalf("tftp: %v: %s", err, msg)
		}
		if got := tftpReadFile(t, out); tftpSHA(got) != tftpSHA(want) {
			t.Fatalf("tftp-hpa got %d bytes, sha256 differs from the package file (%d bytes)", len(got), len(want))
		}
	})
	for _, bs := range []int{512, 1468} {
		t.Run(fmt.Sprintf("curl-blksize-%d", bs), func(t *testing.T) {
			tftpRequireTool(t, "curl")
			out := filepath.Join(dir, fmt.Sprintf("curl%d", bs))
			msg, err := exec.Command("curl", "-sS", "--tftp-blksize", strconv.Itoa(bs), "-o", out, tftpCurlURL(ts.addr, "undionly.kpxe")).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, msg)
			}
			if got := tftpReadFile(t, out); tftpSHA(got) != tftpSHA(want) {
				t.Fatalf("curl got %d bytes, sha256 differs", len(got))
			}
		})
	}
	t.Run("atftp", func(t *testing.T) {
		tftpRequireTool(t, "atftp")
		out := filepath.Join(dir, "atftp")
		msg, err := exec.Command("atftp", "--option", "blksize 1468", "--option", "tsize 0", "--trace",
			"-g", "-r", "undionly.kpxe", "-l", out, "127.0.0.1", ts.port).CombinedOutput()
		if err != nil {
			t.Fatalf("atftp: %v: %s", err, msg)
		}
		if got := tftpReadFile(t, out); tftpSHA(got) != tftpSHA(want) {
			t.Fatalf("atftp got %d bytes, sha256 differs", len(got))
		}
		oack := fmt.Sprintf("received OACK <tsize: %d, blksize: 1468", len(want))
		if !bytes.Contains(msg, []byte(oack)) {
			t.Fatalf("atftp trace lacks %q:\n%.600s", oack, msg)
		}
	})
	t.Run("pin-tftp-client", func(t *testing.T) {
		got, size, ok, err := tftpGoFetch(ts.addr, "/undionly.kpxe", 1468, true)
		if err != nil {
			t.Fatal(err)
		}
		if tftpSHA(got) != tftpSHA(want) || !ok || size != int64(len(want)) {
			t.Fatalf("got %d bytes, tsize %d (%v); want %d bytes, same sha256", len(got), size, ok, len(want))
		}
	})

	// Every fetch was reported, by its clean name, with the package size.
	ts.waitIdle(t, 5*time.Second)
	var n int
	for _, tr := range ts.Transfers() {
		if tr.Name != "undionly.kpxe" || tr.Err != nil || tr.Bytes != int64(len(want)) || tr.Size != int64(len(want)) ||
			!tr.Client.Addr().IsLoopback() || tr.Duration <= 0 {
			t.Errorf("unexpected transfer report %+v", tr)
		}
		n++
	}
	if n != 5 {
		t.Errorf("%d transfers reported, want 5", n)
	}
}

func TestTFTPVirtualFiles(t *testing.T) {
	ts := startTFTP(t, nil)
	c := tftpVirtual
	tests := []struct {
		name     string
		want     []byte
		wantSize int64 // -1: no tsize announced
	}{
		{"virtual/known", c, int64(len(c))},
		{"virtual/unknown", c, -1},
		{"virtual/seek", c, int64(len(c))},
		{"virtual/odd", c[:100001], 100001},
		{"virtual/empty", nil, -1}, // tsize 0 is not announced (pin/tftp)
	}
	for _, tt := range tests {
		for _, bs := range []int{0, 512, 1468, 8192} {
			t.Run(fmt.Sprintf("%s/go-%d", tt.name, bs), func(t *testing.T) {
				got, size, ok, err := tftpGoFetch(ts.addr, tt.name, bs, true)
				if err != nil {
					t.Fatal(err)
				}
				if tftpSHA(got) != tftpSHA(tt.want) {
					t.Fatalf("got %d bytes, want %d (sha256 differs)", len(got), len(tt.want))
				}
				// pin/tftp's client reports its own "tsize 0" when the
				// server sent no OACK at all; the raw check below is exact.
				if tt.wantSize < 0 && ok && size != 0 {
					t.Fatalf("tsize %d announced, want none", size)
				}
				if tt.wantSize >= 0 && (!ok || size != tt.wantSize) {
					t.Fatalf("tsize %d (%v), want %d", size, ok, tt.wantSize)
				}
			})
		}
		t.Run(tt.name+"/raw-oack", func(t *testing.T) {
			opts := tftpOACK(tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, tt.name, "octet", "blksize", "1468", "tsize", "0"), 2*time.Second))
			want := map[string]string{"blksize": "1468"}
			if tt.wantSize >= 0 {
				want["tsize"] = strconv.FormatInt(tt.wantSize, 10)
			}
			if fmt.Sprint(opts) != fmt.Sprint(want) {
				t.Fatalf("OACK %v, want %v", opts, want)
			}
		})
		t.Run(tt.name+"/curl", func(t *testing.T) {
			tftpRequireTool(t, "curl")
			out := filepath.Join(t.TempDir(), "out")
			msg, err := exec.Command("curl", "-sS", "--tftp-blksize", "1468", "-o", out, tftpCurlURL(ts.addr, tt.name)).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, msg)
			}
			if got, _ := os.ReadFile(out); tftpSHA(got) != tftpSHA(tt.want) {
				t.Fatalf("curl got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
	ts.waitIdle(t, 5*time.Second)
	for _, tr := range ts.Transfers() {
		if tr.Err != nil && !strings.Contains(tr.Err.Error(), "test done") { // raw-oack's clients abort
			t.Errorf("transfer %s failed: %v", tr.Name, tr.Err)
		}
	}
}

// TestTFTPSourceFailures checks what a client sees when the source fails
// before or during a transfer, and that the real cause reaches OnTransfer
// but not the client.
func TestTFTPSourceFailures(t *testing.T) {
	ts := startTFTP(t, nil)
	tests := []struct {
		name     string
		wantCode int    // error code before any data, -1 when it fails mid-transfer
		wantErr  string // in the OnTransfer error
	}{
		{"virtual/denied", tftpErrAccess, "policy says no"},
		{"virtual/broken", tftpErrUndefined, "database"},
		{"nope", tftpErrNotFound, "not found"},
		{"virtual/fail", -1, "disk on fire"},
		{"virtual/short", -1, "source gave 10000 bytes, 187904 announced"},
		{"virtual/long", -1, "more than the 10000 bytes announced"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, "/", "|"), func(t *testing.T) {
			if tt.wantCode >= 0 {
				reply := tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, tt.name, "octet"), 2*time.Second)
				if got := tftpErrorCode(reply); got != tt.wantCode {
					t.Fatalf("error code %d (reply %q), want %d", got, reply, tt.wantCode)
				}
				if bytes.Contains(reply, []byte("secret")) {
					t.Fatalf("error packet leaks the cause: %q", reply)
				}
			}
			got, _, _, err := tftpGoFetch(ts.addr, tt.name, 1468, true)
			if err == nil {
				t.Fatalf("fetch succeeded with %d bytes", len(got))
			}
			if strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "fire") {
				t.Fatalf("client saw the cause: %v", err)
			}
			ts.waitIdle(t, 5*time.Second)
			var found bool
			for _, tr := range ts.Transfers() {
				if tr.Name == tt.name {
					found = true
					if tr.Err == nil || !strings.Contains(tr.Err.Error(), tt.wantErr) {
						t.Errorf("OnTransfer error %v, want %q", tr.Err, tt.wantErr)
					}
				}
			}
			if !found {
				t.Errorf("no OnTransfer report for %s", tt.name)
			}
		})
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
		code := tftpErrAccess
		if strings.ContainsRune(h.name, 0) {
			code = tftpErrIllegalOp // the NUL ends the name; the rest is read as the mode
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
		{"/etc/passwd", tftpErrNotFound}, // "etc/passwd" below the root: absent
		{"//etc//passwd", tftpErrNotFound},
		{"passwd-abs", tftpErrAccess},
		{"passwd-rel", tftpErrAccess},
		{"sub/deep-rel", tftpErrAccess},
		{"secretdir/passwd", tftpErrAccess},
		{"secretdir/a.txt", tftpErrAccess},
		{"etc-link/passwd", tftpErrAccess},
		{"loop", tftpErrAccess},
		{"dir", tftpErrAccess},
		{"fifo", tftpErrAccess},
		{"sock", tftpErrAccess},
		{"../secret/passwd", tftpErrAccess},
		{"/../secret/passwd", tftpErrAccess},
		{"sub/../../secret/passwd", tftpErrAccess},
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
	curlExit := map[int]int{tftpErrNotFound: 68, tftpErrAccess: 69, tftpErrIllegalOp: 71}
	for i, h := range hostile {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			// Raw request: the exact error code.
			reply := tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, h.name, "octet"), 2*time.Second)
			if got := tftpErrorCode(reply); got != h.code {
				t.Fatalf("%q: reply %q, want error code %d", h.name, reply, h.code)
			}
			if bytes.Contains(reply, []byte(tftpSecretMarker)) {
				t.Fatalf("%q: secret in reply", h.name)
			}
			// pin/tftp's client.
			got, _, _, err := tftpGoFetch(ts.addr, h.name, 1468, true)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("code: %d,", h.code)) {
				t.Fatalf("%q: pin client got %d bytes, err %v; want error code %d", h.name, len(got), err, h.code)
			}
			if bytes.Contains(got, []byte(tftpSecretMarker)) {
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
	reached := map[string]bool{}
	for _, tr := range ts.Transfers() {
		reached[tr.Name] = true
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
	for name := range reached {
		if _, err := CleanName(name); err != nil {
			t.Errorf("refused name %q reached the Source", name)
		}
	}
}

func TestTFTPWriteRefused(t *testing.T) {
	ts := startTFTP(t, nil)
	if reply := tftpRawReply(t, ts.addr, tftpRRQ(tftpOpWRQ, "upload.bin", "octet"), 2*time.Second); tftpErrorCode(reply) != tftpErrAccess ||
		!bytes.Contains(reply, []byte("read-only server")) {
		t.Fatalf("WRQ reply %q, want access violation, read-only server", reply)
	}
	c, err := tftp.NewClient(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(2 * time.Second)
	if _, err := c.Send("pin-upload.bin", "octet"); err == nil || !strings.Contains(err.Error(), "code=2") {
		t.Fatalf("pin client Send: %v, want error code 2", err)
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
	t.Run("curl", func(t *testing.T) {
		tftpRequireTool(t, "curl")
		msg, err := exec.Command("curl", "-sS", "-T", local, tftpCurlURL(ts.addr, "curl-upload.bin")).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 69 {
			t.Fatalf("curl upload: %v %s, want exit 69", err, msg)
		}
	})
	entries, _ := os.ReadDir(ts.root)
	for _, e := range entries {
		if strings.Contains(e.Name(), "upload") {
			t.Fatalf("%s appeared in the root", e.Name())
		}
	}
	if len(ts.Denied()) < 2 {
		t.Fatalf("write requests not reported to OnDenied: %v", ts.Denied())
	}
}

func TestTFTPMalformedRequests(t *testing.T) {
	ts := startTFTP(t, nil)
	long := tftpRRQ(tftpOpRRQ, strings.Repeat("a", 200), "octet", "x", strings.Repeat("y", 400))
	tests := []struct {
		name string
		pkt  []byte
		code int // -1: no answer
	}{
		{"no terminator", []byte("\x00\x01a.txt\x00octet"), tftpErrIllegalOp},
		{"no mode", []byte("\x00\x01a.txt\x00"), tftpErrIllegalOp},
		{"mail mode", tftpRRQ(tftpOpRRQ, "a.txt", "mail"), tftpErrIllegalOp},
		{"empty mode", tftpRRQ(tftpOpRRQ, "a.txt", ""), tftpErrIllegalOp},
		{"option without value", tftpRRQ(tftpOpRRQ, "a.txt", "octet", "blksize"), tftpErrIllegalOp},
		{"too long", long, tftpErrIllegalOp},
		{"only opcode", []byte{0, 1}, tftpErrIllegalOp},
		{"stray ack", []byte{0, 4, 0, 1}, -1},
		{"stray data", []byte{0, 3, 0, 1, 'x'}, -1},
		{"stray error", tftpErrorPacket(0, "x"), -1},
		{"unknown opcode", []byte{0, 9, 'x', 0}, -1},
		{"one byte", []byte{1}, -1},
		{"empty", []byte{}, -1},
		// Still good: mode case, NUL padding, unknown and odd options.
		{"NETASCII", tftpRRQ(tftpOpRRQ, "a.txt", "NETASCII"), tftpOpDATA + 100},
		{"padding", append(tftpRRQ(tftpOpRRQ, "a.txt", "octet"), 0, 0, 0), tftpOpDATA + 100},
		{"unknown option", tftpRRQ(tftpOpRRQ, "a.txt", "octet", "windowsize", "16"), tftpOpDATA + 100},
		{"bad blksize", tftpRRQ(tftpOpRRQ, "a.txt", "octet", "blksize", "huge"), tftpOpDATA + 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait := 2 * time.Second
			if tt.code == -1 {
				wait = 300 * time.Millisecond
			}
			reply := tftpRawReply(t, ts.addr, tt.pkt, wait)
			switch {
			case tt.code == -1:
				if reply != nil {
					t.Fatalf("reply %q to a non-request", reply)
				}
			case tt.code == tftpOpDATA+100:
				if len(reply) < 4 || binary.BigEndian.Uint16(reply) != tftpOpDATA || string(reply[4:]) != "hello a" {
					t.Fatalf("reply %q, want DATA hello a", reply)
				}
			default:
				if tftpErrorCode(reply) != tt.code {
					t.Fatalf("reply %q, want error code %d", reply, tt.code)
				}
			}
		})
	}
}

func TestTFTPBlockSizeNegotiation(t *testing.T) {
	tests := []struct {
		max       int
		requested string
		want      string // blksize in the OACK, "" for none
	}{
		{0, "1468", "1468"},
		{0, "8192", "1468"},
		{0, "512", "512"},
		{0, "600", "600"},
		{0, "256", ""}, // below pin/tftp's floor: not acknowledged, 512 used
		{0, "0", ""},
		{0, "70000", ""},
		{8192, "8192", "8192"},
		{8192, "65464", "8192"},
		{100, "1468", "512"}, // MaxBlockSize below 512 means 512
		{100000, "65464", "65464"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max%d-req%s", tt.max, tt.requested), func(t *testing.T) {
			ts := startTFTP(t, func(s *TFTPServer) { s.MaxBlockSize = tt.max })
			reply := tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, "virtual/known", "octet", "blksize", tt.requested, "tsize", "0"), 2*time.Second)
			opts := tftpOACK(reply)
			if opts == nil {
				t.Fatalf("reply %q, want OACK", reply)
			}
			if opts["blksize"] != tt.want {
				t.Fatalf("OACK blksize %q, want %q (options %v)", opts["blksize"], tt.want, opts)
			}
			if opts["tsize"] != strconv.Itoa(len(tftpVirtual)) {
				t.Fatalf("OACK tsize %q, want %d", opts["tsize"], len(tftpVirtual))
			}
			ts.waitIdle(t, 5*time.Second)
			want := 512
			if tt.want != "" {
				want, _ = strconv.Atoi(tt.want)
			}
			if trs := ts.Transfers(); len(trs) != 1 || trs[0].BlockSize != want {
				t.Fatalf("transfers %+v, want one with block size %d", trs, want)
			}
		})
	}
}

// TestTFTPNoFDLeak makes 500 failing requests of every kind (refused names,
// missing files, write requests, malformed requests, source errors before and
// during the transfer, clients that stop acknowledging) and checks that the
// number of open file descriptors does not grow.
func TestTFTPNoFDLeak(t *testing.T) {
	ts := startTFTP(t, func(s *TFTPServer) { s.Timeout = 50 * time.Millisecond; s.Retries = 2 })
	countFDs := func() int {
		entries, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("cannot count fds: %v", err)
		}
		return len(entries)
	}
	// Warm up (runtime and client sockets) before the first count.
	tftpGoFetch(ts.addr, "a.txt", 0, false)
	ts.waitIdle(t, 5*time.Second)
	before := countFDs()

	kinds := []func(i int) error{
		func(i int) error { // refused name
			if tftpErrorCode(tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, fmt.Sprintf("../x%d", i), "octet"), 2*time.Second)) != tftpErrAccess {
				return errors.New("hostile name not refused")
			}
			return nil
		},
		func(i int) error { // missing file
			if tftpErrorCode(tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, fmt.Sprintf("missing%d", i), "octet"), 2*time.Second)) != tftpErrNotFound {
				return errors.New("missing file not refused")
			}
			return nil
		},
		func(i int) error { // write request
			if tftpErrorCode(tftpRawReply(t, ts.addr, tftpRRQ(tftpOpWRQ, "w", "octet"), 2*time.Second)) != tftpErrAccess {
				return errors.New("write not refused")
			}
			return nil
		},
		func(i int) error { // malformed
			if tftpErrorCode(tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, "a.txt", "mail"), 2*time.Second)) != tftpErrIllegalOp {
				return errors.New("malformed not refused")
			}
			return nil
		},
		func(i int) error { // symlink out of the root: refused by the FileRoot
			if tftpErrorCode(tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, "passwd-abs", "octet"), 2*time.Second)) != tftpErrAccess {
				return errors.New("escaping symlink not refused")
			}
			return nil
		},
		func(i int) error { // source fails mid-transfer, inside pin/tftp
			if _, _, _, err := tftpGoFetch(ts.addr, "virtual/fail", 1468, true); err == nil {
				return errors.New("virtual/fail succeeded")
			}
			return nil
		},
		func(i int) error { // source shorter than announced
			if _, _, _, err := tftpGoFetch(ts.addr, "virtual/short", 512, false); err == nil {
				return errors.New("virtual/short succeeded")
			}
			return nil
		},
		func(i int) error { // the client gets the first block and goes away
			reply := tftpRawExchange(t, ts.addr, tftpRRQ(tftpOpRRQ, "virtual/known", "octet"), 2*time.Second, false)
			if len(reply) < 2 || binary.BigEndian.Uint16(reply) != tftpOpDATA {
				return fmt.Errorf("reply %q, want DATA", reply)
			}
			return nil
		},
	}
	const total = 500
	// Four workers: bounded concurrency, bounded time.
	var wg sync.WaitGroup
	errs := make(chan error, total)
	work := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range work {
				if err := kinds[i%len(kinds)](i); err != nil {
					errs <- fmt.Errorf("request %d: %w", i, err)
				}
			}
		})
	}
	deadline := time.After(60 * time.Second)
	for i := 0; i < total; i++ {
		select {
		case work <- i:
		case <-deadline:
			t.Fatalf("only %d requests made in 60s", i)
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ts.waitIdle(t, 10*time.Second)
	var after int
	for range 100 { // closed sockets may take a moment to leave /proc
		if after = countFDs(); after <= before {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after > before {
		t.Fatalf("open fds grew from %d to %d over %d failed requests", before, after, total)
	}
	failed, abandoned := 0, 0
	for _, tr := range ts.Transfers() {
		if tr.Err != nil {
			failed++
		}
		if tr.Name == "virtual/known" {
			abandoned++
			if tr.Err == nil || tr.Bytes > int64(len(tftpVirtual)) {
				t.Errorf("abandoned transfer reported %d bytes, err %v", tr.Bytes, tr.Err)
			}
		}
	}
	if abandoned != total/len(kinds) {
		t.Errorf("%d abandoned transfers reported, want %d", abandoned, total/len(kinds))
	}
	t.Logf("fds before %d, after %d; %d failed transfers reported, %d denials", before, after, failed, len(ts.Denied()))
}

func TestTFTPConcurrentClients(t *testing.T) {
	tftpRequireTool(t, tftpIPXEEFI)
	ts := startTFTP(t, nil)
	want := tftpReadFile(t, tftpIPXEEFI)
	const clients = 200
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			got, size, ok, err := tftpGoFetch(ts.addr, "ipxe.efi", 1468, true)
			switch {
			case err != nil:
				errs <- fmt.Errorf("client %d: %w", i, err)
			case tftpSHA(got) != tftpSHA(want) || !ok || size != int64(len(want)):
				errs <- fmt.Errorf("client %d: %d bytes, tsize %d", i, len(got), size)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("200 clients did not finish in 90s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	el := time.Since(start)
	t.Logf("%d clients fetched %d bytes each in %v (%.1f MiB/s total)", clients, len(want), el,
		float64(clients*len(want))/el.Seconds()/(1<<20))
}

func TestTFTPMaxTransfers(t *testing.T) {
	ts := startTFTP(t, func(s *TFTPServer) { s.MaxTransfers = 1 })
	// Hold the only slot with a transfer whose source blocks.
	first := make(chan []byte, 1)
	go func() { first <- tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, "virtual/block", "octet"), 5*time.Second) }()
	deadline := time.Now().Add(5 * time.Second)
	for ts.activeTransfers() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("blocking transfer did not start")
		}
		time.Sleep(time.Millisecond)
	}
	reply := tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, "a.txt", "octet"), 2*time.Second)
	if tftpErrorCode(reply) != tftpErrUndefined || !bytes.Contains(reply, []byte("busy")) {
		t.Fatalf("reply %q, want server busy", reply)
	}
	if trs := ts.Transfers(); len(trs) != 1 || trs[0].Name != "a.txt" || !errors.Is(trs[0].Err, errTFTPBusy) {
		t.Fatalf("transfers %+v, want the busy refusal of a.txt", trs)
	}
	ts.src.release <- struct{}{} // let the blocked read finish
	if r := <-first; len(r) < 4 || binary.BigEndian.Uint16(r) != tftpOpDATA {
		t.Fatalf("blocked transfer reply %q, want DATA", r)
	}
	ts.waitIdle(t, 5*time.Second)
	if reply := tftpRawReply(t, ts.addr, tftpRRQ(tftpOpRRQ, "a.txt", "octet"), 2*time.Second); string(reply[4:]) != "hello a" {
		t.Fatalf("after the slot is free: reply %q", reply)
	}
}

func TestTFTPLifecycle(t *testing.T) {
	t.Run("close before serve", func(t *testing.T) {
		s := &TFTPServer{Addr: "127.0.0.1:0", Source: FileRootSource{}}
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		if err := s.Listen(); err == nil {
			t.Fatal("second Listen succeeded")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Serve(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve after Close: %v, want net.ErrClosed", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("no source", func(t *testing.T) {
		s := &TFTPServer{Addr: "127.0.0.1:0"}
		if err := s.ListenAndServe(); err == nil || !strings.Contains(err.Error(), "no Source") {
			t.Fatalf("ListenAndServe without Source: %v", err)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		s := &TFTPServer{Addr: "127.0.0.1:notaport", Source: FileRootSource{}}
		if err := s.Listen(); err == nil || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
			t.Fatalf("Listen: %v, want an error naming the address", err)
		}
	})
	t.Run("serve listens", func(t *testing.T) {
		s := &TFTPServer{Addr: "127.0.0.1:0", Source: FileRootSource{Root: &FileRoot{Aliases: map[string]string{"u": tftpUndionly}}}}
		served := make(chan error, 1)
		go func() { served <- s.Serve() }()
		deadline := time.Now().Add(5 * time.Second)
		for s.LocalAddr() == nil {
			if time.Now().After(deadline) {
				t.Fatal("Serve did not listen")
			}
			time.Sleep(time.Millisecond)
		}
		if reply := tftpRawReply(t, s.LocalAddr().String(), tftpRRQ(tftpOpRRQ, "x", "octet"), 2*time.Second); tftpErrorCode(reply) != tftpErrNotFound {
			t.Fatalf("reply %q, want not found", reply)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-served; err != nil {
			t.Fatalf("Serve: %v", err)
		}
	})
	t.Run("ipv6 loopback", func(t *testing.T) {
		s := &TFTPServer{Addr: "[::1]:0", Source: FileRootSource{Root: &FileRoot{Aliases: map[string]string{"u": tftpUndionly}}}}
		if err := s.Listen(); err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		go s.Serve()
		defer s.Close()
		tftpRequireTool(t, tftpUndionly)
		got, _, _, err := tftpGoFetch(s.LocalAddr().String(), "u", 1468, false)
		if err != nil || tftpSHA(got) != tftpSHA(tftpReadFile(t, tftpUndionly)) {
			t.Fatalf("fetch over ::1: %d bytes, %v", len(got), err)
		}
	})
}

func TestParseTFTPRequest(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want tftpRequest
		err  string
	}{
		{"plain", tftpRRQ(1, "a", "octet"), tftpRequest{op: 1, name: "a", mode: "octet"}, ""},
		{"write", tftpRRQ(2, "a", "Octet"), tftpRequest{op: 2, name: "a", mode: "octet"}, ""},
		{"options", tftpRRQ(1, "a", "netascii", "BLKSIZE", "1468", "TSize", "0"), tftpRequest{op: 1, name: "a", mode: "netascii", blksize: 1468, tsize: true}, ""},
		{"first option wins", tftpRRQ(1, "a", "octet", "blksize", "600", "blksize", "1468"), tftpRequest{op: 1, name: "a", mode: "octet", blksize: 600}, ""},
		{"blksize too small", tftpRRQ(1, "a", "octet", "blksize", "7"), tftpRequest{op: 1, name: "a", mode: "octet"}, ""},
		{"blksize too big", tftpRRQ(1, "a", "octet", "blksize", "65465"), tftpRequest{op: 1, name: "a", mode: "octet"}, ""},
		{"tsize negative", tftpRRQ(1, "a", "octet", "tsize", "-1"), tftpRequest{op: 1, name: "a", mode: "octet"}, ""},
		{"padding", append(tftpRRQ(1, "a", "octet"), 0, 0), tftpRequest{op: 1, name: "a", mode: "octet"}, ""},
		{"empty name", tftpRRQ(1, "", "octet"), tftpRequest{op: 1, name: "", mode: "octet"}, ""},
		{"not a request", []byte{0, 4, 0, 0}, tftpRequest{}, errNotRequest.Error()},
		{"short", []byte{0}, tftpRequest{}, errNotRequest.Error()},
		{"unterminated", []byte("\x00\x01a\x00octet"), tftpRequest{}, "not NUL-terminated"},
		{"no mode", []byte("\x00\x01a\x00"), tftpRequest{}, "no transfer mode"},
		{"bad mode", tftpRRQ(1, "a", "mail"), tftpRequest{}, `mode "mail"`},
		{"dangling option", tftpRRQ(1, "a", "octet", "tsize"), tftpRequest{}, `option "tsize" has no value`},
		{"too long", tftpRRQ(1, strings.Repeat("a", 600), "octet"), tftpRequest{}, "longer than 516"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTFTPRequest(tt.pkt)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseTFTPRequest(f *testing.F) {
	f.Add(tftpRRQ(1, "pxelinux.0", "octet", "blksize", "1468", "tsize", "0"))
	f.Add(tftpRRQ(2, "x", "netascii"))
	f.Add([]byte("\x00\x01a\x00octet\x00\x00\x00"))
	f.Add([]byte{0, 4, 0, 1})
	f.Add(tftpRRQ(1, "a", "OCTET", "BlkSize", "65464", "windowsize", "8"))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r, err := parseTFTPRequest(pkt)
		if err != nil {
			return
		}
		if r.op != tftpOpRRQ && r.op != tftpOpWRQ {
			t.Fatalf("op %d accepted", r.op)
		}
		if r.mode != "octet" && r.mode != "netascii" {
			t.Fatalf("mode %q accepted", r.mode)
		}
		if r.blksize != 0 && (r.blksize < 8 || r.blksize > tftpMaxBlockSize) {
			t.Fatalf("blksize %d accepted", r.blksize)
		}
		if len(r.name) > len(pkt) {
			t.Fatal("name longer than the packet")
		}
		// What the server hands pin/tftp parses back to the same request,
		// with the block size capped.
		for _, max := range []int{512, 1468, tftpMaxBlockSize} {
			c := r.canonical("clean", max)
			if len(c) > tftpMaxRequestBytes {
				t.Fatalf("canonical request of %d bytes", len(c))
			}
			back, err := parseTFTPRequest(c)
			if err != nil {
				t.Fatalf("canonical %q does not parse: %v", c, err)
			}
			want := r
			want.op, want.name = tftpOpRRQ, "clean"
			if r.blksize >= tftpDefaultBlockSize {
				want.blksize = r.negotiatedBlockSize(max)
			} else {
				want.blksize = 0
			}
			if back != want {
				t.Fatalf("canonical round trip: %+v, want %+v", back, want)
			}
			if bs := r.negotiatedBlockSize(max); bs < tftpDefaultBlockSize || bs > max {
				t.Fatalf("negotiated %d outside 512..%d", bs, max)
			}
		}
	})
}
