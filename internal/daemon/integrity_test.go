package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/workflow/simnode"
)

// clientFrom returns an HTTP client whose connections leave from the
// loopback address src: a host other than the nodes' (which use 127.0.0.1).
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func (e *testEnv) getFrom(c *http.Client, path string) int {
	e.t.Helper()
	resp, err := c.Get(e.base + path)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (e *testEnv) checkin(c *http.Client, form url.Values) (int, string) {
	e.t.Helper()
	resp, err := c.PostForm(e.base+"/checkin", form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// checkinForm is a valid check-in of node in boot bootID, number seq.
func (e *testEnv) checkinForm(node, bootID string, seq int) url.Values {
	return url.Values{"node": {node}, "token": {e.d.Token(node)}, "generation": {e.gen},
		"uptime": {"42.17"}, "overlay_bytes": {"0"}, "boot_id": {bootID}, "seq": {fmt.Sprint(seq)}}
}

// TestStrayImageFetchNeverFailsANode is issue 13's "any host moves any
// node's boot stage": an image fetch that names a node (?node=) without its
// proof, from an unrelated address or from the address the node booted from,
// leaves the node's stage alone; the node's key, or a fixed node's own
// address, still fails it on a 404. Unproven requests raise at most one
// event per address per 10 s.
func TestStrayImageFetchNeverFailsANode(t *testing.T) {
	e := startDaemon(t)
	stray := clientFrom("127.0.0.77")
	const bogus = "/images/compute/0bogus/vmlinuz"

	// n01 booted: its config fetched (from 127.0.0.1) and checked in.
	e.get("/boot/52:54:00:00:00:01.ipxe")
	if code, msg := e.checkin(http.DefaultClient, e.checkinForm("n01", "b-n01", 1)); code != 200 {
		t.Fatalf("check-in: %d %s", code, msg)
	}
	before := e.state("n01")
	if before.Stage != bootstate.StageBooted {
		t.Fatalf("n01 not booted: %+v", before)
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		path   string
	}{
		{"unrelated address, ?node=", stray, bogus + "?node=n01"},
		{"unrelated address, wrong key", stray, bogus + "?node=n01&auth=" + e.d.FetchKey("n02")},
		{"unrelated address, check-in token as key", stray, bogus + "?node=n01&auth=" + e.d.Token("n01")},
		{"the node's own NAT address, ?node=", http.DefaultClient, bogus + "?node=n01"},
		{"the node's own NAT address, no node", http.DefaultClient, bogus},
		{"a fixed node's key from another address", stray, bogus + "?node=st1&auth=" + e.d.FetchKey("st1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 20 {
				if code := e.getFrom(tc.client, tc.path); code != 404 {
					t.Fatalf("%s: %d, want 404", tc.path, code)
				}
			}
			for _, node := range []string{"n01", "st1"} {
				st := e.state(node)
				if st.Stage == bootstate.StageFailed || st.Error != "" {
					t.Fatalf("%s failed by an unproven request: %+v", node, st)
				}
			}
			if st := e.state("n01"); st.Stage != bootstate.StageBooted || len(st.Timeline) != len(before.Timeline) {
				t.Fatalf("n01 moved: %+v", st)
			}
		})
	}
	// Rate limited: one event per address per 10 s, whatever the count.
	perRemote := map[string]int{}
	for _, ev := range e.d.History("", 1000) {
		if (ev.Kind == bootstate.KindDenied || ev.Kind == bootstate.KindInfo) && strings.HasPrefix(ev.Path, "/images/") {
			host, _, _ := net.SplitHostPort(ev.Remote)
			perRemote[host]++
		}
	}
	if perRemote["127.0.0.77"] != 1 || perRemote["127.0.0.1"] != 1 {
		t.Errorf("events about unproven requests per address: %v, want 1 each", perRemote)
	}

	// Proof still works: n02's key fails n02; st1's own address fails st1.
	if code := e.getFrom(stray, bogus+"?node=n02&auth="+e.d.FetchKey("n02")); code != 404 {
		t.Fatalf("proven bogus fetch: %d", code)
	}
	if st := e.state("n02"); st.Stage != bootstate.StageFailed || !strings.Contains(st.Error, "404") {
		t.Errorf("n02's key did not fail n02 on a 404: %+v", st)
	}
	if code := e.getFrom(clientFrom("127.0.0.9"), bogus); code != 404 {
		t.Fatalf("fixed-address bogus fetch: %d", code)
	}
	if st := e.state("st1"); st.Stage != bootstate.StageFailed {
		t.Errorf("st1's own address did not fail st1 on a 404: %+v", st)
	}
}

// TestForgedMACNeverMovesANode is the attacker's view of issue 13's "boot
// state moves only on proof": from an address of its own on loopback, a
// host that knows only nodes' MACs asks for everything a booting node asks
// for, over HTTP and TFTP, many times. It is served (a node must still
// boot), but no node's state moves: a booted node stays booted with the
// same check-in, address and last-seen time, a node never seen stays
// unseen, a fixed node asked for from elsewhere too. Each request shows as
// a claim event from the attacker's address and at most one unproven mark
// per stage in the node's timeline; the claim events are rate limited.
func TestForgedMACNeverMovesANode(t *testing.T) {
	e := startDaemon(t)
	// n01 booted, proven: its kernel with its key, a check-in with its token.
	if code := e.getFrom(http.DefaultClient, "/images/compute/"+e.gen+"/vmlinuz?node=n01&auth="+e.d.FetchKey("n01")); code != 200 {
		t.Fatalf("n01's kernel: %d", code)
	}
	if code, msg := e.checkin(http.DefaultClient, e.checkinForm("n01", "b-n01", 1)); code != 200 {
		t.Fatalf("check-in: %d %s", code, msg)
	}
	before := map[string]bootstate.NodeState{}
	for _, n := range []string{"n01", "px1", "st1"} {
		st, ok := e.d.NodeState(n)
		if !ok { // never seen: what the tracker holds of a node once it has a timeline
			st = bootstate.NodeState{Node: n, Power: bootstate.PowerUnknown}
		}
		before[n] = st
	}
	if before["n01"].Stage != bootstate.StageBooted || before["px1"].Stage != bootstate.StageUnknown {
		t.Fatalf("before: %+v", before)
	}

	const attacker = "127.0.0.77"
	src := netip.MustParseAddr(attacker)
	web := clientFrom(attacker)
	tftpAddr := e.d.TFTPAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const rounds = 12
	start := time.Now()
	for range rounds {
		for _, mac := range []string{"52:54:00:00:00:01", "52:54:00:00:01:01", "52:54:00:00:02:01"} {
			// What the node's firmware and bootloader ask for: its
			// entry by MAC (which ties the asking address to the node
			// for the rest of a boot), then the generation's files by
			// that address, over both protocols.
			for _, path := range []string{"/boot/" + mac + ".ipxe", "/boot/" + mac + ".pxelinux"} {
				if code := e.getFrom(web, path); code != 200 {
					t.Fatalf("%s: %d (a node must still be served its entry)", path, code)
				}
			}
			cfg := "pxelinux.cfg/01-" + strings.ReplaceAll(mac, ":", "-")
			if _, err := simnode.TFTPGet(ctx, src, tftpAddr, cfg, io.Discard); err != nil {
				t.Fatalf("tftp %s: %v", cfg, err)
			}
			for _, f := range image.BootFiles {
				if code := e.getFrom(web, "/images/compute/"+e.gen+"/"+f); code != 200 {
					t.Fatalf("%s over HTTP: %d", f, code)
				}
				if _, err := simnode.TFTPGet(ctx, src, tftpAddr, "images/compute/"+e.gen+"/"+f, io.Discard); err != nil {
					t.Fatalf("%s over TFTP: %v", f, err)
				}
			}
		}
		// A check-in without the token, one with another node's; the
		// iPXE chain script and a missing file by the claimed address.
		f := e.checkinForm("n01", "b-forged", 1)
		f.Del("token")
		if code, _ := e.checkin(web, f); code == 200 {
			t.Fatal("a check-in without a token was accepted")
		}
		f = e.checkinForm("n01", "b-forged", 2)
		f.Set("token", e.d.Token("n02"))
		if code, _ := e.checkin(web, f); code != 403 {
			t.Fatalf("a check-in with n02's token for n01: %d, want 403", code)
		}
		if _, err := simnode.TFTPGet(ctx, src, tftpAddr, "boot.ipxe", io.Discard); err != nil {
			t.Fatalf("tftp boot.ipxe: %v", err)
		}
		if code := e.getFrom(web, "/images/compute/0bogus/vmlinuz"); code != 404 {
			t.Fatalf("missing file: %d", code)
		}
	}
	// At most claimBurst (3) claims per node and stage at once, then one
	// per 10 s.
	maxClaims := 3 + int(time.Since(start)/(10*time.Second)) + 1

	for node, was := range before {
		now := e.state(node)
		var claimed []bootstate.StageMark
		for _, m := range now.Timeline[len(was.Timeline):] {
			if !m.Unproven {
				t.Errorf("%s: a proven mark %s from the attacker", node, m.Stage)
			}
			for _, c := range claimed {
				if c.Stage == m.Stage {
					t.Errorf("%s: two unproven %s marks in a row", node, m.Stage)
				}
			}
			claimed = append(claimed, m)
		}
		if !slices.Equal(now.Timeline[:len(was.Timeline)], was.Timeline) {
			t.Errorf("%s: timeline rewritten: %+v, was %+v", node, now.Timeline, was.Timeline)
		}
		if len(claimed) == 0 {
			t.Errorf("%s: the attacker's requests left no unproven mark", node)
		}
		now.Timeline, now.Seq = was.Timeline, was.Seq
		if !reflect.DeepEqual(now, was) {
			t.Errorf("%s moved by forged requests:\n now %+v\n was %+v", node, now, was)
		}
	}
	// Seen in the history: claim events from the attacker, bounded.
	claims := map[string]int{}
	for _, ev := range e.d.History("", 10000) {
		if ev.Kind == bootstate.KindClaim {
			if host, _, _ := net.SplitHostPort(ev.Remote); host != attacker {
				t.Errorf("claim event from %s: %+v", ev.Remote, ev)
			}
			claims[ev.Node+" "+string(ev.Stage)]++
		}
	}
	for _, node := range []string{"n01", "px1", "st1"} {
		for _, stage := range []string{"config", "kernel", "initrd", "rootfs"} {
			if n := claims[node+" "+stage]; n == 0 || n > maxClaims {
				t.Errorf("claim events of %s %s: %d, want 1 to %d of %d requests (rate limited)", node, stage, n, maxClaims, 2*rounds)
			}
		}
	}
}

// TestCheckinReplayRefused: a check-in is refused (409) when its (boot_id,
// seq) is not newer than the last one accepted for the node, in the same
// boot or from a boot the node has left.
func TestCheckinReplayRefused(t *testing.T) {
	e := startDaemon(t)
	c := http.DefaultClient
	steps := []struct {
		boot string
		seq  int
		want int
	}{
		{"boot-a", 1, 200},
		{"boot-a", 1, 409}, // the same check-in again
		{"boot-a", 3, 200}, // a lost attempt in between is fine
		{"boot-a", 2, 409}, // an older one
		{"boot-b", 1, 200}, // the node rebooted
		{"boot-a", 4, 409}, // a check-in of the boot it left
		{"boot-b", 2, 200},
	}
	for i, s := range steps {
		code, msg := e.checkin(c, e.checkinForm("n03", s.boot, s.seq))
		if code != s.want {
			t.Fatalf("step %d (%s seq %d): %d %q, want %d", i, s.boot, s.seq, code, msg, s.want)
		}
		if code == 409 && !strings.Contains(msg, "replayed") {
			t.Errorf("step %d: refusal says %q", i, msg)
		}
	}
	var checkins int
	for _, ev := range e.d.History("n03", 100) {
		if ev.Kind == bootstate.KindCheckin {
			checkins++
		}
	}
	if checkins != 4 {
		t.Errorf("%d check-in events, want 4 (the accepted ones)", checkins)
	}
}

// TestCheckinReplayRefusedAfterRestart: the replay guard's records are in
// the daemon's state store, so a daemon restarted on the same data folder
// refuses a check-in it accepted before the restart (the last one, an
// older one, or one of a boot the node has left), and goes on accepting
// newer ones.
func TestCheckinReplayRefusedAfterRestart(t *testing.T) {
	e := startDaemon(t)
	c := http.DefaultClient
	before := []struct {
		node, boot string
		seq        int
	}{{"n03", "boot-a", 1}, {"n03", "boot-b", 1}, {"n03", "boot-b", 2}, {"n02", "boot-z", 5}}
	for _, s := range before {
		if code, msg := e.checkin(c, e.checkinForm(s.node, s.boot, s.seq)); code != 200 {
			t.Fatalf("%s %s seq %d before the restart: %d %q", s.node, s.boot, s.seq, code, msg)
		}
	}
	e.stop()
	e.start(nil)
	for i, s := range []struct {
		node, boot string
		seq        int
		want       int
	}{
		{"n03", "boot-b", 2, 409}, // the last one accepted, replayed
		{"n03", "boot-b", 1, 409}, // an older one
		{"n03", "boot-a", 7, 409}, // a boot n03 has left
		{"n02", "boot-z", 5, 409},
		{"n03", "boot-b", 3, 200}, // the node goes on
		{"n02", "boot-y", 1, 200}, // n02 rebooted
		{"n02", "boot-z", 6, 409},
	} {
		code, msg := e.checkin(c, e.checkinForm(s.node, s.boot, s.seq))
		if code != s.want {
			t.Fatalf("step %d (%s %s seq %d) after the restart: %d %q, want %d", i, s.node, s.boot, s.seq, code, msg, s.want)
		}
		if code == 409 && !strings.Contains(msg, "replayed") {
			t.Errorf("step %d: refusal says %q", i, msg)
		}
	}
	if st := e.state("n03"); st.Stage != bootstate.StageBooted || st.LastCheckin.IsZero() {
		t.Errorf("n03 after the restart: %+v", st)
	}
}

// TestCheckinRefusesBadValues: an authenticated check-in with an unknown
// generation, a non-finite or negative number, or without its boot id and
// counter is refused with 400 and changes nothing; a fixed node checks in
// from its own address only.
func TestCheckinRefusesBadValues(t *testing.T) {
	e := startDaemon(t)
	for i, tc := range []struct {
		key, value string
	}{
		{"generation", "deadbeef"},
		{"generation", "DEADBEEF"},
		{"uptime", "NaN"},
		{"uptime", "Inf"},
		{"uptime", "-Inf"},
		{"uptime", "-3"},
		{"overlay_bytes", "-1"},
		{"overlay_bytes", "NaN"},
		{"seq", ""},
		{"seq", "0"},
		{"boot_id", ""},
	} {
		f := e.checkinForm("n02", "boot-x", i+1)
		f.Set(tc.key, tc.value)
		if code, msg := e.checkin(http.DefaultClient, f); code != 400 {
			t.Errorf("%s=%q: %d %q, want 400", tc.key, tc.value, code, msg)
		}
	}
	if st := e.state("n02"); st.Stage == bootstate.StageBooted || st.Generation != "" || st.Uptime != 0 {
		t.Fatalf("a refused check-in moved n02: %+v", st)
	}
	// st1 has a fixed address (127.0.0.9): its own token from elsewhere is
	// refused, from its address accepted.
	if code, _ := e.checkin(http.DefaultClient, e.checkinForm("st1", "b", 1)); code != 403 {
		t.Errorf("st1 from 127.0.0.1: %d, want 403", code)
	}
	if code, msg := e.checkin(clientFrom("127.0.0.9"), e.checkinForm("st1", "b", 2)); code != 200 {
		t.Errorf("st1 from its address: %d %s", code, msg)
	}
	if st := e.state("st1"); st.Stage != bootstate.StageBooted || st.Generation != e.gen || st.Uptime != 42*time.Second {
		t.Errorf("st1 after its check-in: %+v", st)
	}
}

// TestOverlayDirtyBytesZero: overlay_dirty_bytes left out or 0 means any
// write makes a node dirty, as the inventory documents; a threshold counts
// what is above it.
func TestOverlayDirtyBytesZero(t *testing.T) {
	e := startDaemon(t)
	seq := 0
	for _, tc := range []struct {
		settings string // the inventory's settings section ("" = none)
		overlay  int64
		dirty    bool
	}{
		{"", 0, false},
		{"", 1, true},
		{"", 4096, true},
		{"settings:\n  overlay_dirty_bytes: 0\n", 0, false},
		{"settings:\n  overlay_dirty_bytes: 0\n", 1, true},
		{"settings:\n  overlay_dirty_bytes: 1000\n", 1000, false},
		{"settings:\n  overlay_dirty_bytes: 1000\n", 1001, true},
	} {
		t.Run(fmt.Sprintf("%q/%d", tc.settings, tc.overlay), func(t *testing.T) {
			if err := os.WriteFile(e.inv, []byte(tc.settings+testInventory), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := e.d.Reload(); err != nil {
				t.Fatal(err)
			}
			seq++
			f := e.checkinForm("n01", "boot-o", seq)
			f.Set("overlay_bytes", fmt.Sprint(tc.overlay))
			if code, msg := e.checkin(http.DefaultClient, f); code != 200 {
				t.Fatalf("check-in: %d %s", code, msg)
			}
			v, err := e.d.Node("n01")
			if err != nil {
				t.Fatal(err)
			}
			if v.Dirty != tc.dirty {
				t.Errorf("dirty %v (%q), want %v", v.Dirty, v.DirtyReasons, tc.dirty)
			}
		})
	}
}

// TestTurnedDirtyEvent: the check-in that turns a node dirty is followed
// by an event that says so and why, once: not on the check-ins before (the
// node is clean) nor after (it stays dirty).
func TestTurnedDirtyEvent(t *testing.T) {
	e := startDaemon(t)
	if err := os.WriteFile(e.inv, []byte("settings:\n  overlay_dirty_bytes: 1000\n"+testInventory), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	turned := func() []string {
		var out []string
		for _, ev := range e.d.History("n01", 0) {
			if strings.HasPrefix(ev.Message, "turned dirty") {
				out = append(out, ev.Message)
			}
		}
		return out
	}
	for i, overlay := range []int64{0, 500, 2048, 4096} {
		f := e.checkinForm("n01", "boot-d", i+1)
		f.Set("overlay_bytes", fmt.Sprint(overlay))
		if code, msg := e.checkin(http.DefaultClient, f); code != 200 {
			t.Fatalf("check-in: %d %s", code, msg)
		}
		want := 0
		if overlay > 1000 {
			want = 1
		}
		if got := turned(); len(got) != want {
			t.Fatalf("after a check-in with %d overlay bytes: %q, want %d such events", overlay, got, want)
		}
	}
	if got := turned()[0]; got != "turned dirty: overlay writes 2.0 KiB above threshold 1000 B" {
		t.Errorf("event: %q", got)
	}
}

// TestStrayFetchesDuringRebootClean: a reboot-clean under way is not failed
// by bogus image fetches that name its node, from another host or from the
// node's own address.
func TestStrayFetchesDuringRebootClean(t *testing.T) {
	l := startRebootLab(t, nil)
	base := "http://" + l.d.HTTPAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	strayCtx, stopStray := context.WithCancel(ctx)
	strayDone := make(chan int)
	go func() {
		n := 0
		defer func() { strayDone <- n }()
		other := clientFrom("127.0.0.77")
		defer other.CloseIdleConnections()
		clients := []*http.Client{other, http.DefaultClient}
		for strayCtx.Err() == nil {
			for _, c := range clients {
				req, _ := http.NewRequestWithContext(strayCtx, "GET", base+"/images/compute/0bogus/vmlinuz?node=r2", nil)
				if resp, err := c.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					n++
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res, err := l.d.RebootClean(ctx, RebootRequest{Selection: "r2", Timeout: 20 * time.Second, Who: "tester"}, nil)
	stopStray()
	sent := <-strayDone
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || !res[0].OK {
		t.Fatalf("reboot-clean under stray fetches: %+v", res)
	}
	if sent < 10 {
		t.Fatalf("only %d stray fetches were sent during the run", sent)
	}
	for _, ev := range l.d.History("r2", 200) {
		if ev.Kind == bootstate.KindFail {
			t.Errorf("r2 has a failure event: %+v", ev)
		}
	}
}
