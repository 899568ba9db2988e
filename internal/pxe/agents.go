package pxe

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/agentproto"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
)

// DefaultAgentPollWait is how long the daemon holds an agent's poll open
// when it has nothing to say (under the HTTP server's read timeout, which
// would cancel a longer one).
const DefaultAgentPollWait = 20 * time.Second

// agentGrace is how long after its last poll ended an agent still counts
// as alive: it polls again at once, so a live agent is never gone longer.
const agentGrace = 5 * time.Second

// agents is the mailbox between reboot-clean and the node agents' long
// polls: per node, the poll parked now (at most one) and when the last one
// was seen.
type agents struct {
	mu     sync.Mutex
	nodes  map[string]*agentSlot
	closed bool // ReleaseAgentPolls: polls are answered at once
}

type agentSlot struct {
	parked   *parkedPoll
	lastSeen time.Time
	arrived  chan struct{} // closed (and replaced) when a poll parks
}

// parkedPoll is one poll waiting for an instruction.
type parkedPoll struct {
	poll    agentproto.Poll
	base    string      // the daemon's URL as the agent reached it
	deliver chan []byte // buffered 1; the handler answers with what comes
}

func (a *agents) slot(node string) *agentSlot {
	if a.nodes == nil {
		a.nodes = map[string]*agentSlot{}
	}
	s := a.nodes[node]
	if s == nil {
		s = &agentSlot{arrived: make(chan struct{})}
		a.nodes[node] = s
	}
	return s
}

// park registers p as node's waiting poll; a poll parked before it is
// released (answered with nothing to do).
func (a *agents) park(p *parkedPoll, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.slot(p.poll.Node)
	if a.closed { // the server stops: nothing to do, at once
		close(p.deliver)
		s.lastSeen = now
		return
	}
	if s.parked != nil {
		close(s.parked.deliver)
	}
	s.parked, s.lastSeen = p, now
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// unpark removes p when it is still node's waiting poll.
func (a *agents) unpark(p *parkedPoll, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.slot(p.poll.Node)
	if s.parked == p {
		s.parked = nil
	}
	s.lastSeen = now
}

// AgentAlive reports whether node's agent is polling: a poll is parked now,
// or the last one ended within a few seconds (the agent polls again at once).
func (b *Boot) AgentAlive(node string) bool {
	b.agents.mu.Lock()
	defer b.agents.mu.Unlock()
	s := b.agents.nodes[node]
	return s != nil && (s.parked != nil || b.now().Sub(s.lastSeen) < agentGrace)
}

// ReleaseAgentPolls answers every parked agent poll, and every poll from
// now on at once, with nothing to do: the HTTP server of a stopping daemon
// then shuts down without waiting out the polls (up to AgentPollWait
// each; agents poll again, elsewhere or later). The daemon registers it
// with http.Server.RegisterOnShutdown.
func (b *Boot) ReleaseAgentPolls() {
	b.agents.mu.Lock()
	defer b.agents.mu.Unlock()
	b.agents.closed = true
	for _, s := range b.agents.nodes {
		if s.parked != nil {
			close(s.parked.deliver)
			s.parked = nil
		}
	}
}

// ErrNoAgent is returned by SendKexec when no poll of the node's agent
// arrived in time.
var ErrNoAgent = errors.New("the node's agent is not polling")

// AgentKey returns the public key the agent checks instructions with, in
// the form of the kernel argument netbootui.agent_key.
func (t *Tokens) AgentKey() string {
	return agentproto.EncodePublicKey(t.signingKey().Public().(ed25519.PublicKey))
}

// signingKey is the daemon's ed25519 instruction key, derived from the
// token key: nothing more to store, and the same on every head that shares
// the token key.
func (t *Tokens) signingKey() ed25519.PrivateKey {
	seed := t.deriveRaw("netbootui-instruction-signing", "")
	return ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize])
}

// KexecSent is what SendKexec delivered.
type KexecSent struct {
	BootID     string // the boot the instruction was bound to
	Generation string
}

