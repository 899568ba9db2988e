// Package bootstate follows every node through its boot: it turns what the boot
// servers and BMCs observe into a per-node state machine, keeps a bounded event
// history per node, publishes live events to subscribers, and persists all of it
// in an embedded database so that a restarted daemon knows where each node was.
package bootstate

import "time"

// Stage is where a node is in its boot.
type Stage string

// Boot stages, in the order a healthy boot passes through them.
const (
	StageUnknown    Stage = ""            // never seen
	StageOff        Stage = "off"         // powered off (from the BMC)
	StagePoweringOn Stage = "powering-on" // a power-on or cycle was sent
	StageKexec      Stage = "kexec"       // the node's agent was told to kexec into its generation (no firmware)
	StageDHCP       Stage = "dhcp"        // the PXE firmware asked DHCP for its boot server
	StageNBP        Stage = "nbp"         // bootloader fetched over TFTP (or HTTP)
	StageConfig     Stage = "config"      // iPXE script or pxelinux config fetched
	StageKernel     Stage = "kernel"      // kernel being fetched
	StageInitrd     Stage = "initrd"      // initramfs being fetched
	StageRootfs     Stage = "rootfs"      // squashfs root being fetched (see Bytes/Total)
	StageBooted     Stage = "booted"      // the running OS checked in
	StageStalled    Stage = "stalled"     // no progress for the stall timeout
	StageFailed     Stage = "failed"      // an error stopped the boot (see Error)
)

// InProgress reports whether the stage is a step of a boot that is under way,
// i.e. one that can stall.
func (s Stage) InProgress() bool {
	switch s {
	case StagePoweringOn, StageKexec, StageDHCP, StageNBP, StageConfig, StageKernel, StageInitrd, StageRootfs:
		return true
	}
	return false
}

// Kind says what an Event reports.
type Kind string

// Event kinds.
const (
	KindFetch    Kind = "fetch"    // a boot file was served (Stage, Path, Bytes, Total)
	KindDHCP     Kind = "dhcp"     // the node's PXE firmware asked for a boot server (Stage dhcp, MAC, Message: arch and answer); a claim: DHCP has only the MAC
	KindProgress Kind = "progress" // more bytes of a large file were sent (Bytes, Total)
	KindCheckin  Kind = "checkin"  // the OS reported in (Generation, Uptime, OverlayBytes)
	KindPower    Kind = "power"    // power state seen (Power) or an action sent (Message: one of the Action constants)
	KindFail     Kind = "fail"     // a boot error (Error), e.g. a 404 or a BMC failure
	KindStall    Kind = "stall"    // no progress for the stall timeout
	KindUnknown  Kind = "unknown"  // a request from a MAC or IP the inventory does not know
	KindDenied   Kind = "denied"   // a refused request: bad token, hostile path
	KindMark     Kind = "mark"     // an admin marked the node dirty (Message: the reason) or cleared it (Message "")
	KindInfo     Kind = "info"     // anything else worth keeping in the history
	KindKexec    Kind = "kexec"    // the node's agent was sent a kexec instruction (Generation): a new boot without firmware
	// KindClaim: a request named the node without proving it (its MAC, or
	// an address learned earlier in its boot) and was served. Stage is the
	// stage it would have reached; the node's state does not move, its
	// timeline gets an unproven mark (see the README).
	KindClaim Kind = "claim"
)

// Routine reports whether events of kind k come all the time from a healthy
// cluster: check-ins and file progress. The tracker marks them
// Event.Routine, as it does power observations that change nothing, and
// keeps the newest of those (Options.RoutineHistory) apart from the other
// events (Options.GlobalHistory), so that a busy cluster's check-ins never
// push a failure or a node that turned dirty out of Recent within seconds.
func (k Kind) Routine() bool { return k == KindCheckin || k == KindProgress }

// Event is one observation about a node. Node is "" for events about an
// unknown client (then MAC and/or Remote say who it was).
type Event struct {
	Seq          uint64        `json:"seq"` // assigned by the Tracker, increasing
	Time         time.Time     `json:"time"`
	Node         string        `json:"node,omitempty"`
	Kind         Kind          `json:"kind"`
	Stage        Stage         `json:"stage,omitempty"`
	Proto        string        `json:"proto,omitempty"` // "tftp", "http", "ipmi", "api"
	Path         string        `json:"path,omitempty"`
	Remote       string        `json:"remote,omitempty"` // client address
	MAC          string        `json:"mac,omitempty"`
	Bytes        int64         `json:"bytes,omitempty"`
	Total        int64         `json:"total,omitempty"`
	Generation   string        `json:"generation,omitempty"`
	Uptime       time.Duration `json:"uptime,omitempty"`
	OverlayBytes int64         `json:"overlay_bytes,omitempty"`
	Power        string        `json:"power,omitempty"` // "on", "off", "unknown"
	Error        string        `json:"error,omitempty"`
	Message      string        `json:"message,omitempty"`
	// Routine is set by the Tracker on what a healthy cluster sends all
	// the time: check-ins, progress (Kind.Routine), and power observations
	// that change nothing (the poller reads every BMC every few seconds).
	// Histories bound them apart from the other events.
	Routine bool `json:"routine,omitempty"`
}
