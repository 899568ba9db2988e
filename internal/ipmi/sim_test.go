package ipmi_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/power"
)

const simPassword = "s1m-secret"

func startSim(t *testing.T) *ipmisim.Sim {
	t.Helper()
	requireTool(t, "ipmi_sim", "ipmitool")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := ipmisim.Start(ctx, ipmisim.Options{Dir: t.TempDir(), Password: simPassword})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(); cancel() })
	return s
}

func simTarget(s *ipmisim.Sim, node string) power.Target {
	return withSuites(tgt(node, s.Port(), "admin", simPassword), 17, 3)
}

// ipmitool asks the simulator independently of go-ipmi.
func ipmitool(t *testing.T, s *ipmisim.Sim, args ...string) string {
	t.Helper()
	base := []string{"-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(s.Port()), "-U", "admin", "-P", simPassword, "-N", "1", "-R", "2"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ipmitool", append(base, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ipmitool %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestSimOpsConfirmedByIpmitool(t *testing.T) {
	s := startSim(t)
	p := newPool(t, power.Config{CallTimeout: 5 * time.Second})
	ctx := context.Background()
	tg := simTarget(s, "n01")
	tests := []struct {
		op       power.Op
		power    string // want from our result ("" = none)
		ipmitool string // want in `chassis power status`
		bootdev  string // want in `chassis bootparam get 5` ("" = skip)
		settle   bool   // ipmi_sim powers back on a moment after a cycle
	}{
		{op: power.OpStatus, power: "off", ipmitool: "Chassis Power is off"},
		{op: power.OpOn, power: "on", ipmitool: "Chassis Power is on"},
		{op: power.OpStatus, power: "on", ipmitool: "Chassis Power is on"},
		{op: power.OpOff, power: "off", ipmitool: "Chassis Power is off"},
		{op: power.OpCycle, power: "on", ipmitool: "Chassis Power is on"}, // off: cycle powers on
		{op: power.OpBootdevPXE, ipmitool: "Chassis Power is on", bootdev: "Boot Device Selector : Force PXE"},
		{op: power.OpCycle, ipmitool: "Chassis Power is on", settle: true},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d-%s", i, tc.op), func(t *testing.T) {
			r := p.Do(ctx, tg, tc.op)
			if r.Err != nil {
				t.Fatalf("%s: %v", tc.op, r.Err)
			}
			if r.Power != tc.power {
				t.Errorf("power %q, want %q", r.Power, tc.power)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				out := ipmitool(t, s, "chassis", "power", "status")
				if strings.Contains(out, tc.ipmitool) {
					break
				}
				if !tc.settle || time.Now().After(deadline) {
					t.Fatalf("ipmitool says %q, want %q", out, tc.ipmitool)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if tc.bootdev != "" {
				out := ipmitool(t, s, "chassis", "bootparam", "get", "5")
				if !strings.Contains(out, tc.bootdev) || !strings.Contains(out, "Options apply to only next boot") {
					t.Errorf("bootparam 5:\n%s", out)
				}
				if !strings.HasPrefix(r.Detail, "next boot: pxe, once") {
					t.Errorf("detail %q", r.Detail)
				}
				st, err := s.State()
				if err != nil || st.Boot != "pxe" {
					t.Errorf("chassis program state %+v %v", st, err)
				}
			}
		})
	}
	if r := p.Do(ctx, tg, power.OpDeviceID); r.Err != nil || !strings.Contains(r.Detail, "manufacturer 4753") {
		t.Fatalf("deviceid: %+v", r)
	}
	// The cycle really went through the chassis program: a power off and on.
	log := readFile(t, s.StatePath()+".log")
	off := strings.LastIndex(log, "set power 0")
	if off < 0 || !strings.Contains(log[off:], "set power 1") || !strings.Contains(log, "set boot pxe") {
		t.Errorf("chassis program calls:\n%s", log)
	}
}

func TestSimFaults(t *testing.T) {
	requireTool(t, "ipmi_sim", "ipmitool")
	const n = 6
	var sims []*ipmisim.Sim
	for range n {
		sims = append(sims, startSim(t))
	}
	sink := udpSink(t)
	closed := closedPort(t)
	lb := &logBuffer{}
	timeout := 1500 * time.Millisecond
	p := newPool(t, power.Config{CallTimeout: timeout, Logger: newLogger(lb)})
	var targets []power.Target
	for i, s := range sims {
		targets = append(targets, simTarget(s, fmt.Sprintf("ok%d", i)))
	}
	wrong := simTarget(sims[0], "wrongpw")
	wrong.Password = power.NewSecret("not-the-password")
	targets = append(targets, wrong,
		tgt("sink", sink.Port, "", simPassword),
		tgt("closed", closed, "", simPassword),
	)
	// Open sessions first, then kill one simulator in the middle of a bulk
	// cycle: its node fails clearly, the others complete.
	if res, err := p.Bulk(context.Background(), targets[:n], power.OpStatus, power.BulkOptions{}); err != nil {
		t.Fatal(err)
	} else {
		for _, r := range res {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}
	killed := sims[n-1]
	start := time.Now()
	res, err := p.Bulk(context.Background(), targets, power.OpCycle, power.BulkOptions{Concurrency: 2, OnResult: func(r power.Result) {
		if r.Node == "ok0" {
			_ = killed.Stop()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*timeout+time.Second {
		t.Errorf("bulk took %v", el)
	}
	want := map[string]struct {
		kind error
		text string
	}{
		"wrongpw": {ipmi.ErrAuth, fmt.Sprintf("BMC %s: authentication failed for user admin", sims[0].Addr())},
		"sink":    {ipmi.ErrTimeout, fmt.Sprintf("BMC %s: no answer within 1.5s", sink)},
		"closed":  {ipmi.ErrUnreachable, fmt.Sprintf("BMC 127.0.0.1:%d: connection refused", closed)},
	}
	for _, r := range res {
		if r.Duration > timeout+500*time.Millisecond {
			t.Errorf("%s: took %v, beyond its deadline", r.Node, r.Duration)
		}
		if w, ok := want[r.Node]; ok {
			if !errors.Is(r.Err, w.kind) || r.Err.Error() != w.text {
				t.Errorf("%s: %v, want %q", r.Node, r.Err, w.text)
			}
			continue
		}
		if r.Node == fmt.Sprintf("ok%d", n-1) {
			// Killed before or during its turn: a clear error, or done in time.
			if r.Err != nil && !errors.Is(r.Err, ipmi.ErrUnreachable) && !errors.Is(r.Err, ipmi.ErrTimeout) {
				t.Errorf("killed BMC: %v", r.Err)
			}
			if r.Err != nil && !strings.HasPrefix(r.Err.Error(), "BMC "+killed.Addr()+": ") {
				t.Errorf("killed BMC error does not name it: %v", r.Err)
			}
			continue
		}
		if r.Err != nil {
			t.Errorf("%s: %v", r.Node, r.Err)
		}
	}
	if strings.Contains(lb.String(), simPassword) || strings.Contains(lb.String(), "not-the-password") {
		t.Fatal("password in the log")
	}
}