// SendKexec tells node's agent to reboot clean by kexec into the node's
// assigned generation: it waits (until ctx ends) for the agent's poll,
// builds the instruction for that poll from the generation's manifest and
// the node's boot entry (its URLs on the daemon as the agent reached it, or
// AdvertiseURL), signs it and answers the poll with it. The node's current boot is retired
// from the check-in guard, so the old system's check-ins no longer count,
// and a kexec event starts the node's new timeline.
func (b *Boot) SendKexec(ctx context.Context, node string) (KexecSent, error) {
	for {
		b.agents.mu.Lock()
		s := b.agents.slot(node)
		p, arrived := s.parked, s.arrived
		if p != nil {
			s.parked = nil
		}
		b.agents.mu.Unlock()
		if p == nil {
			select {
			case <-arrived:
				continue
			case <-ctx.Done():
				return KexecSent{}, fmt.Errorf("%w (%v)", ErrNoAgent, context.Cause(ctx))
			}
		}
		in, err := b.kexecInstruction(node, p.base, p.poll)
		if err != nil {
			close(p.deliver)
			return KexecSent{}, err
		}
		data, err := agentproto.Sign(in, b.Tokens.signingKey())
		if err != nil {
			close(p.deliver)
			return KexecSent{}, err
		}
		if err := b.retireBoot(node, p.poll.BootID); err != nil {
			close(p.deliver)
			return KexecSent{}, fmt.Errorf("node %s: retiring boot %s: %w", node, p.poll.BootID, err)
		}
		b.send(bootstate.Event{Node: node, Kind: bootstate.KindKexec, Proto: "http", Path: agentproto.PollPath,
			Generation: in.Generation, Message: "reboot-clean by kexec sent to the agent of boot " + p.poll.BootID})
		p.deliver <- data
		return KexecSent{BootID: p.poll.BootID, Generation: in.Generation}, nil
	}
}

// kexecInstruction builds the instruction answering p: the assigned
// generation's kernel and initrd (URLs with the node's fetch key, sums and
// sizes from the manifest) and the command line of the node's boot entry.
func (b *Boot) kexecInstruction(node, base string, p agentproto.Poll) (agentproto.Instruction, error) {
	inv := b.Inventory()
	n := inv.Node(node)
	if n == nil {
		return agentproto.Instruction{}, fmt.Errorf("node %s: not in the inventory", node)
	}
	params, err := b.Params(inv, n, base)
	if err != nil {
		return agentproto.Instruction{}, err
	}
	if params.Generation == "" {
		return agentproto.Instruction{}, fmt.Errorf("node %s: image %s has no published generation", node, params.Image)
	}
	if err := params.Validate(); err != nil {
		return agentproto.Instruction{}, err
	}
	m, err := b.Images.Generation(params.Image, params.Generation)
	if err != nil {
		return agentproto.Instruction{}, fmt.Errorf("node %s: %w", node, err)
	}
	file := func(name, url string) (agentproto.File, error) {
		fi, ok := m.File(name)
		if !ok {
			return agentproto.File{}, fmt.Errorf("node %s: generation %s has no %s in its manifest", node, m.ID, name)
		}
		return agentproto.File{URL: url, SHA256: fi.SHA256, Size: fi.Size}, nil
	}
	in := agentproto.Instruction{Action: agentproto.ActionRebootClean, Node: node, BootID: p.BootID, Nonce: p.Nonce,
		Generation: params.Generation, Cmdline: KernelCmdline(params)}
	if in.Kernel, err = file(image.FileKernel, params.KernelURL); err != nil {
		return in, err
	}
	if in.Initrd, err = file(image.FileInitrd, params.InitrdURL); err != nil {
		return in, err
	}
	return in, nil
}

