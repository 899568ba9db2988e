package pxe

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/agentproto"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/inventory"
)

// agentFixture is a Boot with one published generation behind a real HTTP
// server, recording its events.
type agentFixture struct {
	b   *Boot
	srv *httptest.Server
	tok *Tokens
	gen string

	mu     sync.Mutex
	events []bootstate.Event
}

func newAgentFixture(t *testing.T, wait time.Duration) *agentFixture {
	t.Helper()
	st, m := publishedStore(t, "compute")
	inv, err := inventory.Parse("nodes.yaml", []byte(`images:
  compute: {kernel_args: "console=ttyS0"}
nodes:
  - {name: n1, image: compute, nics: [{mac: "52:54:00:00:00:01"}]}
  - {name: fixed, image: compute, ip: 10.9.9.9, nics: [{mac: "52:54:00:00:00:02"}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	f := &agentFixture{gen: m.ID}
	f.tok, _ = NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	f.b = &Boot{Inventory: func() *inventory.Inventory { return inv }, Renderer: mustRenderer(t), Images: st, Tokens: f.tok,
		Events: func(ev bootstate.Event) { f.mu.Lock(); f.events = append(f.events, ev); f.mu.Unlock() }}
	f.srv = httptest.NewServer(&HTTPServer{Boot: f.b, AgentPollWait: wait})
	t.Cleanup(f.srv.Close)
	return f
}

func (f *agentFixture) kinds() []bootstate.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]bootstate.Event(nil), f.events...)
}

func (f *agentFixture) post(t *testing.T, path string, form url.Values) (int, []byte) {
	t.Helper()
	resp, err := http.PostForm(f.srv.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func (f *agentFixture) poll(node string) agentproto.Poll {
	nonce, _ := agentproto.NewNonce()
	return agentproto.Poll{Node: node, Token: f.tok.Token(node), BootID: "boot-1", Nonce: nonce}
}

// TestAgentPollNothingToDo: a poll with nothing for it is held, then
// answered 204; while held the agent counts as alive.
func TestAgentPollNothingToDo(t *testing.T) {
	f := newAgentFixture(t, 300*time.Millisecond)
	if f.b.AgentAlive("n1") {
		t.Fatal("alive before any poll")
	}
	code, _ := f.post(t, agentproto.PollPath, f.poll("n1").Form())
	if code != http.StatusNoContent {
		t.Fatalf("poll = %d, want 204", code)
	}
	if !f.b.AgentAlive("n1") {
		t.Error("not alive right after a poll")
	}
	f.b.Now = func() time.Time { return time.Now().Add(agentGrace + time.Second) }
	if f.b.AgentAlive("n1") {
		t.Error("still alive long after its last poll")
	}
}

// TestReleaseAgentPolls: a poll parked for a minute is answered 204 at
// once when the server stops (so that Shutdown does not wait it out), and
// so is every poll after it.
func TestReleaseAgentPolls(t *testing.T) {
	f := newAgentFixture(t, time.Minute)
	f.srv.Config.RegisterOnShutdown(f.b.ReleaseAgentPolls)
	done := make(chan int, 1)
	go func() { code, _ := f.post(t, agentproto.PollPath, f.poll("n1").Form()); done <- code }()
	if !simWait(5*time.Second, func() bool { return f.b.AgentAlive("n1") }) {
		t.Fatal("the poll never parked")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.srv.Config.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown waited for the parked poll: %v", err)
	}
	if code := <-done; code != http.StatusNoContent {
		t.Errorf("parked poll = %d, want 204", code)
	}
	g := newAgentFixture(t, time.Minute)
	g.b.ReleaseAgentPolls()
	start := time.Now()
	if code, _ := g.post(t, agentproto.PollPath, g.poll("n1").Form()); code != http.StatusNoContent {
		t.Errorf("poll after the release = %d, want 204", code)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("a poll after the release was held %s", d)
	}
}

// simWait polls cond every 10 ms until it holds or d passes.
func simWait(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestAgentPollRefused: bad forms are 400, a wrong token or a fixed node
// polled from another address 403 (and a denied event).
func TestAgentPollRefused(t *testing.T) {
	f := newAgentFixture(t, time.Second)
	bad := f.poll("n1")
	bad.Token = f.tok.Token("fixed")
	fixed := f.poll("fixed")
	noNonce := f.poll("n1").Form()
	noNonce.Del("nonce")
	for _, tc := range []struct {
		name string
		form url.Values
		code int
	}{
		{"another node's token", bad.Form(), 403},
		{"fixed node from elsewhere", fixed.Form(), 403},
		{"no nonce", noNonce, 400},
		{"unknown node", agentproto.Poll{Node: "ghost", Token: "x", BootID: "b", Nonce: strings.Repeat("0", 32)}.Form(), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := f.post(t, agentproto.PollPath, tc.form); code != tc.code {
				t.Errorf("poll = %d %s, want %d", code, body, tc.code)
			}
		})
	}
	if f.b.AgentAlive("n1") || f.b.AgentAlive("fixed") {
		t.Error("a refused poll made an agent alive")
	}
	denied := 0
	for _, ev := range f.kinds() {
		if ev.Kind == bootstate.KindDenied {
			denied++
		}
	}
	if denied == 0 {
		t.Error("no denied event for refused polls")
	}
}

// TestSendKexec: the instruction answers the parked poll, verifies with
// the key the entry carries, names the manifest's sums and the entry's
// command line, starts a kexec timeline and retires the old boot.
func TestSendKexec(t *testing.T) {
	f := newAgentFixture(t, 10*time.Second)
	p := f.poll("n1")
	type answer struct {
		code int
		body []byte
	}
	got := make(chan answer, 1)
	go func() {
		code, body := f.post(t, agentproto.PollPath, p.Form())
		got <- answer{code, body}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sent, err := f.b.SendKexec(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if sent.BootID != "boot-1" || sent.Generation != f.gen {
		t.Errorf("sent %+v", sent)
	}
	a := <-got
	if a.code != 200 {
		t.Fatalf("poll = %d %s", a.code, a.body)
	}
	pub, err := agentproto.DecodePublicKey(f.tok.AgentKey())
	if err != nil {
		t.Fatal(err)
	}
	in, err := agentproto.Verify(a.body, pub, agentproto.Expect{Node: "n1", BootID: "boot-1", Nonce: p.Nonce})
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, a.body)
	}
	m, _ := f.b.Images.Generation("compute", f.gen)
	k, _ := m.File("vmlinuz")
	if in.Generation != f.gen || in.Kernel.SHA256 != k.SHA256 || in.Kernel.Size != k.Size ||
		!strings.HasPrefix(in.Kernel.URL, f.srv.URL+"/images/compute/"+f.gen+"/vmlinuz?node=n1&auth=") {
		t.Errorf("instruction %+v, manifest kernel %+v", in, k)
	}
	for _, w := range []string{"netbootui.node=n1", "netbootui.gen=" + f.gen, "netbootui.agent_key=" + f.tok.AgentKey(), "console=ttyS0"} {
		if !strings.Contains(in.Cmdline, w) {
			t.Errorf("cmdline %q lacks %q", in.Cmdline, w)
		}
	}
	evs := f.kinds()
	if len(evs) == 0 || evs[len(evs)-1].Kind != bootstate.KindKexec || evs[len(evs)-1].Generation != f.gen {
		t.Errorf("events %+v, want a kexec event last", evs)
	}
	// The boot the instruction was for is retired: its check-ins are replays.
	if err := f.b.admitCheckin("n1", "boot-1", 99); !errors.Is(err, errReplay) {
		t.Errorf("check-in of the retired boot: %v", err)
	}
	if err := f.b.admitCheckin("n1", "boot-2", 1); err != nil {
		t.Errorf("check-in of the new boot: %v", err)
	}
}

// TestSendKexecNoAgent: without a poll SendKexec gives up when its
// context ends, with ErrNoAgent.
func TestSendKexecNoAgent(t *testing.T) {
	f := newAgentFixture(t, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := f.b.SendKexec(ctx, "n1"); !errors.Is(err, ErrNoAgent) {
		t.Errorf("SendKexec = %v, want ErrNoAgent", err)
	}
}

// TestAgentReport: a refusal fails the node's boot with the agent's
// reason; a load is an info event; a bad report is 400.
func TestAgentReport(t *testing.T) {
	f := newAgentFixture(t, time.Second)
	p := f.poll("n1")
	rep := agentproto.Report{Node: "n1", Token: p.Token, BootID: p.BootID, Nonce: p.Nonce,
		Result: agentproto.ResultRefused, Reason: "kernel sha256 mismatch; token " + p.Token + " key " + f.tok.FetchKey("n1")}
	if code, body := f.post(t, agentproto.ReportPath, rep.Form()); code != 200 {
		t.Fatalf("report = %d %s", code, body)
	}
	rep.Result, rep.Reason = agentproto.ResultLoaded, "kexec-tools (/usr/sbin/kexec -s)"
	if code, _ := f.post(t, agentproto.ReportPath, rep.Form()); code != 200 {
		t.Fatalf("loaded report = %d", code)
	}
	rep.Result = "done"
	if code, _ := f.post(t, agentproto.ReportPath, rep.Form()); code != 400 {
		t.Errorf("bad report = %d, want 400", code)
	}
	rep.Result, rep.Token = agentproto.ResultLoaded, "x"
	if code, _ := f.post(t, agentproto.ReportPath, rep.Form()); code != 403 {
		t.Errorf("report with a bad token = %d, want 403", code)
	}
	evs := f.kinds()
	if len(evs) < 2 || evs[0].Kind != bootstate.KindFail ||
		evs[0].Error != "kexec refused by the agent of boot boot-1: kernel sha256 mismatch; token <redacted> key <redacted>" ||
		evs[1].Kind != bootstate.KindInfo ||
		evs[1].Message != "agent of boot boot-1: kernel and initrd verified and loaded with kexec-tools (/usr/sbin/kexec -s), executing kexec" {
		t.Errorf("events %+v", evs)
	}
}
