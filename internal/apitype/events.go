package apitype

import "time"

// Kind says what an Event reports (the wire form of bootstate.Kind).
type Kind string

// Event kinds.
const (
	KindFetch    Kind = "fetch"    // a boot file was served (Stage, Path, Bytes, Total)
	KindDHCP     Kind = "dhcp"     // the node's PXE firmware asked for a boot server
	KindProgress Kind = "progress" // more bytes of a large file were sent (Bytes, Total)
	KindCheckin  Kind = "checkin"  // the OS reported in (Generation, Uptime, OverlayBytes)
	KindPower    Kind = "power"    // power state seen (Power) or an action sent (Message)
	KindFail     Kind = "fail"     // a boot error (Error), e.g. a 404 or a BMC failure
	KindStall    Kind = "stall"    // no progress for the stall timeout
	KindUnknown  Kind = "unknown"  // a request from a MAC or IP the inventory does not know
	KindDenied   Kind = "denied"   // a refused request: bad token, hostile path
	KindMark     Kind = "mark"     // an admin marked the node dirty (Message: the reason) or cleared it
	KindInfo     Kind = "info"     // anything else worth keeping in the history
	KindKexec    Kind = "kexec"    // the node's agent was sent a kexec instruction: a new boot without firmware
	KindClaim    Kind = "claim"    // a request named the node without proving it (MAC, learned address): served, the node's stage did not move
)

// Kinds lists every event kind.
var Kinds = []Kind{KindFetch, KindDHCP, KindProgress, KindCheckin, KindPower, KindFail, KindStall,
	KindUnknown, KindDenied, KindMark, KindInfo, KindClaim, KindKexec}

// Event is one observation about a node, one line of GET /v1/events (the
// wire form of bootstate.Event). Node is "" for events about an unknown
// client (then MAC and/or Remote say who it was).
type Event struct {
	Seq          uint64        `json:"seq"` // increasing
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
	// Routine marks what a healthy cluster sends all the time (check-ins,
	// progress, power observations that change nothing): histories bound
	// them apart, so that they never push a rarer event (a node that
	// turned dirty, a failure) out within seconds.
	Routine bool `json:"routine,omitempty"`
}

// AuditEntry is one action recorded in the audit log (GET /v1/audit; the
// wire form of audit.Entry).
type AuditEntry struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`              // unix user or SSH key fingerprint
	Action  string    `json:"action"`           // "power cycle", "edit node n01", ...
	Target  string    `json:"target,omitempty"` // the selection as given
	Nodes   int       `json:"nodes,omitempty"`  // how many nodes it touched
	Result  string    `json:"result"`           // "ok", "3 ok, 1 failed", or the error
	Details []string  `json:"details,omitempty"`
	// Paths says, per node, which path an action took and why
	// ("n07: kexec (agent polling)"): reboot-clean and rollout waves.
	Paths []string `json:"paths,omitempty"`
}
