package clustertest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/clustertest"
)

const inv = `images:
  img: {}
groups:
  g: {image: img}
nodes:
  - {name: n1, group: g, nics: [{mac: "52:54:00:aa:00:01"}]}
  - {name: n2, group: g, nics: [{mac: "52:54:00:aa:00:02"}]}
  - {name: n3, group: g, nics: [{mac: "52:54:00:aa:00:03"}]}
`

// converged waits until every head's file and inventory in force are the
// same revision, and returns it.
func converged(t *testing.T, heads []*clustertest.Head) string {
	t.Helper()
	var rev string
	clustertest.Eventually(t, "the heads' inventories converge", func() bool {
		first, err := os.ReadFile(heads[0].Env.InventoryPath)
		if err != nil {
			return false
		}
		rev = heads[0].Env.D.Inventory().Revision
		for _, h := range heads {
			b, err := os.ReadFile(h.Env.InventoryPath)
			if err != nil || !bytes.Equal(b, first) || h.Env.D.Inventory().Revision != rev {
				return false
			}
		}
		return true
	})
	return rev
}

// TestEditLandsOnce: three heads; the inventory given to the first is
// mirrored to the others' files; an edit made through any head's API
// lands on every head, once (one audit entry, seen on every head).
func TestEditLandsOnce(t *testing.T) {
	heads := clustertest.Start(t, 3, inv, clustertest.Options{})
	ctx := context.Background()
	converged(t, heads)
	for i, h := range heads {
		base := h.Env.D.Inventory().Revision
		arg := fmt.Sprintf("edit=%d", i)
		rev, err := h.Env.Client.EditNode(ctx, "n2", apitype.Edit{BaseRevision: base, Set: map[string]any{"kernel_args": arg}})
		if err != nil {
			t.Fatalf("edit through %s: %v", h.Name, err)
		}
		if got := converged(t, heads); got != rev {
			t.Fatalf("edit through %s: heads converged on %s, the edit returned %s", h.Name, got, rev)
		}
		for _, o := range heads {
			if n := o.Env.D.Inventory().Node("n2"); n == nil || !strings.Contains(n.KernelArgs, arg) {
				t.Errorf("%s after the edit through %s: n2 is %+v", o.Name, h.Name, n)
			}
		}
	}
	// A node's iPXE retry tries its own head, then the other live heads,
	// starting after its own.
	want := fmt.Sprintf("chain --replace --autofree %[2]s/boot/52:54:00:aa:00:02.ipxe || chain --replace --autofree %[3]s/boot/52:54:00:aa:00:02.ipxe || chain --replace --autofree %[1]s/boot/52:54:00:aa:00:02.ipxe || goto",
		heads[0].Env.HTTPBase(), heads[1].Env.HTTPBase(), heads[2].Env.HTTPBase())
	clustertest.Eventually(t, "h2's boot script lists the live heads", func() bool {
		return strings.Contains(bootScript(t, heads[1], "52:54:00:aa:00:02"), want)
	})
	// A boot served by one head is seen by the others' trackers.
	resp, err := http.Get(heads[1].Env.HTTPBase() + "/boot/52:54:00:aa:00:02.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, h := range []*clustertest.Head{heads[0], heads[2]} {
		// A MAC-named request proves nothing: the node's stage stays, its
		// timeline marks the config as asked for (unproven).
		clustertest.Eventually(t, h.Name+" sees n2's boot on h2", func() bool {
			st, _ := h.Env.D.NodeState("n2")
			return slices.ContainsFunc(st.Timeline, func(m bootstate.StageMark) bool { return m.Stage == bootstate.StageConfig && m.Unproven })
		})
	}
	clustertest.Eventually(t, "each head's audit log has each edit once", func() bool {
		for _, h := range heads {
			n := 0
			for _, e := range h.Store.Audit().Recent(0) {
				if e.Action == "edit node n2" {
					n++
				}
			}
			if n != len(heads) {
				return false
			}
		}
		return true
	})
}

