package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/atomicfile"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/rollout"
	"github.com/netbootui/netbootui/internal/shard"
	"github.com/netbootui/netbootui/internal/state"
)

// InventoryDocument is the name of the inventory in a shared store's
// documents.
const InventoryDocument = "nodes.yaml"

// rolloutElection is the election whose holder runs the rollouts' waves.
const rolloutElection = "rollouts"

// firstInventoryWait is how long a head without an inventory file waits
// for another head to give the cluster its inventory.
const firstInventoryWait = time.Minute

// cluster is the daemon's side of several heads (nil on a single head):
// the inventory document lives in the shared store, and each head's file
// is a mirror of it. An edit through the API lands in the store first by
// compare-and-swap (so the same edit sent to two heads lands once), then
// in the file; another head's edit comes through a watch and replaces the
// file; a hand edit of the file is pushed to the store from the revision
// the file mirrored.
type cluster struct {
	d *Daemon
	c state.Cluster

	peers atomic.Pointer[[]string] // the other live heads' base URLs (iPXE retries)

	mu      sync.Mutex
	rev     state.Rev // the store's revision of the document the file mirrors
	content string    // inventory.Revision of the file as mirrored or pushed
	pending string    // a hand edit's revision not pushed yet (no quorum)
}

// startCluster seeds the shared inventory from the file when the store has
// none (the first head), or replaces the file with the store's document.
func (d *Daemon) startCluster(c state.Cluster) error {
	m := &cluster{d: d, c: c}
	path := d.cfg.InventoryPath
	wait := time.Now().Add(firstInventoryWait)
	for {
		data, rev, err := c.Documents().Get(InventoryDocument)
		if err != nil {
			return fmt.Errorf("cluster: reading the shared inventory: %w", err)
		}
		if rev == 0 {
			local, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) && time.Now().Before(wait) {
				// Heads start together: the one with the inventory gives it.
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if err != nil {
				return fmt.Errorf("cluster: the cluster has no inventory yet and this head has none to give it: %w", err)
			}
			if _, err := inventory.Parse(path, local, d.parseOptions()...); err != nil {
				return err
			}
			rev, err = c.Documents().Put(InventoryDocument, local, 0)
			if errors.Is(err, state.ErrConflict) {
				continue // another head gave its own at the same time
			}
			if err != nil {
				return fmt.Errorf("cluster: giving the cluster this head's inventory: %w", err)
			}
			d.log.Info("cluster: the cluster's inventory is this head's file", "path", path, "revision", short(inventory.Revision(local)))
			data = local
		} else if err := inventory.Rewrite(path, func(cur []byte) ([]byte, error) {
			if !bytes.Equal(cur, data) {
				d.log.Info("cluster: this head's inventory file replaced by the cluster's", "path", path,
					"was", short(inventory.Revision(cur)), "now", short(inventory.Revision(data)))
			}
			return data, nil
		}); err != nil {
			return fmt.Errorf("cluster: mirroring the inventory: %w", err)
		}
		m.rev, m.content = rev, inventory.Revision(data)
		d.cluster = m
		d.servers.Go("cluster heads", func(ctx context.Context) error {
			m.followHeads(ctx, time.Second)
			return nil
		})
		d.servers.Go("cluster images", func(ctx context.Context) error {
			newImageSync(d, c).run(ctx, time.Second)
			return nil
		})
		d.servers.Go("cluster boot events", func(ctx context.Context) error {
			c.FollowBootEvents(ctx, func(ev bootstate.Event) { d.tracker.Observe(ev) })
			return nil
		})
		return nil
	}
}

// run mirrors the other heads' edits until ctx ends, and retries a hand
// edit that could not be pushed.
func (m *cluster) run(ctx context.Context) {
	go func() {
		t := time.NewTicker(m.d.cfg.ReloadInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.mu.Lock()
				p := m.pending
				m.mu.Unlock()
				if p != "" {
					m.d.Reload()
				}
			}
		}
	}()
	m.c.WatchDocument(ctx, InventoryDocument, m.changed)
}

