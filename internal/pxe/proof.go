package pxe

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
)

// proof is how well a request shows which node sent it. Boot state moves
// only as far as the proof goes: see the pxe README, "Who is asking".
type proof uint8

const (
	// proofNone: the request is tied to no node.
	proofNone proof = iota
	// proofClaim: the node is named by a MAC (its boot entry) or by an
	// address learned earlier in its boot. Before a kernel runs PXE offers
	// nothing better, so a claim moves the node through its fetch stages,
	// but it never fails the node: a failure it would report is an info
	// event (rate limited per address) and the stage stays.
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

// report emits ev as far as pr lets it go: a failure from a request that does
// not prove its node becomes an info event, and at most one such event per
// client address is emitted per unprovenEvery.
func (b *Boot) report(ev bootstate.Event, pr proof) {
	if ev.Kind == bootstate.KindFail && pr < proofNode {
		if !b.allowUnproven(ev.Remote) {
			return
		}
		ev.Kind = bootstate.KindInfo
		ev.Message = "request does not prove node " + ev.Node + ", stage unchanged: " + ev.Error
		ev.Stage, ev.Error = "", ""
	}
	b.emit(ev)
}

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

// checkinGuard refuses replayed check-ins. Every check-in carries the boot
// id of the node's running kernel and a counter that the agent raises with
// every attempt; per node the guard keeps the newest (boot id, counter)
// accepted and the boot ids the node has since left.
type checkinGuard struct {
	mu    sync.Mutex
	nodes map[string]*checkinSeen
}

type checkinSeen struct {
	bootID string
	seq    uint64
	left   []string // earlier boot ids, oldest first, at most maxBootIDs
}

// errReplay is the error of a check-in the guard refuses.
var errReplay = errors.New("check-in replayed")

// admit records (bootID, seq) for node when it is newer than anything
// accepted from node before, and refuses it otherwise.
func (g *checkinGuard) admit(node, bootID string, seq uint64) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.nodes == nil {
		g.nodes = map[string]*checkinSeen{}
	}
	s := g.nodes[node]
	if s == nil {
		g.nodes[node] = &checkinSeen{bootID: bootID, seq: seq}
		return nil
	}
	if bootID == s.bootID {
		if seq <= s.seq {
			return fmt.Errorf("%w: counter %d, already at %d in this boot", errReplay, seq, s.seq)
		}
		s.seq = seq
		return nil
	}
	for _, id := range s.left {
		if id == bootID {
			return fmt.Errorf("%w: from an earlier boot of the node", errReplay)
		}
	}
	if s.bootID != "" { // "" after retire: nothing to leave
		s.leave(s.bootID)
	}
	s.bootID, s.seq = bootID, seq
	return nil
}

// retire records that node has left boot bootID (it was told to kexec out
// of it): later check-ins of that boot are refused as from an earlier boot,
// and the node's next boot is accepted from its first check-in.
func (g *checkinGuard) retire(node, bootID string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.nodes == nil {
		g.nodes = map[string]*checkinSeen{}
	}
	s := g.nodes[node]
	if s == nil {
		s = &checkinSeen{}
		g.nodes[node] = s
	}
	if s.bootID == bootID {
		s.bootID, s.seq = "", 0
	}
	s.leave(bootID)
}

// leave records that the node left boot id, keeping the newest maxBootIDs.
func (s *checkinSeen) leave(id string) {
	s.left = append(s.left, id)
	if len(s.left) > maxBootIDs {
		s.left = s.left[len(s.left)-maxBootIDs:]
	}
}
