package pxe

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
)

// proof is how well a request shows which node sent it. Boot state moves
// only as far as the proof goes: see the pxe README, "Who is asking".
type proof uint8

const (
	// proofNone: the request is tied to no node.
	proofNone proof = iota
	// proofClaim: the node is named by a MAC (its boot entry, a DHCP
	// request) or by an address learned earlier in its boot. Before a
	// kernel runs PXE offers nothing better, so the request is served, but
	// the node's state does not move: the fetch is a KindClaim event (an
	// unproven mark in the node's timeline, rate limited per node and
	// stage), and a failure it would report is an info event (rate limited
	// per address).
	proofClaim
	// proofNode: the node's check-in token or fetch key, or a request from
	// the node's fixed inventory address. Moves the stage any way.
	proofNode
)

// addrProves reports whether a request from ip proves node n: n has a fixed
// IP in the inventory and ip is it.
func addrProves(n *inventory.Node, ip netip.Addr) bool {
	return n.IP.IsValid() && n.IP.Unmap() == ip.Unmap()
}

// keyProves reports whether a request from ip with fetch key key proves n: a
// node with a fixed IP is proved by its address only (its key can be read
// from its boot entry by anyone on the boot network), any other by its key.
func (b *Boot) keyProves(n *inventory.Node, key string, ip netip.Addr) bool {
	if n.IP.IsValid() {
		return addrProves(n, ip)
	}
	return key != "" && b.Tokens.VerifyFetch(n.Name, key)
}

// nodeByAddr is NodeByIP with the proof the address gives: a fixed
// inventory IP proves the node, a learned one only claims it.
func (b *Boot) nodeByAddr(inv *inventory.Inventory, ip netip.Addr) (*inventory.Node, proof) {
	if n := inv.NodeByIP(ip.Unmap()); n != nil {
		return n, proofNode
	}
	if n := b.NodeByIP(inv, ip); n != nil {
		return n, proofClaim
	}
	return nil, proofNone
}

// macProof is the proof of a request that names node n by MAC (a boot entry
// asked for by MAC): a claim, or proof when it comes from n's fixed IP.
func macProof(n *inventory.Node, ip netip.Addr) proof {
	if addrProves(n, ip) {
		return proofNode
	}
	return proofClaim
}

// report emits ev as far as pr lets it go. From a request that does not
// prove its node, a fetch becomes a claim (at most claimBurst per node and
// stage at once, then one per claimEvery) and a failure an info event (at
// most one per client address per unprovenEvery): neither moves the node.
func (b *Boot) report(ev bootstate.Event, pr proof) {
	if pr < proofNode {
		switch ev.Kind {
		case bootstate.KindFail:
			if !b.allowUnproven(ev.Remote) {
				return
			}
			ev.Kind = bootstate.KindInfo
			ev.Message = "request does not prove node " + ev.Node + ", stage unchanged: " + ev.Error
			ev.Stage, ev.Error = "", ""
		case bootstate.KindFetch:
			b.initLimiters()
			if ok, _ := b.claims.Allow(ev.Node + " " + string(ev.Stage)); !ok {
				return
			}
			ev.Kind = bootstate.KindClaim
			ev.Message = "served, but the request does not prove node " + ev.Node + ": stage unchanged"
		}
	}
	b.emit(ev)
}

// Claims of one node and stage let through at once, and then one per
// claimEvery: a node's boot claims each stage once or twice; a flood of
// forged requests fills neither the history nor the log.
const (
	claimBurst = 3
	claimEvery = 10 * time.Second
)

// deny emits a denied event (rate limited per client address).
func (b *Boot) deny(ev bootstate.Event) {
	if b.allowUnproven(ev.Remote) {
		ev.Kind = bootstate.KindDenied
		b.emit(ev)
	}
}

// unprovenEvery is the shortest time between two events about unproven or
// refused requests from one address.
const unprovenEvery = 10 * time.Second

// maxLimited bounds the client addresses the unproven limiter remembers.
const maxLimited = 4096

