package ipmi_test

import (
	"os"
	"testing"

	"github.com/netbootui/netbootui/internal/ipmi"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParsePong(t *testing.T) {
	good := []byte{0x06, 0, 0xff, 0x06, 0, 0, 0x11, 0xbe, 0x40, 7, 0, 0x10,
		0, 0, 0x11, 0xbe, 0, 0, 0, 0, 0x81, 0, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name string
		b    []byte
		tag  byte
		ipmi bool
		err  bool
	}{
		{"pong", good, 7, true, false},
		{"short", good[:11], 0, false, true},
		{"ping", append(append([]byte{}, good[:8]...), append([]byte{0x80}, good[9:]...)...), 0, false, true},
		{"data cut", good[:20], 0, false, true},
		{"bad version", append([]byte{0x05}, good[1:]...), 0, false, true},
	}
	for _, tc := range tests {
		p, err := ipmi.ParsePong(tc.b)
		if (err != nil) != tc.err || (err == nil && (p.Tag != tc.tag || p.IPMI != tc.ipmi)) {
			t.Errorf("%s: %+v, %v", tc.name, p, err)
		}
	}
}

func FuzzParsePong(f *testing.F) {
	f.Add([]byte{0x06, 0, 0xff, 0x06, 0, 0, 0x11, 0xbe, 0x40, 7, 0, 0x10, 0, 0, 0x11, 0xbe, 0, 0, 0, 0, 0x81, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ipmi.ParsePong(b)
		if err == nil && (len(b) < 12 || b[8] != 0x40 || p.Tag != b[9]) {
			t.Fatalf("accepted %x as %+v", b, p)
		}
	})
}
