// Package clustertest starts several heads for tests: each head a real
// daemon (internal/daemontest) with its API, its own data directory and
// inventory file, and an embedded etcd member of its own (internal/state/
// etcd), all on loopback. At most three heads (etcdtest's bound).
package clustertest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/state/etcd"
	"github.com/netbootui/netbootui/internal/state/etcd/etcdtest"
)

// Head is one running head.
type Head struct {
	Name   string
	Dir    string
	Member etcd.MemberConfig
	Env    *daemontest.Env // the daemon, its API client
	Store  *etcd.Store
}

// Options tune Start.
type Options struct {
	// Config is each head's daemon configuration (listen addresses, poll
	// intervals); its InventoryPath, DataDir and State are the head's own.
	Config daemon.Config
}

// Start starts n heads. The first head's inventory file (inventory) seeds
// the cluster's; the others start without one and mirror it.
func Start(t testing.TB, n int, inventory string, o Options) []*Head {
	t.Helper()
	dir := t.TempDir()
	cfgs := etcdtest.Configs(t, n, filepath.Join(dir, "members"))
	heads := make([]*Head, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		heads[i] = &Head{Name: cfgs[i].Name, Dir: filepath.Join(dir, cfgs[i].Name), Member: cfgs[i]}
		heads[i].Member.Dir = filepath.Join(heads[i].Dir, "data", "etcd")
		wg.Add(1)
		go func() {
			defer wg.Done()
			heads[i].Store, errs[i] = OpenStore(heads[i].Member)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, h := range heads {
				if h.Store != nil {
					h.Store.Close()
				}
			}
			t.Fatalf("head %d: %v", i+1, err)
		}
	}
	for i, h := range heads {
		if err := os.MkdirAll(h.Dir, 0o755); err != nil {
			t.Fatal(err)
		}
		inv := ""
		if i == 0 {
			inv = inventory
		}
		h.Env = StartDaemon(t, h, inv, o)
	}
	return heads
}

// OpenStore starts a head's member and opens its store (raft timings of
// etcdtest, the member's name as the head's).
func OpenStore(m etcd.MemberConfig) (*etcd.Store, error) {
	return etcd.OpenHead(etcd.HeadConfig{Member: m, Store: etcd.Options{Timeout: 5 * time.Second}})
}

// StartDaemon starts h's daemon on h.Store with an API server (inventory,
// when not "", is written to its file first).
func StartDaemon(t testing.TB, h *Head, inventory string, o Options) *daemontest.Env {
	t.Helper()
	cfg := o.Config
	cfg.InventoryPath = filepath.Join(h.Dir, "nodes.yaml")
	cfg.DataDir = filepath.Join(h.Dir, "data")
	cfg.State = h.Store
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = 100 * time.Millisecond
	}
	return daemontest.Start(t, daemontest.Options{Dir: h.Dir, Inventory: inventory, Config: cfg,
		API: func(d *daemon.Daemon) daemontest.APIServer { return &api.Server{D: d} }})
}

// Stop stops h's daemon, and with it its store and member.
func (h *Head) Stop(t testing.TB) {
	t.Helper()
	if err := h.Env.Stop(); err != nil {
		t.Errorf("%s: %v", h.Name, err)
	}
}

// Restart starts h again on its data (its member rejoins the cluster).
func (h *Head) Restart(t testing.TB, o Options) {
	t.Helper()
	s, err := OpenStore(h.Member)
	if err != nil {
		t.Fatalf("%s again: %v", h.Name, err)
	}
	h.Store = s
	h.Env = StartDaemon(t, h, "", o)
}

// Eventually polls cond every 20 ms for up to 30 s.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s", what)
		}
	}
}
