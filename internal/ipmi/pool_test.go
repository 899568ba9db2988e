package ipmi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/power"
)

func TestOpsInProcess(t *testing.T) {
	b := startBMC(t, "127.0.0.1:0", nil)
	lb := &logBuffer{}
	p := newPool(t, power.Config{CallTimeout: 3 * time.Second, Logger: newLogger(lb)})
	ctx := context.Background()
	tests := []struct {
		op     power.Op
		efi    bool
		power  string
		detail string
		check  func(t *testing.T)
	}{
		{op: power.OpStatus, power: "off", detail: "power off"},
		{op: power.OpOn, power: "on", check: func(t *testing.T) {
			if on, _ := b.chassis.PowerState(ctx); !on {
				t.Error("chassis still off")
			}
		}},
		{op: power.OpStatus, power: "on", detail: "power on"},
		{op: power.OpCycle, detail: "power cycle requested", check: func(t *testing.T) {
			if c, _, _ := b.acts.get(); c != 1 {
				t.Errorf("power cycles = %d, want 1", c)
			}
		}},
		{op: power.OpReset, detail: "reset requested", check: func(t *testing.T) {
			if _, r, _ := b.acts.get(); r != 1 {
				t.Errorf("cold resets = %d, want 1", r)
			}
		}},
		{op: power.OpSoft, detail: "ACPI shutdown requested", check: func(t *testing.T) {
			if _, _, s := b.acts.get(); s != 1 {
				t.Errorf("soft shutdowns = %d, want 1", s)
			}
		}},
		{op: power.OpOff, power: "off", check: func(t *testing.T) {
			if on, _ := b.chassis.PowerState(ctx); on {
				t.Error("chassis still on")
			}
		}},
		{op: power.OpCycle, power: "on", detail: "was off: power on requested", check: func(t *testing.T) {
			if on, _ := b.chassis.PowerState(ctx); !on {
				t.Error("cycle of an off node did not power it on")
			}
		}},
		{op: power.OpBootdevPXE, detail: "next boot: pxe, once, legacy, valid", check: func(t *testing.T) {
			f, _ := b.chassis.GetBootFlags(ctx)
			if f == nil || f.BootDeviceSelector != types.BootDeviceSelectorForcePXE || f.Persist || f.BIOSBootType != types.BIOSBootTypeLegacy {
				t.Errorf("boot flags on the BMC: %+v", f)
			}
		}},
		{op: power.OpBootdevPXE, efi: true, detail: "next boot: pxe, once, efi, valid", check: func(t *testing.T) {
			if f, _ := b.chassis.GetBootFlags(ctx); f == nil || f.BIOSBootType != types.BIOSBootTypeEFI {
				t.Errorf("boot flags on the BMC: %+v", f)
			}
		}},
		{op: power.OpBootflags, detail: "pxe, once, efi, valid"},
		{op: power.OpDeviceID, detail: "device 32 rev 1, firmware 1.02, IPMI 2.0, manufacturer 343, product 7"},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d-%s", i, tc.op), func(t *testing.T) {
			tg := b.target("n01")
			tg.EFI = tc.efi
			r := p.Do(ctx, tg, tc.op)
			if r.Err != nil {
				t.Fatalf("%s: %v", tc.op, r.Err)
			}
			if r.Node != "n01" || r.BMC != b.addr.String() || r.Op != tc.op {
				t.Errorf("result names %q %q %q", r.Node, r.BMC, r.Op)
			}
			if r.Power != tc.power {
				t.Errorf("power = %q, want %q", r.Power, tc.power)
			}
			if tc.detail != "" && r.Detail != tc.detail {
				t.Errorf("detail = %q, want %q", r.Detail, tc.detail)
			}
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
	if strings.Contains(lb.String(), testPassword) {
		t.Fatal("password in the log")
	}
}

func TestErrorMapping(t *testing.T) {
	b := startBMC(t, "127.0.0.1:0", nil)
	sink := udpSink(t)
	closed := closedPort(t)
	lb := &logBuffer{}
	p := newPool(t, power.Config{CallTimeout: 800 * time.Millisecond, Logger: newLogger(lb)})
	wrong := b.target("n02")
	wrong.Password = power.NewSecret("Wr0ng-passw0rd")
	tests := []struct {
		name string
		tg   power.Target
		kind error
		text string
		max  time.Duration
	}{
		{"wrong password", wrong, ipmi.ErrAuth, fmt.Sprintf("BMC %s: authentication failed for user admin", b.addr), time.Second},
		{"wrong user", tgt("n03", b.addr.Port, "nobody", testPassword), ipmi.ErrAuth,
			fmt.Sprintf("BMC %s: authentication failed for user nobody", b.addr), time.Second},
		{"udp sink", tgt("n04", sink.Port, testUser, testPassword), ipmi.ErrTimeout,
			fmt.Sprintf("BMC %s: no answer within 800ms", sink), 1500 * time.Millisecond},
		{"port closed", tgt("n05", closed, testUser, testPassword), ipmi.ErrUnreachable,
			fmt.Sprintf("BMC 127.0.0.1:%d: connection refused", closed), time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := p.Do(context.Background(), tc.tg, power.OpStatus)
			if !errors.Is(r.Err, tc.kind) {
				t.Fatalf("err = %v, want kind %v", r.Err, tc.kind)
			}
			if r.Err.Error() != tc.text {
				t.Errorf("text = %q, want %q", r.Err.Error(), tc.text)
			}
			if r.Duration > tc.max {
				t.Errorf("took %v, want at most %v", r.Duration, tc.max)
			}
			js, _ := json.Marshal(r)
			for _, s := range []string{r.Err.Error(), string(js), fmt.Sprintf("%v %+v %#v", tc.tg, tc.tg, tc.tg)} {
				if strings.Contains(s, tc.tg.Password.Reveal()) {
					t.Errorf("password in %q", s)
				}
			}
		})
	}
	if log := lb.String(); strings.Contains(log, testPassword) || strings.Contains(log, "Wr0ng-passw0rd") {
		t.Fatalf("password in the log:\n%s", log)
	}
	if !strings.Contains(lb.String(), "authentication failed for user admin") {
		t.Fatalf("log lacks the failure:\n%s", lb.String())
	}
}

