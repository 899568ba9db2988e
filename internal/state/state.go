// Package state names the daemon's durable state, in one place: the
// interfaces the daemon holds instead of concrete stores. Today's
// single-head implementation (bbolt and files in the data directory) is
// internal/state/local; a store shared by several heads (etcd) implements
// the same interfaces and needs no change elsewhere.
//
// Which package owns which state, and what each interface promises, is in
// this package's README.
package state

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
)

// Store is all the durable state of a daemon. The daemon opens one (or is
// handed one in its Config) and closes it last, after every server and
// workflow that writes to it has stopped.
type Store interface {
	// BootStates persists the boot-state tracker: every node's state, its
	// bounded history and the event counter.
	BootStates() BootStates
	// Addresses ties client addresses to the nodes that booted from them.
	Addresses() Addresses
	// Documents holds whole documents replaced by compare-and-swap (the
	// rollouts today).
	Documents() Documents
	// Audit is the audit log.
	Audit() Audit
	// Consoles keeps each node's captured serial console output.
	Consoles() Consoles
	// Checkins is the memory of the check-in replay guard: per node, the
	// newest check-in accepted, so that a replayed one is refused after a
	// restart (or by another head) too.
	Checkins() Checkins
	// TokenKey is the secret the nodes' check-in tokens and fetch keys are
	// derived from (pxe.Tokens): made at random on first use, the same ever
	// after (and on every head sharing the store). It never leaves the
	// daemon.
	TokenKey() ([]byte, error)
	// Close releases the store (and, for the local store, the data
	// directory's lock).
	Close() error
}

// BootStates is the persistence of bootstate.Tracker. It is declared in
// bootstate (which imports nothing of the project, so it cannot import this
// package) and named here so that the list of stores is complete.
type BootStates = bootstate.Persister

// Addresses remembers which node last booted from a client address, for
// requests that do not name their node (an iPXE script fetching its kernel
// by IP). Entries expire: a learned address is proof for the rest of one
// boot, not forever. Safe for concurrent use; Learn never blocks on I/O for
// long (it is on the boot servers' request path).
type Addresses interface {
	// Learn ties ip to node until expires.
	Learn(ip netip.Addr, node string, expires time.Time)
	// Lookup returns the node ip is tied to at now (false when none or
	// expired).
	Lookup(ip netip.Addr, now time.Time) (node string, ok bool)
}

// Rev is a document's revision: 0 means the document does not exist; any
// other value is opaque and changes with every Put.
type Rev uint64

// ErrConflict is what Documents.Put returns when the document's revision is
// no longer the one the caller read: someone else's edit landed first.
// Read it again, reapply the change, and put it with the new revision.
var ErrConflict = errors.New("state: the document changed since it was read")

// ErrNoQuorum is what a store shared by several heads returns when this
// head cannot reach the quorum of the cluster: it changes nothing (no split
// brain) until it rejoins, and keeps serving the boots it can from what it
// has.
var ErrNoQuorum = errors.New("this head is cut off from the cluster's quorum: changes are refused until it rejoins (boots are still served from local data)")

// Documents keeps named documents (the rollouts file) whole. An edit lands
// once: Put replaces a document only if its revision is still the one the
// caller read. Names are file-name-like ("rollouts.json"). Safe for
// concurrent use.
type Documents interface {
	// Get returns the document and its revision; a missing document is
	// (nil, 0, nil).
	Get(name string) ([]byte, Rev, error)
	// Put replaces the document if its revision is still prev (0: it must
	// not exist) and returns the new revision, or ErrConflict.
	Put(name string, data []byte, prev Rev) (Rev, error)
}

// Audit is the audit log: one entry per admin action, appended durably. It
// fails closed: the API asks Ready before every mutation and refuses the
// action when the entry could not be made durable.
type Audit interface {
	// Ready returns nil when an entry recorded now will be durable, and
	// otherwise why not (a full disk, an unreachable store).
	Ready() error
	// Record appends e (stamping its time when zero); nil means it is
	// durable.
	Record(e audit.Entry) error
	// Recent returns the newest n entries (n <= 0: all kept), oldest
	// first.
	Recent(n int) []audit.Entry
	// Follow returns the newest n entries and a subscription to every
	// entry recorded after them, with no entry between them or twice; a
	// subscriber that does not keep up loses entries, it never holds
	// Record up.
	Follow(n, buffer int) ([]audit.Entry, *audit.Subscription)
}

