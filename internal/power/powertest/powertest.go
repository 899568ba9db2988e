// Package powertest is a power backend for tests that speaks no BMC protocol
// at all: it powers simulated machines (internal/workflow/simnode nodes, or
// anything with a front panel) by calling them. It is the second
// implementation of the power seam, the proof that a backend is one package
// plus one registration line: a test registers Lab.Protocol on the
// daemon's registry and names the protocol in its inventory
// (bmc: {protocol: simpower, host: lab, password: ..., simpower: {machine: r1}}),
// and nothing else changes.
//
// It has no serial console, on purpose: consoles on its nodes fail with the
// seam's "no serial console" error.
package powertest

import (
	"context"
	"fmt"
	"sync"

	"github.com/netbootui/netbootui/internal/power"
)

// Name is the protocol's name.
const Name = "simpower"

// Machine is what the backend needs of a simulated machine; *simnode.Node
// has it.
type Machine interface {
	PowerState() bool
	SetPower(on bool) error
	PowerCycle() error
	Reset() error
	SetNextBootPXE(efi bool) error
	NextBootPXE() (pending, efi bool)
}

// Options are the backend's bmc.simpower section.
type Options struct {
	// Machine is the machine behind the lab's address (default: the node's
	// name), as a Redfish BMC's system path picks one of its systems.
	Machine string
}

// Lab is a set of machines behind one "BMC" and the calls made to them. It
// is safe for concurrent use.
type Lab struct {
	password string

	mu       sync.Mutex
	machines map[string]Machine
	calls    []string
	opened   int
}

// NewLab returns a Lab whose BMC accepts password.
func NewLab(password string) *Lab {
	return &Lab{password: password, machines: map[string]Machine{}}
}

// Add puts a machine behind the lab under name.
func (l *Lab) Add(name string, m Machine) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.machines[name] = m
}

// Calls returns what was asked so far, one "MACHINE OP" per call, in order.
func (l *Lab) Calls() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// Opened counts the backends the power seam opened on this lab (one per
// Service).
func (l *Lab) Opened() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opened
}

// Protocol declares the backend: name simpower, port 7 and user "sim" by
// default, one option (machine).
func (l *Lab) Protocol() power.Protocol {
	return power.Protocol{
		Name: Name,
		Port: 7,
		User: "sim",
		Keys: []string{"machine"},
		Options: func(r power.OptionReader) any {
			var o Options
			if s, ok := r.String("machine"); ok {
				if s == "" {
					r.Errorf("machine", "%s is empty: name a machine or remove the key", r.Path("machine"))
				}
				o.Machine = s
			}
			return o
		},
		Machine: func(o any) string { m, _ := o.(Options); return m.Machine },
		Open: func(power.Settings) (power.Backend, error) {
			l.mu.Lock()
			l.opened++
			l.mu.Unlock()
			return &backend{lab: l}, nil
		},
	}
}

// backend is the power.Backend over a Lab.
type backend struct{ lab *Lab }

// machine finds t's machine after checking its password.
func (b *backend) machine(ctx context.Context, t power.Target, op string) (Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if t.Password.Reveal() != b.lab.password {
		return nil, power.NewError(t.Addr(), power.ErrAuth, "authentication failed for user %s", t.User)
	}
	name := t.Node
	if o, ok := t.Options.(Options); ok && o.Machine != "" {
		name = o.Machine
	}
	b.lab.mu.Lock()
	defer b.lab.mu.Unlock()
	m := b.lab.machines[name]
	if m == nil {
		return nil, power.NewError(t.Addr(), power.ErrRefused, "no machine %q behind this BMC", name)
	}
	b.lab.calls = append(b.lab.calls, name+" "+op)
	return m, nil
}

func word(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// Power implements power.Backend.
func (b *backend) Power(ctx context.Context, t power.Target, op power.Op) (power.Outcome, error) {
	m, err := b.machine(ctx, t, string(op))
	if err != nil {
		return power.Outcome{}, err
	}
	fail := func(err error) (power.Outcome, error) {
		return power.Outcome{}, power.NewError(t.Addr(), power.ErrRefused, "%s: %v", op, err)
	}
	switch op {
	case power.OpStatus:
		p := word(m.PowerState())
		return power.Outcome{Power: p, Detail: "power " + p}, nil
	case power.OpOn:
		if err := m.SetPower(true); err != nil {
			return fail(err)
		}
		return power.Outcome{Power: "on", Detail: "powered on"}, nil
	case power.OpOff, power.OpSoft:
		if err := m.SetPower(false); err != nil {
			return fail(err)
		}
		return power.Outcome{Power: "off", Detail: "powered off"}, nil
	case power.OpCycle:
		if !m.PowerState() {
			if err := m.SetPower(true); err != nil {
				return fail(err)
			}
			return power.Outcome{Power: "on", Detail: "was off: powered on"}, nil
		}
		if err := m.PowerCycle(); err != nil {
			return fail(err)
		}
		return power.Outcome{Detail: "power cycled"}, nil
	case power.OpReset:
		if err := m.Reset(); err != nil {
			return fail(err)
		}
		return power.Outcome{Detail: "reset"}, nil
	}
	return power.Outcome{}, fmt.Errorf("%w %q", power.ErrBadOp, string(op))
}

// BootOnce implements power.Backend: PXE (legacy or EFI), read back.
func (b *backend) BootOnce(ctx context.Context, t power.Target, dev power.BootDevice) (power.Outcome, error) {
	m, err := b.machine(ctx, t, "boot "+string(dev.Kind))
	if err != nil {
		return power.Outcome{}, err
	}
	if dev.Kind != power.BootPXE {
		return power.Outcome{}, power.NewError(t.Addr(), power.ErrUnsupported, "cannot boot from %s", dev.Kind)
	}
	if err := m.SetNextBootPXE(dev.EFI); err != nil {
		return power.Outcome{}, power.NewError(t.Addr(), power.ErrRefused, "boot override: %v", err)
	}
	pending, efi := m.NextBootPXE()
	if !pending || efi != dev.EFI {
		return power.Outcome{}, power.NewError(t.Addr(), power.ErrRefused, "boot override read back as pending %t, efi %t", pending, efi)
	}
	return power.Outcome{Detail: "next boot: " + bootWord(pending, efi)}, nil
}

func bootWord(pending, efi bool) string {
	if !pending {
		return "no override"
	}
	if efi {
		return "pxe, once, efi"
	}
	return "pxe, once, legacy"
}

// Facts implements power.Backend.
func (b *backend) Facts(ctx context.Context, t power.Target) (power.Facts, error) {
	m, err := b.machine(ctx, t, "facts")
	if err != nil {
		return power.Facts{}, err
	}
	return power.Facts{Device: "simulated machine " + t.Node, Manufacturer: "netbootui", Model: "simnode",
		Power: word(m.PowerState()), Boot: bootWord(m.NextBootPXE())}, nil
}

// Close implements power.Backend.
func (b *backend) Close() error { return nil }
