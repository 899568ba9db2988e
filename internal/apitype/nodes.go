package apitype

import "time"

// Stage is where a node is in its boot (the wire form of bootstate.Stage).
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

// Stages lists every boot stage, StageUnknown first.
var Stages = []Stage{StageUnknown, StageOff, StagePoweringOn, StageKexec, StageDHCP, StageNBP, StageConfig,
	StageKernel, StageInitrd, StageRootfs, StageBooted, StageStalled, StageFailed}

// Power states in NodeState.Power.
const (
	PowerOn      = "on"
	PowerOff     = "off"
	PowerUnknown = "unknown"
)

// StageMark records when a node entered a stage during its current boot,
// or, Unproven, when a request that only claimed the node (its MAC, an
// address learned in its boot) asked for that stage's file: seen, but the
// node's stage did not move.
type StageMark struct {
	Stage    Stage     `json:"stage"`
	Time     time.Time `json:"time"`
	Unproven bool      `json:"unproven,omitempty"`
}

// NodeState is what the daemon knows about a node's boot and power (the
// wire form of bootstate.NodeState).
type NodeState struct {
	Node         string    `json:"node"`
	Stage        Stage     `json:"stage"`
	StageSince   time.Time `json:"stage_since,omitzero"`
	LastProgress time.Time `json:"last_progress,omitzero"` // last fetch, progress or stage change of a boot in progress
	// Timeline lists the stages of the current boot, oldest first.
	Timeline     []StageMark   `json:"timeline,omitempty"`
	Path         string        `json:"path,omitempty"`  // file of the last fetch or progress
	Bytes        int64         `json:"bytes,omitempty"` // bytes of Path sent so far
	Total        int64         `json:"total,omitempty"` // size of Path, 0 if unknown
	Generation   string        `json:"generation,omitempty"`
	Uptime       time.Duration `json:"uptime,omitempty"`
	OverlayBytes int64         `json:"overlay_bytes,omitempty"`
	LastCheckin  time.Time     `json:"last_checkin,omitzero"`
	Power        string        `json:"power"` // PowerOn, PowerOff or PowerUnknown
	PowerError   string        `json:"power_error,omitempty"`
	// Error says why the node is failed or stalled.
	Error       string    `json:"error,omitempty"`
	Remote      string    `json:"remote,omitempty"` // last client address
	MAC         string    `json:"mac,omitempty"`    // last MAC seen in an event
	MarkedDirty bool      `json:"marked_dirty,omitempty"`
	DirtyReason string    `json:"dirty_reason,omitempty"`
	LastSeen    time.Time `json:"last_seen,omitzero"` // time of the last event about the node
	// Seq is the sequence number of the last event recorded for the node.
	Seq uint64 `json:"seq,omitempty"`
}

// NodeView is a node as the console and the CLI show it: inventory facts,
// assignment and live state together (GET /v1/nodes, /v1/nodes/{name}).
type NodeView struct {
	Name     string `json:"name"`
	Group    string `json:"group,omitempty"`
	MAC      string `json:"mac"`
	IP       string `json:"ip,omitempty"`
	Arch     string `json:"arch"`
	Loader   string `json:"loader"`
	BMC      string `json:"bmc,omitempty"` // host:port, never credentials
	Image    string `json:"image,omitempty"`
	Assigned string `json:"assigned_generation,omitempty"` // the generation its next boot gets
	Pinned   bool   `json:"pinned,omitempty"`              // Assigned is pinned in the inventory
	// AssignError says why no generation is assigned (no image, none published).
	AssignError string `json:"assign_error,omitempty"`
	Override    bool   `json:"override,omitempty"`    // boots a raw override entry
	KernelArgs  string `json:"kernel_args,omitempty"` // the group's, then the node's own
	// OwnKernelArgs are the node's own kernel arguments (its entry's
	// kernel_args, after the group's in KernelArgs).
	OwnKernelArgs string `json:"own_kernel_args,omitempty"`
	// Revision identifies the node's settings as the inventory has them
	// now (Edit.BaseEntry); it changes when they do, not when another
	// entry does.
	Revision     string    `json:"revision,omitempty"`
	Defined      string    `json:"defined"` // FILE:LINE:COL of its inventory entry
	State        NodeState `json:"state"`
	Dirty        bool      `json:"dirty"`
	DirtyReasons []string  `json:"dirty_reasons,omitempty"`
}

