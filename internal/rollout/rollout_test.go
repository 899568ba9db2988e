package rollout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/state"
	"github.com/netbootui/netbootui/internal/state/local"
)

// scriptEnv is an Env for the state machine's own tests: nodes n1..nN of
// image img, previous generation "old"; a node in fail fails its reboot, a
// node in hang blocks until its context ends. It records every Reboot call
// with the generation each node was assigned at that moment. (The daemon's
// tests run the same machine on the real reboot-clean and simulated nodes.)
type scriptEnv struct {
	mu      sync.Mutex
	m       *Manager
	nodes   int
	fail    map[string]bool
	hang    map[string]bool
	release chan struct{}
	calls   [][]string // node=gen per call
	vias    []string   // the via of each call
	events  []string
	audits  []string
	details map[string][]string // audit details by action
	started chan string
}

func (e *scriptEnv) Resolve(sel string) ([]Assignment, error) {
	if sel == "bad" {
		return nil, fmt.Errorf("selection %q: no such node", sel)
	}
	var out []Assignment
	for i := 1; i <= e.nodes; i++ {
		out = append(out, Assignment{Node: fmt.Sprintf("n%d", i), Group: "g", Image: "img", Generation: "old"})
	}
	return out, nil
}

func (e *scriptEnv) Generation(img, gen string) (string, error) {
	if img == "img" && strings.HasPrefix("new0123", gen) {
		return "new0123", nil
	}
	return "", fmt.Errorf("image %s has no generation %q", img, gen)
}

func (e *scriptEnv) Reboot(ctx context.Context, nodes []string, timeout time.Duration, via string) []Result {
	var call []string
	for _, n := range nodes {
		_, g, _ := e.m.Staged(n)
		call = append(call, n+"="+g)
	}
	e.mu.Lock()
	e.calls = append(e.calls, call)
	e.vias = append(e.vias, via)
	e.mu.Unlock()
	var out []Result
	for _, n := range nodes {
		_, g, _ := e.m.Staged(n)
		switch {
		case e.hang[n]:
			if e.started != nil {
				e.started <- n
			}
			select {
			case <-ctx.Done():
				out = append(out, Result{Node: n, Error: n + ": cancelled"})
			case <-e.release:
				out = append(out, Result{Node: n, OK: true, Generation: g})
			}
		case e.fail[n] && g == "new0123":
			// As the daemon's reboot-clean reports it: the console's
			// last lines after the first line.
			out = append(out, Result{Node: n, Error: n + ": no check-in\nlast console lines:\n  " + n + " console"})
		default:
			out = append(out, Result{Node: n, OK: true, Generation: g})
		}
	}
	return out
}

func (e *scriptEnv) Promote(r *Rollout) (string, error) {
	return "group g image: img@" + r.Generation, nil
}

func (e *scriptEnv) Event(node, msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, node+": "+msg)
}

func (e *scriptEnv) Audit(who, action, target string, nodes int, result string, details []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.audits = append(e.audits, action)
	if len(details) > 0 {
		if e.details == nil {
			e.details = map[string][]string{}
		}
		e.details[action] = append(e.details[action], details...)
	}
}

// docsAt is the local state document store of path's folder; path names
// the rollouts document (DocumentName) in it.
func docsAt(path string) state.Documents { return local.NewDocuments(filepath.Dir(path)) }

func newManager(t *testing.T, env *scriptEnv, path string) *Manager {
	t.Helper()
	m, err := Open(docsAt(path), env)
	if err != nil {
		t.Fatal(err)
	}
	env.m = m
	t.Cleanup(m.Close)
	return m
}

