package daemon

import (
	"strings"
	"testing"
)

func TestParseBMCAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
		err  bool
	}{
		{in: "10.2.0.7", host: "10.2.0.7"},
		{in: "10.2.0.7:8443", host: "10.2.0.7", port: 8443},
		{in: "bmc-r1-07.mgmt", host: "bmc-r1-07.mgmt"},
		{in: "bmc-r1-07.mgmt:443", host: "bmc-r1-07.mgmt", port: 443},
		{in: "fd00::7", host: "fd00::7"},
		{in: "[fd00::7]:443", host: "fd00::7", port: 443},
		{in: "[FD00:0::7]", err: true},
		{in: "", err: true},
		{in: ":443", err: true},
		{in: "h:0", err: true},
		{in: "h:65536", err: true},
		{in: "h:x", err: true},
		{in: "bmc one", err: true},
		{in: "https://h", err: true},
		{in: "fe80::1%eth0", err: true},
		{in: "h:1:2", err: true},
	} {
		host, port, err := parseBMCAddr(tc.in)
		if tc.err {
			if err == nil || !strings.Contains(err.Error(), "want HOST or HOST:PORT") {
				t.Errorf("%q: %q %d %v, want an error", tc.in, host, port, err)
			}
			continue
		}
		if err != nil || host != tc.host || port != tc.port {
			t.Errorf("%q: %q %d %v, want %q %d", tc.in, host, port, err, tc.host, tc.port)
		}
	}
}

// FuzzParseBMCAddr: an address the API was given either fails or gives a
// host with no blank, slash or bracket and a port in range, and parses
// the same again when written back.
func FuzzParseBMCAddr(f *testing.F) {
	for _, s := range []string{"10.2.0.7", "h:443", "[fd00::7]:443", "fd00::7", "a b", "h:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := parseBMCAddr(s)
		if err != nil {
			return
		}
		if host == "" || strings.ContainsAny(host, " \t\n/[]%") || port < 0 || port > 65535 {
			t.Fatalf("%q: host %q port %d", s, host, port)
		}
		h2, p2, err := parseBMCAddr(host)
		if err != nil || h2 != host || p2 != 0 {
			t.Fatalf("%q: host %q reparsed as %q %d %v", s, host, h2, p2, err)
		}
	})
}
