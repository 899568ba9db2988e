package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pintftp "github.com/pin/tftp/v3"

	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/tftp/tftptest"
)

var errEMFILE = syscall.EMFILE

// pinFetch fetches a file with pin/tftp's client (an independent
// implementation). size is the tsize the server announced (ok false when
// it announced none).
func pinFetch(addr, name string, blksize int, tsize bool) (data []byte, size int64, ok bool, err error) {
	c, err := pintftp.NewClient(addr)
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
	size, ok = wt.(pintftp.IncomingTransfer).Size()
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return buf.Bytes(), size, ok, err
	}
	return buf.Bytes(), size, ok, nil
}

func TestRealClientsFetchPackageFile(t *testing.T) {
	requireTool(t, undionly)
	ts := startServer(t, "", nil)
	want := readFile(t, undionly)
	dir := t.TempDir()
	n := 0

	t.Run("tftp-hpa", func(t *testing.T) {
		requireTool(t, "tftp")
		out := filepath.Join(dir, "hpa")
		n++
		msg, err := exec.Command("tftp", "-m", "binary", "127.0.0.1", ts.port, "-c", "get", "undionly.kpxe", out).CombinedOutput()
		if err != nil || len(msg) != 0 {
			t.Fatalf("tftp: %v: %s", err, msg)
		}
		if got := readFile(t, out); sha(got) != sha(want) {
			t.Fatalf("tftp-hpa got %d bytes, sha256 differs from the package file (%d bytes)", len(got), len(want))
		}
	})
	for _, bs := range []int{512, 1468} {
		t.Run(fmt.Sprintf("curl-blksize-%d", bs), func(t *testing.T) {
			requireTool(t, "curl")
			out := filepath.Join(dir, fmt.Sprintf("curl%d", bs))
			n++
			msg, err := exec.Command("curl", "-sS", "--tftp-blksize", strconv.Itoa(bs), "-o", out,
				"tftp://"+ts.addr+"/undionly.kpxe").CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, msg)
			}
			if got := readFile(t, out); sha(got) != sha(want) {
				t.Fatalf("curl got %d bytes, sha256 differs", len(got))
			}
		})
	}
	for _, w := range []int{0, 8} {
		t.Run(fmt.Sprintf("atftp-windowsize-%d", w), func(t *testing.T) {
			requireTool(t, "atftp")
			out := filepath.Join(dir, fmt.Sprintf("atftp%d", w))
			args := []string{"--option", "blksize 1468", "--option", "tsize 0"}
			if w > 0 {
				args = append(args, "--option", fmt.Sprintf("windowsize %d", w))
			}
			n++
			msg, err := exec.Command("atftp", append(args, "--trace", "-g", "-r", "undionly.kpxe", "-l", out, "127.0.0.1", ts.port)...).CombinedOutput()
			if err != nil {
				t.Fatalf("atftp: %v: %s", err, msg)
			}
			if got := readFile(t, out); sha(got) != sha(want) {
				t.Fatalf("atftp got %d bytes, sha256 differs", len(got))
			}
			line, _, _ := strings.Cut(string(msg[bytes.Index(msg, []byte("received OACK <")):]), "\n")
			wantOpts := []string{fmt.Sprintf("tsize: %d,", len(want)), "blksize: 1468,"}
			if w > 0 {
				wantOpts = append(wantOpts, fmt.Sprintf("windowsize: %d,", w))
			}
			for _, o := range wantOpts {
				if !strings.Contains(line, o) {
					t.Fatalf("atftp's OACK line %q lacks %q", line, o)
				}
			}
			// With a window, atftp acknowledges only the window's last block.
			acks := bytes.Count(msg, []byte("sent ACK"))
			blocks := len(want)/1468 + 1
			if w > 0 && acks > blocks/w+2 {
				t.Fatalf("atftp sent %d ACKs for %d blocks with windowsize %d", acks, blocks, w)
			}
		})
	}
	t.Run("pin-tftp-client", func(t *testing.T) {
		n++
		got, size, ok, err := pinFetch(ts.addr, "undionly.kpxe", 1468, true)
		if err != nil {
			t.Fatal(err)
		}
		if sha(got) != sha(want) || !ok || size != int64(len(want)) {
			t.Fatalf("got %d bytes, tsize %d (%v); want %d bytes, same sha256", len(got), size, ok, len(want))
		}
	})

	// Every fetch was reported with the package size.
	ts.waitIdle(t, 5*time.Second)
	var reported int
	for _, tr := range ts.Transfers() {
		if tr.Name != "undionly.kpxe" || tr.Err != nil || tr.Bytes != int64(len(want)) || tr.Size != int64(len(want)) ||
			!tr.Client.Addr().IsLoopback() || tr.Duration <= 0 {
			t.Errorf("unexpected transfer report %+v", tr)
		}
		reported++
	}
	if reported != n {
		t.Errorf("%d transfers reported, want %d", reported, n)
	}
}

