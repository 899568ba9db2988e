// Package etcd is the implementation of internal/state shared by several
// heads: the daemon's durable state in etcd (an embedded member per head,
// StartMember, or an existing cluster), with compare-and-swap edits. Every
// key lives under one prefix (Options.Prefix), so several stores (tests,
// sites) share one etcd.
//
// Keys (under the prefix):
//
//	docs/NAME                     a document (rollouts.json, nodes.yaml); its revision is the key's mod revision
//	boot/state/NODE               a node's bootstate.NodeState (JSON)
//	boot/hist/NODE/SEQ/HEAD       an event of a node's bounded history (JSON); SEQ is 20 digits
//	boot/unk/SEQ/HEAD             an event of an unknown client (the newest 1000 kept)
//	boot/seq/HEAD                 the highest event counter each head handed out
//	audit/TIME-HEAD-N             an audit entry (JSON), ordered by create revision
//	addr/IP                       a learned address (node and expiry) under a lease of its lifetime
//	console/NODE                  the tail of a node's captured console (JSON)
//	checkin/NODE                  the check-in replay guard's record of a node
//	tokenkey                      the token key in hex, created once
//
// Image bytes never go into etcd (a head fetches a generation from a peer
// by sha256). Reads on request paths (learned addresses, the audit's recent
// entries) are served from caches that watches keep current; writes on
// request paths (Learn, a console's output) are queued, so a slow or
// unreachable cluster never holds a boot up.
package etcd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/fanout"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
)

// Options tune a Store.
type Options struct {
	// Prefix is where the store's keys live (default "/netbootui/").
	Prefix string
	// Head names this head (default the host name): it tells the heads'
	// history events and counters apart.
	Head string
	// Timeout bounds one etcd operation (default 5 s). A head cut off from
	// the quorum fails its writes after it.
	Timeout time.Duration
	// MaxTxnOps is how many operations one transaction may hold (default
	// etcd's 128; MaxTxnOps for an embedded member). A boot-state batch
	// larger than that, or than 1 MiB, is written in several
	// transactions.
	MaxTxnOps int
	// Logger gets what goes wrong in the background (queued writes).
	Logger *slog.Logger
	// LeaseTTL is how long a head that stopped answering keeps its
	// elections and its place among the live heads (default 5 s): the
	// time a dead head's work waits before another head takes it over.
	LeaseTTL time.Duration
}

// Store is a state.Store in etcd.
type Store struct {
	c       *clientv3.Client
	p       string
	head    string
	timeout time.Duration
	maxOps  int
	log     *slog.Logger
	ttl     time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	onStop []func() error // closed after the store (the client, a member)
	member *Member        // the head's embedded member (OpenHead)
	lease  atomic.Int64   // the presence lease (0 before the first)
	url    atomic.Value   // string: the advertised base URL

	addrs    *addresses
	auditLog *auditLog
	consoles *consoles
}

var _ state.Cluster = (*Store)(nil)

// auditKeep is how many audit entries are kept in memory for Recent and
// Follow (the local store keeps as many).
const auditKeep = 1000

// unknownKeep bounds the unknown clients' history, as the local store does.
const unknownKeep = 1000

