package redfish_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/redfish"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
)

// TestVendors runs every power operation and the boot override against each
// vendor variant and checks the Reset types sent follow what the system
// advertises.
func TestVendors(t *testing.T) {
	for _, tc := range []struct {
		vendor    redfishsim.Vendor
		cycle     []string // Reset types a cycle of a node that is on sends
		reset     []string
		httpBoot  bool
		wantMaker string
	}{
		{redfishsim.Dell, []string{"PowerCycle"}, []string{"ForceRestart"}, true, "Dell Inc."},
		{redfishsim.HPE, []string{"ForceOff", "On"}, []string{"ForceRestart"}, true, "HPE"},
		{redfishsim.Lenovo, []string{"ForceOff", "On"}, []string{"ForceRestart"}, false, "Lenovo"},
		{redfishsim.Supermicro, []string{"ForceOff", "On"}, []string{"ForceRestart"}, true, "Supermicro"},
	} {
		t.Run(string(tc.vendor), func(t *testing.T) {
			t.Parallel()
			sim, ca := startSim(t, redfishsim.Options{Vendor: tc.vendor, MACs: []string{"52:54:00:aa:bb:01", "52:54:00:aa:bb:02"}})
			s := openSeam(t, 5*time.Second)
			tg := target("n1", sim, 0, ca)
			ctx := context.Background()
			sysID := strings.TrimPrefix(sim.SystemPath(0), "/redfish/v1/Systems/")
			do := func(op power.Op) power.Result {
				t.Helper()
				r := s.Do(ctx, tg, op)
				if r.Err != nil {
					t.Fatalf("%s: %v", op, r.Err)
				}
				return r
			}
			if r := do(power.OpStatus); r.Power != "off" {
				t.Fatalf("status = %q, want off", r.Power)
			}
			do(power.OpOn)
			if !sim.Power(0) {
				t.Fatal("on: the system is off")
			}
			if r := do(power.OpStatus); r.Power != "on" {
				t.Fatalf("status = %q, want on", r.Power)
			}
			if r := do(power.OpOn); !strings.Contains(r.Detail, "already on") {
				t.Fatalf("on when on: %q", r.Detail)
			}
			n := len(sim.Resets())
			do(power.OpCycle)
			if got := trimIDs(sim.Resets()[n:], sysID); !slices.Equal(got, tc.cycle) {
				t.Fatalf("cycle sent %v, want %v", got, tc.cycle)
			}
			n = len(sim.Resets())
			do(power.OpReset)
			if got := trimIDs(sim.Resets()[n:], sysID); !slices.Equal(got, tc.reset) {
				t.Fatalf("reset sent %v, want %v", got, tc.reset)
			}
			do(power.OpSoft)
			if sim.Power(0) {
				t.Fatal("soft: the system is on")
			}
			if got := sim.Resets(); got[len(got)-1] != sysID+" GracefulShutdown" {
				t.Fatalf("soft sent %v", got[len(got)-1])
			}
			do(power.OpOff) // already off: nothing sent
			if got := sim.Resets(); got[len(got)-1] != sysID+" GracefulShutdown" {
				t.Fatalf("off when off sent %v", got[len(got)-1])
			}
			// A cycle of a node that is off powers it on.
			do(power.OpCycle)
			if !sim.Power(0) {
				t.Fatal("cycle of an off node left it off")
			}

			for _, efi := range []bool{false, true} {
				tg.EFI = efi
				r := do(power.OpBootdevPXE)
				en, tgt, mode, _ := sim.Boot(0)
				wantMode := map[bool]string{false: "Legacy", true: "UEFI"}[efi]
				if en != "Once" || tgt != "Pxe" || mode != wantMode {
					t.Fatalf("boot override efi=%v: %s %s %s", efi, en, tgt, mode)
				}
				if !strings.Contains(r.Detail, "Pxe, Once, "+wantMode) {
					t.Fatalf("detail %q", r.Detail)
				}
			}
			// The override is used up by the next boot.
			do(power.OpReset)
			if en, tgt, _, _ := sim.Boot(0); en != "Disabled" || tgt != "None" {
				t.Fatalf("after a reset the override is %s %s", en, tgt)
			}

			c := redfish.New(redfish.Options{CallTimeout: 5 * time.Second})
			defer c.Close()
			const url = "http://10.0.2.2:8080/boot/efi.ipxe"
			_, err := c.BootOnce(ctx, tg, power.BootDevice{Kind: power.BootHTTP, EFI: true, URL: url})
			if tc.httpBoot {
				if err != nil {
					t.Fatalf("http boot: %v", err)
				}
				if en, tgt, mode, uri := sim.Boot(0); en != "Once" || tgt != "UefiHttp" || mode != "UEFI" || uri != url {
					t.Fatalf("http boot override: %s %s %s %s", en, tgt, mode, uri)
				}
			} else if !errors.Is(err, power.ErrUnsupported) || !strings.Contains(err.Error(), "UefiHttp") {
				t.Fatalf("http boot on a system without UefiHttp: %v", err)
			}

			f, err := c.Facts(ctx, tg)
			if err != nil {
				t.Fatal(err)
			}
			if f.Manufacturer != tc.wantMaker || f.Model == "" || f.Serial == "" || f.Firmware == "" || f.Power != "on" {
				t.Fatalf("facts %+v", f)
			}
			if !slices.Equal(f.MACs, []string{"52:54:00:aa:bb:01", "52:54:00:aa:bb:02"}) {
				t.Fatalf("MACs %v", f.MACs)
			}
			// deviceid (the API's node BMC view) shows them too.
			if r := s.Do(ctx, tg, power.OpDeviceID); r.Err != nil || !strings.Contains(r.Detail, tc.wantMaker) ||
				!strings.HasSuffix(r.Detail, "NICs 52:54:00:aa:bb:01 52:54:00:aa:bb:02") {
				t.Fatalf("deviceid %+v", r)
			}
			if sim.Logins() != 2 {
				t.Fatalf("%d logins, want 2: one session for the seam's backend, one for this client", sim.Logins())
			}
		})
	}
}

