package nodeagent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/agentproto"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
	"github.com/netbootui/netbootui/internal/roottransport"
)

// fakeLoader records what the agent asks of kexec (the build host cannot
// kexec: that is the QEMU test's part).
type fakeLoader struct {
	mu      sync.Mutex
	kernel  []byte
	initrd  []byte
	cmdline string
	loads   int
	execs   int
}

func (l *fakeLoader) Load(kernel, initrd *os.File, cmdline string) error {
	// kexec_file_load refuses a file open for writing (ETXTBSY).
	for _, f := range []*os.File{kernel, initrd} {
		if _, err := f.Write([]byte{0}); err == nil {
			return errors.New(f.Name() + " is open for writing")
		}
	}
	k, _ := io.ReadAll(kernel)
	i, _ := io.ReadAll(initrd)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.kernel, l.initrd, l.cmdline = k, i, cmdline
	l.loads++
	return nil
}

func (l *fakeLoader) Exec() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.execs++
	return nil // a real Exec does not return
}

func (l *fakeLoader) counts() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.loads, l.execs
}

// daemonSide is the daemon's real boot HTTP server (package pxe) with one
// published generation, recording its events.
type daemonSide struct {
	boot  *pxe.Boot
	srv   *httptest.Server
	tok   *pxe.Tokens
	store *image.Store
	gen   string

	mu     sync.Mutex
	events []bootstate.Event
}