// TestSameEditTwoHeads: the same edit (from the same revision) sent to two
// heads at once: one lands, the other is refused with a conflict, and
// every head ends with the winner's.
func TestSameEditTwoHeads(t *testing.T) {
	heads := clustertest.Start(t, 3, inv, clustertest.Options{})
	ctx := context.Background()
	for round := range 3 {
		base := converged(t, heads)
		a, b := heads[round%3], heads[(round+1)%3]
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, h := range []*clustertest.Head{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = h.Env.Client.EditNode(ctx, "n1", apitype.Edit{BaseRevision: base,
					Set: map[string]any{"kernel_args": fmt.Sprintf("round=%d from=%s", round, h.Name)}})
			}()
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if won >= 0 {
					t.Fatalf("round %d: both edits landed", round)
				}
				won = i
			case !errors.Is(err, apiclient.ErrConflict):
				t.Fatalf("round %d: the losing edit: %v, want a conflict", round, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither edit landed: %v", round, errs)
		}
		winner := []*clustertest.Head{a, b}[won]
		converged(t, heads)
		for _, h := range heads {
			if n := h.Env.D.Inventory().Node("n1"); n == nil || !strings.Contains(n.KernelArgs, "from="+winner.Name) {
				t.Errorf("round %d: %s has n1 %+v, want %s's edit", round, h.Name, n, winner.Name)
			}
		}
	}
}

// TestQuorum: status shows the members and the leader; a head whose two
// peers are stopped refuses changes with a clear message and still serves
// boots; when one peer is back, it changes things again.
func TestQuorum(t *testing.T) {
	heads := clustertest.Start(t, 3, inv, clustertest.Options{})
	ctx := context.Background()
	converged(t, heads)
	st, err := heads[0].Env.Client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := st.Cluster
	if c == nil || c.Head != "h1" || !c.Quorum || len(c.Members) != 3 || c.Leader == "" {
		t.Fatalf("status of a healthy cluster: %+v", c)
	}
	leaders := 0
	for _, m := range c.Members {
		if !m.Reachable {
			t.Errorf("member %s unreachable: %s", m.Name, m.Error)
		}
		if m.Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders in %+v", leaders, c.Members)
	}
	// One head holds the rollouts' election, and every head names it.
	clustertest.Eventually(t, "every head names the head that runs the rollouts", func() bool {
		seen := map[string]bool{}
		for _, h := range heads {
			st, err := h.Env.Client.Status(ctx)
			if err != nil || st.Cluster == nil || !strings.HasPrefix(st.Cluster.Rollouts, "h") {
				return false
			}
			seen[st.Cluster.Rollouts] = true
		}
		return len(seen) == 1
	})

	heads[1].Stop(t)
	heads[2].Stop(t)
	h := heads[0]
	_, err = h.Env.Client.EditNode(ctx, "n3", apitype.Edit{Set: map[string]any{"kernel_args": "lonely"}})
	var apiErr *apitype.Error
	if !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeUnavailable || !strings.Contains(apiErr.Message, "cut off from the cluster's quorum") {
		t.Fatalf("edit on a head without quorum: %v", err)
	}
	if n := h.Env.D.Inventory().Node("n3"); strings.Contains(n.KernelArgs, "lonely") {
		t.Errorf("the refused edit is in force: %+v", n)
	}
	st, err = h.Env.Client.Status(ctx)
	if err != nil || st.Cluster == nil || st.Cluster.Quorum || !strings.Contains(st.Cluster.Error, "quorum") {
		t.Errorf("status without quorum: %+v, %v", st.Cluster, err)
	}
	resp, err := http.Get(h.Env.HTTPBase() + "/boot/52:54:00:aa:00:03.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "#!ipxe") {
		t.Errorf("boot script without quorum: %s\n%s", resp.Status, body)
	}

	heads[1].Restart(t, clustertest.Options{})
	clustertest.Eventually(t, "h1 has the quorum again", func() bool {
		st, err := h.Env.Client.Status(ctx)
		return err == nil && st.Cluster != nil && st.Cluster.Quorum
	})
	if _, err := h.Env.Client.EditNode(ctx, "n3", apitype.Edit{Set: map[string]any{"kernel_args": "rejoined"}}); err != nil {
		t.Fatalf("edit after the rejoin: %v", err)
	}
	clustertest.Eventually(t, "the edit reaches the rejoined head", func() bool {
		n := heads[1].Env.D.Inventory().Node("n3")
		return n != nil && strings.Contains(n.KernelArgs, "rejoined")
	})
}

// bootScript fetches a node's iPXE script from h.
func bootScript(t *testing.T, h *clustertest.Head, mac string) string {
	t.Helper()
	resp, err := http.Get(h.Env.HTTPBase() + "/boot/" + mac + ".ipxe")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
