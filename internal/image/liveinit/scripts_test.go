package liveinit

import (
	"bytes"
	"context"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/assets"
	"github.com/netbootui/netbootui/internal/lab"
)

var nodeScripts = []string{"init.sh", "checkin.sh", "udhcpc.sh", "rootfs-rcS.sh"}

// scriptFile writes the embedded script to a temporary file.
func scriptFile(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(assets.FS, "scripts/"+name)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestScriptsSyntax(t *testing.T) {
	bb := busybox(t)
	lab.RequireTools(t, "shellcheck", "dash")
	for _, name := range nodeScripts {
		t.Run(name, func(t *testing.T) {
			p := scriptFile(t, name)
			for _, argv := range [][]string{
				{bb, "sh", "-n", p},
				{"dash", "-n", p},
				{"shellcheck", "-s", "sh", "-S", "style", p},
			} {
				if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
					t.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
				}
			}
		})
	}
}

// appletPath makes a directory of busybox applet links, so the agent runs
// with busybox's tools as it does on a node.
func appletPath(t *testing.T, bb string) string {
	t.Helper()
	_, applets, err := loadBusybox(bb)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, a := range applets {
		if err := os.Symlink(bb, filepath.Join(dir, a)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// agentServer records check-ins; answer decides each reply's status.
type agentServer struct {
	mu     sync.Mutex
	forms  []url.Values
	ctypes []string
	answer func(n int, f url.Values) int
	got    chan struct{}
}

func (s *agentServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.forms = append(s.forms, r.PostForm)
	s.ctypes = append(s.ctypes, r.Header.Get("Content-Type"))
	n := len(s.forms)
	s.mu.Unlock()
	code := s.answer(n, r.PostForm)
	w.WriteHeader(code)
	select {
	case s.got <- struct{}{}:
	default:
	}
}

func (s *agentServer) snapshot() ([]url.Values, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.forms...), append([]string(nil), s.ctypes...)
}

func startAgentServer(t *testing.T, answer func(int, url.Values) int) (*agentServer, string) {
	t.Helper()
	s := &agentServer{answer: answer, got: make(chan struct{}, 64)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s, "http://" + ln.Addr().String() + "/checkin"
}

// agentEnv writes an env file like the live init's and returns the
// environment to run the agent with.
func agentEnv(t *testing.T, bb string, vars map[string]string) []string {
	t.Helper()
	var b strings.Builder
	for k, v := range vars {
		b.WriteString(k + "='" + strings.ReplaceAll(v, "'", `'\''`) + "'\n")
	}
	envFile := filepath.Join(t.TempDir(), "netbootui.env")
	if err := os.WriteFile(envFile, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	// The check-in counter goes to the test's directory, not the host's /run.
	seqFile := filepath.Join(t.TempDir(), "checkin.seq")
	return []string{"PATH=" + appletPath(t, bb), "NETBOOTUI_ENV=" + envFile, "NETBOOTUI_SEQ_FILE=" + seqFile}
}

func TestCheckinAgentOnce(t *testing.T) {
	bb := busybox(t)
	agent := scriptFile(t, "checkin.sh")
	// A plain directory, not a mount point of its own (as dracut's
	// /run/overlayfs): the agent reports what is below it, here 200 KiB.
	overlay := t.TempDir()
	if err := os.WriteFile(filepath.Join(overlay, "upper-file"), bytes.Repeat([]byte("x"), 200<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	const node = "rack 1/n'01&x=é"
	for _, tc := range []struct {
		name     string
		vars     map[string]string
		token    string
		wantExit int
		wantPost bool
	}{
		{"accepted", map[string]string{"NETBOOTUI_TOKEN": "s3cret+/="}, "s3cret+/=", 0, true},
		{"bad token", map[string]string{"NETBOOTUI_TOKEN": "wrong"}, "s3cret+/=", 1, true},
		{"no checkin url", map[string]string{"NETBOOTUI_TOKEN": "t", "NETBOOTUI_CHECKIN": ""}, "t", 2, false},
		// Where the persisted paths are this boot (the disk is synced first).
		{"persist disk", map[string]string{"NETBOOTUI_TOKEN": "t", "NETBOOTUI_PERSIST": "disk NBUI-PERSIST on /dev/vda, wipe 0011223344556677 applied"}, "t", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, checkin := startAgentServer(t, func(_ int, f url.Values) int {
				if f.Get("token") != tc.token {
					return http.StatusForbidden
				}
				return http.StatusOK
			})
			vars := map[string]string{
				"NETBOOTUI_NODE": node, "NETBOOTUI_GEN": "gen-7", "NETBOOTUI_CHECKIN": checkin,
				"NETBOOTUI_OVERLAY_DIR": overlay,
			}
			for k, v := range tc.vars {
				vars[k] = v
			}
			cmd := exec.Command(bb, "sh", agent, "--once")
			cmd.Env = agentEnv(t, bb, vars)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if (code == 0) != (tc.wantExit == 0) || (tc.wantExit == 2 && code != 2) {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantExit, stderr.String())
			}
			forms, ctypes := srv.snapshot()
			if !tc.wantPost {
				if len(forms) != 0 {
					t.Fatalf("posted %v without a check-in URL", forms)
				}
				return
			}
			if len(forms) != 1 {
				t.Fatalf("%d posts, want 1", len(forms))
			}
			f := forms[0]
			want := map[string]string{"node": node, "generation": "gen-7", "token": tc.vars["NETBOOTUI_TOKEN"], "persist": tc.vars["NETBOOTUI_PERSIST"]}
			for k, v := range want {
				if f.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, f.Get(k), v)
				}
			}
			if f.Get("seq") != "1" {
				t.Errorf("seq %q, want 1 (the boot's first check-in)", f.Get("seq"))
			}
			if ctypes[0] != "application/x-www-form-urlencoded" {
				t.Errorf("content type %q", ctypes[0])
			}
			if up, err := strconv.ParseFloat(f.Get("uptime"), 64); err != nil || up <= 0 {
				t.Errorf("uptime %q", f.Get("uptime"))
			}
			bootID, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
			if f.Get("boot_id") != strings.TrimSpace(string(bootID)) {
				t.Errorf("boot_id %q, want the kernel's %q", f.Get("boot_id"), bootID)
			}
			// overlay_bytes of a directory that is no mount point is the
			// space used below it (du), not its file system's.
			got, err := strconv.ParseInt(f.Get("overlay_bytes"), 10, 64)
			if err != nil {
				t.Fatalf("overlay_bytes %q", f.Get("overlay_bytes"))
			}
			if got < 200<<10 || got > 300<<10 {
				t.Errorf("overlay_bytes %d, want about 200 KiB (the directory's content)", got)
			}
		})
	}
}

// TestCheckinAgentCounter: a restarted agent goes on counting where the
// last one stopped (the counter file), and one that cannot write the file
// still counts up within its own run.
func TestCheckinAgentCounter(t *testing.T) {
	bb := busybox(t)
	agent := scriptFile(t, "checkin.sh")
	srv, checkin := startAgentServer(t, func(int, url.Values) int { return http.StatusOK })
	env := agentEnv(t, bb, map[string]string{"NETBOOTUI_NODE": "n1", "NETBOOTUI_TOKEN": "t",
		"NETBOOTUI_GEN": "g", "NETBOOTUI_CHECKIN": checkin, "NETBOOTUI_OVERLAY_DIR": t.TempDir()})
	for range 3 {
		cmd := exec.Command(bb, "sh", agent, "--once")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("agent: %v\n%s", err, out)
		}
	}
	forms, _ := srv.snapshot()
	var seqs []string
	for _, f := range forms {
		seqs = append(seqs, f.Get("seq"))
	}
	if strings.Join(seqs, ",") != "1,2,3" {
		t.Errorf("seqs of three agent runs %v, want 1,2,3", seqs)
	}
}

// TestCheckinAgentLoop runs the agent as a daemon: it survives a failed post
// with a back-off, checks in again, runs the test_write hook and reports the
// probe before and after.
func TestCheckinAgentLoop(t *testing.T) {
	bb := busybox(t)
	agent := scriptFile(t, "checkin.sh")
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	srv, checkin := startAgentServer(t, func(n int, _ url.Values) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.Command(bb, "sh", agent)
	cmd.Env = agentEnv(t, bb, map[string]string{
		"NETBOOTUI_NODE": "n1", "NETBOOTUI_TOKEN": "t", "NETBOOTUI_GEN": "g", "NETBOOTUI_CHECKIN": checkin,
		"NETBOOTUI_CHECKIN_INTERVAL": "600", "NETBOOTUI_OVERLAY_DIR": dir,
		"NETBOOTUI_PROBE": marker, "NETBOOTUI_TEST_WRITE": marker,
	})
	var stderr lab.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	for i := 0; i < 3; i++ {
		select {
		case <-srv.got:
		case <-ctx.Done():
			t.Fatalf("only %d check-ins; agent says:\n%s", i, stderr.String())
		}
	}
	forms, _ := srv.snapshot()
	var probes, seqs []string
	for _, f := range forms[:3] {
		probes = append(probes, f.Get("probe"))
		seqs = append(seqs, f.Get("seq"))
	}
	if strings.Join(probes, ",") != "absent,absent,present" {
		t.Errorf("probes %v, want absent (failed post), absent, present", probes)
	}
	// Every attempt, the failed one too, has a number of its own.
	if strings.Join(seqs, ",") != "1,2,3" {
		t.Errorf("seqs %v, want 1,2,3", seqs)
	}
	if fi, err := os.Stat(marker); err != nil || fi.Size() != 64*1024 {
		t.Errorf("test_write hook: %v", err)
	}
	for _, want := range []string{"failed; retrying in 2s", "checked in to " + checkin + " as n1", "test hook: wrote " + marker} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("agent log lacks %q:\n%s", want, stderr.String())
		}
	}
	// No fourth post: the next one is an interval (600 s) away.
	time.Sleep(500 * time.Millisecond)
	if forms, _ := srv.snapshot(); len(forms) != 3 {
		t.Errorf("%d posts, want 3", len(forms))
	}
}