// allowUnproven lets one event about unproven or refused requests per client
// address through every unprovenEvery (ratelimit.Limiter with a burst of 1).
func (b *Boot) allowUnproven(remote string) bool {
	b.initLimiters()
	ok, _ := b.unproven.Allow(clientKey(remote))
	return ok
}

// maxBootIDs is how many earlier boots of a node the replay guard remembers.
const maxBootIDs = 8

// errReplay is the error of a check-in the guard refuses.
var errReplay = errors.New("check-in replayed")

// nextSeen is the check-in replay guard's rule. Every check-in carries the
// boot id of the node's running kernel and a counter that the agent raises
// with every attempt; per node the guard keeps the newest (boot id,
// counter) accepted and the boot ids the node has since left (seen; none
// when the node never checked in). It returns seen with (bootID, seq)
// recorded when that is newer than anything accepted before, and errReplay
// otherwise.
func nextSeen(seen state.CheckinSeen, none bool, bootID string, seq uint64) (state.CheckinSeen, error) {
	if none {
		return state.CheckinSeen{BootID: bootID, Seq: seq}, nil
	}
	if bootID == seen.BootID {
		if seq <= seen.Seq {
			return seen, fmt.Errorf("%w: counter %d, already at %d in this boot", errReplay, seq, seen.Seq)
		}
		seen.Seq = seq
		return seen, nil
	}
	if slices.Contains(seen.Left, bootID) {
		return seen, fmt.Errorf("%w: from an earlier boot of the node", errReplay)
	}
	return state.CheckinSeen{BootID: bootID, Seq: seq, Left: leaving(seen.Left, seen.BootID)}, nil
}

// leaving returns left with id added (a copy), keeping the newest
// maxBootIDs; "" (no current boot, after retired) adds nothing.
func leaving(left []string, id string) []string {
	left = slices.Clone(left)
	if id != "" && !slices.Contains(left, id) {
		left = append(left, id)
	}
	if len(left) > maxBootIDs {
		left = left[len(left)-maxBootIDs:]
	}
	return left
}

// retired is seen after the node was told to leave boot bootID (a kexec
// instruction): that boot's check-ins are refused as from an earlier boot
// from then on, and the node's next boot is accepted from its first
// check-in.
func retired(seen state.CheckinSeen, bootID string) state.CheckinSeen {
	if seen.BootID == bootID {
		seen.BootID, seen.Seq = "", 0
	}
	seen.Left = leaving(seen.Left, bootID)
	return seen
}

// admitCheckin records (bootID, seq) as node's newest check-in in the
// Checkins store when nextSeen allows it: errReplay when it does not, and
// the store's error when the record could not be made durable (the
// check-in is then refused too: the agent tries again). A conflicting
// write (another head or request admitted one of node's check-ins since
// the read) is read again.
func (b *Boot) admitCheckin(node, bootID string, seq uint64) error {
	return b.updateCheckins(node, func(seen state.CheckinSeen, none bool) (state.CheckinSeen, error) {
		return nextSeen(seen, none, bootID, seq)
	})
}

// retireBoot records durably that node has left boot bootID (retired).
func (b *Boot) retireBoot(node, bootID string) error {
	return b.updateCheckins(node, func(seen state.CheckinSeen, _ bool) (state.CheckinSeen, error) {
		return retired(seen, bootID), nil
	})
}

// updateCheckins writes next(node's record, whether it has none) to the
// Checkins store, reading again after a conflicting write (another head or
// request changed node's record since the read).
func (b *Boot) updateCheckins(node string, next func(state.CheckinSeen, bool) (state.CheckinSeen, error)) error {
	store := b.checkinStore()
	for range 8 {
		seen, rev, err := store.Get(node)
		if err != nil {
			return err
		}
		n, err := next(seen, rev == 0)
		if err != nil {
			return err
		}
		if _, err := store.Put(node, n, rev); !errors.Is(err, state.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("check-ins of %s: %w", node, state.ErrConflict)
}

// checkinStore is b.Checkins, an in-memory one when unset.
func (b *Boot) checkinStore() state.Checkins {
	return orDefault(&b.mu, &b.Checkins, func() state.Checkins { return local.NewMemoryCheckins() })
}
