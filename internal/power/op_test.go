package power_test

import (
	"testing"

	"github.com/netbootui/netbootui/internal/power"
)

func TestParseOp(t *testing.T) {
	tests := []struct {
		in   string
		want power.Op
		err  bool
	}{
		{"status", power.OpStatus, false},
		{" ON ", power.OpOn, false},
		{"pxe", power.OpBootdevPXE, false},
		{"bootdev-pxe", power.OpBootdevPXE, false},
		{"deviceid", power.OpDeviceID, false},
		{"", "", true},
		{"power-off", "", true},
		{"all", "", true},
	}
	for _, tc := range tests {
		got, err := power.ParseOp(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseOp(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func FuzzParseOp(f *testing.F) {
	for _, s := range []string{"status", "on", "bootdev-pxe", "PXE", "", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		op, err := power.ParseOp(s)
		if err == nil {
			if again, err := power.ParseOp(string(op)); err != nil || again != op {
				t.Fatalf("%q parsed to %q which does not parse back", s, op)
			}
		}
	})
}