func newDaemonSide(t *testing.T) *daemonSide {
	t.Helper()
	st, err := image.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, name := range image.BootFiles {
		p := filepath.Join(t.TempDir(), name)
		os.WriteFile(p, bytes.Repeat([]byte(name), 1000), 0o644)
		files[name] = p
	}
	m, err := st.Import("compute", files, "test")
	if err != nil || st.Publish("compute", m.ID) != nil {
		t.Fatal(err)
	}
	inv, err := inventory.Parse("nodes.yaml", []byte("images:\n  compute: {kernel_args: console=ttyS0}\nnodes:\n  - {name: n1, image: compute, nics: [{mac: \"52:54:00:00:00:01\"}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := pxe.NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemonSide{store: st, gen: m.ID}
	d.tok, _ = pxe.NewTokens([]byte("0123456789abcdef0123456789abcdef"))
	d.boot = &pxe.Boot{Inventory: func() *inventory.Inventory { return inv }, Renderer: r, Images: st, Tokens: d.tok,
		Events: func(ev bootstate.Event) { d.mu.Lock(); d.events = append(d.events, ev); d.mu.Unlock() }}
	d.srv = httptest.NewServer(&pxe.HTTPServer{Boot: d.boot, AgentPollWait: 2 * time.Second})
	t.Cleanup(d.srv.Close)
	return d
}

// last returns the newest event of kind.
func (d *daemonSide) last(kind bootstate.Kind) (bootstate.Event, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.events) - 1; i >= 0; i-- {
		if d.events[i].Kind == kind {
			return d.events[i], true
		}
	}
	return bootstate.Event{}, false
}

func (d *daemonSide) agent(t *testing.T, url string, l Loader, heads ...string) *Agent {
	t.Helper()
	key, _ := agentproto.DecodePublicKey(d.tok.AgentKey())
	a, err := New(Config{URL: url, Heads: heads, Node: "n1", Token: d.tok.Token("n1"), Generation: "g0", BootID: "boot-1", Key: key,
		Loader: l, Dir: t.TempDir(), Logf: t.Logf, BeforeExec: func() {}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// pollWithKexec runs one agent poll while the daemon sends it a kexec
// instruction.
func pollWithKexec(t *testing.T, d *daemonSide, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sent := make(chan error, 1)
	go func() {
		_, err := d.boot.SendKexec(ctx, "n1")
		sent <- err
	}()
	if err := a.PollOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
}

// TestKexecThroughTheDaemon: the real daemon side signs an instruction for
// the agent's poll; the agent fetches the generation's files from it,
// loads exactly those bytes with the entry's command line, reports, execs.
func TestKexecThroughTheDaemon(t *testing.T) {
	d := newDaemonSide(t)
	l := &fakeLoader{}
	pollWithKexec(t, d, d.agent(t, d.srv.URL, l))
	if loads, execs := l.counts(); loads != 1 || execs != 1 {
		t.Fatalf("loads %d execs %d, want 1 and 1", loads, execs)
	}
	if !bytes.Equal(l.kernel, bytes.Repeat([]byte("vmlinuz"), 1000)) || !bytes.Equal(l.initrd, bytes.Repeat([]byte("initrd"), 1000)) {
		t.Errorf("loaded kernel %d bytes, initrd %d bytes: not the generation's", len(l.kernel), len(l.initrd))
	}
	if !strings.Contains(l.cmdline, "netbootui.gen="+d.gen) || !strings.Contains(l.cmdline, "console=ttyS0") {
		t.Errorf("cmdline %q", l.cmdline)
	}
	if ev, ok := d.last(bootstate.KindInfo); !ok || !strings.Contains(ev.Message, "verified and loaded") {
		t.Errorf("no loaded report: %+v", ev)
	}
}

// TestAgentNextHead: several heads (the same token key, as a cluster's
// heads share it). The agent's first head is dead: its poll reaches the
// next head of netbootui.heads, whose kexec instruction it carries out.
// Then that head dies too and the agent's next poll goes to the third,
// which it stays with.
func TestAgentNextHead(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	d2, d3 := newDaemonSide(t), newDaemonSide(t)
	l := &fakeLoader{}
	a := d2.agent(t, dead.URL, l, d2.srv.URL+"/", d3.srv.URL)
	pollWithKexec(t, d2, a)
	if loads, execs := l.counts(); loads != 1 || execs != 1 || a.Head() != d2.srv.URL {
		t.Fatalf("through the second head: loads %d execs %d, on %s", loads, execs, a.Head())
	}
	d2.srv.CloseClientConnections()
	d2.srv.Close()
	pollWithKexec(t, d3, a)
	if loads, _ := l.counts(); loads != 2 || a.Head() != d3.srv.URL {
		t.Fatalf("through the third head: loads %d, on %s", loads, a.Head())
	}
	if ev, ok := d3.last(bootstate.KindInfo); !ok || !strings.Contains(ev.Message, "verified and loaded") {
		t.Errorf("the third head heard no report: %+v", ev)
	}
}

// TestCorruptedKernelRefused: a kernel whose bytes are not the manifest's
// is refused by the agent (nothing loaded), and the daemon hears why.
func TestCorruptedKernelRefused(t *testing.T) {
	d := newDaemonSide(t)
	p, err := d.store.Path("compute", d.gen, image.FileKernel)
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o644)
	b, _ := os.ReadFile(p)
	b[10] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	l := &fakeLoader{}
	pollWithKexec(t, d, d.agent(t, d.srv.URL, l))
	if loads, execs := l.counts(); loads != 0 || execs != 0 {
		t.Errorf("a corrupted kernel was loaded (%d) or executed (%d)", loads, execs)
	}
	ev, ok := d.last(bootstate.KindFail)
	if !ok || !strings.Contains(ev.Error, "kexec refused by the agent") || !strings.Contains(ev.Error, "kernel: sha256") ||
		!strings.Contains(ev.Error, "does not match the manifest") {
		t.Errorf("fail event %+v", ev)
	}
}

// fakeDaemon answers every poll with answer(poll nonce) and records reports.
type fakeDaemon struct {
	answer  func(agentproto.Poll) []byte
	mu      sync.Mutex
	reports []agentproto.Report
}

func (f *fakeDaemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	switch r.URL.Path {
	case agentproto.PollPath:
		p, err := agentproto.ParsePoll(r.PostForm)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Write(f.answer(p))
	case agentproto.ReportPath:
		rep, err := agentproto.ParseReport(r.PostForm)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		f.reports = append(f.reports, rep)
		f.mu.Unlock()
	}
}

// TestForgedAndReplayedRefused: an instruction signed with another key, and
// a genuine one replayed to a later poll, are refused and reported; nothing
// is fetched or loaded.
func TestForgedAndReplayedRefused(t *testing.T) {
	d := newDaemonSide(t)
	// One genuine instruction, captured off the wire from a first poll.
	var captured []byte
	rec := &fakeLoader{}
	spy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := httptest.NewRecorder()
		d.srv.Config.Handler.ServeHTTP(rw, r)
		if r.URL.Path == agentproto.PollPath && rw.Code == 200 {
			captured = rw.Body.Bytes()
		}
		for k, v := range rw.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rw.Code)
		w.Write(rw.Body.Bytes())
	}))
	defer spy.Close()
	pollWithKexec(t, d, d.agent(t, spy.URL, rec))
	if captured == nil {
		t.Fatal("no instruction captured")
	}
	_, otherKey, _ := ed25519.GenerateKey(nil)
	var fetched int
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fetched++ }))
	defer files.Close()
	cases := []struct {
		name   string
		answer func(agentproto.Poll) []byte
		want   string
	}{
		{"forged", func(p agentproto.Poll) []byte {
			in := agentproto.Instruction{Action: agentproto.ActionRebootClean, Node: p.Node, BootID: p.BootID, Nonce: p.Nonce,
				Generation: "evil", Kernel: agentproto.File{URL: files.URL + "/k", SHA256: strings.Repeat("0", 64), Size: 1},
				Initrd: agentproto.File{URL: files.URL + "/i", SHA256: strings.Repeat("0", 64), Size: 1}, Cmdline: "init=/bin/sh"}
			b, _ := agentproto.Sign(in, otherKey)
			return b
		}, "signature does not verify"},
		{"replayed", func(agentproto.Poll) []byte { return captured }, "not the current poll's (a replay)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fd := &fakeDaemon{answer: tc.answer}
			srv := httptest.NewServer(fd)
			defer srv.Close()
			l := &fakeLoader{}
			if err := d.agent(t, srv.URL, l).PollOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if loads, execs := l.counts(); loads != 0 || execs != 0 || fetched != 0 {
				t.Errorf("loads %d execs %d fetches %d after a %s instruction", loads, execs, fetched, tc.name)
			}
			if len(fd.reports) != 1 || fd.reports[0].Result != agentproto.ResultRefused || !strings.Contains(fd.reports[0].Reason, tc.want) {
				t.Errorf("reports %+v, want one refusal with %q", fd.reports, tc.want)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(nil)
	key := agentproto.EncodePublicKey(priv.Public().(ed25519.PublicKey))
	env := filepath.Join(dir, "env")
	os.WriteFile(env, []byte("NETBOOTUI_NODE='n1'\nNETBOOTUI_TOKEN='t'\\''x'\nNETBOOTUI_URL='http://10.0.2.2:8080'\nNETBOOTUI_GEN='g1'\nNETBOOTUI_AGENT_KEY='ignored'\nOTHER=1\n"), 0o600)
	cmdline := filepath.Join(dir, "cmdline")
	os.WriteFile(cmdline, []byte("root=live:x netbootui.node=cmdnode netbootui.gen=g9 netbootui.agent_key="+key+" netbootui.heads=http://h2:80,,http://h3:80 quiet\n"), 0o644)
	bootID := filepath.Join(dir, "boot_id")
	os.WriteFile(bootID, []byte("0b8c4a8e-1f0d-4c55-9d8e-7f3b7f0e9a11\n"), 0o644)
	cfg, err := LoadConfig(env, cmdline, bootID)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Node != "n1" || cfg.Token != "t'x" || cfg.URL != "http://10.0.2.2:8080" || cfg.Generation != "g1" ||
		cfg.BootID != "0b8c4a8e-1f0d-4c55-9d8e-7f3b7f0e9a11" || !cfg.Key.Equal(priv.Public()) {
		t.Errorf("config %+v", cfg)
	}
	// Without the env file (dracut), all from the command line.
	cfg, err = LoadConfig(filepath.Join(dir, "missing"), cmdline, bootID)
	if err != nil || cfg.Node != "cmdnode" || cfg.Generation != "g9" || strings.Join(cfg.Heads, " ") != "http://h2:80 http://h3:80" {
		t.Errorf("config %+v, %v", cfg, err)
	}
	os.WriteFile(cmdline, []byte("netbootui.agent_key=short"), 0o644)
	if _, err := LoadConfig(env, cmdline, bootID); err == nil {
		t.Error("a bad key was accepted")
	}
	if _, err := New(Config{URL: "http://x", Node: "n1", Token: "t", BootID: "b"}); err == nil || !strings.Contains(err.Error(), "no daemon key") {
		t.Errorf("New without a key: %v", err)
	}
}

func TestParseEnvQuoting(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"'a b'", "a b", true},
		{`'it'\''s'`, "it's", true},
		{"plain", "plain", true},
		{"'open", "", false},
		{"$(x)", "", false},
		{`"dq"`, "", false},
	} {
		got, ok := unquote(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("unquote(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestReadsTheContract: the agent reads exactly the command-line keys
// roottransport.Params marks ReadByNodeAgent.
func TestReadsTheContract(t *testing.T) {
	var want, got []string
	for _, p := range roottransport.Params() {
		if p.Readers&roottransport.ReadByNodeAgent != 0 {
			want = append(want, p.Key)
		}
	}
	for k := range cmdlineKeys {
		got = append(got, k)
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the agent reads %v; roottransport.Params says %v", got, want)
	}
}

// TestKexecToolsLoader: with kexec-tools present (Debian images) the loader
// runs it with the staged files and command line.
func TestKexecToolsLoader(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "args")
	tool := filepath.Join(dir, "kexec")
	os.WriteFile(tool, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" >> "+log+"\n"), 0o755)
	k, _ := os.Create(filepath.Join(dir, "vmlinuz"))
	i, _ := os.Create(filepath.Join(dir, "initrd"))
	l := KexecLoader{Tools: tool}
	if got, want := l.String(), "kexec-tools ("+tool+" -s)"; got != want {
		t.Errorf("loader %q, want %q", got, want)
	}
	t.Setenv("PATH", t.TempDir()) // no kexec-tools: u-root's kexec_file_load
	if got, want := (KexecLoader{}).String(), "kexec_file_load (u-root)"; got != want {
		t.Errorf("loader without kexec-tools %q, want %q", got, want)
	}
	if err := l.Load(k, i, "root=live:x quiet"); err != nil {
		t.Fatal(err)
	}
	err := l.Exec()
	if err == nil || !strings.Contains(err.Error(), "-e returned") {
		t.Errorf("Exec that returns = %v", err)
	}
	b, _ := os.ReadFile(log)
	want := "-s\n-l\n" + k.Name() + "\n--initrd=" + i.Name() + "\n--command-line=root=live:x quiet\n-e\n"
	if string(b) != want {
		t.Errorf("kexec ran with\n%s\nwant\n%s", b, want)
	}
	os.WriteFile(tool, []byte("#!/bin/sh\necho 'kexec_file_load failed: Operation not permitted' >&2\nexit 1\n"), 0o755)
	if err := l.Load(k, i, "x"); err == nil || !strings.Contains(err.Error(), "Operation not permitted") {
		t.Errorf("failing kexec: %v", err)
	}
}
