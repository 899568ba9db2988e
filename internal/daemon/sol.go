package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/netbootui/netbootui/internal/apitype"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/sol"
	"github.com/netbootui/netbootui/internal/workflow"
)

// Serial-over-LAN in the daemon. One SOL session per node at a time (a BMC
// allows one) is shared by a "hub": its output goes into the node's bounded
// console log (sol.Ring, kept after the session ends) and to every attached
// console; the consoles' input is merged into it. A hub runs while something
// uses it: a reboot-clean capture (which restarts the session when it drops,
// as it may while the node power-cycles) or a console.

// SOLTailLines is how many console lines a failed reboot-clean message
// carries.
const SOLTailLines = 15

// SOLLog is a node's captured console output (the API type).
type SOLLog = apitype.SOLLog

type solState struct {
	mu    sync.Mutex
	rings map[string]*sol.Ring
	hubs  map[string]*solHub
	errs  map[string]string
}

var (
	solMu     sync.Mutex
	solStates = map[weak.Pointer[Daemon]]*solState{}
)

// sol returns the daemon's SOL state, made on first use and dropped when
// the daemon is garbage.
func (d *Daemon) sol() *solState {
	k := weak.Make(d)
	solMu.Lock()
	defer solMu.Unlock()
	s := solStates[k]
	if s == nil {
		s = &solState{rings: map[string]*sol.Ring{}, hubs: map[string]*solHub{}, errs: map[string]string{}}
		solStates[k] = s
		runtime.AddCleanup(d, func(k weak.Pointer[Daemon]) {
			solMu.Lock()
			delete(solStates, k)
			solMu.Unlock()
		}, k)
	}
	return s
}

func (s *solState) ring(node string) *sol.Ring {
	r := s.rings[node]
	if r == nil {
		r = sol.NewRing(sol.DefaultRingSize)
		s.rings[node] = r
	}
	return r
}

// solHub is one node's running SOL session.
type solHub struct {
	node   string
	ring   *sol.Ring
	cancel context.CancelFunc
	input  chan []byte   // consoles' keystrokes, in order
	active chan struct{} // closed when the payload is first active
	done   chan struct{} // closed when the hub stopped
	err    error         // why it stopped (after done)

	mu       sync.Mutex
	captures int
	consoles map[chan []byte]struct{}
	stopping bool // the last user left; no new one may join
	actOnce  sync.Once
}

// Write is the SOL output: into the ring and to every console (a console
// that does not keep up loses output rather than stalling the session).
func (h *solHub) Write(p []byte) (int, error) {
	h.ring.Write(p)
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.consoles {
		select {
		case c <- append([]byte(nil), p...):
		default:
		}
	}
	return len(p), nil
}

// acquireSOL takes a reference on the node's SOL hub (a capture, or a
// console with the returned output channel), starting the hub with the
// node's BMC target when none runs.
func (d *Daemon) acquireSOL(node string, capture bool) (*solHub, chan []byte, error) {
	inv := d.Inventory()
	n := inv.Node(node)
	if n == nil {
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	secrets, err := d.secrets(inv)
	if err != nil {
		return nil, nil, err
	}
	t, err := ipmi.TargetFor(n, secrets)
	if err != nil {
		return nil, nil, err
	}
	s := d.sol()
	for {
		h, out, stopping := s.join(d, node, t, capture)
		if stopping == nil {
			return h, out, nil
		}
		// The last user just left a hub that is still deactivating its
		// payload: wait (bounded by the session's close) and start anew.
		<-stopping
	}
}

// join takes a reference on the node's hub, starting one when none runs. It
// returns instead the done channel of a hub that is stopping.
func (s *solState) join(d *Daemon, node string, t ipmi.Target, capture bool) (*solHub, chan []byte, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hubs[node]
	if h != nil {
		select {
		case <-h.done:
			h = nil
		default:
			h.mu.Lock()
			stopping := h.stopping
			h.mu.Unlock()
			if stopping {
				return nil, nil, h.done
			}
		}
	}
	if h == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h = &solHub{node: node, ring: s.ring(node), cancel: cancel, active: make(chan struct{}),
			done: make(chan struct{}), consoles: map[chan []byte]struct{}{}}
		h.input = make(chan []byte, 64)
		s.hubs[node] = h
		delete(s.errs, node)
		go d.runSOL(ctx, s, h, t)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var out chan []byte
	if capture {
		h.captures++
	} else {
		out = make(chan []byte, 1024)
		h.consoles[out] = struct{}{}
	}
	return h, out, nil
}

// release drops a reference; the last one stops the hub.
func (h *solHub) release(out chan []byte) {
	h.mu.Lock()
	if out == nil {
		h.captures--
	} else {
		delete(h.consoles, out)
	}
	last := h.captures == 0 && len(h.consoles) == 0
	h.stopping = h.stopping || last
	h.mu.Unlock()
	if last {
		h.cancel()
	}
}

func (h *solHub) capturing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.captures > 0
}