// agentNode authenticates an agent's request as a check-in is: the node's
// token, and its fixed address when it has one. It answers a refusal
// itself and returns nil then.
func (s *HTTPServer) agentNode(w http.ResponseWriter, r *http.Request, node, token, path string) *inventory.Node {
	b := s.Boot
	client := remoteAddr(r)
	n := b.Inventory().Node(node)
	if n != nil && b.Tokens.Verify(node, token) && (!n.IP.IsValid() || addrProves(n, client.Addr())) {
		return n
	}
	ev := bootstate.Event{Proto: "http", Path: path, Remote: client.String(),
		Error: "agent request refused: bad token or address for node " + node}
	if n != nil {
		ev.Node = n.Name
	}
	b.Denied(ev, "agent request refused")
	s.count("agent", http.StatusForbidden)
	http.Error(w, "forbidden", http.StatusForbidden)
	return nil
}

// agentForm reads a bounded form body; on error it answers 400 and
// returns false.
func (s *HTTPServer) agentForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.count("agent", http.StatusBadRequest)
		http.Error(w, "bad form body", http.StatusBadRequest)
		return false
	}
	return true
}

// handleAgentPoll is POST /agent/poll: the agent's long poll. It is held
// until an instruction comes (200, the signed instruction), a newer poll of
// the same node replaces it, or PollWait passes (204).
func (s *HTTPServer) handleAgentPoll(w http.ResponseWriter, r *http.Request) {
	if !s.agentForm(w, r) {
		return
	}
	p, err := agentproto.ParsePoll(r.PostForm)
	if err != nil {
		s.count("agent", http.StatusBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.agentNode(w, r, p.Node, p.Token, agentproto.PollPath) == nil {
		return
	}
	b := s.Boot
	b.learn(remoteAddr(r).Addr(), p.Node)
	wait := s.AgentPollWait
	if wait <= 0 {
		wait = DefaultAgentPollWait
	}
	pp := &parkedPoll{poll: p, base: s.baseURL(r), deliver: make(chan []byte, 1)}
	b.agents.park(pp, b.now())
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case data, ok := <-pp.deliver:
		b.agents.unpark(pp, b.now())
		if ok {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			s.count("agent", http.StatusOK)
			w.Write(data)
			return
		}
	case <-timer.C:
		b.agents.unpark(pp, b.now())
	case <-r.Context().Done():
		b.agents.unpark(pp, b.now())
		// An instruction handed over as the client went away is lost:
		// the reboot-clean waiting for the node falls back or times out.
		return
	}
	s.count("agent", http.StatusNoContent)
	w.WriteHeader(http.StatusNoContent)
}

// handleAgentReport is POST /agent/report: what the agent did with an
// instruction. loaded is an info event (kexec follows); refused and failed
// fail the node's boot with the agent's reason, which a reboot-clean sees
// at once.
func (s *HTTPServer) handleAgentReport(w http.ResponseWriter, r *http.Request) {
	if !s.agentForm(w, r) {
		return
	}
	rep, err := agentproto.ParseReport(r.PostForm)
	if err != nil {
		s.count("agent", http.StatusBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.agentNode(w, r, rep.Node, rep.Token, agentproto.ReportPath) == nil {
		return
	}
	ev := bootstate.Event{Node: rep.Node, Proto: "http", Path: agentproto.ReportPath, Remote: remoteAddr(r).String()}
	switch rep.Result {
	case agentproto.ResultLoaded:
		how := ""
		if rep.Reason != "" {
			how = " with " + s.Boot.redact(rep.Node, rep.Reason)
		}
		ev.Kind, ev.Message = bootstate.KindInfo, "agent of boot "+rep.BootID+": kernel and initrd verified and loaded"+how+", executing kexec"
	default:
		ev.Kind, ev.Error = bootstate.KindFail, "kexec "+rep.Result+" by the agent of boot "+rep.BootID+": "+s.Boot.redact(rep.Node, rep.Reason)
	}
	s.Boot.send(ev)
	s.count("agent", http.StatusOK)
	io.WriteString(w, "ok\n")
}

// redact removes node's secrets (its check-in token, its fetch key) from a
// text that came from the node, before it reaches events, logs or the
// audit.
func (b *Boot) redact(node, text string) string {
	for _, secret := range []string{b.Tokens.Token(node), b.Tokens.FetchKey(node)} {
		text = strings.ReplaceAll(text, secret, "<redacted>")
	}
	return text
}
