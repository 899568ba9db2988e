package rollout

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/etcd"
	"github.com/netbootui/netbootui/internal/state/etcd/etcdtest"
)

// headEnv is one head's Env in the takeover test: the first reboot of n3
// (on whichever head leads first) hangs until its wave is cancelled, the
// others pass.
type headEnv struct {
	scriptEnv
	hangFirst *atomic.Bool
	started   chan string
	rebooted  []string
}

func (e *headEnv) Reboot(ctx context.Context, nodes []string, timeout time.Duration, via string) []Result {
	var out []Result
	for _, n := range nodes {
		e.mu.Lock()
		e.rebooted = append(e.rebooted, n)
		e.mu.Unlock()
		_, g, _ := e.m.Staged(n)
		if n == "n3" && e.hangFirst.CompareAndSwap(true, false) {
			e.started <- n
			<-ctx.Done()
			out = append(out, Result{Node: n, Error: n + ": cancelled"})
			continue
		}
		out = append(out, Result{Node: n, OK: true, Generation: g})
	}
	return out
}

func (e *headEnv) reboots() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.rebooted...)
}

// TestSharedTakeover: three heads share the rollouts in a real etcd; the
// waves run on the head holding the "rollouts" election. The leader is
// killed mid-wave (its etcd client closed first, so nothing it does after
// reaches the cluster and its lease is left to expire, as after SIGKILL;
// in-process, not separate processes): another head takes the wave over
// and the rollout completes, every node done.
func TestSharedTakeover(t *testing.T) {
	member := etcdtest.Cluster(t, 1)[0]
	var hang atomic.Bool
	hang.Store(true)
	started := make(chan string, 1)
	type head struct {
		name   string
		store  *etcd.Store
		m      *Manager
		env    *headEnv
		cancel context.CancelFunc
		done   sync.WaitGroup
	}
	var heads []*head
	for _, name := range []string{"a", "b", "c"} {
		c, err := etcd.NewClient([]string{member.ClientURL()})
		if err != nil {
			t.Fatal(err)
		}
		s, err := etcd.Open(c, etcd.Options{Prefix: "/rollouts/", Head: name, LeaseTTL: 3 * time.Second, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		env := &headEnv{scriptEnv: scriptEnv{nodes: 6}, hangFirst: &hang, started: started}
		m, err := OpenShared(s.Documents(), env, name)
		if err != nil {
			t.Fatal(err)
		}
		env.m = m
		h := &head{name: name, store: s, m: m, env: env}
		ctx, cancel := context.WithCancel(context.Background())
		h.cancel = cancel
		h.done.Add(2)
		go func() { defer h.done.Done(); s.Lead(ctx, "rollouts", m.Lead) }()
		go func() {
			defer h.done.Done()
			s.WatchDocument(ctx, DocumentName, func([]byte, state.Rev) { m.Sync() })
		}()
		t.Cleanup(func() { cancel(); h.done.Wait(); m.Close(); s.Close(); c.Close() })
		heads = append(heads, h)
	}

	r, err := heads[1].m.Create("all", "new0123", Options{Wave: WaveSize{Count: 2}}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := heads[2].m.Run(r.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("wave 2 did not start")
	}
	var first *head
	for _, h := range heads {
		if slices.Contains(h.env.reboots(), "n3") {
			first = h
		}
	}
	if first == nil {
		t.Fatal("no head rebooted n3")
	}
	// Kill the leader mid-wave.
	first.store.Client().Close()
	first.cancel()

	var survivor *head
	for _, h := range heads {
		if h != first {
			survivor = h
			break
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := survivor.m.Get(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == StateCompleted {
			if s := statuses(got); strings.Count(s, "=done") != 6 {
				t.Errorf("after the takeover: %s", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rollout not completed 60 s after its leader was killed: %s %s", got.State, statuses(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
	var second *head
	for _, h := range heads {
		if h != first && slices.Contains(h.env.reboots(), "n5") {
			second = h
		}
	}
	if second == nil {
		t.Fatal("no surviving head ran the last wave")
	}
	if rb := second.env.reboots(); !slices.Contains(rb, "n3") || !slices.Contains(rb, "n4") {
		t.Errorf("the new leader %s did not run the interrupted wave again: %v", second.name, rb)
	}
	if rb := first.env.reboots(); slices.Contains(rb, "n5") {
		t.Errorf("the killed head %s went on: %v", first.name, rb)
	}
	second.env.mu.Lock()
	audits := append([]string(nil), second.env.audits...)
	second.env.mu.Unlock()
	if !slices.Contains(audits, "rollout takeover") || !slices.Contains(audits, "rollout complete") {
		t.Errorf("the new leader's audit: %q", audits)
	}
}
