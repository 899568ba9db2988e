package statetest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/fanout"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
)

// Memory is a second implementation of state.Store, all in memory: what a
// test hands a daemon (daemon.Config.State) to show that the daemon reaches
// its state only through the interfaces, and to look at what it wrote. Its
// durable parts (boot states, documents, audit, check-in records) live in a Backing that
// outlives the store, as a shared store's data outlives one head.
type Memory struct {
	b      *Backing
	addrs  *local.Addresses
	cons   *local.Consoles
	closed bool
}

var _ state.Store = (*Memory)(nil)

// Backing is the durable side of Memory stores.
type Backing struct {
	mu    sync.Mutex
	open  bool
	docs  map[string]memDoc
	rev   state.Rev
	audit []audit.Entry
	subs  fanout.Hub[audit.Entry] // live audit followers
	boot  memBoot
	key   []byte
	seen  *local.MemoryCheckins
}

type memDoc struct {
	data []byte
	rev  state.Rev
}

// NewBacking returns empty durable state.
func NewBacking() *Backing {
	return &Backing{docs: map[string]memDoc{}, seen: local.NewMemoryCheckins(), boot: memBoot{states: map[string]bootstate.NodeState{},
		history: map[string]map[uint64]bootstate.Event{}}}
}

// Open returns a store on b. Like a data directory, a Backing takes one
// store at a time.
func (b *Backing) Open() (*Memory, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open {
		return nil, errors.New("statetest: backing in use by another store")
	}
	b.open = true
	return &Memory{b: b, addrs: local.NewAddresses(), cons: local.NewConsoles(0)}, nil
}

// MemoryOpener opens Memory stores for Run, one Backing per key.
func MemoryOpener() Open {
	var mu sync.Mutex
	backings := map[string]*Backing{}
	return func(t *testing.T, key string) state.Store {
		mu.Lock()
		b := backings[key]
		if b == nil {
			b = NewBacking()
			backings[key] = b
		}
		mu.Unlock()
		s, err := b.Open()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// BootStates keeps the tracker's batches in the backing.
func (m *Memory) BootStates() state.BootStates { return (*memPersister)(m.b) }

// Addresses are this store's own.
func (m *Memory) Addresses() state.Addresses { return m.addrs }

// Documents are kept in the backing.
func (m *Memory) Documents() state.Documents { return (*memDocs)(m.b) }

// Audit is kept in the backing.
func (m *Memory) Audit() state.Audit { return (*memAudit)(m.b) }

// Consoles are this store's own.
func (m *Memory) Consoles() state.Consoles { return m.cons }

// Checkins are kept in the backing.
func (m *Memory) Checkins() state.Checkins { return m.b.seen }

// TokenKey is made once per backing.
func (m *Memory) TokenKey() ([]byte, error) {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	if m.b.key == nil {
		m.b.key = make([]byte, 32)
		if _, err := rand.Read(m.b.key); err != nil {
			m.b.key = nil
			return nil, err
		}
	}
	return append([]byte(nil), m.b.key...), nil
}

// Close releases the backing for the next store.
func (m *Memory) Close() error {
	m.b.mu.Lock()
	defer m.b.mu.Unlock()
	if m.closed {
		return errors.New("statetest: store closed twice")
	}
	m.closed, m.b.open = true, false
	return nil
}

// Document returns a document as last put (nil when missing).
func (b *Backing) Document(name string) []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.docs[name].data
}

// AuditEntries returns every audit entry recorded.
func (b *Backing) AuditEntries() []audit.Entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]audit.Entry(nil), b.audit...)
}

// NodeState returns a node's state as last written by a tracker.
func (b *Backing) NodeState(node string) (bootstate.NodeState, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.boot.states[node]
	return st, ok
}

type memDocs Backing

func (d *memDocs) Get(name string) ([]byte, state.Rev, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	doc := d.docs[name]
	return append([]byte(nil), doc.data...), doc.rev, nil
}

func (d *memDocs) Put(name string, data []byte, prev state.Rev) (state.Rev, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.docs[name].rev != prev {
		return 0, fmt.Errorf("%s: %w", name, state.ErrConflict)
	}
	d.rev++
	d.docs[name] = memDoc{data: append([]byte(nil), data...), rev: d.rev}
	return d.rev, nil
}

type memAudit Backing

// Ready refuses while no store holds the backing.
func (a *memAudit) Ready() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.open {
		return errors.New("statetest: audit of a closed store")
	}
	return nil
}

func (a *memAudit) Record(e audit.Entry) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = nowUTC()
	}
	a.audit = append(a.audit, e)
	a.subs.Publish(e)
	return nil
}

// Follow returns the newest n entries and a subscription to the entries
// recorded after them, taken under one lock.
func (a *memAudit) Follow(n, buffer int) ([]audit.Entry, *audit.Subscription) {
	if buffer < 1 {
		buffer = 64
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return audit.Newest(a.audit, n), a.subs.Subscribe(buffer)
}

func (a *memAudit) Recent(n int) []audit.Entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return audit.Newest(a.audit, n)
}

// memBoot is the boot-state part of a Backing.
type memBoot struct {
	states  map[string]bootstate.NodeState
	history map[string]map[uint64]bootstate.Event // node ("" for unknown clients) -> seq -> event
	seq     uint64
}

// unknownKeep bounds the unknown clients' history, as the local store does.
const unknownKeep = 1000

type memPersister Backing

func (p *memPersister) Load(perNode int) (*bootstate.Snapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &bootstate.Snapshot{History: map[string][]bootstate.Event{}, Seq: p.boot.seq}
	for _, st := range p.boot.states {
		s.States = append(s.States, st)
		s.History[st.Node] = newest(p.boot.history[st.Node], perNode)
	}
	s.Unknown = newest(p.boot.history[""], unknownKeep)
	return s, nil
}

// newest returns the newest keep events of h, oldest first.
func newest(h map[uint64]bootstate.Event, keep int) []bootstate.Event {
	evs := make([]bootstate.Event, 0, len(h))
	for _, ev := range h {
		evs = append(evs, ev)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	if len(evs) > keep {
		evs = evs[len(evs)-keep:]
	}
	return evs
}

func (p *memPersister) Write(b *bootstate.Batch) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range b.Forgets {
		delete(p.boot.states, name)
		delete(p.boot.history, name)
	}
	for _, be := range b.Events {
		h := p.boot.history[be.Event.Node]
		if h == nil {
			h = map[uint64]bootstate.Event{}
			p.boot.history[be.Event.Node] = h
		}
		if be.Replaces != 0 {
			delete(h, be.Replaces)
		}
		h[be.Event.Seq] = be.Event
	}
	for _, st := range b.States {
		p.boot.states[st.Node] = st
	}
	for name, from := range b.KeepFrom {
		for seq := range p.boot.history[name] {
			if seq < from {
				delete(p.boot.history[name], seq)
			}
		}
	}
	if h := p.boot.history[""]; len(h) > unknownKeep {
		keep := newest(h, unknownKeep)
		for seq := range h {
			if seq < keep[0].Seq {
				delete(h, seq)
			}
		}
	}
	p.boot.seq = b.Seq
	return nil
}

func nowUTC() time.Time { return time.Now().UTC() }