// GroupView is a group's own settings, as its inventory entry sets them
// (a node's KernelArgs in NodeView are the group's and its own, joined).
// It never holds credentials (GET /v1/groups/{name}).
type GroupView struct {
	Name       string   `json:"name"`
	Image      string   `json:"image,omitempty"`
	Generation string   `json:"generation,omitempty"`
	Arch       string   `json:"arch,omitempty"`
	Loader     string   `json:"loader,omitempty"`
	KernelArgs string   `json:"kernel_args,omitempty"`
	IPXE       string   `json:"boot_override_ipxe,omitempty"`
	Pxelinux   string   `json:"boot_override_pxelinux,omitempty"`
	Nodes      []string `json:"nodes"`
	Defined    string   `json:"defined"` // FILE:LINE:COL of its entry
	// Revision identifies the group's settings now (Edit.BaseEntry).
	Revision string `json:"revision,omitempty"`
}

// Edit is a change to one node's or group's inventory entry
// (PATCH /v1/nodes/{name}, PATCH /v1/groups/{name}).
type Edit struct {
	// BaseRevision is the inventory revision the change was made against; the
	// edit fails with CodeConflict when the file has changed since. Empty
	// means the revision in force now.
	BaseRevision string `json:"base_revision,omitempty"`
	// BaseEntry, when set, is the Revision of the node or group entry (its
	// NodeView or GroupView) the change was made against: the edit then
	// fails with CodeConflict only when that entry changed since, whatever
	// else changed in the file, and BaseRevision is not checked.
	BaseEntry string `json:"base_entry,omitempty"`
	// Set maps dotted keys (image, kernel_args, boot_override.ipxe, ...) to
	// values; Unset lists keys to remove.
	Set   map[string]any `json:"set,omitempty"`
	Unset []string       `json:"unset,omitempty"`
	// Who is the caller, for the audit log (set by the API server, never
	// on the wire).
	Who string `json:"-"`
}

// EditResult is the answer to a successful edit.
type EditResult struct {
	Revision string `json:"revision"`
}

// NodeRename gives a node a new name (POST /v1/nodes/{name}/rename). A
// node of a range entry is split out of it first. Adding a node is POST
// /v1/nodes/{name} with an Edit whose Set holds its fields ("mac" is the
// boot NIC's, required); removing one is DELETE /v1/nodes/{name} with an
// Edit holding only the base revision.
type NodeRename struct {
	NewName string `json:"new_name"`
	// BaseRevision as in Edit.
	BaseRevision string `json:"base_revision,omitempty"`
	// Who is the caller, for the audit log (set by the API server, never
	// on the wire).
	Who string `json:"-"`
}

// Preview asks for a boot entry rendered from a proposed override, or the
// current entry when Override is empty (POST /v1/nodes/{name}/preview).
type Preview struct {
	Node     string `json:"node"`
	Format   string `json:"format"`
	Override string `json:"override,omitempty"`
}

// EditPreview asks how a node's boot entry would look after an edit of the
// node's entry or, with Group set, of that group's entry
// (POST /v1/edit-preview).
type EditPreview struct {
	Node   string `json:"node"`            // whose entry is rendered
	Group  string `json:"group,omitempty"` // edit this group instead of the node
	Format string `json:"format,omitempty"`
	Edit   Edit   `json:"edit"`
}

