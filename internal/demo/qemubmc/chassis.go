package qemubmc

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Chassis is a node's chassis program (the one ipmi_sim runs) as a machine
// another simulated BMC can power: a Redfish simulator's Reset and boot
// override call it the way ipmi_sim does (redfishsim.Machine). Every call is
// in ChassisLog too.
type Chassis struct {
	// Prog is the chassis_control program.
	Prog string
}

// Chassis returns the node's chassis program as a machine.
func (n *Node) Chassis() Chassis { return Chassis{Prog: filepath.Join(n.opts.Dir, "chassis_control")} }

// chassisTimeout bounds one call (a stop waits up to 5 s for QEMU).
const chassisTimeout = 30 * time.Second

func (c Chassis) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), chassisTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, c.Prog, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("qemubmc: %s %s: %v: %s", filepath.Base(c.Prog), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// PowerState reports whether QEMU runs.
func (c Chassis) PowerState() bool {
	out, err := c.run("get", "power")
	return err == nil && strings.Contains(out, "power:1")
}

// SetPower starts or stops QEMU.
func (c Chassis) SetPower(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	_, err := c.run("set", "power", v)
	return err
}

// PowerCycle stops QEMU and starts it again (it ends up on).
func (c Chassis) PowerCycle() error {
	_, err := c.run("set", "power", "0", "power", "1")
	return err
}

// Reset restarts QEMU (it ends up on).
func (c Chassis) Reset() error {
	_, err := c.run("set", "reset", "1")
	return err
}

// SetNextBootPXE records a PXE boot (QEMU always boots from the network).
func (c Chassis) SetNextBootPXE(bool) error {
	_, err := c.run("set", "boot", "pxe")
	return err
}

// NextBootPXE reports whether the recorded boot device is PXE (never EFI:
// the node is a BIOS machine).
func (c Chassis) NextBootPXE() (pending, efi bool) {
	out, err := c.run("get", "boot")
	return err == nil && strings.Contains(out, "boot:pxe"), false
}