func trimIDs(resets []string, id string) []string {
	out := make([]string, len(resets))
	for i, r := range resets {
		out[i] = strings.TrimPrefix(r, id+" ")
	}
	return out
}

// TestSessionReuse: one session serves every call; a session the BMC
// forgot (401) is made again once, and Close deletes it.
func TestSessionReuse(t *testing.T) {
	sim, ca := startSim(t, redfishsim.Options{Vendor: redfishsim.HPE})
	c := redfish.New(redfish.Options{CallTimeout: 5 * time.Second})
	tg := target("n1", sim, 0, ca)
	ctx := context.Background()
	for range 5 {
		if _, err := c.Power(ctx, tg, power.OpStatus); err != nil {
			t.Fatal(err)
		}
	}
	if sim.Logins() != 1 || sim.Sessions() != 1 {
		t.Fatalf("logins %d sessions %d after 5 calls, want 1 1", sim.Logins(), sim.Sessions())
	}
	sim.ExpireSessions()
	if _, err := c.Power(ctx, tg, power.OpStatus); err != nil {
		t.Fatalf("after the BMC forgot the session: %v", err)
	}
	if sim.Logins() != 2 {
		t.Fatalf("logins %d, want 2", sim.Logins())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if sim.Sessions() != 0 {
		t.Fatalf("%d sessions left after Close", sim.Sessions())
	}
	if _, err := c.Power(ctx, tg, power.OpStatus); !errors.Is(err, power.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// TestAsyncTask: a Reset and a boot override PATCH answered 202 with a
// task monitor are polled to their end.
func TestAsyncTask(t *testing.T) {
	sim, ca := startSim(t, redfishsim.Options{Vendor: redfishsim.Supermicro, AsyncReset: true, TaskTime: 300 * time.Millisecond})
	s := openSeam(t, 5*time.Second)
	start := time.Now()
	r := s.Do(context.Background(), target("n1", sim, 0, ca), power.OpOn)
	if r.Err != nil || r.Power != "on" || !sim.Power(0) {
		t.Fatalf("async on: %+v", r)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("returned after %s, before the task ended", d)
	}
	// The boot override PATCH answered 202 too.
	start = time.Now()
	r = s.Do(context.Background(), target("n1", sim, 0, ca), power.OpBootdevPXE)
	if en, tg, _, _ := sim.Boot(0); r.Err != nil || en != "Once" || tg != "Pxe" {
		t.Fatalf("async boot override: %+v (%s %s)", r, en, tg)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("boot override returned after %s, before the task ended", d)
	}
}

// TestFaults: each fault fails alone, within the deadline, with an error of
// the right kind that names the BMC and not the password, while a healthy
// BMC in the same bulk call succeeds.
func TestFaults(t *testing.T) {
	const deadline = 2 * time.Second
	good, ca := startSim(t, redfishsim.Options{Vendor: redfishsim.Dell})
	otherCA, _ := startSim(t, redfishsim.Options{Vendor: redfishsim.Dell}) // its own CA
	busy, _ := startSim(t, redfishsim.Options{Vendor: redfishsim.Lenovo, CA: good.CA()})
	busy.SetFaults(redfishsim.Faults{Unavailable: true, RetryAfter: 120})
	hole, _ := startSim(t, redfishsim.Options{Vendor: redfishsim.HPE, CA: good.CA()})
	hole.SetFaults(redfishsim.Faults{BlackHole: true})
	stuck, _ := startSim(t, redfishsim.Options{Vendor: redfishsim.Supermicro, CA: good.CA()})
	stuck.SetFaults(redfishsim.Faults{TaskStuck: true})
	drop, _ := startSim(t, redfishsim.Options{Vendor: redfishsim.Dell, CA: good.CA()})
	drop.SetFaults(redfishsim.Faults{DropBoot: true})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	wrongPW := target("wrongpw", good, 0, ca)
	wrongPW.Password = power.NewSecret("not-" + testPassword)
	closed := target("closed", good, 0, ca)
	closed.Port = closedPort
	noCA := target("noca", good, 0, ca)
	noCA.Options = redfish.BMCOptions{System: good.SystemPath(0), CA: ca + ".missing"}
	for _, tc := range []struct {
		tg   power.Target
		op   power.Op
		kind error
		text string
	}{
		{target("good", good, 0, ca), power.OpStatus, nil, ""},
		{wrongPW, power.OpStatus, power.ErrAuth, "authentication failed for user root"},
		{closed, power.OpStatus, power.ErrUnreachable, "connection refused"},
		{target("tls", otherCA, 0, ca), power.OpStatus, power.ErrNegotiation, "TLS certificate not trusted"},
		{noCA, power.OpStatus, power.ErrNegotiation, "cannot read CA file"},
		{target("busy", busy, 0, ca), power.OpStatus, power.ErrProtocol, "retry after 2m0s"},
		{target("hole", hole, 0, ca), power.OpStatus, power.ErrTimeout, "no answer within 2s"},
		{target("stuck", stuck, 0, ca), power.OpOn, power.ErrTimeout, "did not finish within 2s"},
		{target("drop", drop, 0, ca), power.OpBootdevPXE, power.ErrRefused, "boot override not kept"},
	} {
		t.Run(tc.tg.Node, func(t *testing.T) {
			t.Parallel()
			s := openSeam(t, deadline)
			start := time.Now()
			res, err := s.Bulk(context.Background(), []power.Target{tc.tg, target("healthy", good, 0, ca)}, tc.op, power.BulkOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > deadline+time.Second {
				t.Fatalf("took %s, deadline %s", d, deadline)
			}
			if res[1].Err != nil {
				t.Fatalf("the healthy BMC failed beside %s: %v", tc.tg.Node, res[1].Err)
			}
			err = res[0].Err
			if tc.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want kind %v", err, tc.kind)
			}
			addr := net.JoinHostPort(tc.tg.Host, fmt.Sprint(tc.tg.Port))
			if !strings.Contains(err.Error(), "BMC "+addr) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q: want it to name BMC %s and say %q", err, addr, tc.text)
			}
			for _, where := range []string{err.Error(), fmt.Sprintf("%+v %#v", res[0], res[0]), s.Log.String()} {
				if strings.Contains(where, testPassword) {
					t.Fatalf("the password leaked: %s", where)
				}
			}
			// A BMC that timed out is skipped by the seam's breaker, as
			// an IPMI one is: the next call fails at once.
			if errors.Is(err, power.ErrTimeout) {
				if s.BreakerOpen(tc.tg) <= 0 {
					t.Fatalf("breaker closed after %v", err)
				}
				if r := s.Do(context.Background(), tc.tg, power.OpStatus); !errors.Is(r.Err, power.ErrCircuitOpen) || !strings.Contains(r.Err.Error(), "BMC "+addr) {
					t.Fatalf("call after the timeout: %v", r.Err)
				}
			}
		})
	}
}

// TestBusyRetried: a 503 whose Retry-After fits in the deadline is retried.
func TestBusyRetried(t *testing.T) {
	sim, ca := startSim(t, redfishsim.Options{})
	sim.SetFaults(redfishsim.Faults{Unavailable: true, RetryAfter: 1})
	go func() {
		time.Sleep(500 * time.Millisecond)
		sim.SetFaults(redfishsim.Faults{})
	}()
	s := openSeam(t, 5*time.Second)
	if r := s.Do(context.Background(), target("n1", sim, 0, ca), power.OpStatus); r.Err != nil {
		t.Fatal(r.Err)
	}
}

// TestInsecure: insecure: true talks to a BMC whose CA is not known; the
// system path defaults to the first system.
func TestInsecure(t *testing.T) {
	sim, _ := startSim(t, redfishsim.Options{Vendor: redfishsim.HPE, Systems: 2})
	tg := target("n1", sim, 0, "")
	tg.Options = redfish.BMCOptions{Insecure: true}
	s := openSeam(t, 5*time.Second)
	if r := s.Do(context.Background(), tg, power.OpOn); r.Err != nil {
		t.Fatal(r.Err)
	}
	if !sim.Power(0) || sim.Power(1) {
		t.Fatalf("power %v %v, want the first system on", sim.Power(0), sim.Power(1))
	}
}

// TestNoConsole: the seam's no-console error names the alternative.
func TestNoConsole(t *testing.T) {
	sim, ca := startSim(t, redfishsim.Options{})
	s := openSeam(t, 5*time.Second)
	tg := target("n1", sim, 0, ca)
	tg.Options = redfish.BMCOptions{CA: ca, IPMISOL: true}
	err := s.Console(context.Background(), tg, strings.NewReader(""), nil, power.ConsoleOptions{})
	if !errors.Is(err, power.ErrNoConsole) || !strings.Contains(err.Error(), "IPMI serial-over-LAN") {
		t.Fatalf("console: %v", err)
	}
}

// TestRateLimit: the seam's per-BMC rate limit holds for Redfish BMCs:
// calls to one BMC start at least MinInterval apart (a lower bound only:
// a loaded machine makes them slower, never faster).
func TestRateLimit(t *testing.T) {
	const gap = 300 * time.Millisecond
	sim, ca := startSim(t, redfishsim.Options{Vendor: redfishsim.Dell})
	reg, err := power.NewRegistry(redfish.Protocol(redfish.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	s := power.New(power.Config{CallTimeout: 5 * time.Second, MinInterval: gap}, reg)
	defer s.Close()
	start := time.Now()
	for i := range 3 {
		if r := s.Do(context.Background(), target("n1", sim, 0, ca), power.OpStatus); r.Err != nil {
			t.Fatalf("call %d: %v", i, r.Err)
		}
	}
	if d := time.Since(start); d < 2*gap {
		t.Fatalf("three calls to one BMC took %s, want at least %s", d, 2*gap)
	}
}

// TestHTTPBootOption: with bmc.redfish.http_boot the one-time boot of a
// UEFI node is UEFI HTTP boot from its boot URL, read back; a system that
// does not offer UefiHttp, or a BIOS node, is refused with why.
func TestHTTPBootOption(t *testing.T) {
	const url = "http://10.0.2.2:8080/loaders/ipxe.efi"
	for _, tc := range []struct {
		vendor redfishsim.Vendor
		efi    bool
		kind   error
		text   string
	}{
		{vendor: redfishsim.Dell, efi: true},
		{vendor: redfishsim.HPE, efi: true},
		{vendor: redfishsim.Supermicro, efi: true},
		{vendor: redfishsim.Lenovo, efi: true, kind: power.ErrUnsupported, text: "the system offers no boot override to UefiHttp (it allows "},
		{vendor: redfishsim.Dell, efi: false, kind: power.ErrUnsupported, text: "needs a UEFI node and node n1 is not one"},
	} {
		t.Run(fmt.Sprintf("%s efi=%v", tc.vendor, tc.efi), func(t *testing.T) {
			sim, ca := startSim(t, redfishsim.Options{Vendor: tc.vendor})
			tg := target("n1", sim, 0, ca)
			tg.Options = redfish.BMCOptions{System: sim.SystemPath(0), CA: ca, HTTPBoot: true}
			tg.EFI, tg.BootURL = tc.efi, url
			r := openSeam(t, 5*time.Second).Do(context.Background(), tg, power.OpBootdevPXE)
			en, tgt, mode, uri := sim.Boot(0)
			if tc.kind != nil {
				if !errors.Is(r.Err, tc.kind) || !strings.Contains(r.Err.Error(), tc.text) || en != "Disabled" {
					t.Fatalf("%v (override %s %s), want %v %q", r.Err, en, tgt, tc.kind, tc.text)
				}
				return
			}
			if r.Err != nil || en != "Once" || tgt != "UefiHttp" || mode != "UEFI" || uri != url || !strings.HasSuffix(r.Detail, url) {
				t.Fatalf("%+v: override %s %s %s %s", r, en, tgt, mode, uri)
			}
		})
	}
}
