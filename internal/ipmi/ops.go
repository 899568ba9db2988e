package ipmi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// Op is one operation on a BMC.
type Op string

// The operations.
const (
	OpStatus     Op = "status"      // read chassis power: Result.Power is "on" or "off"
	OpOn         Op = "on"          // power up
	OpOff        Op = "off"         // hard power down
	OpSoft       Op = "soft"        // ACPI soft shutdown
	OpCycle      Op = "cycle"       // power cycle; a node that is off is powered on
	OpReset      Op = "reset"       // hard reset
	OpBootdevPXE Op = "bootdev-pxe" // next boot (once) from PXE, legacy or EFI, read back and verified
	OpBootflags  Op = "bootflags"   // read the boot flags
	OpDeviceID   Op = "deviceid"    // read the BMC's device ID
)

// Ops lists every operation in a stable order.
var Ops = []Op{OpStatus, OpOn, OpOff, OpSoft, OpCycle, OpReset, OpBootdevPXE, OpBootflags, OpDeviceID}

// ParseOp parses an operation name as typed by an admin ("status", "on",
// "bootdev-pxe"...). Case and surrounding blanks are ignored; "pxe" and
// "bootdev" are accepted for bootdev-pxe and "power-status" style prefixes
// are not.
func ParseOp(s string) (Op, error) {
	w := strings.ToLower(strings.TrimSpace(s))
	switch w {
	case "pxe", "bootdev":
		return OpBootdevPXE, nil
	}
	for _, op := range Ops {
		if w == string(op) {
			return op, nil
		}
	}
	return "", fmt.Errorf("%w %q (want one of %s)", ErrBadOp, s, opNames())
}

func opNames() string {
	n := make([]string, len(Ops))
	for i, op := range Ops {
		n[i] = string(op)
	}
	return strings.Join(n, ", ")
}

// valid reports whether op is a known operation.
func (op Op) valid() bool {
	for _, o := range Ops {
		if o == op {
			return true
		}
	}
	return false
}

// run performs op on a connected client and fills power and detail.
func run(ctx context.Context, c *client.Client, op Op, efi bool) (power, detail string, err error) {
	switch op {
	case OpStatus:
		on, err := powerOn(ctx, c)
		if err != nil {
			return "", "", err
		}
		p := powerWord(on)
		return p, "power " + p, nil
	case OpOn:
		return control(ctx, c, chassis.ChassisControlPowerUp, "on", "power on requested")
	case OpOff:
		return control(ctx, c, chassis.ChassisControlPowerDown, "off", "power off requested")
	case OpSoft:
		return control(ctx, c, chassis.ChassisControlSoftShutdown, "", "ACPI shutdown requested")
	case OpReset:
		return control(ctx, c, chassis.ChassisControlHardReset, "", "reset requested")
	case OpCycle:
		on, err := powerOn(ctx, c)
		if err != nil {
			return "", "", err
		}
		if !on {
			return control(ctx, c, chassis.ChassisControlPowerUp, "on", "was off: power on requested")
		}
		return control(ctx, c, chassis.ChassisControlPowerCycle, "", "power cycle requested")
	case OpBootdevPXE:
		return bootPXE(ctx, c, efi)
	case OpBootflags:
		f, err := bootFlags(ctx, c)
		if err != nil {
			return "", "", err
		}
		return "", describeFlags(f), nil
	case OpDeviceID:
		d, err := c.GetDeviceID(ctx)
		if err != nil {
			return "", "", err
		}
		return "", fmt.Sprintf("device %d rev %d, firmware %d.%02x, IPMI %d.%d, manufacturer %d, product %d",
			d.DeviceID, d.DeviceRevision, d.MajorFirmwareRevision, d.MinorFirmwareRevision,
			d.MajorIPMIVersion, d.MinorIPMIVersion, d.ManufacturerID, d.ProductID), nil
	}
	return "", "", fmt.Errorf("%w %q", ErrBadOp, string(op))
}

