package ipmi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/netbootui/netbootui/internal/power"
)

// runPower performs a power operation on a connected client.
func runPower(ctx context.Context, c *client.Client, op power.Op) (power.Outcome, error) {
	switch op {
	case power.OpStatus:
		on, err := powerOn(ctx, c)
		if err != nil {
			return power.Outcome{}, err
		}
		p := powerWord(on)
		return power.Outcome{Power: p, Detail: "power " + p}, nil
	case power.OpOn:
		return control(ctx, c, chassis.ChassisControlPowerUp, "on", "power on requested")
	case power.OpOff:
		return control(ctx, c, chassis.ChassisControlPowerDown, "off", "power off requested")
	case power.OpSoft:
		return control(ctx, c, chassis.ChassisControlSoftShutdown, "", "ACPI shutdown requested")
	case power.OpReset:
		return control(ctx, c, chassis.ChassisControlHardReset, "", "reset requested")
	case power.OpCycle:
		on, err := powerOn(ctx, c)
		if err != nil {
			return power.Outcome{}, err
		}
		if !on {
			return control(ctx, c, chassis.ChassisControlPowerUp, "on", "was off: power on requested")
		}
		return control(ctx, c, chassis.ChassisControlPowerCycle, "", "power cycle requested")
	}
	return power.Outcome{}, fmt.Errorf("%w %q", power.ErrBadOp, string(op))
}

// facts reads the device ID (which must answer), then the power state and
// the boot flags; cls classifies the errors of the optional reads.
func facts(ctx context.Context, c *client.Client, cls func(error) error) (power.Facts, error) {
	d, err := c.GetDeviceID(ctx)
	if err != nil {
		return power.Facts{}, err
	}
	f := power.Facts{
		Device: fmt.Sprintf("device %d rev %d, firmware %d.%02x, IPMI %d.%d, manufacturer %d, product %d",
			d.DeviceID, d.DeviceRevision, d.MajorFirmwareRevision, d.MinorFirmwareRevision,
			d.MajorIPMIVersion, d.MinorIPMIVersion, d.ManufacturerID, d.ProductID),
		Manufacturer: fmt.Sprintf("IANA %d", d.ManufacturerID),
		Model:        fmt.Sprintf("product %d", d.ProductID),
		Firmware:     fmt.Sprintf("%d.%02x", d.MajorFirmwareRevision, d.MinorFirmwareRevision),
	}
	unread := func(what string, err error) {
		if f.Unread == nil {
			f.Unread = map[string]error{}
		}
		f.Unread[what] = cls(err)
	}
	if on, err := powerOn(ctx, c); err != nil {
		unread("power", err)
	} else {
		f.Power = powerWord(on)
	}
	if fl, err := bootFlags(ctx, c); err != nil {
		unread("boot", err)
	} else {
		f.Boot = describeFlags(fl)
	}
	return f, nil
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

func control(ctx context.Context, c *client.Client, cc chassis.ChassisControl, pw, detail string) (power.Outcome, error) {
	if _, err := c.ChassisControl(ctx, cc); err != nil {
		return power.Outcome{}, err
	}
	return power.Outcome{Power: pw, Detail: detail}, nil
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
func bootPXE(ctx context.Context, c *client.Client, efi bool) (power.Outcome, error) {
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
			return power.Outcome{}, err
		}
		inProgress = false
	}
	if err := c.SetSystemBootOptionsParamFor(ctx, want); err != nil {
		return power.Outcome{}, err
	}
	if inProgress {
		if err := c.SetBootParamSetInProgress(ctx, types.SetInProgress_SetComplete); err != nil {
			return power.Outcome{}, err
		}
	}
	got, err := bootFlags(ctx, c)
	if err != nil {
		return power.Outcome{}, fmt.Errorf("reading the boot flags back: %w", err)
	}
	if got.BootDeviceSelector != types.BootDeviceSelectorForcePXE || got.Persist {
		return power.Outcome{}, &verifyError{want: describeFlags(want), got: describeFlags(got)}
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
	return power.Outcome{Detail: d}, nil
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