// runSOL runs the node's session and starts it again a second after it
// ends, as it may while the node power-cycles (a simulated BMC stops
// answering while its chassis program runs, a real one may drop SOL at
// reset): for as long as a capture holds the hub, or until three attempts
// in a row brought no output for a hub of consoles alone. A BMC that
// refuses the user, the payload or every cipher suite, or whose port is
// closed, ends the hub at once, as does the daemon's BMC pool closing.
func (d *Daemon) runSOL(ctx context.Context, s *solState, h *solHub, t ipmi.Target) {
	var err error
	defer func() {
		h.err = err
		s.mu.Lock()
		if s.hubs[h.node] == h {
			delete(s.hubs, h.node)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			s.errs[h.node] = err.Error()
		}
		s.mu.Unlock()
		close(h.done)
	}()
	idle := 0
	for {
		seen := h.ring.Total()
		err = h.session(ctx, d.power, t)
		if ctx.Err() != nil {
			err = ctx.Err()
			return
		}
		if errors.Is(err, ipmi.ErrSessionAged) {
			continue // a planned hand-over to a new session: at once, not idle
		}
		if err == nil {
			err = errors.New("SOL session ended")
		}
		if errors.Is(err, ipmi.ErrRefused) || errors.Is(err, ipmi.ErrAuth) ||
			errors.Is(err, ipmi.ErrCipherSuite) || errors.Is(err, ipmi.ErrUnreachable) || errors.Is(err, ipmi.ErrClosed) {
			return // a restart would fail the same way
		}
		if h.ring.Total() > seen {
			idle = 0
		} else {
			idle++
		}
		if !h.capturing() && idle >= 3 {
			return
		}
		d.log.Debug("sol: session ended, restarting", "node", h.node, "err", err)
		s.mu.Lock()
		s.errs[h.node] = err.Error() + " (reconnecting)"
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			err = ctx.Err()
			return
		case <-time.After(time.Second):
		}
	}
}

// session runs one SOL session. Its input is a pipe of its own, fed from
// h.input until the session ends, so that a session that ended leaves no
// reader behind to take keystrokes meant for the next one.
func (h *solHub) session(ctx context.Context, p *ipmi.Pool, t ipmi.Target) error {
	r, w := io.Pipe()
	end := make(chan struct{})
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for {
			select {
			case b := <-h.input:
				if _, err := w.Write(b); err != nil {
					return
				}
			case <-end:
				return
			}
		}
	}()
	err := p.SOL(ctx, t, r, h, ipmi.SOLOptions{OnActive: func() { h.actOnce.Do(func() { close(h.active) }) }})
	close(end)
	r.CloseWithError(io.ErrClosedPipe)
	<-pumped
	return err
}