func wait(t *testing.T, m *Manager, id string) *Rollout {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	r, err := m.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func statuses(r *Rollout) string {
	var s []string
	for _, n := range r.Nodes {
		s = append(s, n.Name+"="+string(n.Status))
	}
	return strings.Join(s, " ")
}

// TestWaves runs rollouts of a scripted fleet through the gate.
func TestWaves(t *testing.T) {
	tests := []struct {
		name      string
		nodes     int
		opts      Options
		fail      []string
		state     State
		statuses  string
		calls     string // Reboot calls, "|" between calls
		reason    string
		resumeGen string // after resume with the failures fixed: "" skip
	}{
		{name: "all pass, waves of 2, 3 in flight is the whole wave", nodes: 5, opts: Options{Wave: WaveSize{Count: 2}, MaxInFlight: 3},
			state: StateCompleted, statuses: "n1=done n2=done n3=done n4=done n5=done",
			calls: "n1=new0123,n2=new0123|n3=new0123,n4=new0123|n5=new0123"},
		{name: "max in flight 1 splits a wave", nodes: 3, opts: Options{Wave: WaveSize{Percent: 100}, MaxInFlight: 1},
			state: StateCompleted, statuses: "n1=done n2=done n3=done", calls: "n1=new0123|n2=new0123|n3=new0123"},
		{name: "a failure halts at its wave", nodes: 6, opts: Options{Wave: WaveSize{Count: 2}}, fail: []string{"n3"},
			state: StateHalted, statuses: "n1=done n2=done n3=reverted n4=done n5=staged n6=staged",
			calls:  "n1=new0123,n2=new0123|n3=new0123,n4=new0123",
			reason: "wave 2: 1 of 2 nodes failed (at most 0 allowed): n3: no check-in", resumeGen: "new0123"},
		{name: "tolerated failure: the wave passes, the node reverts", nodes: 4, opts: Options{Wave: WaveSize{Count: 2}, MaxFailures: 1},
			fail: []string{"n1"}, state: StateCompleted, statuses: "n1=reverted n2=done n3=done n4=done",
			calls: "n1=new0123,n2=new0123|n3=new0123,n4=new0123", resumeGen: "new0123"},
		{name: "reboot back onto the previous generation", nodes: 2, opts: Options{Wave: WaveSize{Count: 2}, RebootBack: true},
			fail: []string{"n2"}, state: StateHalted, statuses: "n1=done n2=reverted",
			calls: "n1=new0123,n2=new0123|n2=old", reason: "wave 1: 1 of 2 nodes failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := &scriptEnv{nodes: tc.nodes, fail: map[string]bool{}}
			for _, n := range tc.fail {
				env.fail[n] = true
			}
			path := filepath.Join(t.TempDir(), "rollouts.json")
			m := newManager(t, env, path)
			r, err := m.Create("@g", "new", tc.opts, "tester")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Run(r.ID, "tester"); err != nil {
				t.Fatal(err)
			}
			r = wait(t, m, r.ID)
			var calls []string
			for _, c := range env.calls {
				calls = append(calls, strings.Join(c, ","))
			}
			if r.State != tc.state || statuses(r) != tc.statuses || strings.Join(calls, "|") != tc.calls ||
				!strings.HasPrefix(r.Reason, tc.reason) {
				t.Fatalf("got %s %q\n%s\ncalls %s", r.State, r.Reason, statuses(r), strings.Join(calls, "|"))
			}
			// A reverted node is assigned its previous generation; its
			// error and the reason are one line, the audit entry of its
			// wave keeps the console lines.
			env.mu.Lock()
			details := strings.Join(append(env.details["rollout halt"], env.details["rollout wave"]...), "\n")
			env.mu.Unlock()
			for _, n := range tc.fail {
				if _, g, ok := m.Staged(n); !ok || g != "old" {
					t.Errorf("%s staged %s %v, want old", n, g, ok)
				}
				if e := r.Node(n).Error; e != n+": no check-in" {
					t.Errorf("%s error %q, want its first line", n, e)
				}
				if !strings.Contains(details, n+": no check-in\nlast console lines:\n  "+n+" console") {
					t.Errorf("the audit details lack %s's console lines: %q", n, details)
				}
			}
			if strings.Contains(r.Reason, "\n") {
				t.Errorf("reason %q has several lines", r.Reason)
			}
			// The file says the same after a reopen.
			m2, err := Open(docsAt(path), env)
			if err != nil {
				t.Fatal(err)
			}
			r2, _ := m2.Get(r.ID)
			if statuses(r2) != statuses(r) || r2.State != r.State {
				t.Errorf("reopened: %s %s", r2.State, statuses(r2))
			}
			// ... and every node is assigned what it was before the reopen.
			for _, n := range r.Nodes {
				_, g1, ok1 := m.Staged(n.Name)
				_, g2, ok2 := m2.Staged(n.Name)
				if g1 != g2 || ok1 != ok2 {
					t.Errorf("%s reopened staged %s %v, want %s %v", n.Name, g2, ok2, g1, ok1)
				}
			}
			if tc.resumeGen == "" {
				return
			}
			if _, err := m.Promote(r.ID, "tester"); err == nil {
				t.Fatal("promote with a reverted node accepted")
			}
			env.fail = map[string]bool{}
			if _, err := m.Resume(r.ID, "tester"); err != nil {
				t.Fatal(err)
			}
			r = wait(t, m, r.ID)
			if r.State != StateCompleted || strings.Contains(statuses(r), "reverted") {
				t.Fatalf("after resume: %s %s", r.State, statuses(r))
			}
			if _, err := m.Promote(r.ID, "tester"); err != nil {
				t.Fatal(err)
			}
			if _, _, ok := m.Staged(tc.fail[0]); ok {
				t.Error("a promoted rollout still stages")
			}
		})
	}
}