// BMCFacts is what the console's node detail shows about a node's BMC, read
// when asked: the device ID and the power state (GET /v1/nodes/{name}/bmc).
// It never holds credentials.
type BMCFacts struct {
	Node string `json:"node"`
	BMC  string `json:"bmc,omitempty"` // host:port
	// Device is the BMC's device identification (device, firmware,
	// protocol version, manufacturer and product IDs); DeviceError says why
	// there is none.
	Device      string `json:"device,omitempty"`
	DeviceError string `json:"device_error,omitempty"`
	// Power is the power state read now ("" when it could not be read,
	// PowerError says why), at ReadAt.
	Power      string    `json:"power,omitempty"`
	PowerError string    `json:"power_error,omitempty"`
	ReadAt     time.Time `json:"read_at"`
	// PollEvery is how often the daemon polls every BMC's power state (0:
	// it does not).
	PollEvery time.Duration `json:"poll_every"`
}

// InventoryStatus says which inventory is in force and whether the file on
// disk failed to load.
type InventoryStatus struct {
	Path       string    `json:"path"`
	Revision   string    `json:"revision"`
	Nodes      int       `json:"nodes"`
	Groups     int       `json:"groups"`
	ReloadErr  string    `json:"reload_error,omitempty"`
	LastReload time.Time `json:"last_reload,omitzero"`
}

// Status is the answer of GET /v1/status.
type Status struct {
	Inventory InventoryStatus `json:"inventory"`
	HTTP      string          `json:"http,omitempty"`
	TFTP      string          `json:"tftp,omitempty"`
	BootURL   string          `json:"boot_url,omitempty"`
	// Cluster is this head's view of its cluster (absent on a single
	// head).
	Cluster *ClusterStatus `json:"cluster,omitempty"`
}

// ClusterStatus is a head's view of the cluster of heads it belongs to.
type ClusterStatus struct {
	Head    string          `json:"head"`             // this head's name
	Leader  string          `json:"leader,omitempty"` // the member that leads ("" when none is known)
	Quorum  bool            `json:"quorum"`           // this head reaches the quorum: it may change things
	Error   string          `json:"error,omitempty"`  // why not
	Members []ClusterMember `json:"members"`
	// Rollouts is the head that runs the rollouts' waves (it holds their
	// election; "" when none does now).
	Rollouts string `json:"rollouts,omitempty"`
}

// ClusterMember is one member of a cluster.
type ClusterMember struct {
	Name       string   `json:"name"`
	ID         string   `json:"id"` // hex
	PeerURLs   []string `json:"peer_urls"`
	ClientURLs []string `json:"client_urls,omitempty"`
	Leader     bool     `json:"leader,omitempty"`
	Reachable  bool     `json:"reachable"`
	Error      string   `json:"error,omitempty"`
}

// SOLLog is a node's captured serial console output
// (GET /v1/nodes/{name}/sol).
type SOLLog struct {
	Node    string    `json:"node"`
	Lines   []string  `json:"lines"`            // the last lines, oldest first
	Kept    int       `json:"kept"`             // bytes kept
	Total   int64     `json:"total"`            // bytes seen since the daemon started
	Updated time.Time `json:"updated,omitzero"` // last output
	Active  bool      `json:"active"`           // a SOL session runs now
	Error   string    `json:"error,omitempty"`  // why the last session ended, if it failed
}

// ConsoleProtocol is the Upgrade token of POST /v1/nodes/{name}/console.
const ConsoleProtocol = "netbootui-console"

// UnknownNode is a PXE client that asked for a boot but is not in the
// inventory (GET /v1/unknown), from the daemon's bounded table of them.
type UnknownNode struct {
	MAC       string    `json:"mac"`
	Arch      string    `json:"arch,omitempty"`    // bios, uefi, or what the firmware said; "" when unknown
	Address   string    `json:"address,omitempty"` // the client's address, last seen
	Proto     string    `json:"proto,omitempty"`   // how it last asked: dhcp, tftp, http
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Requests  int       `json:"requests"` // requests reported (refusals are rate-limited)
}