// Console attaches to a node's serial-over-LAN console: input is sent to
// the node, its output written to out. It shares the session a reboot-clean
// capture may be running, and the output also goes to the node's console
// log. ready, if set, is called once the session is active (or already
// was); an error before that (unknown node, no BMC credentials, BMC
// unreachable or refusing SOL) is returned without calling it. Console
// returns nil when in reaches EOF (the client detached), ctx's error when
// ctx ends, or the session's error when it ended. who is the caller for the
// audit log, which gets one entry per attached session (when it ends) or
// refused attach.
func (d *Daemon) Console(ctx context.Context, node, who string, in io.Reader, out io.Writer, ready func()) (err error) {
	start := time.Now()
	defer func() {
		if errors.Is(err, ErrUnknownNode) {
			return
		}
		res := "ok, " + time.Since(start).Round(time.Second).String()
		if err != nil {
			res = err.Error()
		}
		d.auditRecord(audit.Entry{Who: who, Action: "console", Target: node, Nodes: 1, Result: res})
	}()
	h, ch, err := d.acquireSOL(node, false)
	if err != nil {
		return err
	}
	defer h.release(ch)
	select {
	case <-h.active:
	case <-h.done:
		return fmt.Errorf("console %s: %w", node, h.err)
	case <-ctx.Done():
		return ctx.Err()
	}
	if ready != nil {
		ready()
	}
	inDone := make(chan error, 1)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				select {
				case h.input <- append([]byte(nil), buf[:n]...):
				case <-h.done:
					inDone <- nil
					return
				case <-ctx.Done():
					inDone <- ctx.Err()
					return
				}
			}
			if err != nil {
				if err == io.EOF {
					err = nil
				}
				inDone <- err
				return
			}
		}
	}()
	for {
		select {
		case b := <-ch:
			if _, err := out.Write(b); err != nil {
				return err
			}
		case err := <-inDone:
			return err
		case <-h.done:
			if errors.Is(h.err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("console %s: %w", node, h.err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// SOLLog returns the last n lines (n <= 0: SOLTailLines) of a node's console
// log: what reboot-clean captured and consoles saw.
func (d *Daemon) SOLLog(node string, n int) (SOLLog, error) {
	if d.Inventory().Node(node) == nil {
		return SOLLog{}, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	if n <= 0 {
		n = SOLTailLines
	}
	s := d.sol()
	s.mu.Lock()
	r := s.rings[node]
	h := s.hubs[node]
	e := s.errs[node]
	s.mu.Unlock()
	l := SOLLog{Node: node, Lines: []string{}, Active: h != nil, Error: e}
	if r != nil {
		l.Lines = r.Tail(n)
		l.Kept = len(r.Bytes())
		l.Total = r.Total()
		l.Updated = r.Updated()
	}
	return l, nil
}

// captureSOL starts capturing the console of every node with a BMC target
// for the length of a reboot-clean; the returned function stops it. A node
// whose SOL cannot start is only logged: capture never fails a run.
func (d *Daemon) captureSOL(targets map[string]ipmi.Target) (stop func()) {
	var hubs []*solHub
	for node := range targets {
		h, _, err := d.acquireSOL(node, true)
		if err != nil {
			d.log.Debug("sol: no capture", "node", node, "err", err)
			continue
		}
		hubs = append(hubs, h)
	}
	return func() {
		for _, h := range hubs {
			h.release(nil)
		}
	}
}

// solTail is the text a failure message gets: the node's last console lines.
func (d *Daemon) solTail(node string) string {
	l, err := d.SOLLog(node, SOLTailLines)
	if err != nil || len(l.Lines) == 0 {
		return ""
	}
	return "\nlast console lines:\n  " + strings.Join(l.Lines, "\n  ")
}

// solProgress wraps a reboot-clean progress callback so that a node's
// failure message carries its last console lines.
func (d *Daemon) solProgress(f func(RebootProgress)) func(RebootProgress) {
	if f == nil {
		return nil
	}
	return func(p RebootProgress) {
		if p.Step == workflow.StepFailed {
			p.Message += d.solTail(p.Node)
		}
		f(p)
	}
}

// solAnnotate appends the last console lines to failed results.
func (d *Daemon) solAnnotate(results []RebootResult) {
	for i := range results {
		if !results[i].OK {
			results[i].Error += d.solTail(results[i].Node)
		}
	}
}
