package tftp

import (
	"strconv"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/tftp/tftptest"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name string
		pkt  []byte
		want request
		err  string
	}{
		{"plain", tftptest.Request(1, "a", "octet"), request{op: 1, name: "a", mode: "octet"}, ""},
		{"write", tftptest.Request(2, "a", "Octet"), request{op: 2, name: "a", mode: "octet"}, ""},
		{"options", tftptest.Request(1, "a", "netascii", "BLKSIZE", "1468", "TSize", "0", "WindowSize", "8"),
			request{op: 1, name: "a", mode: "netascii", blksize: 1468, tsize: true, windowsize: 8}, ""},
		{"first option wins", tftptest.Request(1, "a", "octet", "blksize", "600", "blksize", "1468"), request{op: 1, name: "a", mode: "octet", blksize: 600}, ""},
		{"first invalid option wins", tftptest.Request(1, "a", "octet", "windowsize", "x", "windowsize", "4"), request{op: 1, name: "a", mode: "octet"}, ""},
		{"blksize too small", tftptest.Request(1, "a", "octet", "blksize", "7"), request{op: 1, name: "a", mode: "octet"}, ""},
		{"blksize too big", tftptest.Request(1, "a", "octet", "blksize", "65465"), request{op: 1, name: "a", mode: "octet"}, ""},
		{"windowsize 0", tftptest.Request(1, "a", "octet", "windowsize", "0"), request{op: 1, name: "a", mode: "octet"}, ""},
		{"windowsize too big", tftptest.Request(1, "a", "octet", "windowsize", "65536"), request{op: 1, name: "a", mode: "octet"}, ""},
		{"tsize negative", tftptest.Request(1, "a", "octet", "tsize", "-1"), request{op: 1, name: "a", mode: "octet"}, ""},
		{"padding", append(tftptest.Request(1, "a", "octet"), 0, 0), request{op: 1, name: "a", mode: "octet"}, ""},
		{"empty name", tftptest.Request(1, "", "octet"), request{op: 1, name: "", mode: "octet"}, ""},
		{"not a request", []byte{0, 4, 0, 0}, request{}, errNotRequest.Error()},
		{"short", []byte{0}, request{}, errNotRequest.Error()},
		{"unterminated", []byte("\x00\x01a\x00octet"), request{}, "not NUL-terminated"},
		{"no mode", []byte("\x00\x01a\x00"), request{}, "no transfer mode"},
		{"bad mode", tftptest.Request(1, "a", "mail"), request{}, `mode "mail"`},
		{"dangling option", tftptest.Request(1, "a", "octet", "tsize"), request{}, `option "tsize" has no value`},
		{"too long", tftptest.Request(1, strings.Repeat("a", 600), "octet"), request{}, "longer than 516"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRequest(tt.pkt)
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

func FuzzParseRequest(f *testing.F) {
	f.Add(tftptest.Request(1, "pxelinux.0", "octet", "blksize", "1468", "tsize", "0"))
	f.Add(tftptest.Request(2, "x", "netascii"))
	f.Add([]byte("\x00\x01a\x00octet\x00\x00\x00"))
	f.Add([]byte{0, 4, 0, 1})
	f.Add(tftptest.Request(1, "a", "OCTET", "BlkSize", "65464", "windowsize", "8"))
	f.Fuzz(func(t *testing.T, pkt []byte) {
		r, err := parseRequest(pkt)
		if err != nil {
			return
		}
		if r.op != opRRQ && r.op != opWRQ {
			t.Fatalf("op %d accepted", r.op)
		}
		if r.mode != "octet" && r.mode != "netascii" {
			t.Fatalf("mode %q accepted", r.mode)
		}
		if r.blksize != 0 && (r.blksize < 8 || r.blksize > MaxBlockSize) {
			t.Fatalf("blksize %d accepted", r.blksize)
		}
		if r.windowsize != 0 && (r.windowsize < 1 || r.windowsize > maxWindowSize) {
			t.Fatalf("windowsize %d accepted", r.windowsize)
		}
		if len(r.name) > len(pkt) {
			t.Fatal("name longer than the packet")
		}
		// The OACK acknowledges exactly the options honoured, within the
		// server's limits, and fits a packet.
		for _, lim := range [][2]int{{512, 1}, {1468, 32}, {MaxBlockSize, maxWindowSize}} {
			bs, ws := r.blockSize(lim[0]), r.windowSize(lim[1])
			if bs < minBlockSize || bs > lim[0] || ws < 1 || ws > lim[1] {
				t.Fatalf("negotiated blksize %d, windowsize %d outside the limits %v", bs, ws, lim)
			}
			o := r.oack(lim[0], lim[1], 12345)
			if o == nil {
				if r.blksize >= minBlockSize || r.tsize || r.windowsize > 0 {
					t.Fatalf("no OACK for %+v", r)
				}
				continue
			}
			opts := tftptest.OACK(o)
			if r.blksize >= minBlockSize && opts["blksize"] != strconv.Itoa(bs) {
				t.Fatalf("OACK %v for %+v", opts, r)
			}
			if r.windowsize > 0 && opts["windowsize"] != strconv.Itoa(ws) {
				t.Fatalf("OACK %v for %+v", opts, r)
			}
			if r.tsize != (opts["tsize"] == "12345") || len(o) > 100 {
				t.Fatalf("OACK %q for %+v", o, r)
			}
		}
	})
}
