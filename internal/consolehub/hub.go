// Package consolehub shares each node's serial console between its users.
// A BMC allows one console session per node, so one session per node at a
// time is run by a hub: its output goes into the node's bounded console log
// (a state.Consoles, the daemon's state seam: kept after the session ends)
// and to every attached console;
// the consoles' input is merged into it. A hub runs while something uses
// it: a capture (reboot-clean's, which restarts the session when it drops,
// as it may while the node power-cycles) or a console.
//
// A Hubs value holds every node's hub and log; its owner (the daemon) makes
// one and closes it. Sessions come from the caller as a Session function,
// normally power.Service.Console for the node's target: the hub knows no
// protocol.
package consolehub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/state"
)

// Session runs one console session of a node: bytes read from in go to the
// node, its output is written to out, onActive is called once the session
// is active. It returns as power.SerialConsole's Console does: nil at the
// end of in, power.ErrSessionAged for a planned hand-over (the hub starts
// the next session at once), a power.Permanent error when retrying is
// pointless.
type Session func(ctx context.Context, in io.Reader, out io.Writer, onActive func()) error

// RetryAfter is how long a hub waits before it restarts a session that
// ended unplanned.
const RetryAfter = time.Second

// Hubs holds the console hubs and logs of every node. It is safe for
// concurrent use.
type Hubs struct {
	log   *slog.Logger
	store state.Consoles // every node's captured output

	mu     sync.Mutex
	hubs   map[string]*Hub
	errs   map[string]string
	closed bool
	wg     sync.WaitGroup
}

// New returns an empty Hubs that keeps the nodes' console output in store
// (the daemon's state.Store Consoles); log (nil: discarded) gets a debug
// line per restarted session.
func New(log *slog.Logger, store state.Consoles) *Hubs {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hubs{log: log, store: store, hubs: map[string]*Hub{}, errs: map[string]string{}}
}

// ErrClosed is returned by Attach and Acquire after Close.
var ErrClosed = errors.New("consolehub: closed")

// Hub is one node's running console session.
type Hub struct {
	node   string
	store  state.Consoles
	total  atomic.Int64 // bytes this hub's sessions wrote
	cancel context.CancelFunc
	input  chan []byte   // consoles' keystrokes, in order
	active chan struct{} // closed when the session is first active
	done   chan struct{} // closed when the hub stopped
	err    error         // why it stopped (after done)

	mu       sync.Mutex
	captures int
	consoles map[chan []byte]struct{}
	stopping bool // the last user left; no new one may join
	actOnce  sync.Once
}

