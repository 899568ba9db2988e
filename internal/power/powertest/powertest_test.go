package powertest_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/powertest"
)

// machine is a front panel that remembers its state.
type machine struct {
	mu             sync.Mutex
	on, pxe, efi   bool
	cycles, resets int
}

func (m *machine) PowerState() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.on }
func (m *machine) SetPower(on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = on
	return nil
}
func (m *machine) PowerCycle() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cycles++
	m.on = true
	return nil
}
func (m *machine) Reset() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resets++
	m.on = true
	return nil
}
func (m *machine) SetNextBootPXE(efi bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pxe, m.efi = true, efi
	return nil
}
func (m *machine) NextBootPXE() (bool, bool) { m.mu.Lock(); defer m.mu.Unlock(); return m.pxe, m.efi }

// TestThroughTheSeam: the backend answers every operation through the
// power seam, by the machine its options name, and refuses what it should.
func TestThroughTheSeam(t *testing.T) {
	lab := powertest.NewLab("pw")
	m := &machine{}
	lab.Add("m1", m)
	reg, err := power.NewRegistry(lab.Protocol())
	if err != nil {
		t.Fatal(err)
	}
	s := power.New(power.Config{MinInterval: -1}, reg)
	defer s.Close()
	tg := power.Target{Node: "n1", Protocol: powertest.Name, Host: "lab", Password: power.NewSecret("pw"),
		EFI: true, Options: powertest.Options{Machine: "m1"}}
	ctx := context.Background()
	steps := []struct {
		op            power.Op
		power, detail string
	}{
		{power.OpStatus, "off", "power off"},
		{power.OpCycle, "on", "was off: powered on"},
		{power.OpCycle, "", "power cycled"},
		{power.OpBootdevPXE, "", "next boot: pxe, once, efi"},
		{power.OpBootflags, "", "pxe, once, efi"},
		{power.OpReset, "", "reset"},
		{power.OpSoft, "off", "powered off"},
		{power.OpDeviceID, "", "simulated machine n1"},
	}
	for _, st := range steps {
		r := s.Do(ctx, tg, st.op)
		if r.Err != nil || r.Power != st.power || r.Detail != st.detail || r.BMC != "lab:7" {
			t.Errorf("%s: %+v", st.op, r)
		}
	}
	if m.cycles != 1 || m.resets != 1 || m.on || !m.pxe || !m.efi {
		t.Errorf("machine %+v", m)
	}
	if got := strings.Join(lab.Calls(), ","); !strings.HasPrefix(got, "m1 status,m1 cycle,m1 cycle,m1 boot pxe") {
		t.Errorf("calls %s", got)
	}
	wrong := tg
	wrong.Password = power.NewSecret("nope")
	other := tg
	other.Options = powertest.Options{Machine: "m9"}
	for _, tc := range []struct {
		tg   power.Target
		op   power.Op
		kind error
	}{
		{wrong, power.OpStatus, power.ErrAuth},
		{other, power.OpOn, power.ErrRefused},
	} {
		if r := s.Do(ctx, tc.tg, tc.op); !errors.Is(r.Err, tc.kind) {
			t.Errorf("%v: %v, want %v", tc.op, r.Err, tc.kind)
		}
	}
	if err := s.Console(ctx, tg, strings.NewReader(""), io.Discard, power.ConsoleOptions{}); !errors.Is(err, power.ErrNoConsole) {
		t.Errorf("console: %v", err)
	}
}