// Open opens the store on c (which the caller closes after the store). It
// reads the audit log's tail and the learned addresses and starts watching
// them; it fails when the cluster does not answer within the timeout.
func Open(c *clientv3.Client, o Options) (*Store, error) {
	if o.Prefix == "" {
		o.Prefix = "/netbootui/"
	}
	if !strings.HasSuffix(o.Prefix, "/") {
		o.Prefix += "/"
	}
	if o.Head == "" {
		o.Head, _ = os.Hostname()
	}
	if o.Head == "" || strings.Contains(o.Head, "/") {
		return nil, fmt.Errorf("etcd: bad head name %q", o.Head)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxTxnOps <= 0 {
		o.MaxTxnOps = 128
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 5 * time.Second
	}
	s := &Store{c: c, p: o.Prefix, head: o.Head, timeout: o.Timeout, maxOps: o.MaxTxnOps, log: o.Logger, ttl: o.LeaseTTL}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.addrs = &addresses{s: s, m: local.NewAddresses(), queue: make(chan addrPut, 4096), leases: map[int64]clientv3.LeaseID{}}
	s.auditLog = &auditLog{s: s}
	s.auditLog.cond = sync.NewCond(&s.auditLog.mu)
	s.consoles = &consoles{s: s, local: local.NewConsoles(0), dirty: map[string]bool{}}
	if err := s.auditLog.load(); err != nil {
		s.cancel()
		return nil, err
	}
	if err := s.addrs.load(); err != nil {
		s.cancel()
		return nil, err
	}
	s.wg.Add(3)
	go s.addrs.writer()
	go s.consoles.flusher()
	go s.present()
	return s, nil
}

// OnClose has f run when the store is closed, after it (the client, the
// member the store was opened on). Call it before the store is in use.
func (s *Store) OnClose(f func() error) { s.onStop = append(s.onStop, f) }

// Client is the etcd client the store uses (leases and elections of work
// that must run once share it).
func (s *Store) Client() *clientv3.Client { return s.c }

// Prefix is where the store's keys live.
func (s *Store) Prefix() string { return s.p }

// Head is this head's name.
func (s *Store) Head() string { return s.head }

func (s *Store) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.timeout)
}

// Close stops the watches, writes the queued learned addresses and console
// tails it can, and runs the OnClose functions.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return errors.New("etcd: store closed twice")
	}
	s.consoles.flush()
	s.cancel()
	s.wg.Wait()
	s.auditLog.hub.Close()
	var errs []error
	for _, f := range s.onStop {
		errs = append(errs, f())
	}
	return errors.Join(errs...)
}

// unreachable turns an etcd error into what a head cut off from the
// quorum says.
func unreachable(err error) error {
	if err == nil || errors.Is(err, state.ErrConflict) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timed out") ||
		strings.Contains(err.Error(), "no leader") || strings.Contains(err.Error(), "deadline") {
		return fmt.Errorf("%w (%v)", state.ErrNoQuorum, err)
	}
	return err
}

// TokenKey is made once (the first head to ask creates it) and shared.
func (s *Store) TokenKey() ([]byte, error) {
	k := s.p + "tokenkey"
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	ctx, cancel := s.op()
	defer cancel()
	resp, err := s.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, hex.EncodeToString(key))).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return nil, unreachable(err)
	}
	if resp.Succeeded {
		return key, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 {
		return nil, errors.New("etcd: token key vanished")
	}
	got, err := hex.DecodeString(string(kvs[0].Value))
	if err != nil || len(got) < 16 {
		return nil, errors.New("etcd: the stored token key is not a hex key of 16 bytes or more")
	}
	return got, nil
}

// Documents are keys compared and swapped on their mod revision.
func (s *Store) Documents() state.Documents { return (*documents)(s) }

type documents Store

func (d *documents) key(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("state: bad document name %q", name)
	}
	return d.p + "docs/" + name, nil
}

func (d *documents) Get(name string) ([]byte, state.Rev, error) {
	k, err := d.key(name)
	if err != nil {
		return nil, 0, err
	}
	return (*Store)(d).get(k)
}

// get reads key and its mod revision (nil, 0 when missing).
func (s *Store) get(key string) ([]byte, state.Rev, error) {
	ctx, cancel := s.op()
	defer cancel()
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return nil, 0, unreachable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, state.Rev(resp.Kvs[0].ModRevision), nil
}

func (d *documents) Put(name string, data []byte, prev state.Rev) (state.Rev, error) {
	k, err := d.key(name)
	if err != nil {
		return 0, err
	}
	return (*Store)(d).casPut(k, name, data, prev)
}

// casPut puts key if its mod revision is still prev (0: it must not
// exist); a conflict names what.
func (s *Store) casPut(key, what string, data []byte, prev state.Rev) (state.Rev, error) {
	cmp := clientv3.Compare(clientv3.ModRevision(key), "=", int64(prev))
	if prev == 0 {
		cmp = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	}
	ctx, cancel := s.op()
	defer cancel()
	resp, err := s.c.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return 0, unreachable(err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%s: %w", what, state.ErrConflict)
	}
	return state.Rev(resp.Header.Revision), nil
}

