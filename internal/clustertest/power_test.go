package clustertest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/clustertest"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/power/powertest"
)

// machine is a simulated machine that is always on.
type machine struct{}

func (machine) PowerState() bool                 { return true }
func (machine) SetPower(bool) error              { return nil }
func (machine) PowerCycle() error                { return nil }
func (machine) Reset() error                     { return nil }
func (machine) SetNextBootPXE(bool) error        { return nil }
func (machine) NextBootPXE() (pending, efi bool) { return false, false }

const powerNodes = 9

func powerInventory() string {
	var b strings.Builder
	b.WriteString("settings:\n  secrets: secrets.yaml\nimages:\n  img: {}\ngroups:\n  g: {image: img, bmc: {protocol: simpower, password: lab}}\nnodes:\n")
	for i := 1; i <= powerNodes; i++ {
		fmt.Fprintf(&b, "  - {name: p%d, group: g, nics: [{mac: \"52:54:00:cc:00:%02x\"}], bmc: {host: lab%d.example, simpower: {machine: m%d}}}\n", i, i, i, i)
	}
	return b.String()
}

// polled returns the machines each lab polled since its offset.
func polled(labs map[string]*powertest.Lab, from map[string]int) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for h, lab := range labs {
		out[h] = map[string]bool{}
		calls := lab.Calls()
		for _, c := range calls[min(from[h], len(calls)):] {
			if m, op, ok := strings.Cut(c, " "); ok && op == "status" {
				out[h][m] = true
			}
		}
	}
	return out
}

func offsets(labs map[string]*powertest.Lab) map[string]int {
	out := map[string]int{}
	for h, lab := range labs {
		out[h] = len(lab.Calls())
	}
	return out
}

// covered reports whether the heads in p polled every machine.
func covered(p map[string]map[string]bool) bool {
	for i := 1; i <= powerNodes; i++ {
		found := false
		for _, ms := range p {
			found = found || ms[fmt.Sprintf("m%d", i)]
		}
		if !found {
			return false
		}
	}
	return true
}

// TestPowerShards: three heads poll every BMC once between them (each node
// on the head the consistent hash gives it), and when a head stops, the
// two others poll its nodes too.
func TestPowerShards(t *testing.T) {
	var mu sync.Mutex
	labs := map[string]*powertest.Lab{}
	heads := clustertest.Start(t, 3, powerInventory(), clustertest.Options{
		Config: daemon.Config{PowerPoll: 300 * time.Millisecond},
		Files:  map[string]string{"secrets.yaml": "bmc_passwords:\n  lab: sim-pass\n"},
		PerHead: func(name string, cfg *daemon.Config) {
			lab := powertest.NewLab("sim-pass")
			for i := 1; i <= powerNodes; i++ {
				lab.Add(fmt.Sprintf("m%d", i), machine{})
			}
			reg := backends.Registry()
			if err := reg.Register(lab.Protocol()); err != nil {
				t.Fatal(err)
			}
			cfg.Backends = reg
			mu.Lock()
			labs[name] = lab
			mu.Unlock()
		},
	})
	ctx := context.Background()
	clustertest.Eventually(t, "every head sees three live heads", func() bool {
		for _, h := range heads {
			if live, err := h.Store.LiveHeads(ctx); err != nil || len(live) != 3 {
				return false
			}
		}
		return true
	})
	// A first window lets cycles planned before every head was live end.
	from := offsets(labs)
	clustertest.Eventually(t, "every BMC polled", func() bool { return covered(polled(labs, from)) })
	from = offsets(labs)
	clustertest.Eventually(t, "every BMC polled again", func() bool { return covered(polled(labs, from)) })
	p := polled(labs, from)
	owner := map[string]string{}
	for h, ms := range p {
		for m := range ms {
			if o, ok := owner[m]; ok {
				t.Errorf("%s polled by %s and %s", m, o, h)
			}
			owner[m] = h
		}
	}

	heads[2].Stop(t)
	live := map[string]*powertest.Lab{"h1": labs["h1"], "h2": labs["h2"]}
	from = offsets(live)
	clustertest.Eventually(t, "h1 and h2 poll h3's BMCs too", func() bool { return covered(polled(live, from)) })
	// The stopped head leaves the nodes' iPXE retries.
	clustertest.Eventually(t, "h3 leaves p1's retries on h1", func() bool {
		script := bootScript(t, heads[0], "52:54:00:cc:00:01")
		return strings.Contains(script, heads[1].Env.HTTPBase()) && !strings.Contains(script, heads[2].Env.HTTPBase())
	})
}