// TestCheckinAgentHeads: several heads. The check-in URL's head is down
// (refuses connections), so is the first other head; the agent posts the
// same report to the same path on the next head of netbootui.heads, once,
// each attempt with its own sequence number.
// Without NETBOOTUI_HEADS the post fails.
func TestCheckinAgentHeads(t *testing.T) {
	bb := busybox(t)
	agent := scriptFile(t, "checkin.sh")
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}
	first, other := dead(), dead()
	for _, tc := range []struct {
		name     string
		heads    func(live string) string
		wantExit bool
	}{
		{"falls over", func(live string) string { return other + "/," + live }, true},
		{"no heads", func(string) string { return "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, checkin := startAgentServer(t, func(int, url.Values) int { return http.StatusOK })
			live := strings.TrimSuffix(checkin, "/checkin")
			cmd := exec.Command(bb, "sh", agent, "--once")
			cmd.Env = agentEnv(t, bb, map[string]string{
				"NETBOOTUI_NODE": "n1", "NETBOOTUI_GEN": "g1", "NETBOOTUI_TOKEN": "t",
				"NETBOOTUI_URL": first, "NETBOOTUI_CHECKIN": first + "/checkin",
				"NETBOOTUI_HEADS": tc.heads(live), "NETBOOTUI_OVERLAY_DIR": t.TempDir(),
			})
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if (err == nil) != tc.wantExit {
				t.Fatalf("agent: %v, want success %v; stderr: %s", err, tc.wantExit, stderr.String())
			}
			forms, _ := srv.snapshot()
			want := 0
			if tc.wantExit {
				want = 1
			}
			if len(forms) != want {
				t.Fatalf("%d posts on the live head, want %d", len(forms), want)
			}
			// The third attempt (two heads refused the connection).
			if want == 1 && (forms[0].Get("node") != "n1" || forms[0].Get("seq") != "3") {
				t.Errorf("post %v, want node n1 seq 3", forms[0])
			}
		})
	}
}