// AdoptRequest names unknown clients as nodes of Group (POST
// /v1/unknown/adopt): in the order they first asked, each gets the next
// free name of the group's pattern (nodes n001..n012 → n013, or the first
// gap). Group may be empty when the inventory has one group.
//
// BMCs adopt machines by their BMC ("HOST" or "HOST:PORT"; the protocol,
// user, password and protocol options are the group's bmc entry): the
// daemon reads each machine's NIC MACs from its BMC (Redfish
// EthernetInterfaces) and adopts it as one node with those NICs and that
// BMC. Its boot NIC is the one that asked as an unknown PXE client (the
// first reported when none has asked yet: it can be adopted before it
// ever boots, then powered on through its BMC). A MAC of MACs that a BMC
// reports joins that BMC's node. Machines that asked come first, in the
// order they asked; the others follow in the order of BMCs.
type AdoptRequest struct {
	MACs         []string `json:"macs"`
	BMCs         []string `json:"bmcs,omitempty"`
	Group        string   `json:"group,omitempty"`
	BaseRevision string   `json:"base_revision,omitempty"`
	// Who is the caller, for the audit log (set by the API server, never
	// on the wire).
	Who string `json:"-"`
}

// Adopted is one adopted client and the node name it got.
type Adopted struct {
	MAC  string `json:"mac"` // the boot NIC's
	Name string `json:"name"`
	// BMC is the BMC it was adopted by (as asked), NICs every NIC MAC the
	// BMC reported, the boot NIC's first; both empty when adopted by MAC.
	BMC  string   `json:"bmc,omitempty"`
	NICs []string `json:"nics,omitempty"`
}

// AdoptResult answers an AdoptRequest.
type AdoptResult struct {
	Nodes    []Adopted `json:"nodes"`
	Revision string    `json:"revision"`
}

// PersistView is what a node keeps across reboots: its group's persisted
// paths and what lies under each in the node's own directory on the head
// (GET /v1/nodes/{name}/persist; POST .../persist/wipe empties them).
type PersistView struct {
	Node string `json:"node"`
	// Export is where the node mounts its directory from
	// (SERVER:/EXPORT/nodes/NODE); empty when nothing persists.
	Export string        `json:"export,omitempty"`
	Paths  []PersistPath `json:"paths,omitempty"`
	// Note says why the node persists nothing (no persist: in its group,
	// not an nfs root, no settings.nfs).
	Note string `json:"note,omitempty"`
	// Removed is, after a wipe, how many entries it removed.
	Removed int `json:"removed,omitempty"`
	// Disk is set when the node keeps its persisted paths on a partition
	// of its own disk (a RAM root with persist_disk) instead of on the
	// head: what it holds is seen only by the node.
	Disk *PersistDisk `json:"disk,omitempty"`
}

// PersistDisk is a node's persist disk: the inventory's persist_disk, the
// newest wipe requested of it and what the node's newest check-in said.
type PersistDisk struct {
	Label   string `json:"label"`
	Missing string `json:"missing"` // "fail" or "boot"
	Format  bool   `json:"format,omitempty"`
	// Reported is where the node's newest check-in to this head said its
	// paths are this boot ("disk LABEL on /dev/vda, wipe ID applied",
	// "none: why"); empty when it has not said since the daemon started.
	Reported   string    `json:"reported,omitempty"`
	ReportedAt time.Time `json:"reported_at,omitzero"`
	// Wipe is the newest wipe requested of the node's disk (its id, when
	// and by whom); WipePending: the node has not reported it applied
	// (it is applied at the node's next boot).
	Wipe        string    `json:"wipe,omitempty"`
	WipeAt      time.Time `json:"wipe_at,omitzero"`
	WipeBy      string    `json:"wipe_by,omitempty"`
	WipePending bool      `json:"wipe_pending,omitempty"`
}

// PersistPath is one persisted path of a node and what it holds.
type PersistPath struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	Files int    `json:"files"`
	// Missing: the head has not made the directory yet.
	Missing bool `json:"missing,omitempty"`
	// OnNode: the path lives on the node's own disk; the head does not
	// see what it holds (Bytes and Files are 0).
	OnNode bool `json:"on_node,omitempty"`
}

// PersistWipeRequest is a wipe of a node's persisted paths (Who is set by
// the API server).
type PersistWipeRequest struct {
	Node string `json:"-"`
	Who  string `json:"-"`
}
