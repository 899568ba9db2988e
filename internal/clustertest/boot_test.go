package clustertest_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/clustertest"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// publish imports a small generation of img on the first head (each boot
// file its name repeated size times), publishes it and waits until every
// head has it current.
func publish(t *testing.T, heads []*clustertest.Head, size int) *image.Manifest {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range image.BootFiles {
		files[f] = filepath.Join(dir, f)
		if err := os.WriteFile(files[f], bytes.Repeat([]byte(f), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := heads[0].Env.D.Images()
	m, err := src.Import("img", files, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Publish("img", m.ID); err != nil {
		t.Fatal(err)
	}
	for _, h := range heads[1:] {
		clustertest.Eventually(t, h.Name+" has the generation, current", func() bool {
			cur, _ := h.Env.D.Images().Current("img")
			return cur == m.ID
		})
	}
	return m
}

// script returns the iPXE script head h serves to mac ("" on an error).
func script(h *clustertest.Head, mac string) string {
	resp, err := http.Get(h.Env.HTTPBase() + "/boot/" + mac + ".ipxe")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestBootSurvivesHead: three heads; a simulated node boots from the first
// head, which is stopped in the middle of the boot. Stopped after the
// node got its script, the kernel fails and the node chains the script's
// retry line to another live head; stopped after the initrd, the live
// init's root (and then the check-in) go to another head of
// netbootui.heads=. Either way the boot completes with no failed attempt
// and the surviving heads see the node booted on the generation. The head
// is restarted between the cases (its member rejoins).
func TestBootSurvivesHead(t *testing.T) {
	heads := clustertest.Start(t, 3, inv, clustertest.Options{})
	gen := publish(t, heads, 50000).ID
	top := t // the restarted head lives to the test's end, not the case's
	for i, tc := range []struct {
		stopAfter string
		steps     []string // the boot's steps, in order
	}{
		{"script", []string{"script", "script", "kernel", "initrd", "rootfs", "checkin"}},
		{"initrd", []string{"script", "kernel", "initrd", "rootfs", "checkin"}},
	} {
		t.Run("stopped after "+tc.stopAfter, func(t *testing.T) {
			mac := "52:54:00:aa:00:0" + string(rune('1'+i))
			name := "n" + string(rune('1'+i))
			first := heads[0]
			// The first head's script lists the two others (live, with a
			// lease) in its retry line and on the kernel command line.
			last := ""
			defer func() {
				if t.Failed() {
					t.Logf("last script of %s:\n%s", first.Name, last)
				}
			}()
			clustertest.Eventually(t, first.Name+"'s script lists the other heads", func() bool {
				s := script(first, mac)
				last = s
				for _, h := range heads[1:] {
					if !strings.Contains(s, "chain --replace --autofree "+h.Env.HTTPBase()+"/boot/") ||
						!strings.Contains(s, h.Env.HTTPBase()) || !strings.Contains(s, "netbootui.heads=") {
						return false
					}
				}
				return strings.Contains(s, gen)
			})
			stopped, resume := make(chan struct{}), make(chan struct{})
			var once sync.Once
			n, err := simnode.Start(simnode.Options{MAC: mac, Password: "pw", BaseURL: first.Env.HTTPBase(),
				PXEFirst: true, POST: 10 * time.Millisecond,
				AfterStep: func(step string) {
					if step == tc.stopAfter {
						once.Do(func() { close(stopped); <-resume })
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if err := n.PowerOn(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-stopped:
			case <-time.After(60 * time.Second):
				t.Fatalf("the node did not get past %s: %+v", tc.stopAfter, n.Stats())
			}
			first.Stop(t)
			close(resume)
			if !simnode.WaitFor(60*time.Second, func() bool { st := n.Stats(); return st.Checkins > 0 || st.Failures > 0 }) {
				t.Fatalf("no check-in and no failure: %+v", n.Stats())
			}
			st := n.Stats()
			if st.Checkins != 1 || st.Failures != 0 || st.LastError != nil {
				t.Fatalf("checkins %d, failures %d (%v), want 1 and 0", st.Checkins, st.Failures, st.LastError)
			}
			var steps []string
			for _, s := range st.Steps {
				steps = append(steps, s.Step)
			}
			if !slices.Equal(steps, tc.steps) {
				t.Errorf("steps %v, want %v", steps, tc.steps)
			}
			for _, h := range heads[1:] {
				clustertest.Eventually(t, h.Name+" sees "+name+" booted on "+gen, func() bool {
					ns, _ := h.Env.D.NodeState(name)
					return ns.Stage == bootstate.StageBooted && ns.Generation == gen
				})
			}
			first.Restart(top, clustertest.Options{})
			// The restarted head has the generation again before the next case.
			clustertest.Eventually(t, first.Name+" serves "+gen+" again", func() bool {
				return strings.Contains(script(first, mac), gen)
			})
		})
	}
}
