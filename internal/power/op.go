package power

import (
	"fmt"
	"strings"
)

// Op is one operation on a node's BMC, as an admin or the API names it.
type Op string

// The operations. Every backend supports all of them; the seam maps each to
// a Backend method (see Service.Do).
const (
	OpStatus     Op = "status"      // read the power state: Result.Power is "on" or "off"
	OpOn         Op = "on"          // power up
	OpOff        Op = "off"         // hard power down
	OpSoft       Op = "soft"        // ACPI (graceful) shutdown
	OpCycle      Op = "cycle"       // power cycle; a node that is off is powered on
	OpReset      Op = "reset"       // hard reset
	OpBootdevPXE Op = "bootdev-pxe" // next boot (once) from PXE, legacy or EFI by the node's arch, read back and verified
	OpBootflags  Op = "bootflags"   // read the next-boot setting (Facts.Boot)
	OpDeviceID   Op = "deviceid"    // read the BMC's device facts (Facts.Device)
)

// Ops lists every operation in a stable order.
var Ops = []Op{OpStatus, OpOn, OpOff, OpSoft, OpCycle, OpReset, OpBootdevPXE, OpBootflags, OpDeviceID}

// ParseOp parses an operation name as typed by an admin ("status", "on",
// "bootdev-pxe"...). Case and surrounding blanks are ignored; "pxe" and
// "bootdev" are accepted for bootdev-pxe and "power-status" style prefixes
// are not. It is the one place operation names are parsed: the API and the
// CLI validate with it.
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

// Valid reports whether op is a known operation.
func (op Op) Valid() bool {
	for _, o := range Ops {
		if o == op {
			return true
		}
	}
	return false
}

// Changes reports whether op changes the machine's power (on, off, soft,
// cycle, reset), as opposed to reading it or setting the next boot.
func (op Op) Changes() bool {
	switch op {
	case OpOn, OpOff, OpSoft, OpCycle, OpReset:
		return true
	}
	return false
}

// PowerOp reports whether op is one of the operations Backend.Power runs
// (status and the power changes).
func (op Op) PowerOp() bool { return op == OpStatus || op.Changes() }
