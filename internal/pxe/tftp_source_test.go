package pxe

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// sourceTestFile is served for any name.
type sourceTestFile struct{ data []byte }

func (f sourceTestFile) OpenTFTP(_ context.Context, name string, _ netip.AddrPort) (TFTPFile, error) {
	return TFTPFile{R: bytes.NewReader(f.data), Size: int64(len(f.data)), Close: func() error { return nil }}, nil
}

// TestTFTPRepliesFromAddressAsked checks that every reply of a transfer comes
// from the address the client sent its request to, also when that is not the
// address the kernel would choose (127.0.0.3 for a client on 127.0.0.1), for a
// listener on that address and for a wildcard listener. pxelinux drops
// replies from any other address.
func TestTFTPRepliesFromAddressAsked(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 200) // 3200 bytes: 7 blocks of 512
	for _, listen := range []string{"127.0.0.3:0", "0.0.0.0:0"} {
		t.Run(listen, func(t *testing.T) {
			srv := &TFTPServer{Addr: listen, Source: sourceTestFile{data}}
			if err := srv.Listen(); err != nil {
				t.Fatal(err)
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
			rrq := append([]byte{0, 1}, "file\x00octet\x00"...)
			if _, err := c.WriteToUDP(rrq, server); err != nil {
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
				ack := []byte{0, 4, byte(block >> 8), byte(block)}
				if _, err := c.WriteToUDP(ack, from); err != nil {
					t.Fatal(err)
				}
				if n-4 < 512 {
					break
				}
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("got %d bytes, want %d", len(got), len(data))
			}
		})
	}
}

// TestTFTPSecondaryAddressWithCurl fetches through curl from a server on a
// secondary loopback address, the way the QEMU pxelinux test reaches it.
func TestTFTPSecondaryAddressWithCurl(t *testing.T) {
	tftpRequireTool(t, "curl")
	data := bytes.Repeat([]byte("x"), 100_000)
	srv := &TFTPServer{Addr: "127.0.0.4:0", Source: sourceTestFile{data}}
	if err := srv.Listen(); err != nil {
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
