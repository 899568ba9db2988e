package simnode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/tftp"
)

// mapSource serves files from memory and records who asked.
type mapSource struct {
	mu    sync.Mutex
	files map[string][]byte
	seen  []netip.AddrPort
}

func (m *mapSource) OpenTFTP(_ context.Context, name string, client netip.AddrPort) (tftp.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = append(m.seen, client)
	b, ok := m.files[name]
	if !ok {
		return tftp.File{}, fmt.Errorf("%q: %w", name, pxe.ErrNotFound)
	}
	return tftp.File{R: bytes.NewReader(b), Size: int64(len(b))}, nil
}

// TestTFTPGet fetches files of awkward sizes from netbootui's TFTP server
// (package tftp underneath) speaking from a loopback address of its own.
func TestTFTPGet(t *testing.T) {
	src := &mapSource{files: map[string][]byte{}}
	sizes := []int{0, 1, 1467, 1468, 1469, 2 * 1468, 200 << 10}
	for _, n := range sizes {
		src.files[fmt.Sprintf("f%d", n)] = bytes.Repeat([]byte{byte(n)}, n)
	}
	srv := pxe.NewTFTPServer(src, nil)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	from := netip.MustParseAddr("127.1.0.9")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var buf bytes.Buffer
			got, err := TFTPGet(ctx, from, srv.LocalAddr().String(), fmt.Sprintf("f%d", n), &buf)
			if err != nil || got != int64(n) || !bytes.Equal(buf.Bytes(), src.files[fmt.Sprintf("f%d", n)]) {
				t.Fatalf("got %d bytes (%d kept), err %v", got, buf.Len(), err)
			}
		})
	}
	_, err := TFTPGet(ctx, from, srv.LocalAddr().String(), "missing", &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), `"missing"`) || !strings.Contains(err.Error(), "error 1") {
		t.Fatalf("missing file: %v", err)
	}
	src.mu.Lock()
	for _, c := range src.seen {
		if c.Addr() != from {
			t.Errorf("server saw the client at %s, want %s", c, from)
		}
	}
	src.mu.Unlock()

	// Nobody answers: the client gives up when ctx ends, naming the file.
	short, c2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer c2()
	_, err = TFTPGet(short, from, "127.0.0.1:9", "nbp", &bytes.Buffer{})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"nbp"`) {
		t.Fatalf("silent server: %v", err)
	}
}

func TestParsePacket(t *testing.T) {
	tests := []struct {
		name   string
		pkt    []byte
		want   Packet
		errHas string
	}{
		{"data", []byte{0, 3, 0, 7, 'a', 'b'}, Packet{Op: opDATA, Block: 7, Data: []byte("ab")}, ""},
		{"oack", []byte("\x00\x06BLKSIZE\x001468\x00tsize\x0010\x00"), Packet{Op: opOACK, Options: map[string]string{"blksize": "1468", "tsize": "10"}}, ""},
		{"error", []byte("\x00\x05\x00\x01file not found\x00"), Packet{Op: opERROR, Code: 1, Message: "file not found"}, ""},
		{"short", []byte{0}, Packet{}, "1 bytes"},
		{"data without block", []byte{0, 3, 1}, Packet{}, "no block number"},
		{"error unterminated", []byte("\x00\x05\x00\x01oops"), Packet{}, "malformed"},
		{"oack odd", []byte("\x00\x06blksize\x00"), Packet{}, "without a value"},
		{"rrq", []byte("\x00\x01f\x00octet\x00"), Packet{}, "opcode 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePacket(tc.pkt)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil || p.Op != tc.want.Op || p.Block != tc.want.Block || !bytes.Equal(p.Data, tc.want.Data) ||
				p.Code != tc.want.Code || p.Message != tc.want.Message || fmt.Sprint(p.Options) != fmt.Sprint(tc.want.Options) {
				t.Fatalf("got %+v %v, want %+v", p, err, tc.want)
			}
		})
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add([]byte{0, 3, 0, 1, 'x'})
	f.Add([]byte("\x00\x06blksize\x001468\x00"))
	f.Add([]byte("\x00\x05\x00\x02denied\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err != nil {
			return
		}
		switch p.Op {
		case opDATA, opACK, opERROR, opOACK:
		default:
			t.Fatalf("accepted opcode %d", p.Op)
		}
	})
}