// AuditLister is an Audit that lists every entry it holds, not only the
// newest that Recent keeps: a backup (internal/backup) reads the whole log
// through it. An Audit without it is backed up from Recent(0).
type AuditLister interface {
	All() ([]audit.Entry, error)
}

// ConsoleLog is the tail of a node's captured console.
type ConsoleLog struct {
	Lines   []string  // the last lines, control sequences removed, oldest first
	Kept    int       // bytes kept (bounded)
	Total   int64     // bytes seen
	Updated time.Time // last output
}

// Consoles keeps each node's captured serial console output, bounded per
// node (the newest bytes win). Safe for concurrent use; Append never
// blocks on I/O for long (it is on a SOL session's output path).
type Consoles interface {
	// Append adds console output of node.
	Append(node string, p []byte)
	// Tail returns the last n lines of node's console (false when nothing
	// was captured).
	Tail(node string, n int) (ConsoleLog, bool)
}

// Cluster is what a store shared by several heads adds to Store (the
// daemon asks for it with a type assertion; a single head's store is not
// one). With it the daemon mirrors the inventory document into its file,
// refuses changes without a quorum, and reports the members.
type Cluster interface {
	Store
	// Head is this head's name in the cluster.
	Head() string
	// Ready returns nil when this head reaches the cluster's quorum, and an
	// error wrapping ErrNoQuorum otherwise.
	Ready() error
	// WatchDocument calls changed (one call at a time) each time any head
	// puts the document, until ctx ends or the store is closed.
	WatchDocument(ctx context.Context, name string, changed func(data []byte, rev Rev)) error
	// Members reports the cluster's members as this head sees them.
	Members(ctx context.Context) ([]Member, error)
	// Lead runs work each time this head wins the election name (work
	// that must run once: rollouts), with a context that ends when the
	// head loses it; a dead head loses it when its lease expires. It
	// returns when ctx ends.
	Lead(ctx context.Context, name string, work func(ctx context.Context))
	// Leader returns the head that holds the election name ("" when
	// none does).
	Leader(ctx context.Context, name string) (string, error)
	// LiveHeads are the heads alive now (their lease renewed), sorted.
	LiveHeads(ctx context.Context) ([]string, error)
	// Advertise publishes the base URL this head serves boots at;
	// HeadURLs returns the live heads' (head -> URL).
	Advertise(url string) error
	HeadURLs(ctx context.Context) (map[string]string, error)
	// FollowBootEvents hands fn every boot event the other heads record,
	// until ctx ends (each head's tracker observes them: every head sees
	// every node's boot).
	FollowBootEvents(ctx context.Context, fn func(bootstate.Event))
	// Claim takes keys for this head (work on a node that must run on one
	// head at a time) until release, or until the head stops renewing its
	// lease; keys another head holds are not taken and come back in held
	// with that head's name.
	Claim(ctx context.Context, keys []string) (release func(), held map[string]string, err error)
}

// Member is one member of a cluster.
type Member struct {
	Name       string
	ID         uint64
	PeerURLs   []string
	ClientURLs []string
	Leader     bool   // the raft leader, as the member answering says
	Reachable  bool   // this head reached it just now
	Error      string // why it was not reachable
}

// CheckinSeen is what the check-in replay guard (internal/pxe) keeps of
// one node: the boot id and counter of the newest check-in it accepted,
// and the boot ids the node has left since, oldest first (bounded by the
// guard).
type CheckinSeen struct {
	BootID string   `json:"boot_id"`
	Seq    uint64   `json:"seq"`
	Left   []string `json:"left,omitempty"`
}

// Checkins keeps a CheckinSeen per node. A change lands once: Put replaces
// a node's record only if its revision is still the one the caller read
// (as Documents.Put), so two heads (or two requests) that admit check-ins
// of one node at once cannot both accept the same one. Safe for concurrent
// use; a record is durable when Put returns nil (the check-in is answered
// after it).
type Checkins interface {
	// Get returns node's record and its revision (a zero record and 0 when
	// there is none).
	Get(node string) (CheckinSeen, Rev, error)
	// Put replaces node's record if its revision is still prev (0: there
	// must be none) and returns the new revision, or ErrConflict.
	Put(node string, seen CheckinSeen, prev Rev) (Rev, error)
}
