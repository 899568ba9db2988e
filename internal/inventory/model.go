// Package inventory holds the cluster inventory: the nodes, groups and images of
// nodes.yaml, hostlist-expanded and validated, with positions for every error.
//
// The file is hand-editable YAML. Loading never changes it; writes made through
// Update are atomic (temp file, fsync, rename), keep comments and key order, and
// fail with ErrConflict when the file changed since the revision the caller read.
package inventory

import (
	"fmt"
	"net"
	"net/netip"
)

// Arch is a node's firmware type; it decides which bootloader the node gets.
type Arch string

// Firmware types.
const (
	ArchBIOS Arch = "bios"
	ArchUEFI Arch = "uefi"
)

// Loader is the network bootloader a node runs after its firmware.
type Loader string

// Bootloaders.
const (
	LoaderIPXE     Loader = "ipxe"
	LoaderPxelinux Loader = "pxelinux"
)

// Pos is a place in the inventory file, 1-based.
type Pos struct {
	File string
	Line int
	Col  int
}

// String renders the position as FILE:LINE:COL.
func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// NIC is one network interface of a node.
type NIC struct {
	Name string           // optional label, e.g. "eno1"
	MAC  net.HardwareAddr // always 6 bytes
	Boot bool             // the interface the node PXE-boots from
}

// BMC says how to reach a node's baseboard management controller.
// The password itself is never held here: PasswordRef names an entry in the
// secrets file (see Secrets). On a Node every field is resolved (node, else
// group, else the protocol's default, see power.Protocol); on a Group only
// what the group's entry sets is filled.
type BMC struct {
	Protocol    string // the power backend's name; DefaultBMCProtocol when not set
	Host        string
	Port        int    // the protocol's default port when not set
	User        string // the protocol's default user when not set
	PasswordRef string // key in the secrets file
	// Options are the protocol's own settings (its bmc.PROTOCOL section,
	// the node's keys over its group's) as the protocol read them, e.g.
	// ipmi.BMCOptions; nil when the inventory was parsed without the
	// protocols (see WithProtocols).
	Options any
}

// Override is raw boot-entry text that replaces the rendered template.
// Either field may be empty.
type Override struct {
	IPXE     string
	Pxelinux string
}

// Empty reports whether neither format is overridden.
func (o Override) Empty() bool { return o.IPXE == "" && o.Pxelinux == "" }

// Node is one machine, with its group's defaults already applied.
type Node struct {
	Name       string
	Group      string // "" when the node has no group
	NICs       []NIC
	IP         netip.Addr // invalid (zero) when not set
	Arch       Arch
	Loader     Loader
	BMC        BMC
	Image      string // assigned image name; "" when none
	Generation string // pinned generation id; "" follows the image's current generation
	KernelArgs string // group's kernel arguments followed by the node's own
	// OwnKernelArgs are the node's own kernel arguments (its entry's
	// kernel_args), without the group's.
	OwnKernelArgs string
	Persist       []string // the group's persist: paths kept across reboots
	// PersistDisk is the group's persist_disk: the persisted paths live on
	// a partition of the node's own disk (a RAM root); nil when they live
	// in the node's directory on the NFS server, or nowhere.
	PersistDisk *PersistDisk
	// UserData and VendorData are the node's cloud-init user-data and
	// vendor-data templates (CloudTemplateData), the node's own else its
	// group's; "" when none.
	UserData, VendorData string
	Override             Override
	// Defined is where the node's entry starts; a node expanded from a hostlist
	// range shares the position of its range entry. Range is that entry's name
	// ("" when the entry names one node).
	Defined Pos
	Range   string
}

// BootMAC returns the MAC of the NIC marked boot (the first NIC when none is).
func (n *Node) BootMAC() net.HardwareAddr {
	for _, nic := range n.NICs {
		if nic.Boot {
			return nic.MAC
		}
	}
	if len(n.NICs) > 0 {
		return n.NICs[0].MAC
	}
	return nil
}

// Group carries defaults that its nodes inherit.
type Group struct {
	Name       string
	Arch       Arch
	Loader     Loader
	Image      string
	Generation string
	KernelArgs string
	BMC        BMC
	Override   Override
	// Persist are the paths the group's nodes keep across reboots (on an
	// nfs root: in their own directory on the NFS server).
	Persist []string
	// PersistDisk: the persisted paths live on a local partition found by
	// its label (RAM roots); nil when not.
	PersistDisk *PersistDisk
	Defined     Pos
}

// DefaultPersistLabel is the filesystem label a node looks for when a
// group's persist_disk names none (ext4 labels hold at most 16 bytes).
const DefaultPersistLabel = "NBUI-PERSIST"

// What a node does when no partition carries the persist label.
const (
	// PersistMissingFail: the boot fails at stage persist, reported to the
	// daemon (the default: the paths the admin asked to keep are not
	// silently kept in RAM).
	PersistMissingFail = "fail"
	// PersistMissingBoot: the node boots with the persisted paths in its
	// RAM overlay, and says so in its check-ins.
	PersistMissingBoot = "boot"
)

// PersistDisk is a group's persist_disk: its persisted paths live on a
// partition of each node's local disk, found by filesystem label, instead
// of on the head.
type PersistDisk struct {
	Label   string // the filesystem label (DefaultPersistLabel when not given)
	Missing string // PersistMissingFail or PersistMissingBoot
	// Format lets a node that finds no partition with the label make an
	// ext filesystem with it on an empty disk (a whole disk with no
	// partitions and nothing but zeros in its first MiB). Off by default.
	Format  bool
	Defined Pos // the persist_disk key
}

// Image is an image the inventory knows by name. Its generations live in the
// image store; the inventory only names it and where its recipe is.
type Image struct {
	Name        string
	Description string
	Recipe      string // recipe folder, relative to the inventory file's folder
	KernelArgs  string // kernel arguments every node booting this image gets
	// Root names the root transport nodes booting this image use (package
	// roottransport); "" is the default, http-live.
	Root    string
	Defined Pos
}

// Settings are cluster-wide options from the inventory's "settings" section.
type Settings struct {
	// Secrets is the path of the secrets file (BMC passwords), relative to the
	// inventory file's folder; "" when there is none.
	Secrets string
	// OverlayDirtyBytes is the overlay write volume above which a node counts as
	// dirty. Zero means any write.
	OverlayDirtyBytes int64
	// NFS is the site's NFS server, for images whose root is nfs; zero
	// when the inventory names none.
	NFS NFS
	// NBD is the site's NBD server, for images whose root is nbd.
	NBD NBD
}

// NBD is settings.nbd: the site's NBD server as nodes reach it.
type NBD struct {
	Server string // IPv4 address
	Port   int    // 0: 10809
}

// NFS is settings.nfs: the site's NFS server as nodes reach it.
type NFS struct {
	Server string // IPv4 address nodes mount from
	Port   int    // 0: 2049
	Export string // the path nodes mount under (NFSv4 pseudo path)
	Dir    string // the head's directory behind Export, which netbootui writes
}

// Inventory is a loaded, validated inventory file.
type Inventory struct {
	Path     string // the file it was read from
	Revision string // hex sha256 of the file's bytes; Update compares it
	Settings Settings
	Nodes    []*Node // in file order, ranges expanded in order
	Groups   map[string]*Group
	Images   map[string]*Image

	byName map[string]*Node
	byMAC  map[string]*Node // key: MAC.String()
	byIP   map[netip.Addr]*Node
}