func TestBreaker(t *testing.T) {
	sink := udpSink(t)
	p := newPool(t, power.Config{CallTimeout: 300 * time.Millisecond, BreakerCooldown: 1500 * time.Millisecond})
	tg := tgt("n01", sink.Port, testUser, testPassword)
	r := p.Do(context.Background(), tg, power.OpStatus)
	if !errors.Is(r.Err, ipmi.ErrTimeout) {
		t.Fatalf("first call: %v", r.Err)
	}
	r = p.Do(context.Background(), tg, power.OpOn)
	if !errors.Is(r.Err, ipmi.ErrCircuitOpen) || r.Duration > 50*time.Millisecond {
		t.Fatalf("second call: %v in %v, want a fast circuit-open error", r.Err, r.Duration)
	}
	want := fmt.Sprintf("BMC %s: circuit open after a timeout, retry in 2s", sink)
	if r.Err.Error() != want {
		t.Errorf("text %q, want %q", r.Err.Error(), want)
	}
	if w := p.BreakerOpen(tg); w <= 0 || w > 1500*time.Millisecond {
		t.Errorf("BreakerOpen = %v", w)
	}
	time.Sleep(1600 * time.Millisecond)
	if r = p.Do(context.Background(), tg, power.OpStatus); !errors.Is(r.Err, ipmi.ErrTimeout) {
		t.Fatalf("after the cool-down the BMC is asked again: %v", r.Err)
	}
}