// changed mirrors a version of the document put by any head.
func (m *cluster) changed(data []byte, rev state.Rev) {
	path := m.d.cfg.InventoryPath
	wrote := false
	err := inventory.Rewrite(path, func(cur []byte) ([]byte, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if rev <= m.rev {
			return nil, nil // this head's own edit, or older than the file
		}
		if cur != nil && inventory.Revision(cur) != m.content && !bytes.Equal(cur, data) {
			// A hand edit not pushed yet loses to the cluster's: keep it aside.
			aside := path + ".conflict"
			if err := atomicfile.Write(aside, cur, 0o600); err == nil {
				m.d.log.Error("cluster: a hand edit of the inventory lost to another head's edit; it is kept aside", "kept", aside)
			}
		}
		m.rev, m.content, m.pending = rev, inventory.Revision(data), ""
		wrote = true
		return data, nil
	})
	if err != nil {
		m.d.log.Error("cluster: mirroring the inventory", "err", err)
		return
	}
	if wrote {
		m.d.Reload()
	}
}

// owns reports whether rev is the revision the file mirrors (nothing to
// push).
func (m *cluster) owns(rev string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.content == rev
}

// push lands a hand edit of the file in the shared store, from the
// revision the file mirrored.
func (m *cluster) push() error {
	return inventory.Rewrite(m.d.cfg.InventoryPath, func(cur []byte) ([]byte, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		rev := inventory.Revision(cur)
		if rev == m.content {
			return nil, nil
		}
		next, err := m.c.Documents().Put(InventoryDocument, cur, m.rev)
		switch {
		case errors.Is(err, state.ErrConflict):
			return nil, fmt.Errorf("the hand edit of %s (revision %s) conflicts with another head's edit, which replaces it: %w", m.d.cfg.InventoryPath, short(rev), inventory.ErrConflict)
		case err != nil:
			m.pending = rev
			return nil, fmt.Errorf("the hand edit of %s (revision %s) is not in force: %w", m.d.cfg.InventoryPath, short(rev), err)
		}
		m.rev, m.content, m.pending = next, rev, ""
		return nil, nil
	})
}

// commit lands an API edit in the shared store before it is written to
// the file (inventory.UpdateWith): from the revision the file mirrors,
// or not at all.
func (m *cluster) commit(before, after []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if inventory.Revision(before) != m.content {
		return fmt.Errorf("%w: this head's inventory file is not the cluster's yet (a hand edit or another head's edit is on its way): reload and retry", inventory.ErrConflict)
	}
	next, err := m.c.Documents().Put(InventoryDocument, after, m.rev)
	if errors.Is(err, state.ErrConflict) {
		return fmt.Errorf("%w: another head's edit of the inventory landed first: reload and retry", inventory.ErrConflict)
	}
	if err != nil {
		return err
	}
	m.rev, m.content = next, inventory.Revision(after)
	return nil
}

// commitInventory is the hook of inventory.UpdateWith: nil on a single
// head.
func (d *Daemon) commitInventory() func(before, after []byte) error {
	if d.cluster == nil {
		return nil
	}
	return d.cluster.commit
}

// checkHandEdit pushes a hand edit of the file to the cluster before the
// head takes it; an error keeps the inventory in force.
func (d *Daemon) checkHandEdit(inv *inventory.Inventory) error {
	if d.cluster == nil || inv == nil || d.cluster.owns(inv.Revision) {
		return nil
	}
	return d.cluster.push()
}

// ClusterStatus is this head's view of the cluster (nil on a single
// head): the members, which leads, whether this head has the quorum.
func (d *Daemon) ClusterStatus(ctx context.Context) *apitype.ClusterStatus {
	if d.cluster == nil {
		return nil
	}
	st := &apitype.ClusterStatus{Head: d.cluster.c.Head(), Quorum: true}
	if err := d.cluster.c.Ready(); err != nil {
		st.Quorum, st.Error = false, err.Error()
	}
	members, err := d.cluster.c.Members(ctx)
	if err != nil && st.Error == "" {
		st.Error = err.Error()
	}
	for _, m := range members {
		st.Members = append(st.Members, apitype.ClusterMember{Name: m.Name, ID: fmt.Sprintf("%x", m.ID),
			PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, Leader: m.Leader, Reachable: m.Reachable, Error: m.Error})
		if m.Leader {
			st.Leader = m.Name
		}
	}
	if st.Quorum {
		st.Rollouts, _ = d.cluster.c.Leader(ctx, rolloutElection)
	}
	return st
}

