package redfish_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stmcginnis/gofish/schemas"

	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/redfish"
)

// TestPlan: power operations map onto the Reset types a system offers.
func TestPlan(t *testing.T) {
	rt := func(s ...string) []schemas.ResetType {
		out := make([]schemas.ResetType, len(s))
		for i, x := range s {
			out[i] = schemas.ResetType(x)
		}
		return out
	}
	dell := rt("On", "ForceOff", "ForceRestart", "GracefulShutdown", "PowerCycle")
	ilo := rt("On", "ForceOff", "GracefulShutdown", "ForceRestart", "PushPowerButton")
	forceOnly := rt("ForceOn", "ForceOff")
	restartOnly := rt("ForceRestart")
	for _, tc := range []struct {
		name    string
		op      power.Op
		allowed []schemas.ResetType
		on      bool
		want    []schemas.ResetType
		err     string
	}{
		{"on", power.OpOn, dell, false, rt("On"), ""},
		{"on when on", power.OpOn, dell, true, nil, ""},
		{"on by ForceOn", power.OpOn, forceOnly, false, rt("ForceOn"), ""},
		{"off", power.OpOff, dell, true, rt("ForceOff"), ""},
		{"off when off", power.OpOff, dell, false, nil, ""},
		{"soft", power.OpSoft, ilo, true, rt("GracefulShutdown"), ""},
		{"soft not offered", power.OpSoft, forceOnly, true, nil, "no Reset type for soft"},
		{"cycle by PowerCycle", power.OpCycle, dell, true, rt("PowerCycle"), ""},
		{"cycle without PowerCycle", power.OpCycle, ilo, true, rt("ForceOff", "On"), ""},
		{"cycle of an off node", power.OpCycle, ilo, false, rt("On"), ""},
		{"cycle by restart only", power.OpCycle, restartOnly, true, rt("ForceRestart"), ""},
		{"reset", power.OpReset, dell, true, rt("ForceRestart"), ""},
		{"reset without restart", power.OpReset, forceOnly, true, rt("ForceOff", "ForceOn"), ""},
		{"on not offered", power.OpOn, restartOnly, false, nil, "it allows ForceRestart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, detail, err := redfish.Plan(tc.op, tc.allowed, tc.on)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) || detail == "" {
				t.Fatalf("plan %v %q %v, want %v", got, detail, err, tc.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "5": 5 * time.Second, " 120 ": 2 * time.Minute, "-3": 0, "soon": 0, "1.5": 0,
		"Thu, 03 Dec 2026 10:00:30 GMT": 30 * time.Second, "Thu, 03 Dec 2026 09:00:00 GMT": 0,
	} {
		if got := redfish.ParseRetryAfter(in, now); got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
}

func TestCheckSystemPath(t *testing.T) {
	for in, ok := range map[string]bool{
		"/redfish/v1/Systems/1": true, "/redfish/v1/Systems/System.Embedded.1": true,
		"/redfish/v1/Systems/": false, "/redfish/v1/Systems/1/Bios": false, "Systems/1": false,
		"/redfish/v1/Systems/..": false, "/redfish/v1/Systems/a?b": false, "/redfish/v1/Systems/a%2f": false,
	} {
		if err := redfish.CheckSystemPath(in); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// FuzzRetryAfter: any header value gives a wait of zero or more, never a
// panic.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "5", "Thu, 03 Dec 2026 10:00:30 GMT", "99999999999999999999", "-1"} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		if d := redfish.ParseRetryAfter(s, now); d < 0 {
			t.Fatalf("%q: %v", s, d)
		}
	})
}

// FuzzSystemPath: an accepted path is /redfish/v1/Systems/ and one clean
// segment.
func FuzzSystemPath(f *testing.F) {
	for _, s := range []string{"/redfish/v1/Systems/1", "/redfish/v1/Systems/../x", "", "/redfish/v1/Systems/a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if redfish.CheckSystemPath(s) != nil {
			return
		}
		id := strings.TrimPrefix(s, "/redfish/v1/Systems/")
		if id == s || id == "" || strings.ContainsAny(id, "/?#%") || id == ".." {
			t.Fatalf("accepted %q", s)
		}
	})
}