func TestBulkConcurrencyLimit(t *testing.T) {
	m := &meter{delay: 40 * time.Millisecond}
	var targets []power.Target
	for i := range 16 {
		targets = append(targets, startBMC(t, "127.0.0.1:0", m).target(fmt.Sprintf("n%02d", i)))
	}
	p := newPool(t, power.Config{CallTimeout: 5 * time.Second})
	for _, conc := range []int{1, 4} {
		m.max.Store(0)
		var mu sync.Mutex
		seen := map[string]bool{}
		res, err := p.Bulk(context.Background(), targets, power.OpStatus, power.BulkOptions{Concurrency: conc, OnResult: func(r power.Result) {
			mu.Lock()
			seen[r.Node] = true
			mu.Unlock()
		}})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil || r.Power != "off" || r.Node != targets[i].Node {
				t.Fatalf("result %d: %+v", i, r)
			}
		}
		if len(seen) != len(targets) {
			t.Errorf("progress saw %d of %d", len(seen), len(targets))
		}
		if got := m.max.Load(); got > int32(conc) || (conc > 1 && got < 2) {
			t.Errorf("concurrency %d: max in flight at the BMCs %d", conc, got)
		}
	}
}

func TestRateLimit(t *testing.T) {
	m := &meter{}
	b := startBMC(t, "127.0.0.1:0", m)
	tests := []struct {
		interval time.Duration
		min      time.Duration
	}{
		{interval: 150 * time.Millisecond, min: 140 * time.Millisecond},
	}
	for _, tc := range tests {
		p := newPool(t, power.Config{MinInterval: tc.interval})
		m.mu.Lock()
		m.reads = nil
		m.mu.Unlock()
		// Three nodes behind one BMC (a multi-node chassis): one bulk.
		tg := []power.Target{b.target("a"), b.target("b"), b.target("c")}
		res, err := p.Bulk(context.Background(), tg, power.OpStatus, power.BulkOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		ts := m.times()
		if len(ts) != 3 {
			t.Fatalf("%d reads", len(ts))
		}
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d < tc.min {
				t.Errorf("calls %d and %d to one BMC %v apart, want >= %v", i-1, i, d, tc.min)
			}
		}
	}
}

func TestEmptySelectionAndBadOp(t *testing.T) {
	p := newPool(t, power.Config{})
	if _, err := p.Bulk(context.Background(), nil, power.OpCycle, power.BulkOptions{}); !errors.Is(err, power.ErrEmptySelection) {
		t.Fatalf("empty: %v", err)
	}
	if _, err := p.Bulk(context.Background(), []power.Target{{Node: "n", Protocol: ipmi.Name, Host: "127.0.0.1"}}, "explode", power.BulkOptions{}); !errors.Is(err, power.ErrBadOp) {
		t.Fatalf("bad op: %v", err)
	}
	r := p.Do(context.Background(), power.Target{Node: "n9", Protocol: ipmi.Name}, power.OpStatus)
	if r.Err == nil || !strings.Contains(r.Err.Error(), "node n9") {
		t.Fatalf("no host: %v", r.Err)
	}
}

func TestReconnectAfterBMCRestart(t *testing.T) {
	b := startBMC(t, "127.0.0.1:0", nil)
	p := newPool(t, power.Config{CallTimeout: 2 * time.Second})
	tg := b.target("n01")
	if r := p.Do(context.Background(), tg, power.OpOn); r.Err != nil {
		t.Fatal(r.Err)
	}
	b.stop()
	b2 := startBMC(t, b.addr.String(), nil) // same port, no sessions
	r := p.Do(context.Background(), tg, power.OpStatus)
	if r.Err != nil {
		t.Fatalf("after the restart: %v", r.Err)
	}
	if r.Power != "off" || r.Duration > 2*time.Second {
		t.Fatalf("power %q in %v (the new BMC starts off)", r.Power, r.Duration)
	}
	_ = b2
}

