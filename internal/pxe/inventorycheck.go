package pxe

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/netbootui/netbootui/internal/inventory"
)

// CheckInventory applies to a loaded inventory the checks the boot servers
// make when they render an entry: kernel arguments (of an image, a group or a
// node) that could change an entry's commands, and boot overrides that do not
// validate (ValidateOverride, as the daemon checks edits). `netbootui
// validate` and the daemon (at start and at every reload) run it, so that a
// node whose script would be refused with HTTP 500 is found before the file
// is used. It returns nil or an
// inventory.ErrorList, one error per entry and field, in file order.
func CheckInventory(inv *inventory.Inventory) error {
	var errs inventory.ErrorList
	seen := map[string]bool{}
	add := func(at inventory.Pos, what, field string, err error) {
		key := fmt.Sprintf("%s\x00%s", at, field)
		if err == nil || seen[key] {
			return
		}
		seen[key] = true
		errs = append(errs, &inventory.Error{Pos: at, Msg: fmt.Sprintf("%s: %s: %v", what, field, err)})
	}
	for _, im := range inv.Images {
		add(im.Defined, "image "+im.Name, "kernel_args", checkArgs(im.KernelArgs))
	}
	for _, g := range inv.Groups {
		what := "group " + g.Name
		add(g.Defined, what, "kernel_args", checkArgs(g.KernelArgs))
		add(g.Defined, what, "boot_override.ipxe", checkOverride(FormatIPXE, g.Override.IPXE))
		add(g.Defined, what, "boot_override.pxelinux", checkOverride(FormatPxelinux, g.Override.Pxelinux))
	}
	for _, n := range inv.Nodes {
		what := "node " + n.Name
		if n.Range != "" {
			what = "node " + n.Range
		}
		// A node inherits its group's values: a fault there is the group's.
		g := inv.Groups[n.Group]
		if g == nil || checkArgs(g.KernelArgs) == nil {
			add(n.Defined, what, "kernel_args", checkArgs(n.KernelArgs))
		}
		if g == nil || g.Override.IPXE != n.Override.IPXE {
			add(n.Defined, what, "boot_override.ipxe", checkOverride(FormatIPXE, n.Override.IPXE))
		}
		if g == nil || g.Override.Pxelinux != n.Override.Pxelinux {
			add(n.Defined, what, "boot_override.pxelinux", checkOverride(FormatPxelinux, n.Override.Pxelinux))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *inventory.Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col), cmp.Compare(a.Msg, b.Msg))
	})
	return errs
}

// CheckKernelArgs says whether args may be kernel arguments of an image, a
// group or a node: the renderer refuses what it refuses (control
// characters, "${", a leading "#", "||", "&&", ";", a trailing backslash).
func CheckKernelArgs(args string) error { return checkArgs(args) }

// checkOverride validates override text; empty text is no override.
func checkOverride(format, text string) error {
	if text == "" {
		return nil
	}
	return ValidateOverride(format, text)
}