// Checkins are per-node keys compared and swapped on their mod revision,
// as documents are: two heads admitting check-ins of one node at once
// cannot both accept the same one.
func (s *Store) Checkins() state.Checkins { return (*checkins)(s) }

type checkins Store

func (c *checkins) key(node string) (string, error) {
	if node == "" || strings.ContainsAny(node, "/\x00") {
		return "", fmt.Errorf("state: bad node name %q", node)
	}
	return c.p + "checkin/" + node, nil
}

func (c *checkins) Get(node string) (state.CheckinSeen, state.Rev, error) {
	var seen state.CheckinSeen
	k, err := c.key(node)
	if err != nil {
		return seen, 0, err
	}
	data, rev, err := (*Store)(c).get(k)
	if err != nil || rev == 0 {
		return seen, 0, err
	}
	if err := json.Unmarshal(data, &seen); err != nil {
		return seen, 0, fmt.Errorf("check-in record of %s: %w", node, err)
	}
	return seen, rev, nil
}

func (c *checkins) Put(node string, seen state.CheckinSeen, prev state.Rev) (state.Rev, error) {
	k, err := c.key(node)
	if err != nil {
		return 0, err
	}
	data, err := json.Marshal(seen)
	if err != nil {
		return 0, err
	}
	return (*Store)(c).casPut(k, "check-in record of "+node, data, prev)
}

// WatchDocument calls changed each time document name is put by any
// head, with its data and revision, until ctx ends or the store is closed.
// A watch that breaks (a compaction, a lost member) starts again from a
// fresh read of the document.
func (s *Store) WatchDocument(ctx context.Context, name string, changed func(data []byte, rev state.Rev)) error {
	k, err := (*documents)(s).key(name)
	if err != nil {
		return err
	}
	s.follow(ctx, k, false, 0, func(ev *clientv3.Event) {
		if ev.Type == clientv3.EventTypePut {
			changed(ev.Kv.Value, state.Rev(ev.Kv.ModRevision))
		}
	}, func(int64) {
		if data, rev, err := (*documents)(s).Get(name); err == nil && rev != 0 {
			changed(data, rev)
		}
	})
	return nil
}

// within returns a context that ends with ctx or when the store closes.
func (s *Store) within(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	unhook := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { unhook(); cancel() }
}