// Done is closed when the hub has stopped.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Write is the session's output: into the ring and to every console (a
// console that does not keep up loses output rather than stalling the
// session).
func (h *Hub) Write(p []byte) (int, error) {
	h.store.Append(h.node, p)
	h.total.Add(int64(len(p)))
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

// Current returns the node's running hub (nil when none runs).
func (hs *Hubs) Current(node string) *Hub {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return hs.hubs[node]
}

// acquire takes a reference on the node's hub (a capture, or a console with
// the returned output channel), starting one with sess when none runs.
func (hs *Hubs) acquire(node string, capture bool, sess Session) (*Hub, chan []byte, error) {
	for {
		h, out, stopping, err := hs.join(node, capture, sess)
		if err != nil || stopping == nil {
			return h, out, err
		}
		// The last user just left a hub that is still ending its session:
		// wait (bounded by the session's close) and start anew.
		<-stopping
	}
}

// join takes a reference on the node's hub, starting one when none runs. It
// returns instead the done channel of a hub that is stopping.
func (hs *Hubs) join(node string, capture bool, sess Session) (*Hub, chan []byte, <-chan struct{}, error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.closed {
		return nil, nil, nil, ErrClosed
	}
	h := hs.hubs[node]
	if h != nil {
		select {
		case <-h.done:
			h = nil
		default:
			h.mu.Lock()
			stopping := h.stopping
			h.mu.Unlock()
			if stopping {
				return nil, nil, h.done, nil
			}
		}
	}
	if h == nil {
		ctx, cancel := context.WithCancel(context.Background())
		h = &Hub{node: node, store: hs.store, cancel: cancel, active: make(chan struct{}),
			done: make(chan struct{}), consoles: map[chan []byte]struct{}{}, input: make(chan []byte, 64)}
		hs.hubs[node] = h
		delete(hs.errs, node)
		hs.wg.Add(1)
		go hs.run(ctx, h, sess)
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
	return h, out, nil, nil
}

// release drops a reference; the last one stops the hub.
func (h *Hub) release(out chan []byte) {
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

func (h *Hub) capturing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.captures > 0
}

// run runs the node's session and starts it again RetryAfter after it
// ends, as it may while the node power-cycles (a simulated BMC stops
// answering while its chassis program runs, a real one may drop SOL at
// reset): for as long as a capture holds the hub, or until three attempts
// in a row brought no output for a hub of consoles alone. A planned
// hand-over (power.ErrSessionAged) restarts at once; a permanent failure
// (power.Permanent: a refused user or payload, no common parameters, a
// closed port, no console at all, the power service closed) ends the hub at
// once.
func (hs *Hubs) run(ctx context.Context, h *Hub, sess Session) {
	var err error
	defer func() {
		h.err = err
		hs.mu.Lock()
		if hs.hubs[h.node] == h {
			delete(hs.hubs, h.node)
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			hs.errs[h.node] = err.Error()
		}
		hs.mu.Unlock()
		close(h.done)
		hs.wg.Done()
	}()
	idle := 0
	for {
		seen := h.total.Load()
		err = h.session(ctx, sess)
		if ctx.Err() != nil {
			err = ctx.Err()
			return
		}
		if errors.Is(err, power.ErrSessionAged) {
			continue // a planned hand-over to a new session: at once, not idle
		}
		if err == nil {
			err = errors.New("console session ended")
		}
		if power.Permanent(err) {
			return // a restart would fail the same way
		}
		if h.total.Load() > seen {
			idle = 0
		} else {
			idle++
		}
		if !h.capturing() && idle >= 3 {
			return
		}
		hs.log.Debug("console: session ended, restarting", "node", h.node, "err", err)
		hs.mu.Lock()
		hs.errs[h.node] = err.Error() + " (reconnecting)"
		hs.mu.Unlock()
		select {
		case <-ctx.Done():
			err = ctx.Err()
			return
		case <-time.After(RetryAfter):
		}
	}
}

// session runs one session. Its input is a pipe of its own, fed from
// h.input until the session ends, so that a session that ended leaves no
// reader behind to take keystrokes meant for the next one.
func (h *Hub) session(ctx context.Context, sess Session) error {
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
	err := sess(ctx, r, h, func() { h.actOnce.Do(func() { close(h.active) }) })
	close(end)
	r.CloseWithError(io.ErrClosedPipe)
	<-pumped
	return err
}

// Attach attaches a console to the node's hub (starting it with sess when
// none runs): in is sent to the node, its output written to out. ready, if
// set, is called once the session is active (or already was); an error
// before that is returned without calling it. Attach returns nil when in
// reaches EOF (the client detached), ctx's error when ctx ends, or the
// session's error ("console NODE: ...") when the hub stopped.
func (hs *Hubs) Attach(ctx context.Context, node string, sess Session, in io.Reader, out io.Writer, ready func()) error {
	h, ch, err := hs.acquire(node, false, sess)
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

// Capture holds the hub of every node in sessions (starting those that do
// not run) so that their output is logged; the returned function lets go.
// A node whose hub cannot start is only logged: a capture never fails.
func (hs *Hubs) Capture(sessions map[string]Session) (stop func()) {
	var hubs []*Hub
	for node, sess := range sessions {
		h, _, err := hs.acquire(node, true, sess)
		if err != nil {
			hs.log.Debug("console: no capture", "node", node, "err", err)
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

// Log is a node's console log.
type Log struct {
	Lines   []string  // the last lines asked for, oldest first (never nil)
	Kept    int       // bytes kept (bounded by the store)
	Total   int64     // bytes seen since the store was made
	Updated time.Time // last output
	Active  bool      // a session runs now
	Error   string    // why the last session ended, if it failed
}

// Log returns the node's last n console lines and what is known of its
// session.
func (hs *Hubs) Log(node string, n int) Log {
	hs.mu.Lock()
	h := hs.hubs[node]
	e := hs.errs[node]
	hs.mu.Unlock()
	l := Log{Lines: []string{}, Active: h != nil, Error: e}
	if t, ok := hs.store.Tail(node, n); ok {
		l.Lines, l.Kept, l.Total, l.Updated = t.Lines, t.Kept, t.Total, t.Updated
	}
	return l
}

// Close stops every hub and waits for their sessions to end; Attach and
// Capture fail afterwards. The logs stay readable.
func (hs *Hubs) Close() {
	hs.mu.Lock()
	hs.closed = true
	hubs := make([]*Hub, 0, len(hs.hubs))
	for _, h := range hs.hubs {
		hubs = append(hubs, h)
	}
	hs.mu.Unlock()
	for _, h := range hubs {
		h.cancel()
	}
	hs.wg.Wait()
}