// TestHaltAbortClose: halt lets the wave in flight finish its reboots (n3
// checks in once released, after the halt) and starts no further wave; a
// wave in flight is cancelled by abort (restored; done nodes keep the
// generation) and by Close (halted, as after a restart).
func TestHaltAbortClose(t *testing.T) {
	for _, how := range []string{"halt", "abort", "close"} {
		t.Run(how, func(t *testing.T) {
			env := &scriptEnv{nodes: 4, hang: map[string]bool{"n3": true}, started: make(chan string, 1), release: make(chan struct{})}
			path := filepath.Join(t.TempDir(), "rollouts.json")
			m := newManager(t, env, path)
			r, err := m.Create("@g", "new0", Options{Wave: WaveSize{Count: 2}}, "t")
			if err != nil {
				t.Fatal(err)
			}
			m.Run(r.ID, "t")
			select {
			case <-env.started:
			case <-time.After(20 * time.Second):
				t.Fatal("wave 2 never started")
			}
			switch how {
			case "halt":
				r, err = m.Halt("", "t")
				if err != nil {
					t.Fatal(err)
				}
				// nothing cut off: n3 is still rebooting, then checks in
				if got := string(r.State) + " " + statuses(r); got != "halted n1=done n2=done n3=rebooting n4=rebooting" {
					t.Fatalf("right after halt: %s", got)
				}
				close(env.release)
				if err = m.Wait(context.Background(), r.ID); err == nil {
					r, err = m.Get(r.ID)
				}
			case "abort":
				r, err = m.Abort(r.ID, "t")
			case "close":
				m.Close()
				m, err = Open(docsAt(path), env)
				env.m = m
				if err == nil {
					r, err = m.Get(r.ID)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				// n4 reboots after n3 in this env, and checks in.
				"halt":  "halted n1=done n2=done n3=done n4=done",
				"abort": "aborted n1=done n2=done n3=restored n4=done",
				"close": "halted n1=done n2=done n3=staged n4=done",
			}[how]
			if got := string(r.State) + " " + statuses(r); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			_, g3, ok3 := m.Staged("n3")
			_, g1, _ := m.Staged("n1")
			if g1 != "new0123" || (how == "abort") == ok3 || (ok3 && g3 != "new0123") {
				t.Errorf("staged: n1 %s, n3 %s %v", g1, g3, ok3)
			}
			if how == "halt" {
				if strings.Contains(strings.Join(env.events, "\n"), "interrupted") || r.Waves[1].State != WavePassed ||
					r.Reason != "halted by t; wave 2 finished" {
					t.Errorf("halt: wave 2 %s, reason %q, events %v", r.Waves[1].State, r.Reason, env.events)
				}
			}
			if how == "abort" {
				if _, err := m.Resume(r.ID, "t"); err == nil {
					t.Error("resume after abort accepted")
				}
				if r, err = m.Rollback(r.ID, "t"); err != nil || r.State != StateRolledBack {
					t.Fatalf("rollback: %v", err)
				}
				if _, _, ok := m.Staged("n1"); ok {
					t.Error("n1 still staged after rollback")
				}
				return
			}
			env.hang = nil
			if _, err := m.Resume(r.ID, "t"); err != nil {
				t.Fatal(err)
			}
			if r = wait(t, m, r.ID); r.State != StateCompleted {
				t.Fatalf("after resume: %s %s", r.State, statuses(r))
			}
		})
	}
}

// TestHaltBetweenChunks: a wave rebooted MaxInFlight nodes at a time and
// halted during its first chunk finishes that chunk's reboots, starts no
// other, and stages the nodes it did not reach again; resume reboots them.
func TestHaltBetweenChunks(t *testing.T) {
	env := &scriptEnv{nodes: 4, hang: map[string]bool{"n1": true}, started: make(chan string, 1), release: make(chan struct{})}
	m := newManager(t, env, filepath.Join(t.TempDir(), "rollouts.json"))
	r, err := m.Create("@g", "new0", Options{Wave: WaveSize{Count: 4}, MaxInFlight: 2}, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(r.ID, "t"); err != nil {
		t.Fatal(err)
	}
	<-env.started
	if _, err := m.Halt(r.ID, "t"); err != nil {
		t.Fatal(err)
	}
	close(env.release)
	if err := m.Wait(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	r, _ = m.Get(r.ID)
	if got := string(r.State) + " " + statuses(r); got != "halted n1=done n2=done n3=staged n4=staged" || r.Waves[0].State != WavePending ||
		r.Reason != "halted by t; wave 1 stopped after its reboots in flight: 2 ok, 0 failed, 2 not started" {
		t.Fatalf("after the halt: %s, wave %s, reason %q", got, r.Waves[0].State, r.Reason)
	}
	env.hang = nil
	if _, err := m.Resume(r.ID, "t"); err != nil {
		t.Fatal(err)
	}
	if r = wait(t, m, r.ID); r.State != StateCompleted || statuses(r) != "n1=done n2=done n3=done n4=done" {
		t.Fatalf("after resume: %s %s", r.State, statuses(r))
	}
}

// TestRefusals: bad requests and a state file that cannot be written change
// nothing.
func TestRefusals(t *testing.T) {
	env := &scriptEnv{nodes: 2}
	dir := t.TempDir()
	m := newManager(t, env, filepath.Join(dir, "rollouts.json"))
	bad := []struct {
		sel, gen string
		opts     Options
		want     string
	}{
		{"bad", "new", Options{}, `selection "bad": no such node`},
		{"@g", "nope", Options{}, `no generation "nope"`},
		{"@g", "other@new", Options{}, "node n1 boots image img, not other"},
		{"@g", "", Options{}, "empty"},
		{"", "new", Options{}, "empty selection"},
		{"@g", "new", Options{MaxInFlight: -1}, "max in flight -1 is negative"},
		{"@g", "new", Options{Timeout: -time.Second}, "timeout -1s is negative"},
		{"@g", "new", Options{Via: "pxe"}, `via "pxe": want auto, kexec, power`},
	}
	for _, tc := range bad {
		if _, err := m.Create(tc.sel, tc.gen, tc.opts, "t"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q %q: %v, want %q", tc.sel, tc.gen, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "rollouts.json")); err == nil {
		t.Error("a refused create wrote the state file")
	}
	for _, f := range []func(string, string) (*Rollout, error){m.Run, m.Halt, m.Resume, m.Abort, m.Promote, m.Rollback} {
		if _, err := f("9", "t"); err == nil || !strings.Contains(err.Error(), `no such rollout "9"`) {
			t.Errorf("unknown id: %v", err)
		}
	}
	// The state file's folder is gone: create fails and stages nothing.
	m2 := newManager(t, &scriptEnv{nodes: 2}, filepath.Join(dir, "gone", "rollouts.json"))
	if _, err := m2.Create("@g", "new", Options{}, "t"); err == nil || !strings.Contains(err.Error(), "rollout state") {
		t.Fatalf("unwritable state: %v", err)
	}
	if _, _, ok := m2.Staged("n1"); ok || len(m2.List()) != 0 {
		t.Error("a failed save staged a node")
	}
	// Events and audit entries name each step.
	r, _ := m.Create("@g", "new", Options{}, "t")
	m.Rollback(r.ID, "t")
	if !slices.Equal(env.audits, []string{"rollout create", "rollout rollback"}) {
		t.Errorf("audits %q", env.audits)
	}
}

func TestParseWaveSize(t *testing.T) {
	tests := []struct {
		in   string
		want WaveSize
		of10 int
		err  bool
	}{
		{"2", WaveSize{Count: 2}, 2, false},
		{" 25% ", WaveSize{Percent: 25}, 3, false},
		{"100%", WaveSize{Percent: 100}, 10, false},
		{"1%", WaveSize{Percent: 1}, 1, false},
		{"0", WaveSize{}, 0, true},
		{"0%", WaveSize{}, 0, true},
		{"101%", WaveSize{}, 0, true},
		{"-3", WaveSize{}, 0, true},
		{"x", WaveSize{}, 0, true},
		{"", WaveSize{}, 0, true},
	}
	for _, tc := range tests {
		w, err := ParseWaveSize(tc.in)
		if (err != nil) != tc.err || w != tc.want {
			t.Errorf("%q: %+v %v", tc.in, w, err)
			continue
		}
		if err == nil && w.Of(10) != tc.of10 {
			t.Errorf("%q of 10: %d, want %d", tc.in, w.Of(10), tc.of10)
		}
	}
}

func TestParseErrors(t *testing.T) {
	good := `{"version":1,"next":1,"rollouts":[{"id":"1","selection":"@g","image":"img","generation":"g2","wave":{"count":1},
"state":"halted","nodes":[{"name":"n1","image":"img","previous":"g1","wave":0,"status":"staged"}],
"waves":[{"index":0,"nodes":["n1"],"state":"pending","ok":0,"failed":0}],"created":"2026-01-01T00:00:00Z","updated":"2026-01-01T00:00:00Z"}]}`
	if f, err := Parse([]byte(good)); err != nil || f.Next != 1 || f.Rollouts[0].Node("n1").Previous != "g1" {
		t.Fatalf("good file: %v", err)
	}
	tests := []struct{ in, want string }{
		{"{\n  \"version\": 1,\n  \"next\": x}", "3:12: invalid character"},
		{`{"version":2}`, "version 2, want 1"},
		{`{"version":1,"bogus":1}`, `unknown field "bogus"`},
		{`{"version":"1"}`, "1:15: json: cannot unmarshal"},
		{strings.Replace(good, `"state":"halted"`, `"state":"flying"`, 1), `rollout "1": unknown state "flying"`},
		{strings.Replace(good, `"wave":0,`, `"wave":3,`, 1), "node n1: wave 4 does not exist"},
		{strings.Replace(good, `"nodes":["n1"]`, `"nodes":["n9"]`, 1), "wave 1: node n9 does not belong to it"},
		{strings.Replace(good, `"status":"staged"`, `"status":"odd"`, 1), `node n1: unknown status "odd"`},
		{strings.Replace(good, `"id":"1"`, `"id":"one"`, 1), "id is not a number"},
		{`{"version":1,"rollouts":[null]}`, "rollouts[0]: null"},
	}
	for _, tc := range tests {
		if _, err := Parse([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.40q: %v, want %q", tc.in, err, tc.want)
		}
	}
	// Open names the document.
	p := filepath.Join(t.TempDir(), DocumentName)
	os.WriteFile(p, []byte(`{"version":2}`), 0o644)
	if _, err := Open(docsAt(p), &scriptEnv{}); err == nil || !strings.HasPrefix(err.Error(), DocumentName+": ") {
		t.Errorf("open: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"version":1,"next":1,"rollouts":[]}`))
	f.Add([]byte(`{"version":1,"rollouts":[{"id":"1","image":"i","generation":"g","state":"halted","nodes":[{"name":"a","wave":0,"status":"done"}],"waves":[{"index":0,"nodes":["a"],"state":"passed"}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fl, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses is consistent: every node sits in the wave it names.
		for _, r := range fl.Rollouts {
			for _, n := range r.Nodes {
				if !slices.Contains(r.Waves[n.Wave].Nodes, n.Name) {
					t.Fatalf("node %s not in wave %d", n.Name, n.Wave)
				}
			}
		}
	})
}

func FuzzParseWaveSize(f *testing.F) {
	for _, s := range []string{"1", "50%", "100%", "0", "x%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWaveSize(s)
		if err != nil {
			return
		}
		for _, n := range []int{1, 7, 1000} {
			if k := w.Of(n); k < 1 || (w.Percent > 0 && k > n) {
				t.Fatalf("%q of %d: %d", s, n, k)
			}
		}
		if w2, err := ParseWaveSize(w.String()); err != nil || w2 != w {
			t.Fatalf("%q round trip: %v %v", s, w2, err)
		}
	})
}

// TestWavesByKexec: the rollout's Via reaches every wave's reboot and is
// kept in the rollout's state.
func TestWavesByKexec(t *testing.T) {
	env := &scriptEnv{nodes: 3}
	path := filepath.Join(t.TempDir(), "rollouts.json")
	m := newManager(t, env, path)
	r, err := m.Create("@g", "new", Options{Wave: WaveSize{Count: 2}, Via: apitype.ViaKexec}, "tester")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Run(r.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	r = wait(t, m, r.ID)
	env.mu.Lock()
	vias := slices.Clone(env.vias)
	env.mu.Unlock()
	if r.State != StateCompleted || !slices.Equal(vias, []string{"kexec", "kexec"}) {
		t.Fatalf("state %s, vias %v", r.State, vias)
	}
	m.Close()
	m2 := newManager(t, &scriptEnv{nodes: 3}, path)
	if got, err := m2.Get(r.ID); err != nil || got.Via != apitype.ViaKexec {
		t.Errorf("reopened rollout via %q, %v", got.Via, err)
	}
}
