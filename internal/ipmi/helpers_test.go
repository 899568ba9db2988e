package ipmi_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"

	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/lab"
)

const (
	testUser     = "admin"
	testPassword = "Sup3r-s3cret-pw"
)

// requireTool skips (or fails under NETBOOTUI_REQUIRE_TOOLS=1) without the
// named programs.
func requireTool(t *testing.T, names ...string) {
	t.Helper()
	lab.RequireTools(t, names...)
}

// meter counts the chassis power reads in flight across BMCs.
type meter struct {
	delay    time.Duration
	inflight atomic.Int32
	max      atomic.Int32
	mu       sync.Mutex
	reads    []time.Time
}

func (m *meter) enter() {
	n := m.inflight.Add(1)
	for {
		old := m.max.Load()
		if n <= old || m.max.CompareAndSwap(old, n) {
			break
		}
	}
	m.mu.Lock()
	m.reads = append(m.reads, time.Now())
	m.mu.Unlock()
}

func (m *meter) times() []time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Time(nil), m.reads...)
}

// meteredChassis is go-ipmi's in-memory chassis with the power read
// counted and optionally slowed down.
type meteredChassis struct {
	*mock.Chassis
	m *meter
	a *actions
}

// counts of chassis actions, read with the test's own lock (the mock's
// counters sit behind its unexported mutex).
type actions struct {
	mu                         sync.Mutex
	cycles, resets, soft, sets int
}

func (a *actions) get() (cycles, resets, soft int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cycles, a.resets, a.soft
}

func (c *meteredChassis) PowerCycle(ctx context.Context) error {
	c.a.mu.Lock()
	c.a.cycles++
	c.a.mu.Unlock()
	return c.Chassis.PowerCycle(ctx)
}

func (c *meteredChassis) ColdReset(ctx context.Context) error {
	c.a.mu.Lock()
	c.a.resets++
	c.a.mu.Unlock()
	return c.Chassis.ColdReset(ctx)
}

func (c *meteredChassis) WarmReset(ctx context.Context) error {
	c.a.mu.Lock()
	c.a.soft++
	c.a.mu.Unlock()
	return c.Chassis.WarmReset(ctx)
}

func (c *meteredChassis) PowerState(ctx context.Context) (bool, error) {
	if c.m != nil {
		c.m.enter()
		defer c.m.inflight.Add(-1)
		if c.m.delay > 0 {
			time.Sleep(c.m.delay)
		}
	}
	return c.Chassis.PowerState(ctx)
}

type meteredHAL struct {
	*mock.HAL
	ch *meteredChassis
}

func (h *meteredHAL) Chassis() hal.ChassisHAL { return h.ch }

// testBMC is go-ipmi's in-process BMC (pkg/server) on 127.0.0.1.
type testBMC struct {
	addr    *net.UDPAddr
	chassis *mock.Chassis
	acts    *actions
	stop    func()
}

func (b *testBMC) target(node string) ipmi.Target {
	return ipmi.Target{Node: node, Host: "127.0.0.1", Port: b.addr.Port, User: testUser, Password: testPassword}
}

// startBMC runs an in-process BMC on addr ("127.0.0.1:0" for a free port).
func startBMC(t *testing.T, addr string, m *meter) *testBMC {
	t.Helper()
	h := mock.New()
	ch := h.Chassis().(*mock.Chassis)
	acts := &actions{}
	info := bmc.DeviceInfo{DeviceID: 32, DeviceRevision: 1, FirmwareMajor: 1, FirmwareMinor: 2,
		IPMIVersion: 0x02, ManufacturerID: 343, ProductID: 7, AdditionalDeviceSupport: 0x39}
	b := bmc.New(info, [16]byte{1, 2, 3}, &meteredHAL{HAL: h, ch: &meteredChassis{Chassis: ch, m: m, a: acts}})
	u, err := b.Users.Add(2, testUser)
	if err != nil {
		t.Fatal(err)
	}
	u.SetPassword([]byte(testPassword))
	u.Enabled = true
	u.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", ua)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.NewServer(b, udp.Wrap(pc))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			_ = srv.Close()
			_ = pc.Close()
			<-done
		})
	}
	t.Cleanup(stop)
	return &testBMC{addr: pc.LocalAddr().(*net.UDPAddr), chassis: ch, acts: acts, stop: stop}
}

// udpSink is a BMC that never answers: it reads and drops every datagram.
func udpSink(t *testing.T) *net.UDPAddr {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr)
}

// closedPort returns a loopback UDP port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := pc.LocalAddr().(*net.UDPAddr).Port
	_ = pc.Close()
	return p
}

// logBuffer is a slog logger writing text into a buffer.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newLogger(lb *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newPool(t *testing.T, o ipmi.Options) *ipmi.Pool {
	t.Helper()
	if o.MinInterval == 0 {
		o.MinInterval = -1
	}
	p := ipmi.New(o)
	t.Cleanup(func() { _ = p.Close() })
	return p
}
