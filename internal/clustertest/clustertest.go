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
	member *etcd.Member // stopped after the daemon (Stop, the test's end)
}

// Options tune Start.
type Options struct {
	// Config is each head's daemon configuration (listen addresses, poll
	// intervals); its InventoryPath, DataDir and State are the head's own.
	Config daemon.Config
	// PerHead adjusts one head's configuration (its own power backends).
	PerHead func(name string, cfg *daemon.Config)
	// Files are written to every head's folder, beside its inventory
	// (secrets.yaml: secrets are not shared through the cluster).
	Files map[string]string
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
			errs[i] = heads[i].open()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, h := range heads {
				h.close()
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
	// Stop the daemons together, then the members: one by one, the last
	// daemons would wait out their timeouts without a quorum.
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, h := range heads {
			wg.Add(1)
			go func() { defer wg.Done(); h.Env.Stop() }()
		}
		wg.Wait()
		for _, h := range heads {
			h.close()
		}
	})
	return heads
}

// open starts h's member and opens its store on it (the member's name as
// the head's).
func (h *Head) open() error {
	m, err := etcd.StartMember(h.Member)
	if err != nil {
		return err
	}
	c, err := etcd.NewClient([]string{m.ClientURL()})
	if err != nil {
		m.Close()
		return err
	}
	s, err := etcd.Open(c, etcd.Options{Head: h.Name, Timeout: 5 * time.Second, MaxTxnOps: etcd.MaxTxnOps})
	if err != nil {
		c.Close()
		m.Close()
		return err
	}
	s.OnClose(c.Close)
	h.Store, h.member = s, m
	return nil
}

// close stops h's member (after its daemon closed the store).
func (h *Head) close() {
	if h.member != nil {
		h.member.Close()
		h.member = nil
	}
}

// StartDaemon starts h's daemon on h.Store with an API server (inventory,
// when not "", is written to its file first).
func StartDaemon(t testing.TB, h *Head, inventory string, o Options) *daemontest.Env {
	t.Helper()
	cfg := o.Config
	cfg.InventoryPath = filepath.Join(h.Dir, "nodes.yaml")
	cfg.DataDir = filepath.Join(h.Dir, "data")
	cfg.State = h.Store
	if o.PerHead != nil {
		o.PerHead(h.Name, &cfg)
	}
	for name, data := range o.Files {
		if err := os.WriteFile(filepath.Join(h.Dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = 100 * time.Millisecond
	}
	return daemontest.Start(t, daemontest.Options{Dir: h.Dir, Inventory: inventory, Config: cfg,
		API: func(d *daemon.Daemon) daemontest.APIServer { return &api.Server{D: d} }})
}

// Stop stops h's daemon (and with it its store), then its member.
func (h *Head) Stop(t testing.TB) {
	t.Helper()
	if err := h.Env.Stop(); err != nil {
		t.Errorf("%s: %v", h.Name, err)
	}
	h.close()
}

// Restart starts h again on its data (its member rejoins the cluster).
func (h *Head) Restart(t testing.TB, o Options) {
	t.Helper()
	if err := h.open(); err != nil {
		t.Fatalf("%s again: %v", h.Name, err)
	}
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