// TestCheckinAgentRootCheck: with NETBOOTUI_ROOT_CHECK (an NBD root), each
// post reads a block of the device first; a device that is gone or reads
// short (cleared by the kernel) turns the post into failed="root: ...",
// naming the root; a readable one checks in as usual; a failure the init
// reports is never replaced.
func TestCheckinAgentRootCheck(t *testing.T) {
	bb := busybox(t)
	agent := scriptFile(t, "checkin.sh")
	dir := t.TempDir()
	readable := filepath.Join(dir, "readable")
	if err := os.WriteFile(readable, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	const desc = "the NBD root 10.0.2.2:10809/live.g1"
	for _, tc := range []struct {
		name, dev, initFailed, want string
	}{
		{"gone", filepath.Join(dir, "nbd0"), "", "root: " + desc + " no longer answers (a read of " + filepath.Join(dir, "nbd0") + " failed"},
		{"cleared", empty, "", "root: " + desc + " no longer answers"},
		{"readable", readable, "", ""},
		{"init failure kept", filepath.Join(dir, "nbd0"), "rootfs: cannot attach", "rootfs: cannot attach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.dev == readable {
				fd, err := syscall.Open(readable, syscall.O_RDONLY|syscall.O_DIRECT, 0)
				if err != nil {
					t.Skipf("this file system refuses O_DIRECT: %v", err)
				}
				syscall.Close(fd)
			}
			srv, checkin := startAgentServer(t, func(int, url.Values) int { return http.StatusOK })
			cmd := exec.Command(bb, "sh", agent, "--once")
			cmd.Env = agentEnv(t, bb, map[string]string{"NETBOOTUI_NODE": "n1", "NETBOOTUI_TOKEN": "t",
				"NETBOOTUI_GEN": "g", "NETBOOTUI_CHECKIN": checkin, "NETBOOTUI_OVERLAY_DIR": t.TempDir(),
				"NETBOOTUI_ROOT_CHECK": tc.dev, "NETBOOTUI_ROOT_DESC": desc, "NETBOOTUI_FAILED": tc.initFailed})
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("agent: %v\n%s", err, out)
			}
			forms, _ := srv.snapshot()
			if len(forms) != 1 {
				t.Fatalf("%d posts, want 1", len(forms))
			}
			got := forms[0].Get("failed")
			if tc.want == "" && got != "" || !strings.HasPrefix(got, tc.want) {
				t.Errorf("failed=%q, want it to start with %q", got, tc.want)
			}
			if len(got) > 512 {
				t.Errorf("failed= is %d bytes: the daemon takes at most 512", len(got))
			}
		})
	}
}