func powerWord(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func powerOn(ctx context.Context, c *client.Client) (bool, error) {
	st, err := c.GetChassisStatus(ctx)
	if err != nil {
		return false, err
	}
	return st.PowerIsOn, nil
}

func control(ctx context.Context, c *client.Client, cc chassis.ChassisControl, power, detail string) (string, string, error) {
	if _, err := c.ChassisControl(ctx, cc); err != nil {
		return "", "", err
	}
	return power, detail, nil
}

func bootFlags(ctx context.Context, c *client.Client) (*types.BootOptionParam_BootFlags, error) {
	f := &types.BootOptionParam_BootFlags{}
	if err := c.GetSystemBootOptionsParamFor(ctx, f); err != nil {
		return nil, err
	}
	return f, nil
}

// bootPXE sets the next boot (once) to PXE and reads the flags back. The
// device selector and "once" must read back as written; some BMCs (ipmi_sim)
// keep only the device, so a lost valid or EFI bit is reported in the detail
// rather than failing the call.
func bootPXE(ctx context.Context, c *client.Client, efi bool) (string, string, error) {
	bt := types.BIOSBootTypeLegacy
	if efi {
		bt = types.BIOSBootTypeEFI
	}
	want := &types.BootOptionParam_BootFlags{
		BootFlagsValid:     true,
		Persist:            false,
		BIOSBootType:       bt,
		BootDeviceSelector: types.BootDeviceSelectorForcePXE,
	}
	// "Set in progress" guards the write where the BMC supports it; a BMC
	// that refuses the parameter (80h, allowed by the spec) is written
	// without it.
	inProgress := true
	if err := c.SetBootParamSetInProgress(ctx, types.SetInProgress_SetInProgress); err != nil {
		var re *types.ResponseError
		if !errors.As(err, &re) {
			return "", "", err
		}
		inProgress = false
	}
	if err := c.SetSystemBootOptionsParamFor(ctx, want); err != nil {
		return "", "", err
	}
	if inProgress {
		if err := c.SetBootParamSetInProgress(ctx, types.SetInProgress_SetComplete); err != nil {
			return "", "", err
		}
	}
	got, err := bootFlags(ctx, c)
	if err != nil {
		return "", "", fmt.Errorf("reading the boot flags back: %w", err)
	}
	if got.BootDeviceSelector != types.BootDeviceSelectorForcePXE || got.Persist {
		return "", "", &verifyError{want: describeFlags(want), got: describeFlags(got)}
	}
	d := "next boot: " + describeFlags(got)
	var lost []string
	if !got.BootFlagsValid {
		lost = append(lost, "valid")
	}
	if got.BIOSBootType != bt {
		lost = append(lost, "EFI")
	}
	if len(lost) > 0 {
		d += " (the BMC did not keep the " + strings.Join(lost, " and ") + " bit)"
	}
	return "", d, nil
}

// verifyError is a boot-flag read-back that does not match what was set.
type verifyError struct{ want, got string }

func (e *verifyError) Error() string {
	return "boot flags read back as " + e.got + ", set " + e.want
}

func describeFlags(f *types.BootOptionParam_BootFlags) string {
	dev := "no override"
	switch f.BootDeviceSelector {
	case types.BootDeviceSelectorNoOverride:
	case types.BootDeviceSelectorForcePXE:
		dev = "pxe"
	case types.BootDeviceSelectorForceHardDrive:
		dev = "disk"
	case types.BootDeviceSelectorForceHardDriveSafe:
		dev = "disk (safe mode)"
	case types.BootDeviceSelectorForceCDROM:
		dev = "cdrom"
	case types.BootDeviceSelectorForceBIOSSetup:
		dev = "bios setup"
	default:
		dev = fmt.Sprintf("device %#02x", uint8(f.BootDeviceSelector))
	}
	once := "once"
	if f.Persist {
		once = "persistent"
	}
	kind := "legacy"
	if f.BIOSBootType == types.BIOSBootTypeEFI {
		kind = "efi"
	}
	valid := "valid"
	if !f.BootFlagsValid {
		valid = "not valid"
	}
	return strings.Join([]string{dev, once, kind, valid}, ", ")
}