func TestVirtualFiles(t *testing.T) {
	ts := startServer(t, "", nil)
	c := virtual
	tests := []struct {
		name     string
		want     []byte
		wantSize int64 // -1: no tsize announced
	}{
		{"virtual/known", c, int64(len(c))},
		{"virtual/unknown", c, -1},
		{"virtual/seek", c, int64(len(c))},
		{"virtual/odd", c[:100001], 100001},
		{"virtual/empty", nil, -1}, // tsize 0 is not announced: curl takes it for an error
	}
	for _, tt := range tests {
		for _, bs := range []int{0, 512, 1468, 8192} {
			t.Run(fmt.Sprintf("%s/pin-%d", tt.name, bs), func(t *testing.T) {
				got, size, ok, err := pinFetch(ts.addr, tt.name, bs, true)
				if err != nil {
					t.Fatal(err)
				}
				if sha(got) != sha(tt.want) {
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
		for _, w := range []string{"1", "4", "64"} {
			t.Run(tt.name+"/window-"+w, func(t *testing.T) {
				res, err := tftptest.Fetch(netip.Addr{}, ts.addr, tt.name, time.Second, 3, "blksize", "512", "windowsize", w)
				if err != nil {
					t.Fatal(err)
				}
				if sha(res.Data) != sha(tt.want) {
					t.Fatalf("got %d bytes, want %d", len(res.Data), len(tt.want))
				}
				wantW, _ := strconv.Atoi(w)
				if res.OACK["windowsize"] != strconv.Itoa(min(wantW, 32)) {
					t.Fatalf("OACK %v, want windowsize %d", res.OACK, min(wantW, 32))
				}
			})
		}
		t.Run(tt.name+"/raw-oack", func(t *testing.T) {
			opts := tftptest.OACK(tftptest.Reply(t, ts.addr, tftptest.Request(opRRQ, tt.name, "octet", "blksize", "1468", "tsize", "0"), 2*time.Second))
			want := map[string]string{"blksize": "1468"}
			if tt.wantSize >= 0 {
				want["tsize"] = strconv.FormatInt(tt.wantSize, 10)
			}
			if fmt.Sprint(opts) != fmt.Sprint(want) {
				t.Fatalf("OACK %v, want %v", opts, want)
			}
		})
		t.Run(tt.name+"/curl", func(t *testing.T) {
			requireTool(t, "curl")
			out := filepath.Join(t.TempDir(), "out")
			msg, err := exec.Command("curl", "-sS", "--tftp-blksize", "1468", "-o", out, "tftp://"+ts.addr+"/"+tt.name).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, msg)
			}
			if got, _ := os.ReadFile(out); sha(got) != sha(tt.want) {
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

// TestNetascii: netascii mode converts line ends (RFC 764) and announces
// no size.
func TestNetascii(t *testing.T) {
	ts := startServer(t, "", nil)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := tftptest.Fetch(netip.Addr{}, ts.addr, "text", time.Second, 3)
	if err != nil || string(res.Data) != "one\ntwo\r\nthree\r" {
		t.Fatalf("octet: %q, %v", res.Data, err)
	}
	reply := tftptest.Reply(t, ts.addr, tftptest.Request(opRRQ, "text", "netascii"), 2*time.Second)
	if len(reply) < 4 || string(reply[4:]) != "one\r\ntwo\r\x00\r\nthree\r\x00" {
		t.Fatalf("netascii: %q", reply)
	}
	// Conversion that straddles reads of every size.
	for size := 1; size < 8; size++ {
		var out []byte
		n := &netascii{r: strings.NewReader("a\n\r\nb\r")}
		buf := make([]byte, size)
		for {
			k, err := n.Read(buf)
			out = append(out, buf[:k]...)
			if err != nil {
				break
			}
		}
		if string(out) != "a\r\n\r\x00\r\nb\r\x00" {
			t.Fatalf("read size %d: %q", size, out)
		}
	}
}

// TestSourceFailures checks what a client sees when the source fails
// before or during a transfer, and that the real cause reaches OnTransfer
// but not the client.
func TestSourceFailures(t *testing.T) {
	ts := startServer(t, "", nil)
	tests := []struct {
		name     string
		wantCode int    // error code before any data, -1 when it fails mid-transfer
		wantErr  string // in the OnTransfer error
	}{
		{"virtual/denied", errAccess, "policy says no"},
		{"virtual/broken", errUndefined, "database"},
		{"nope", errNotFound, "not found"},
		{"virtual/fail", -1, "disk on fire"},
		{"virtual/short", -1, "source gave 10000 bytes, 187904 announced"},
		{"virtual/long", -1, "more than the 10000 bytes announced"},
	}
	for _, tt := range tests {
		t.Run(strings.ReplaceAll(tt.name, "/", "|"), func(t *testing.T) {
			if tt.wantCode >= 0 {
				reply := tftptest.Reply(t, ts.addr, tftptest.Request(opRRQ, tt.name, "octet"), 2*time.Second)
				if got := tftptest.ErrorCode(reply); got != tt.wantCode {
					t.Fatalf("error code %d (reply %q), want %d", got, reply, tt.wantCode)
				}
				if bytes.Contains(reply, []byte("secret")) {
					t.Fatalf("error packet leaks the cause: %q", reply)
				}
			}
			got, _, _, err := pinFetch(ts.addr, tt.name, 1468, true)
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
	// A handler out of file descriptors: no answer at all, counted as shed.
	if reply := tftptest.Reply(t, ts.addr, tftptest.Request(opRRQ, "virtual/nofd", "octet"), 300*time.Millisecond); reply != nil {
		t.Fatalf("reply %q to a request the handler could not open for lack of descriptors", reply)
	}
	if ts.Shed() != 1 {
		t.Fatalf("shed %d, want 1", ts.Shed())
	}
}

// countLines counts the log records at level in buf.
func countLines(buf *lab.Buffer, level string) int {
	return strings.Count(buf.String(), "level="+level)
}

// TestWriteRefused: write requests are refused with "read-only server" by
// every client, reported to OnRefused, and a flood of them costs a bounded
// number of log lines.
func TestWriteRefused(t *testing.T) {
	var logs lab.Buffer
	ts := startServer(t, "", func(s *Server) { s.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	if reply := tftptest.Reply(t, ts.addr, tftptest.Request(opWRQ, "upload.bin", "octet"), 2*time.Second); tftptest.ErrorCode(reply) != errAccess ||
		!bytes.Contains(reply, []byte("read-only server")) {
		t.Fatalf("WRQ reply %q, want access violation, read-only server", reply)
	}
	c, err := pintftp.NewClient(ts.addr)
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
		requireTool(t, "tftp")
		msg, _ := exec.Command("tftp", "-m", "binary", "127.0.0.1", ts.port, "-c", "put", local, "hpa-upload.bin").CombinedOutput()
		if !bytes.Contains(msg, []byte("Error code 2: read-only server")) {
			t.Fatalf("tftp put: %s", msg)
		}
	})
	t.Run("curl", func(t *testing.T) {
		requireTool(t, "curl")
		msg, err := exec.Command("curl", "-sS", "-T", local, "tftp://"+ts.addr+"/curl-upload.bin").CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 69 {
			t.Fatalf("curl upload: %v %s, want exit 69", err, msg)
		}
	})
	// A flood of 2,000 bogus write requests: every one answered, one WARN
	// line (the rest counted).
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadBuffer(4 << 20) // the answers come faster than a loaded machine reads them
	ua, _ := net.ResolveUDPAddr("udp", ts.addr)
	const flood = 2000
	answered := make(chan int)
	go func() {
		buf := make([]byte, 100)
		n := 0
		for {
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				answered <- n
				return
			}
			if tftptest.ErrorCode(buf[:k]) == errAccess {
				n++
			}
		}
	}()
	for i := range flood {
		conn.WriteToUDP(tftptest.Request(opWRQ, fmt.Sprintf("w%d", i), "octet"), ua)
		if i%100 == 0 {
			time.Sleep(time.Millisecond) // let the answers drain: a socket buffer is finite
		}
	}
	if n := <-answered; n < flood/2 {
		t.Errorf("%d of %d write requests answered", n, flood)
	}
	if got := len(ts.Refused()); got < flood*9/10 {
		t.Errorf("%d write requests reported to OnRefused, want about %d", got, flood)
	}
	if n := countLines(&logs, "WARN"); n > 3 {
		t.Errorf("%d WARN lines for %d write requests:\n%.2000s", n, flood, logs.String())
	}
}

func TestMalformedRequests(t *testing.T) {
	ts := startServer(t, "", nil)
	long := tftptest.Request(opRRQ, strings.Repeat("a", 200), "octet", "x", strings.Repeat("y", 400))
	tests := []struct {
		name string
		pkt  []byte
		code int // -1: no answer; opDATA+100: the file
	}{
		{"no terminator", []byte("\x00\x01a.txt\x00octet"), errIllegalOp},
		{"no mode", []byte("\x00\x01a.txt\x00"), errIllegalOp},
		{"mail mode", tftptest.Request(opRRQ, "a.txt", "mail"), errIllegalOp},
		{"empty mode", tftptest.Request(opRRQ, "a.txt", ""), errIllegalOp},
		{"option without value", tftptest.Request(opRRQ, "a.txt", "octet", "blksize"), errIllegalOp},
		{"too long", long, errIllegalOp},
		{"only opcode", []byte{0, 1}, errIllegalOp},
		{"stray ack", []byte{0, 4, 0, 1}, -1},
		{"stray data", []byte{0, 3, 0, 1, 'x'}, -1},
		{"stray error", errorPacket(0, "x"), -1},
		{"unknown opcode", []byte{0, 9, 'x', 0}, -1},
		{"one byte", []byte{1}, -1},
		{"empty", []byte{}, -1},
		// Still good: mode case, NUL padding, unknown and odd options.
		{"NETASCII", tftptest.Request(opRRQ, "a.txt", "NETASCII"), opDATA + 100},
		{"padding", append(tftptest.Request(opRRQ, "a.txt", "octet"), 0, 0, 0), opDATA + 100},
		{"unknown option", tftptest.Request(opRRQ, "a.txt", "octet", "multicast", "1"), opDATA + 100},
		{"bad blksize", tftptest.Request(opRRQ, "a.txt", "octet", "blksize", "huge"), opDATA + 100},
		{"bad windowsize", tftptest.Request(opRRQ, "a.txt", "octet", "windowsize", "0"), opDATA + 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait := 2 * time.Second
			if tt.code == -1 {
				wait = 300 * time.Millisecond
			}
			reply := tftptest.Reply(t, ts.addr, tt.pkt, wait)
			switch {
			case tt.code == -1:
				if reply != nil {
					t.Fatalf("reply %q to a non-request", reply)
				}
			case tt.code == opDATA+100:
				if len(reply) < 4 || binary.BigEndian.Uint16(reply) != opDATA || string(reply[4:]) != "hello a" {
					t.Fatalf("reply %q, want DATA hello a", reply)
				}
			default:
				if tftptest.ErrorCode(reply) != tt.code {
					t.Fatalf("reply %q, want error code %d", reply, tt.code)
				}
			}
		})
	}
}

func TestOptionNegotiation(t *testing.T) {
	tests := []struct {
		maxBlock, maxWindow int
		opts                []string
		want                string // the OACK's options, sorted; "" for none
	}{
		{0, 0, []string{"blksize", "1468"}, "blksize=1468"},
		{0, 0, []string{"blksize", "8192"}, "blksize=1468"},
		{0, 0, []string{"blksize", "512"}, "blksize=512"},
		{0, 0, []string{"blksize", "600"}, "blksize=600"},
		{0, 0, []string{"blksize", "256"}, ""}, // below 512: not acknowledged, 512 used
		{0, 0, []string{"blksize", "0"}, ""},
		{0, 0, []string{"blksize", "70000"}, ""},
		{8192, 0, []string{"blksize", "8192"}, "blksize=8192"},
		{8192, 0, []string{"blksize", "65464"}, "blksize=8192"},
		{100, 0, []string{"blksize", "1468"}, "blksize=512"}, // MaxBlockSize below 512 means 512
		{100000, 0, []string{"blksize", "65464"}, "blksize=65464"},
		{0, 0, []string{"windowsize", "8"}, "windowsize=8"},
		{0, 0, []string{"windowsize", "65535"}, "windowsize=32"},
		{0, 4, []string{"windowsize", "8"}, "windowsize=4"},
		{0, 0, []string{"windowsize", "65536"}, ""},
		{0, 0, []string{"tsize", "0"}, "tsize=187904"},
		{0, 0, []string{"timeout", "3", "tsize", "0", "blksize", "1024", "windowsize", "2"}, "blksize=1024 tsize=187904 windowsize=2"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("max%d-%d-%s", tt.maxBlock, tt.maxWindow, strings.Join(tt.opts, "-")), func(t *testing.T) {
			ts := startServer(t, "", func(s *Server) { s.MaxBlockSize, s.MaxWindowSize = tt.maxBlock, tt.maxWindow })
			reply := tftptest.Reply(t, ts.addr, tftptest.Request(opRRQ, "virtual/known", "octet", tt.opts...), 2*time.Second)
			var got []string
			for k, v := range tftptest.OACK(reply) {
				got = append(got, k+"="+v)
			}
			slices.Sort(got)
			if strings.Join(got, " ") != tt.want {
				t.Fatalf("reply %q: options %q, want %q", reply, got, tt.want)
			}
			if tt.want == "" && (len(reply) < 4 || binary.BigEndian.Uint16(reply) != opDATA || len(reply) != 4+512) {
				t.Fatalf("reply %q, want DATA 1 of 512 bytes", reply[:min(len(reply), 8)])
			}
			ts.waitIdle(t, 5*time.Second)
			want := 512
			if i := strings.Index(tt.want, "blksize="); i >= 0 {
				want, _ = strconv.Atoi(strings.Fields(tt.want[i+8:])[0])
			}
			if trs := ts.Transfers(); len(trs) != 1 || trs[0].BlockSize != want {
				t.Fatalf("transfers %+v, want one with block size %d", trs, want)
			}
		})
	}
}

// TestWindowLoss: with windowsize 4, a client that loses a block
// acknowledges the last one in order, and the server sends the window
// again from the block after it (RFC 7440); a duplicate ACK is never
// answered.
func TestWindowLoss(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.Timeout = 5 * time.Second })
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ua, _ := net.ResolveUDPAddr("udp", ts.addr)
	conn.WriteToUDP(tftptest.Request(opRRQ, "virtual/known", "octet", "blksize", "512", "windowsize", "4"), ua)
	buf := make([]byte, 2000)
	read := func() (uint16, uint16, *net.UDPAddr) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n < 4 {
			t.Fatalf("packet % x", buf[:n])
		}
		return binary.BigEndian.Uint16(buf), binary.BigEndian.Uint16(buf[2:]), from
	}
	op, _, peer := read()
	if op != opOACK {
		t.Fatalf("opcode %d, want OACK", op)
	}
	ack := func(b uint16) { conn.WriteToUDP(binary.BigEndian.AppendUint16([]byte{0, opACK}, b), peer) }
	ack(0)
	var blocks []uint16
	for range 4 {
		_, b, _ := read()
		blocks = append(blocks, b)
	}
	if fmt.Sprint(blocks) != "[1 2 3 4]" {
		t.Fatalf("first window %v", blocks)
	}
	ack(2) // 3 and 4 "lost"
	blocks = nil
	for range 4 {
		_, b, _ := read()
		blocks = append(blocks, b)
	}
	if fmt.Sprint(blocks) != "[3 4 5 6]" {
		t.Fatalf("window after ACK 2: %v", blocks)
	}
	ack(2) // a duplicate: no answer
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, _, err := conn.ReadFromUDP(buf); err == nil {
		t.Fatalf("duplicate ACK answered with % x", buf[:min(n, 8)])
	}
	conn.WriteToUDP(errorPacket(0, "test done"), peer)
}

// TestBlockNumberRollover: a file of more than 65535 blocks goes through
// with block numbers rolling over to 0.
func TestBlockNumberRollover(t *testing.T) {
	if testing.Short() {
		t.Skip("34 MiB transfer")
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 70000*512/16+7)
	h := HandlerFunc(func(context.Context, string, netip.AddrPort) (File, error) {
		return File{R: bytes.NewReader(big), Size: int64(len(big))}, nil
	})
	srv := New(h)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	res, err := tftptest.Fetch(netip.Addr{}, srv.LocalAddr().String(), "big", time.Second, 3, "blksize", "512", "windowsize", "32")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Data, big) {
		t.Fatalf("got %d bytes, want %d", len(res.Data), len(big))
	}
}

// TestNoFDLeak makes 500 failing requests of every kind (missing files,
// write requests, malformed requests, source errors before and during the
// transfer, clients that stop acknowledging or go away) and checks that
// the number of open file descriptors does not grow.
func TestNoFDLeak(t *testing.T) {
	// Every client is on 127.0.0.1 and the abandoned transfers linger:
	// no per-client cap here.
	ts := startServer(t, "", func(s *Server) { s.Timeout = 50 * time.Millisecond; s.Retries = 2; s.MaxPerClient = 1000 })
	pinFetch(ts.addr, "a.txt", 0, false) // warm up before the first count
	ts.waitIdle(t, 5*time.Second)
	expectCode := func(pkt []byte, code int) error {
		if got := tftptest.ErrorCode(tftptest.Reply(t, ts.addr, pkt, 2*time.Second)); got != code {
			return fmt.Errorf("error code %d, want %d", got, code)
		}
		return nil
	}
	kinds := []func(i int) error{
		func(i int) error {
			return expectCode(tftptest.Request(opRRQ, fmt.Sprintf("missing%d", i), "octet"), errNotFound)
		},
		func(i int) error { return expectCode(tftptest.Request(opWRQ, "w", "octet"), errAccess) },
		func(i int) error { return expectCode(tftptest.Request(opRRQ, "a.txt", "mail"), errIllegalOp) },
		func(i int) error { return expectCode(tftptest.Request(opRRQ, "virtual/denied", "octet"), errAccess) },
		func(i int) error { // source fails mid-transfer
			if _, _, _, err := pinFetch(ts.addr, "virtual/fail", 1468, true); err == nil {
				return errors.New("virtual/fail succeeded")
			}
			return nil
		},
		func(i int) error { // source shorter than announced
			if _, _, _, err := pinFetch(ts.addr, "virtual/short", 512, false); err == nil {
				return errors.New("virtual/short succeeded")
			}
			return nil
		},
		func(i int) error { // the client gets the first block and goes away without a word
			// From an address of its own: a new client on the port of an
			// earlier one still being retried would be taken for its retry.
			src := netip.AddrFrom4([4]byte{127, 0, byte(2 + i/256), byte(i)})
			reply := tftptest.ExchangeFrom(t, src, ts.addr, tftptest.Request(opRRQ, "virtual/known", "octet"), 2*time.Second, false)
			if len(reply) < 2 || binary.BigEndian.Uint16(reply) != opDATA {
				return fmt.Errorf("reply %q, want DATA", reply)
			}
			return nil
		},
		func(i int) error { // the client aborts with an ERROR
			reply := tftptest.Reply(t, ts.addr, tftptest.Request(opRRQ, "ipxe.efi", "octet", "windowsize", "8"), 2*time.Second)
			if tftptest.OACK(reply) == nil && tftptest.ErrorCode(reply) != errNotFound {
				return fmt.Errorf("reply %q, want OACK", reply)
			}
			return nil
		},
	}
	const total = 500
	before, after := tftptest.CheckNoFDLeak(t, total, func() { ts.waitIdle(t, 10*time.Second) }, kinds...)
	abandoned := 0
	for _, tr := range ts.Transfers() {
		if tr.Name == "virtual/known" {
			abandoned++
			if tr.Err == nil || tr.Bytes > int64(len(virtual)) {
				t.Errorf("abandoned transfer reported %d bytes, err %v", tr.Bytes, tr.Err)
			}
		}
	}
	if abandoned != total/len(kinds)+1 && abandoned != total/len(kinds) {
		t.Errorf("%d abandoned transfers reported, want %d", abandoned, total/len(kinds))
	}
	t.Logf("fds before %d, after %d; %d transfers reported, %d refusals", before, after, len(ts.Transfers()), len(ts.Refused()))
}

func TestConcurrentClients(t *testing.T) {
	requireTool(t, ipxeEFI)
	const clients = 200
	// All on 127.0.0.1, as nodes behind NAT would be: the per-client cap
	// must let them all in.
	ts := startServer(t, "", func(s *Server) { s.MaxPerClient = clients })
	want := readFile(t, ipxeEFI)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			got, size, ok, err := pinFetch(ts.addr, "ipxe.efi", 1468, true)
			switch {
			case err != nil:
				errs <- fmt.Errorf("client %d: %w", i, err)
			case sha(got) != sha(want) || !ok || size != int64(len(want)):
				errs <- fmt.Errorf("client %d: %d bytes, tsize %d", i, len(got), size)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
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

func TestLifecycle(t *testing.T) {
	h := HandlerFunc(func(context.Context, string, netip.AddrPort) (File, error) { return File{}, ErrNotFound })
	t.Run("close before serve", func(t *testing.T) {
		s := New(h)
		if err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if err := s.Listen("127.0.0.1:0"); err == nil {
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
		if err := s.Listen("127.0.0.1:0"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Listen after Close: %v", err)
		}
	})
	t.Run("no handler", func(t *testing.T) {
		s := New(nil)
		if err := s.ListenAndServe("127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), "no Handler") {
			t.Fatalf("ListenAndServe without Handler: %v", err)
		}
		s.Close()
	})
	t.Run("serve before listen", func(t *testing.T) {
		if err := New(h).Serve(); err == nil || !strings.Contains(err.Error(), "before Listen") {
			t.Fatalf("Serve: %v", err)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		if err := New(h).Listen("127.0.0.1:notaport"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
			t.Fatalf("Listen: %v, want an error naming the address", err)
		}
	})
	t.Run("zero value", func(t *testing.T) {
		s := &Server{Handler: h} // every limit at its default
		if err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve() }()
		if reply := tftptest.Reply(t, s.LocalAddr().String(), tftptest.Request(opRRQ, "x", "octet"), 2*time.Second); tftptest.ErrorCode(reply) != errNotFound {
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
		requireTool(t, undionly)
		ts := startServer(t, "[::1]:0", nil)
		got, _, _, err := pinFetch(ts.addr, "undionly.kpxe", 1468, false)
		if err != nil || sha(got) != sha(readFile(t, undionly)) {
			t.Fatalf("fetch over ::1: %d bytes, %v", len(got), err)
		}
	})
	t.Run("close waits for transfers", func(t *testing.T) {
		ts := startServer(t, "", nil)
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ua, _ := net.ResolveUDPAddr("udp", ts.addr)
		conn.WriteToUDP(tftptest.Request(opRRQ, "virtual/known", "octet"), ua) // never acknowledged
		lab.Eventually(t, "transfer started", 5*time.Second, func() bool { return ts.Active() == 1 })
		start := time.Now()
		ts.Close()
		// Timeout 500ms, 3 retries: the transfer gives up after about 2s.
		if el := time.Since(start); el < time.Second || el > 10*time.Second {
			t.Fatalf("Close returned after %v", el)
		}
		if trs := ts.Transfers(); len(trs) != 1 || trs[0].Err == nil || !strings.Contains(trs[0].Err.Error(), "timed out") {
			t.Fatalf("transfers %+v", trs)
		}
	})
}

// TestRepliesFromAddressAsked checks that every reply of a transfer comes
// from the address the client sent its request to, also when that is not
// the address the kernel would choose (127.0.0.3 for a client on
// 127.0.0.1), for a listener on that address and for a wildcard listener.
// pxelinux drops replies from any other address.
func TestRepliesFromAddressAsked(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 200) // 3200 bytes: 7 blocks of 512
	h := HandlerFunc(func(_ context.Context, name string, _ netip.AddrPort) (File, error) {
		if name == "missing" {
			return File{}, ErrNotFound
		}
		return File{R: bytes.NewReader(data), Size: int64(len(data))}, nil
	})
	for _, listen := range []string{"127.0.0.3:0", "0.0.0.0:0", "[::]:0"} {
		t.Run(listen, func(t *testing.T) {
			srv := New(h)
			if err := srv.Listen(listen); err != nil {
				t.Skip(err)
			}
			go srv.Serve()
			defer srv.Close()
			port := srv.LocalAddr().(*net.UDPAddr).Port
			server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: port}
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.WriteToUDP(append([]byte{0, 1}, "file\x00octet\x00"...), server); err != nil {
				t.Fatal(err)
			}
			var got []byte
			buf := make([]byte, 1024)
			for block := uint16(1); ; block++ {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, from, err := c.ReadFromUDP(buf)
				if err != nil {
					t.Fatalf("block %d: %v", block, err)
				}
				if !from.IP.Equal(server.IP) {
					t.Fatalf("block %d came from %v, want %v", block, from.IP, server.IP)
				}
				if n < 4 || binary.BigEndian.Uint16(buf) != 3 || binary.BigEndian.Uint16(buf[2:]) != block {
					t.Fatalf("block %d: unexpected packet % x", block, buf[:min(n, 16)])
				}
				got = append(got, buf[4:n]...)
				if _, err := c.WriteToUDP([]byte{0, 4, byte(block >> 8), byte(block)}, from); err != nil {
					t.Fatal(err)
				}
				if n-4 < 512 {
					break
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d", len(got), len(data))
			}
			// Errors come from the server port, from the address asked too.
			c.WriteToUDP(append([]byte{0, 1}, "missing\x00octet\x00"...), server)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := c.ReadFromUDP(buf)
			if err != nil || tftptest.ErrorCode(buf[:n]) != errNotFound || !from.IP.Equal(server.IP) || from.Port != port {
				t.Fatalf("error reply % x from %v (%v), want not found from %v", buf[:max(n, 0)], from, err, server)
			}
		})
	}
}

// TestSecondaryAddressWithCurl fetches through curl from a server on a
// secondary loopback address, the way the QEMU pxelinux test reaches it.
func TestSecondaryAddressWithCurl(t *testing.T) {
	requireTool(t, "curl")
	data := bytes.Repeat([]byte("x"), 100_000)
	srv := New(HandlerFunc(func(context.Context, string, netip.AddrPort) (File, error) {
		return File{R: bytes.NewReader(data), Size: int64(len(data))}, nil
	}))
	if err := srv.Listen("127.0.0.4:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	out, err := exec.Command("curl", "-sS", "--fail", "--max-time", "30", "--tftp-blksize", "1468",
		fmt.Sprintf("tftp://%s/f", srv.LocalAddr())).Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("curl: %v, %d bytes", err, len(out))
	}
}

// TestBroadcastRequest: a request sent to the broadcast address of a
// wildcard listener is answered from an address of the host's choosing
// (none can send from the broadcast address).
func TestBroadcastRequest(t *testing.T) {
	src, err := transferSocket(netip.MustParseAddr("255.255.255.255"), netip.MustParseAddrPort("127.0.0.1:9"))
	if err != nil {
		t.Fatalf("socket for a broadcast request: %v", err)
	}
	syscall.Close(src)
}

// TestDuplicateAckDuringBackoff: once the server is backing off, a client
// asking again (a duplicate ACK) a full Timeout after the last send gets
// the block at once rather than at the end of the longer wait; a duplicate
// before that gets nothing.
func TestDuplicateAckDuringBackoff(t *testing.T) {
	const timeout = time.Second
	ts := startServer(t, "", func(s *Server) { s.Timeout = timeout })
	conn := askFrom(t, ts.addr, "virtual/known")
	buf := make([]byte, 2000)
	read := func(wait time.Duration) (uint16, *net.UDPAddr, time.Time) {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(wait))
		n, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			return 0, nil, time.Time{}
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != opDATA {
			t.Fatalf("packet % x", buf[:min(n, 8)])
		}
		return binary.BigEndian.Uint16(buf[2:]), from, time.Now()
	}
	b, peer, _ := read(2 * timeout)
	if b != 1 {
		t.Fatalf("first block %d", b)
	}
	// No ACK: the server resends block 1 after Timeout, then waits twice
	// as long.
	if b, _, _ = read(2 * timeout); b != 1 {
		t.Fatalf("resent block %d", b)
	}
	dup := []byte{0, opACK, 0, 0} // "still at block 0"
	conn.WriteToUDP(dup, peer)    // too early: no answer
	if b, _, _ := read(timeout / 2); b != 0 {
		t.Fatalf("duplicate ACK right after a resend answered with block %d", b)
	}
	time.Sleep(timeout) // a full Timeout since the resend
	sent := time.Now()
	conn.WriteToUDP(dup, peer)
	b, _, at := read(2 * timeout)
	// The backoff's own resend is due 2*timeout after the last one, about
	// timeout/2 from now: "at once" is well before that.
	if b != 1 || at.Sub(sent) > timeout/5 {
		t.Fatalf("block %d %v after the duplicate ACK; want block 1 at once (the backoff's resend is %v away)", b, at.Sub(sent), 2*timeout)
	}
	conn.WriteToUDP(tftptest.Error(0, "test done"), peer)
}

// TestOnTheLoops runs the transfer tests again with every transfer on the
// epoll loops rather than on goroutines of their own (the default for the
// first DirectTransfers): both paths speak the same protocol.
func TestOnTheLoops(t *testing.T) {
	tests := []struct {
		name string
		f    func(*testing.T)
	}{
		{"RealClientsFetchPackageFile", TestRealClientsFetchPackageFile},
		{"VirtualFiles", TestVirtualFiles},
		{"Netascii", TestNetascii},
		{"SourceFailures", TestSourceFailures},
		{"OptionNegotiation", TestOptionNegotiation},
		{"WindowLoss", TestWindowLoss},
		{"BlockNumberRollover", TestBlockNumberRollover},
		{"NoFDLeak", TestNoFDLeak},
		{"ConcurrentClients", TestConcurrentClients},
		{"Lifecycle", TestLifecycle},
		{"DuplicateAckDuringBackoff", TestDuplicateAckDuringBackoff},
		{"QueuedRequestGivenUp", TestQueuedRequestGivenUp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			onLoops = true
			defer func() { onLoops = false }()
			tt.f(t)
		})
	}
}

// TestDirectAndLoops has more transfers at once than DirectTransfers: the
// first ones run directly, the others on the loops, and all arrive whole.
func TestDirectAndLoops(t *testing.T) {
	ts := startServer(t, "", func(s *Server) { s.DirectTransfers = 3 })
	const clients = 12
	var maxDirect, maxLooped atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() { // how many ran where, as the transfers go
		defer close(watched)
		for {
			ts.Server.mu.Lock()
			loops := ts.loops
			ts.Server.mu.Unlock()
			d, l := ts.direct.Load(), int64(0)
			for _, lp := range loops {
				l += int64(lp.load.Load())
			}
			if d > maxDirect.Load() {
				maxDirect.Store(d)
			}
			if l > maxLooped.Load() {
				maxLooped.Store(l)
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Go(func() {
			blksize := fmt.Sprint(512 * (1 + i%3))
			res, err := tftptest.Fetch(netip.Addr{}, ts.addr, "virtual/known", time.Second, 5, "blksize", blksize)
			if err == nil && !bytes.Equal(res.Data, virtual) {
				err = fmt.Errorf("%d bytes, not the file", len(res.Data))
			}
			if err != nil {
				errs <- fmt.Errorf("client %d (blksize %s): %w", i, blksize, err)
			}
		})
	}
	wg.Wait()
	close(stop)
	<-watched
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ts.waitIdle(t, 5*time.Second)
	if d := ts.direct.Load(); d != 0 {
		t.Errorf("%d direct transfers counted after all ended", d)
	}
	if d := maxDirect.Load(); d > 3 {
		t.Errorf("%d direct transfers at once, want at most DirectTransfers (3)", d)
	}
	t.Logf("at most %d direct and %d looped transfers at once", maxDirect.Load(), maxLooped.Load())
	if maxDirect.Load() == 0 || maxLooped.Load() == 0 {
		t.Errorf("want transfers on both paths, saw at most %d direct and %d looped", maxDirect.Load(), maxLooped.Load())
	}
}
