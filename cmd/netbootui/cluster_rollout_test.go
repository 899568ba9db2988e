package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// TestServeClusterRolloutKill: three `serve --cluster` processes and six
// simulated nodes (in-process BMCs; each node boots from one head, the
// others offered as DHCP would). A rollout of a new generation in waves of
// two is created through one head and run through another; k3's firmware
// hangs after the kernel, so wave 2 stays in flight. The head holding the
// rollouts' election (status says which) is SIGKILLed mid-wave and k3
// fixed: another head takes the wave over, runs it again and the last one,
// and the rollout completes with every node done and checked in on the new
// generation. The audit log says which head ran wave 1, which took over
// and which completed it.
func TestServeClusterRolloutKill(t *testing.T) {
	dir := t.TempDir()
	httpPorts := freePorts(t, 3)
	bases := make([]string, 3)
	for i, p := range httpPorts {
		bases[i] = fmt.Sprintf("http://127.0.0.1:%d", p)
	}
	const n = 6
	var sims []*simnode.Node
	var bmcPorts []int
	for i := range n {
		var others []string
		for j := 1; j < 3; j++ {
			others = append(others, bases[(i+j)%3])
		}
		sim, err := simnode.Start(simnode.Options{MAC: fmt.Sprintf("52:54:00:6c:00:0%d", i+1), Password: cliBMCPassword,
			BaseURL: bases[i%3], OtherHeads: others, CheckinRetries: 10})
		if err != nil {
			t.Fatal(err)
		}
		defer sim.Close()
		sims = append(sims, sim)
		bmcPorts = append(bmcPorts, sim.Port())
	}
	inv, _ := os.ReadFile(writeSimInventory(t, dir, "groups:\n  g:\n    image: compute\n", "k", "6c", n, bmcPorts))
	sec, _ := os.ReadFile(filepath.Join(dir, "secrets.yaml"))
	sc := startServeClusterWith(t, inv, sec, clusterOptions{perHead: func(i int) []string {
		return []string{"--http-listen", fmt.Sprintf("127.0.0.1:%d", httpPorts[i])}
	}})
	clients := make([]*apiclient.Client, 3)
	for i, p := range sc.procs {
		clients[i] = apiclient.New(p.socket)
	}
	ctx := context.Background()

	// Two generations through the first head: the old one current.
	oldGen := importGeneration(t, clients[0], "compute", "0", 5000, true).ID
	newGen := importGeneration(t, clients[0], "compute", "1", 5000, false).ID
	for _, c := range clients {
		waitGenerations(t, c, oldGen, newGen)
	}

	sims[2].SetStopAfter("kernel") // k3 hangs: wave 2 stays in flight
	r, err := clients[1].StageCreate(ctx, apitype.StageRequest{Selection: "k[1-6]", Generation: newGen, Wave: "2", Timeout: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clients[2].StageAction(ctx, r.ID, "run"); err != nil {
		t.Fatal(err)
	}
	if !simnode.WaitFor(90*time.Second, func() bool {
		r, err := clients[0].Stage(ctx, r.ID)
		return err == nil && r.Waves[0].State == apitype.WavePassed && r.Waves[1].State == apitype.WaveRunning &&
			sims[3].Stats().Checkins >= 1
	}) {
		r, _ := clients[0].Stage(ctx, r.ID)
		t.Fatalf("wave 2 never in flight: %+v", r)
	}
	leader := ""
	for _, c := range clients {
		if st, err := c.Status(ctx); err == nil && st.Cluster != nil && st.Cluster.Rollouts != "" {
			if leader != "" && leader != st.Cluster.Rollouts {
				t.Fatalf("the heads disagree on who runs the rollouts: %s and %s", leader, st.Cluster.Rollouts)
			}
			leader = st.Cluster.Rollouts
		}
	}
	var killed int
	if _, err := fmt.Sscanf(leader, "h%d", &killed); err != nil || killed < 1 || killed > 3 {
		t.Fatalf("status names no rollout leader: %q", leader)
	}
	killed--
	sims[2].SetStopAfter("") // fixed: it boots on the next power event
	sc.kill(killed)
	survivor := clients[(killed+1)%3]

	var done *apitype.Rollout
	if !simnode.WaitFor(2*time.Minute, func() bool {
		done, err = survivor.Stage(ctx, r.ID)
		return err == nil && done.State == apitype.RolloutCompleted
	}) {
		t.Fatalf("rollout not completed 2 minutes after its leader %s was killed: %+v (%v)", leader, done, err)
	}
	for _, node := range done.Nodes {
		if node.Status != apitype.NodeDone {
			t.Errorf("%s: %s %s", node.Name, node.Status, node.Error)
		}
	}
	for i, sim := range sims {
		// The survivor's tracker sees another head's check-ins through
		// etcd, a batch at a time: it may lag the rollout by a moment.
		name := fmt.Sprintf("k%d", i+1)
		var v apitype.NodeView
		simnode.WaitFor(30*time.Second, func() bool {
			v, err = survivor.Node(ctx, name)
			return err == nil && v.State.Generation == newGen
		})
		if st := sim.Stats(); st.Checkins == 0 || v.Assigned != newGen || v.State.Generation != newGen {
			t.Errorf("%s: %d check-ins, assigned %s, running %s (%v); want %s", name, st.Checkins, v.Assigned, v.State.Generation, err, newGen)
		}
	}
	st, err := survivor.Status(ctx)
	if err != nil || st.Cluster == nil || st.Cluster.Rollouts == "" || st.Cluster.Rollouts == leader {
		t.Errorf("status after the kill: %+v %v", st.Cluster, err)
	}
	taker := "head " + st.Cluster.Rollouts
	es, err := survivor.Audit(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range es {
		if strings.HasPrefix(e.Action, "rollout ") {
			seen = append(seen, e.Who+": "+e.Action+": "+e.Result)
		}
	}
	log := strings.Join(seen, "\n")
	for _, want := range []string{
		"head " + leader + ": rollout wave: wave 1/3 passed",
		taker + ": rollout takeover: ok",
		taker + ": rollout wave: wave 2/3 passed",
		taker + ": rollout wave: wave 3/3 passed",
		taker + ": rollout complete",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("audit lacks %q:\n%s", want, log)
		}
	}
	t.Logf("rollout leader %s killed mid-wave 2; %s took over:\n%s", leader, taker, log)
}