// openSharedRollouts opens the rollouts shared by the heads: every head
// follows the document (the staged assignments it boots nodes with), and
// the head that holds the "rollouts" election runs the waves, taking over
// those of a head that died.
func (d *Daemon) openSharedRollouts() error {
	c := d.cluster.c
	m, err := rollout.OpenShared(c.Documents(), &rolloutEnv{d: d}, c.Head())
	if err != nil {
		return err
	}
	d.rollouts = m
	d.boot.Staged = m.Staged
	d.servers.Go("rollout leader", func(ctx context.Context) error {
		c.Lead(ctx, rolloutElection, m.Lead)
		return nil
	})
	d.servers.Go("rollout follower", func(ctx context.Context) error {
		return c.WatchDocument(ctx, rollout.DocumentName, func([]byte, state.Rev) {
			if err := m.Sync(); err != nil {
				d.log.Error("cluster: reading the rollouts", "err", err)
			}
		})
	})
	return nil
}

// myShard keeps the nodes this head polls: on several heads each node is
// polled by one live head (internal/shard's consistent hash), the others
// observe its results through the shared boot events. A head that cannot
// read the live heads polls every node.
func (d *Daemon) myShard(nodes []*inventory.Node) []*inventory.Node {
	if d.cluster == nil {
		return nodes
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	heads, err := d.cluster.c.LiveHeads(ctx)
	if err != nil {
		return nodes
	}
	return shard.Mine(nodes, func(n *inventory.Node) string { return n.Name }, d.cluster.c.Head(), heads)
}

// rolloutClaimWait is how long a rollout's wave waits for a node another
// head holds: a head that died mid-wave holds its nodes' claims until its
// lease lapses, which happens about when the election passes to the head
// taking the wave over (the leases have the same TTL, 5 s by default), so
// three TTLs are plenty; a node that a live head really reboots fails the
// wave after it.
const rolloutClaimWait = 15 * time.Second

// claimNodes takes work's claim on the nodes for this head (several
// heads: a node's reboot-clean runs on one head at a time, under the
// head's lease); held names the nodes another head holds, with why, after
// trying them again for up to wait. On a single head it claims nothing.
func (d *Daemon) claimNodes(ctx context.Context, work string, nodes []string, wait time.Duration) (release func(), held map[string]error, err error) {
	if d.cluster == nil {
		return func() {}, nil, nil
	}
	keys := make([]string, len(nodes))
	for i, n := range nodes {
		keys[i] = work + "/" + n
	}
	var releases []func()
	release = func() {
		for _, r := range releases {
			r()
		}
	}
	deadline := time.Now().Add(wait)
	for {
		r, holders, err := d.cluster.c.Claim(ctx, keys)
		if err != nil {
			release()
			return nil, nil, fmt.Errorf("%s: %w", work, err)
		}
		releases = append(releases, r)
		var again []string
		for _, k := range keys {
			if _, ok := holders[k]; ok {
				again = append(again, k)
			}
		}
		if len(again) == 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			held = map[string]error{}
			for _, n := range nodes {
				if h, ok := holders[work+"/"+n]; ok {
					held[n] = fmt.Errorf("%s: a %s of it runs on head %s", n, work, h)
				}
			}
			return release, held, nil
		}
		keys = again
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// followHeads advertises this head's boot URL and keeps the other live
// heads' in m.peers (the order starts after this head's name, so that the
// heads' retries spread), every interval until ctx ends.
func (m *cluster) followHeads(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if u := m.d.BootURL(); u != "" {
			m.c.Advertise(u)
		}
		if urls, err := m.c.HeadURLs(ctx); err == nil {
			names := make([]string, 0, len(urls))
			for h := range urls {
				names = append(names, h)
			}
			sort.Strings(names)
			me := m.c.Head()
			start := sort.SearchStrings(names, me)
			var peers []string
			for i := range names {
				h := names[(start+i)%len(names)]
				if h != me && urls[h] != "" {
					peers = append(peers, urls[h])
				}
			}
			m.peers.Store(&peers)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// fallbacks is pxe.Boot's Fallbacks: the other live heads, from the cache.
func (m *cluster) fallbacks() []string {
	if p := m.peers.Load(); p != nil {
		return *p
	}
	return nil
}