func TestCloseTwiceAndAfterClose(t *testing.T) {
	b := startBMC(t, "127.0.0.1:0", nil)
	p := openSeam(t, power.Config{})
	if r := p.Do(context.Background(), b.target("n1"), power.OpStatus); r.Err != nil {
		t.Fatal(r.Err)
	}
	stopped := p.Poll(context.Background(), func() []power.Target { return []power.Target{b.target("n1")} }, 50*time.Millisecond, 2, func(power.Result) {})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		t.Fatal("poller still running after Close")
	}
	if r := p.Do(context.Background(), b.target("n1"), power.OpStatus); !errors.Is(r.Err, ipmi.ErrClosed) {
		t.Fatalf("after Close: %v", r.Err)
	}
}

func TestPoll(t *testing.T) {
	b1 := startBMC(t, "127.0.0.1:0", nil)
	b2 := startBMC(t, "127.0.0.1:0", nil)
	sink := udpSink(t)
	if err := b2.chassis.SetPower(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	p := newPool(t, power.Config{CallTimeout: 300 * time.Millisecond, BreakerCooldown: time.Minute})
	targets := []power.Target{b1.target("n1"), b2.target("n2"), tgt("n3", sink.Port, testUser, testPassword)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	got := map[string][]power.Result{}
	start := time.Now()
	stopped := p.Poll(ctx, func() []power.Target { return targets }, 100*time.Millisecond, 2, func(r power.Result) {
		mu.Lock()
		got[r.Node] = append(got[r.Node], r)
		mu.Unlock()
	})
	if time.Since(start) > 50*time.Millisecond {
		t.Fatal("Poll blocked its caller")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n3 := len(got["n3"])
		n1 := len(got["n1"])
		mu.Unlock()
		if n3 >= 3 && n1 >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("poller produced n1 %d, n3 %d results", n1, n3)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-stopped
	mu.Lock()
	defer mu.Unlock()
	if r := got["n1"][0]; r.Err != nil || r.Power != "off" {
		t.Errorf("n1: %+v", r)
	}
	if r := got["n2"][0]; r.Err != nil || r.Power != "on" {
		t.Errorf("n2: %+v", r)
	}
	if r := got["n3"][0]; !errors.Is(r.Err, ipmi.ErrTimeout) {
		t.Errorf("n3 first: %v", r.Err)
	}
	for _, r := range got["n3"][1:] {
		if !errors.Is(r.Err, ipmi.ErrCircuitOpen) || r.Duration > 50*time.Millisecond {
			t.Errorf("n3 later: %v in %v, want skipped by the breaker", r.Err, r.Duration)
		}
	}
}

// TestSessionRetiredBeforeKeepalive: a session is closed once it is older
// than SessionMaxAge, by the next call or by the reaper when idle, so that
// go-ipmi's keepalive (first send 30 s after the session opened, racing with
// Close) never runs; the next call opens a new session and works.
func TestSessionRetiredBeforeKeepalive(t *testing.T) {
	t.Parallel()
	b := startBMC(t, "127.0.0.1:0", nil)
	p := newPool(t, power.Config{CallTimeout: 3 * time.Second})
	ctx := context.Background()
	if r := p.Do(ctx, b.target("n1"), power.OpStatus); r.Err != nil {
		t.Fatal(r.Err)
	}
	opened := time.Now()
	if n := ipmi.OpenSessions(p.Pool()); n != 1 {
		t.Fatalf("%d sessions open after a call, want 1", n)
	}
	for ipmi.OpenSessions(p.Pool()) != 0 {
		if time.Since(opened) > 28*time.Second {
			t.Fatalf("the idle session is still open %v after it opened: go-ipmi's keepalive will run", time.Since(opened).Round(time.Second))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if age := time.Since(opened); age < ipmi.SessionMaxAge {
		t.Fatalf("session closed after %v, before SessionMaxAge %v", age, ipmi.SessionMaxAge)
	}
	if r := p.Do(ctx, b.target("n1"), power.OpStatus); r.Err != nil || ipmi.OpenSessions(p.Pool()) != 1 {
		t.Fatalf("a call after the retirement: %v, %d sessions", r.Err, ipmi.OpenSessions(p.Pool()))
	}
}