// follow watches key (a prefix when prefix) from revision from (0: now)
// until the store closes, handing each event to on; after a broken watch
// it calls resync with the revision it starts again from, which should
// read the state afresh.
func (s *Store) follow(ctx context.Context, key string, prefix bool, from int64, on func(*clientv3.Event), resync func(rev int64)) {
	ctx, stop := s.within(ctx)
	defer stop()
	for ctx.Err() == nil {
		opts := []clientv3.OpOption{clientv3.WithRev(from)}
		if prefix {
			opts = append(opts, clientv3.WithPrefix())
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range s.c.Watch(wctx, key, opts...) {
			if err := resp.Err(); err != nil {
				break
			}
			for _, ev := range resp.Events {
				on(ev)
			}
			if resp.Header.Revision > 0 {
				from = resp.Header.Revision + 1
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
		// Read again: events may have been lost while the watch was down.
		ctx, cancel2 := s.op()
		resp, err := s.c.Get(ctx, key, clientv3.WithCountOnly())
		cancel2()
		if err != nil {
			continue
		}
		from = resp.Header.Revision + 1
		resync(resp.Header.Revision)
	}
}

// rangeAll reads every key under prefix at one revision, a page at a time.
func (s *Store) rangeAll(prefix string, fn func(k string, v []byte)) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	var rev int64
	for {
		ctx, cancel := s.op()
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(5000)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.c.Get(ctx, from, opts...)
		cancel()
		if err != nil {
			return 0, unreachable(err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			fn(string(kv.Key), kv.Value)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Addresses are cached in memory and mirrored to every head: Learn
// queues the put (under a lease of the address's lifetime), a watch brings
// the other heads' into the cache.
func (s *Store) Addresses() state.Addresses { return s.addrs }

type addresses struct {
	s      *Store
	m      *local.Addresses
	queue  chan addrPut
	leases map[int64]clientv3.LeaseID // expiry bucket (unix s) -> lease
}

type addrPut struct {
	ip      netip.Addr
	node    string
	expires time.Time
}

type addrValue struct {
	Node    string `json:"node"`
	Expires int64  `json:"expires"` // unix ns
}

func (a *addresses) load() error {
	rev, err := a.s.rangeAll(a.s.p+"addr/", a.apply)
	if err != nil {
		return err
	}
	a.s.wg.Add(1)
	go func() {
		defer a.s.wg.Done()
		a.s.follow(a.s.ctx, a.s.p+"addr/", true, rev+1, func(ev *clientv3.Event) {
			if ev.Type == clientv3.EventTypePut {
				a.apply(string(ev.Kv.Key), ev.Kv.Value)
			}
		}, func(int64) { a.s.rangeAll(a.s.p+"addr/", a.apply) })
	}()
	return nil
}

func (a *addresses) apply(k string, v []byte) {
	ip, err := netip.ParseAddr(strings.TrimPrefix(k, a.s.p+"addr/"))
	var av addrValue
	if err != nil || json.Unmarshal(v, &av) != nil {
		return
	}
	a.m.Learn(ip, av.Node, time.Unix(0, av.Expires))
}

func (a *addresses) Learn(ip netip.Addr, node string, expires time.Time) {
	ip = ip.Unmap()
	a.m.Learn(ip, node, expires)
	select {
	case a.queue <- addrPut{ip, node, expires}:
	default: // the cluster is behind: this head still knows the address
	}
}

func (a *addresses) Lookup(ip netip.Addr, now time.Time) (string, bool) { return a.m.Lookup(ip, now) }

// writer puts the queued addresses, each under a lease that ends when the
// address expires (one lease per 30 s of expiry times).
func (a *addresses) writer() {
	defer a.s.wg.Done()
	for {
		select {
		case <-a.s.ctx.Done():
			return
		case p := <-a.queue:
			if err := a.put(p); err != nil && a.s.ctx.Err() == nil {
				a.s.log.Debug("etcd: learned address not shared", "ip", p.ip, "err", err)
			}
		}
	}
}

func (a *addresses) put(p addrPut) error {
	const bucket = 30
	ttl := time.Until(p.expires)
	if ttl <= 0 {
		return nil
	}
	end := (p.expires.Unix()/bucket + 1) * bucket
	now := time.Now().Unix()
	for b := range a.leases {
		if b < now {
			delete(a.leases, b)
		}
	}
	lease, ok := a.leases[end]
	ctx, cancel := a.s.op()
	defer cancel()
	if !ok {
		g, err := a.s.c.Grant(ctx, end-now+1)
		if err != nil {
			return err
		}
		lease = g.ID
		a.leases[end] = lease
	}
	v, _ := json.Marshal(addrValue{Node: p.node, Expires: p.expires.UnixNano()})
	_, err := a.s.c.Put(ctx, a.s.p+"addr/"+p.ip.String(), string(v), clientv3.WithLease(lease))
	return err
}

// Audit is a prefix of entries in commit order, with the newest kept in
// memory by a watch (so Recent and Follow see every head's entries).
func (s *Store) Audit() state.Audit { return s.auditLog }

type auditLog struct {
	s *Store
	n atomic.Uint64

	mu     sync.Mutex
	cond   *sync.Cond
	recent []audit.Entry
	seen   int64 // the revision the cache is current to
	hub    fanout.Hub[audit.Entry]
}

func (l *auditLog) load() error {
	ctx, cancel := l.s.op()
	resp, err := l.s.c.Get(ctx, l.s.p+"audit/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(auditKeep))
	cancel()
	if err != nil {
		return unreachable(err)
	}
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		var e audit.Entry
		if json.Unmarshal(resp.Kvs[i].Value, &e) == nil {
			l.recent = append(l.recent, e)
		}
	}
	l.seen = resp.Header.Revision
	l.s.wg.Add(1)
	go func() {
		defer l.s.wg.Done()
		l.s.follow(l.s.ctx, l.s.p+"audit/", true, l.seen+1, l.add, func(rev int64) {
			l.mu.Lock()
			if rev > l.seen {
				l.seen = rev
			}
			l.cond.Broadcast()
			l.mu.Unlock()
		})
	}()
	return nil
}

func (l *auditLog) add(ev *clientv3.Event) {
	if ev.Type != clientv3.EventTypePut {
		return
	}
	var e audit.Entry
	if json.Unmarshal(ev.Kv.Value, &e) != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recent = append(l.recent, e)
	if len(l.recent) > auditKeep {
		l.recent = append([]audit.Entry(nil), l.recent[len(l.recent)-auditKeep:]...)
	}
	if ev.Kv.ModRevision > l.seen {
		l.seen = ev.Kv.ModRevision
	}
	l.hub.Publish(e)
	l.cond.Broadcast()
}

// Ready asks the cluster (a linearizable read): a head cut off from the
// quorum refuses every change.
func (l *auditLog) Ready() error {
	if l.s.closed.Load() {
		return errors.New("etcd: audit of a closed store")
	}
	return l.s.Ready()
}

// Ready returns nil when the cluster's quorum answers this head, and
// state.ErrNoQuorum otherwise.
func (s *Store) Ready() error {
	ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(s.ctx), min(s.timeout, 3*time.Second))
	defer cancel()
	if _, err := s.c.Get(ctx, s.p+"tokenkey", clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("%w (%v)", state.ErrNoQuorum, err)
	}
	return nil
}

func (l *auditLog) Record(e audit.Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	k := fmt.Sprintf("%saudit/%020d-%s-%d", l.s.p, e.Time.UnixNano(), l.s.head, l.n.Add(1))
	ctx, cancel := l.s.op()
	resp, err := l.s.c.Put(ctx, k, string(v))
	cancel()
	if err != nil {
		return unreachable(err)
	}
	// Durable now; wait (a little) for the watch to bring it into the
	// cache, so that Recent right after Record shows it.
	deadline := time.Now().Add(l.s.timeout)
	stop := time.AfterFunc(l.s.timeout, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer stop.Stop()
	l.mu.Lock()
	for l.seen < resp.Header.Revision && time.Now().Before(deadline) && l.s.ctx.Err() == nil {
		l.cond.Wait()
	}
	l.mu.Unlock()
	return nil
}

func (l *auditLog) Recent(n int) []audit.Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return audit.Newest(l.recent, n)
}

func (l *auditLog) Follow(n, buffer int) ([]audit.Entry, *audit.Subscription) {
	if buffer < 1 {
		buffer = 64
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return audit.Newest(l.recent, n), l.hub.Subscribe(buffer)
}

// Consoles are captured in memory on the head that runs the session; each
// node's tail is put every second it changed, so another head shows it.
func (s *Store) Consoles() state.Consoles { return s.consoles }

type consoles struct {
	s     *Store
	local *local.Consoles
	mu    sync.Mutex
	dirty map[string]bool
}

// consoleLines is how many lines of a node's tail are shared.
const consoleLines = 200

func (c *consoles) Append(node string, p []byte) {
	c.local.Append(node, p)
	c.mu.Lock()
	c.dirty[node] = true
	c.mu.Unlock()
}

func (c *consoles) Tail(node string, n int) (state.ConsoleLog, bool) {
	if l, ok := c.local.Tail(node, n); ok {
		return l, true
	}
	ctx, cancel := c.s.op()
	defer cancel()
	resp, err := c.s.c.Get(ctx, c.s.p+"console/"+node)
	var l state.ConsoleLog
	if err != nil || len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &l) != nil {
		return state.ConsoleLog{Lines: []string{}}, false
	}
	if n >= 0 && len(l.Lines) > n {
		l.Lines = l.Lines[len(l.Lines)-n:]
	}
	return l, true
}

func (c *consoles) flusher() {
	defer c.s.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-c.s.ctx.Done():
			return
		case <-t.C:
			c.flush()
		}
	}
}

func (c *consoles) flush() {
	c.mu.Lock()
	nodes := make([]string, 0, len(c.dirty))
	for n := range c.dirty {
		nodes = append(nodes, n)
	}
	c.dirty = map[string]bool{}
	c.mu.Unlock()
	for _, n := range nodes {
		l, ok := c.local.Tail(n, consoleLines)
		if !ok {
			continue
		}
		v, _ := json.Marshal(l)
		ctx, cancel := c.s.op()
		_, err := c.s.c.Put(ctx, c.s.p+"console/"+n, string(v))
		cancel()
		if err != nil {
			c.mu.Lock()
			c.dirty[n] = true // again next time
			c.mu.Unlock()
			return
		}
	}
}

// BootStates are per-node keys; a batch is one transaction (or several
// when it is larger than MaxTxnOps).
func (s *Store) BootStates() state.BootStates { return (*bootStates)(s) }

type bootStates Store

func seqKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

func (b *bootStates) histPrefix(node string) string {
	if node == "" {
		return b.p + "boot/unk/"
	}
	return b.p + "boot/hist/" + node + "/"
}

func (b *bootStates) eventKey(node string, seq uint64) string {
	return b.histPrefix(node) + seqKey(seq) + "/" + b.head
}

func (b *bootStates) Load(perNode int) (*bootstate.Snapshot, error) {
	s := (*Store)(b)
	snap := &bootstate.Snapshot{History: map[string][]bootstate.Event{}}
	if _, err := s.rangeAll(b.p+"boot/state/", func(_ string, v []byte) {
		var st bootstate.NodeState
		if json.Unmarshal(v, &st) == nil {
			snap.States = append(snap.States, st)
		}
	}); err != nil {
		return nil, err
	}
	add := func(k string, v []byte) {
		var ev bootstate.Event
		if json.Unmarshal(v, &ev) != nil {
			return
		}
		if ev.Node == "" {
			snap.Unknown = append(snap.Unknown, ev)
		} else {
			snap.History[ev.Node] = append(snap.History[ev.Node], ev)
		}
	}
	if _, err := s.rangeAll(b.p+"boot/hist/", add); err != nil {
		return nil, err
	}
	if _, err := s.rangeAll(b.p+"boot/unk/", add); err != nil {
		return nil, err
	}
	newest := func(evs []bootstate.Event, keep int) []bootstate.Event {
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
		if keep > 0 && len(evs) > keep {
			evs = evs[len(evs)-keep:]
		}
		return evs
	}
	for n, evs := range snap.History {
		snap.History[n] = newest(evs, perNode)
	}
	snap.Unknown = newest(snap.Unknown, unknownKeep)
	if _, err := s.rangeAll(b.p+"boot/seq/", func(_ string, v []byte) {
		if n, err := strconv.ParseUint(string(v), 10, 64); err == nil && n > snap.Seq {
			snap.Seq = n
		}
	}); err != nil {
		return nil, err
	}
	return snap, nil
}

// Write applies the batch's net effect: etcd refuses a transaction that
// puts a key it also deletes, so the deletions a put overrides are left
// out, and the events a KeepFrom deletes are not put.
func (b *bootStates) Write(batch *bootstate.Batch) error {
	s := (*Store)(b)
	puts := map[string]string{}
	var order []string
	put := func(k string, v []byte) {
		if _, ok := puts[k]; !ok {
			order = append(order, k)
		}
		puts[k] = string(v)
	}
	var first, ops []clientv3.Op // first: forgets that overlap the batch's puts
	forgot := map[string]bool{}
	for _, n := range batch.Forgets {
		forgot[n] = true
	}
	dels := map[string]bool{}
	for _, be := range batch.Events {
		if be.Replaces != 0 {
			k := b.eventKey(be.Event.Node, be.Replaces)
			if _, ok := puts[k]; ok {
				delete(puts, k)
			} else {
				dels[k] = true
			}
		}
		v, err := json.Marshal(&be.Event)
		if err != nil {
			return err
		}
		put(b.eventKey(be.Event.Node, be.Event.Seq), v)
	}
	for i := range batch.States {
		v, err := json.Marshal(&batch.States[i])
		if err != nil {
			return err
		}
		put(b.p+"boot/state/"+batch.States[i].Node, v)
	}
	for node, from := range batch.KeepFrom {
		lo, hi := b.histPrefix(node), b.histPrefix(node)+seqKey(from)
		for k := range puts {
			if k >= lo && k < hi {
				delete(puts, k)
			}
		}
		for k := range dels {
			if k >= lo && k < hi {
				delete(dels, k)
			}
		}
		ops = append(ops, clientv3.OpDelete(lo, clientv3.WithRange(hi)))
	}
	for _, n := range batch.Forgets {
		stateKey, hist := b.p+"boot/state/"+n, b.histPrefix(n)
		overlap := false
		for k := range puts {
			if strings.HasPrefix(k, hist) || k == stateKey {
				overlap = true
				break
			}
		}
		if _, ok := batch.KeepFrom[n]; ok {
			overlap = true
		}
		fops := []clientv3.Op{clientv3.OpDelete(stateKey), clientv3.OpDelete(hist, clientv3.WithPrefix())}
		if overlap {
			first = append(first, fops...)
		} else {
			ops = append(ops, fops...)
		}
		for k := range dels {
			if strings.HasPrefix(k, hist) {
				delete(dels, k)
			}
		}
	}
	for k := range dels {
		ops = append(ops, clientv3.OpDelete(k))
	}
	for _, k := range order {
		if v, ok := puts[k]; ok {
			ops = append(ops, clientv3.OpPut(k, v))
		}
	}
	ops = append(ops, clientv3.OpPut(b.p+"boot/seq/"+b.head, strconv.FormatUint(batch.Seq, 10)))
	if err := s.txn(first); err != nil {
		return err
	}
	if err := s.txn(ops); err != nil {
		return err
	}
	for _, be := range batch.Events {
		if be.Event.Node == "" {
			return b.trimUnknown()
		}
	}
	return nil
}

// maxTxnBytes bounds the keys and values of one transaction: below the
// client's 2 MiB message limit and an external etcd's 1.5 MiB request
// limit (--max-request-bytes).
const maxTxnBytes = 1 << 20

// txn commits ops, in transactions of at most maxOps operations and
// maxTxnBytes.
func (s *Store) txn(ops []clientv3.Op) error {
	for len(ops) > 0 {
		n, size := 0, 0
		for n < len(ops) && n < s.maxOps {
			size += len(ops[n].KeyBytes()) + len(ops[n].ValueBytes()) + 16
			if n > 0 && size > maxTxnBytes {
				break
			}
			n++
		}
		ctx, cancel := s.op()
		_, err := s.c.Txn(ctx).Then(ops[:n]...).Commit()
		cancel()
		if err != nil {
			return unreachable(err)
		}
		ops = ops[n:]
	}
	return nil
}

// trimUnknown deletes the unknown clients' events older than the newest
// unknownKeep.
func (b *bootStates) trimUnknown() error {
	ctx, cancel := (*Store)(b).op()
	defer cancel()
	prefix := b.histPrefix("")
	resp, err := b.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(unknownKeep+1))
	if err != nil || len(resp.Kvs) <= unknownKeep {
		return unreachable(err)
	}
	oldestKept := string(resp.Kvs[unknownKeep-1].Key)
	_, err = b.c.Delete(ctx, prefix, clientv3.WithRange(oldestKept))
	return unreachable(err)
}

// Members lists the cluster's members, asking each for its status (in
// parallel, a second at most) to learn which is the leader and which
// this head reaches.
func (s *Store) Members(ctx context.Context) ([]state.Member, error) {
	lctx, cancel := context.WithTimeout(ctx, min(s.timeout, 3*time.Second))
	defer cancel()
	list, err := s.c.MemberList(lctx)
	if err != nil {
		return nil, unreachable(err)
	}
	out := make([]state.Member, len(list.Members))
	var wg sync.WaitGroup
	for i, m := range list.Members {
		out[i] = state.Member{Name: m.Name, ID: m.ID, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs}
		if len(m.ClientURLs) == 0 {
			out[i].Error = "not started"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			st, err := s.c.Status(sctx, m.ClientURLs[0])
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			out[i].Reachable = true
			out[i].Leader = st.Leader == m.ID && st.Leader != 0
		}()
	}
	wg.Wait()
	return out, nil
}
