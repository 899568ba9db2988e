package simnode

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	ipmichassis "github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"
)

// bootServer is an HTTP server that renders an iPXE script like netbootui's
// and counts check-ins; its first failFirst script requests answer 500.
type bootServer struct {
	*httptest.Server
	checkins  atomic.Int64
	failFirst int64
	scripts   atomic.Int64
	mu        sync.Mutex
	overlays  []string
	seqs      []string // check-ins' boot_id/seq
	remotes   []string
}

func newBootServer(t *testing.T, failFirst int64) *bootServer {
	b := &bootServer{failFirst: failFirst}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.remotes = append(b.remotes, r.RemoteAddr)
		b.mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/boot/"):
			if b.scripts.Add(1) <= b.failFirst {
				http.Error(w, "busy", 500)
				return
			}
			fmt.Fprintf(w, "#!ipxe\nkernel %[1]s/k root=live:%[1]s/r netbootui.node=n1 netbootui.token=t netbootui.gen=g1 netbootui.checkin=%[1]s/checkin\ninitrd %[1]s/i\nboot\n", b.URL)
		case r.URL.Path == "/checkin":
			r.ParseForm()
			b.mu.Lock()
			b.overlays = append(b.overlays, r.Form.Get("overlay_bytes"))
			b.seqs = append(b.seqs, r.Form.Get("boot_id")+"/"+r.Form.Get("seq"))
			b.mu.Unlock()
			b.checkins.Add(1)
		default:
			io.WriteString(w, strings.Repeat("x", 1000))
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func power(t *testing.T, n *Node, on bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.NewClient(n.Addr().String(), n.Port(), "admin", "pw")
	if err != nil {
		t.Fatal(err)
	}
	c.WithCipherSuiteID(types.CipherSuiteID3)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	ctl := ipmichassis.ChassisControlPowerDown
	if on {
		ctl = ipmichassis.ChassisControlPowerUp
	}
	if _, err := c.ChassisControl(ctx, ctl); err != nil {
		t.Fatal(err)
	}
}

// TestFirmwarePeriodicCheckinsRetryAndPowerOff: a PXE-first node from its
// own loopback address retries a boot whose script answered 500, checks in
// with a growing overlay, and stops checking in when powered off.
func TestFirmwarePeriodicCheckinsRetryAndPowerOff(t *testing.T) {
	b := newBootServer(t, 1)
	n, err := Start(Options{MAC: "52:54:00:00:00:01", Password: "pw", BaseURL: b.URL, PXEFirst: true,
		SourceIP: netip.MustParseAddr("127.1.2.3"), POST: 10 * time.Millisecond, Retries: 2, RetryAfter: 50 * time.Millisecond,
		CheckinEvery: 50 * time.Millisecond, OverlayBytes: 100, OverlayGrowth: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	power(t, n, true)
	if !WaitFor(10*time.Second, func() bool { return b.checkins.Load() >= 3 }) {
		t.Fatalf("check-ins %d, stats %+v", b.checkins.Load(), n.Stats())
	}
	st := n.Stats()
	if st.Failures != 1 || st.Checkins != 1 || st.LastError == nil || !strings.Contains(st.LastError.Error(), "500") {
		t.Fatalf("stats %+v", st)
	}
	b.mu.Lock()
	if b.overlays[0] != "100" || b.overlays[1] != "110" || b.overlays[2] != "120" {
		t.Errorf("overlay reports %v", b.overlays)
	}
	// One boot id for the boot, and a counter from 1, as the real agent's.
	bootID, _, _ := strings.Cut(b.seqs[0], "/")
	if len(bootID) != 32 || b.seqs[0] != bootID+"/1" || b.seqs[1] != bootID+"/2" || b.seqs[2] != bootID+"/3" {
		t.Errorf("check-in boot_id/seq %v", b.seqs)
	}
	for _, r := range b.remotes {
		if !strings.HasPrefix(r, "127.1.2.3:") {
			t.Errorf("request from %s, want 127.1.2.3", r)
		}
	}
	b.mu.Unlock()
	power(t, n, false)
	time.Sleep(500 * time.Millisecond) // a check-in in flight may still land
	before := b.checkins.Load()
	time.Sleep(300 * time.Millisecond)
	if after := b.checkins.Load(); after != before {
		t.Fatalf("check-ins went on after power-off: %d -> %d", before, after)
	}
	if n.Stats().Power {
		t.Fatal("chassis still on")
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		errHas string
	}{
		{"missing", Options{MAC: "m"}, "required"},
		{"loader", Options{MAC: "m", Password: "p", BaseURL: "http://x", Loader: "grub"}, `loader "grub"`},
		{"pxelinux without tftp", Options{MAC: "m", Password: "p", BaseURL: "http://x", Loader: "pxelinux"}, "needs TFTPAddr"},
		{"not loopback", Options{MAC: "m", Password: "p", BaseURL: "http://x", SourceIP: netip.MustParseAddr("10.0.0.1")}, "not a loopback"},
	}
	for _, tc := range tests {
		if _, err := Start(tc.opts); err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.errHas)
		}
	}
}
