package etcd

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/netbootui/netbootui/internal/bootstate"
)

// Lead runs work each time this head wins the election name (one head at
// a time holds it), with a context that ends when the head loses it: its
// lease was not renewed within LeaseTTL (the head is cut off or stopped
// answering) or ctx ended. It returns when ctx ends. A head that dies
// holding the election loses it when its lease expires, and the next head
// in line runs work.
func (s *Store) Lead(ctx context.Context, name string, work func(ctx context.Context)) {
	ctx, stop := s.within(ctx)
	defer stop()
	for ctx.Err() == nil {
		s.leadOnce(ctx, name, work)
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *Store) leadOnce(ctx context.Context, name string, work func(ctx context.Context)) {
	sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(s.ttlSeconds()), concurrency.WithContext(ctx))
	if err != nil {
		return
	}
	defer s.release(sess) // the next head in line takes over at once
	el := concurrency.NewElection(sess, s.p+"elect/"+name)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	if err := el.Campaign(cctx, s.head); err != nil {
		return
	}
	work(cctx)
	rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
	el.Resign(rctx)
	rcancel()
}

func (s *Store) ttlSeconds() int {
	return max(1, int((s.ttl+time.Second-1)/time.Second))
}

// Leader returns the head that holds the election name ("" when none).
func (s *Store) Leader(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.p+"elect/"+name+"/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil {
		return "", unreachable(err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// present keeps this head's key among the live heads (under a lease of
// LeaseTTL) until the store closes.
func (s *Store) present() {
	defer s.wg.Done()
	for s.ctx.Err() == nil {
		sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(s.ttlSeconds()), concurrency.WithContext(s.ctx))
		if err == nil {
			s.lease.Store(int64(sess.Lease()))
			err = s.putPresence()
			if err == nil {
				select {
				case <-sess.Done():
				case <-s.ctx.Done():
				}
			}
			// A head that stops on purpose leaves the live heads at once.
			s.release(sess)
		}
		select {
		case <-s.ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// putPresence writes this head's key with its advertised URL under the
// presence lease.
func (s *Store) putPresence() error {
	ctx, cancel := s.op()
	defer cancel()
	url, _ := s.url.Load().(string)
	_, err := s.c.Put(ctx, s.p+"heads/"+s.head, url, clientv3.WithLease(clientv3.LeaseID(s.lease.Load())))
	return err
}

// Advertise sets the base URL this head serves boots at, which the other
// heads list in their nodes' iPXE retries.
func (s *Store) Advertise(url string) error {
	if old, _ := s.url.Load().(string); old == url {
		return nil
	}
	s.url.Store(url)
	if s.lease.Load() == 0 {
		return nil // present() writes it with the key
	}
	return s.putPresence()
}

// HeadURLs returns the live heads' advertised base URLs ("" for a head
// that advertised none).
func (s *Store) HeadURLs(ctx context.Context) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.p+"heads/", clientv3.WithPrefix())
	if err != nil {
		return nil, unreachable(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), s.p+"heads/")] = string(kv.Value)
	}
	return out, nil
}

// LiveHeads returns the names of the heads whose lease is alive, sorted.
func (s *Store) LiveHeads(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.c.Get(ctx, s.p+"heads/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, unreachable(err)
	}
	var heads []string
	for _, kv := range resp.Kvs {
		heads = append(heads, strings.TrimPrefix(string(kv.Key), s.p+"heads/"))
	}
	sort.Strings(heads)
	return heads, nil
}

// FollowBootEvents hands fn every boot event the other heads record (as
// their trackers write them, a batch every 200 ms or so) until ctx ends
// or the store closes, so that each head's tracker sees every node's
// boot, whichever head served it.
func (s *Store) FollowBootEvents(ctx context.Context, fn func(bootstate.Event)) {
	hist, unk := s.p+"boot/hist/", s.p+"boot/unk/"
	own := "/" + s.head
	s.follow(ctx, s.p+"boot/", true, 0, func(ev *clientv3.Event) {
		k := string(ev.Kv.Key)
		if ev.Type != clientv3.EventTypePut || strings.HasSuffix(k, own) ||
			!(strings.HasPrefix(k, hist) || strings.HasPrefix(k, unk)) {
			return
		}
		var be bootstate.Event
		if json.Unmarshal(ev.Kv.Value, &be) == nil {
			fn(be)
		}
	}, func(int64) {})
}

// release revokes a session's lease (its context may have ended already:
// the revoke gets a second of its own).
func (s *Store) release(sess *concurrency.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.c.Revoke(ctx, sess.Lease())
	sess.Close()
}

// Claim takes the keys (work on nodes that must run on one head at a time:
// "reboot-clean/n07") for this head under a lease of LeaseTTL, renewed
// until release is called; a key another head holds is not taken and
// comes back in held with that head's name. A head that dies holding
// claims loses them when its lease expires.
func (s *Store) Claim(ctx context.Context, keys []string) (release func(), held map[string]string, err error) {
	sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(s.ttlSeconds()))
	if err != nil {
		return nil, nil, unreachable(err)
	}
	held = map[string]string{}
	for _, key := range keys {
		k := s.p + "claims/" + key
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.c.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, s.head, clientv3.WithLease(sess.Lease()))).Else(clientv3.OpGet(k)).Commit()
		cancel()
		if err != nil {
			s.release(sess)
			return nil, nil, unreachable(err)
		}
		if resp.Succeeded {
			continue
		}
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
			held[key] = string(kvs[0].Value)
		}
	}
	return func() { s.release(sess) }, held, nil
}
