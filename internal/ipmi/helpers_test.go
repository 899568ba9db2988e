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
	"github.com/netbootui/netbootui/internal/power"
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

func (b *testBMC) target(node string) power.Target {
	return tgt(node, b.addr.Port, testUser, testPassword)
}

// tgt is an IPMI target on 127.0.0.1 with the default cipher suites.
func tgt(node string, port int, user, password string) power.Target {
	return power.Target{Node: node, Protocol: ipmi.Name, Host: "127.0.0.1", Port: port, User: user, Password: power.NewSecret(password)}
}

// withSuites returns t with its IPMI cipher suites set.
func withSuites(t power.Target, suites ...int) power.Target {
	t.Options = ipmi.BMCOptions{CipherSuites: suites}
	return t
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

// seam is the power seam over the IPMI backend alone, with the backend's
// Pool at hand once a call opened it.
type seam struct {
	*power.Service
	mu   sync.Mutex
	pool *ipmi.Pool
}

func (s *seam) Pool() *ipmi.Pool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pool
}

// openSeam returns the power seam with IPMI registered (no rate limit
// unless o sets one). The caller closes it.
func openSeam(t *testing.T, o power.Config) *seam {
	t.Helper()
	if o.MinInterval == 0 {
		o.MinInterval = -1
	}
	s := &seam{}
	proto := ipmi.Protocol(ipmi.Options{})
	open := proto.Open
	proto.Open = func(st power.Settings) (power.Backend, error) {
		b, err := open(st)
		if err == nil {
			s.mu.Lock()
			s.pool = b.(*ipmi.Pool)
			s.mu.Unlock()
		}
		return b, err
	}
	reg, err := power.NewRegistry(proto)
	if err != nil {
		t.Fatal(err)
	}
	s.Service = power.New(o, reg)
	return s
}

// newPool is openSeam closed at the end of the test.
func newPool(t *testing.T, o power.Config) *seam {
	t.Helper()
	s := openSeam(t, o)
	t.Cleanup(func() { _ = s.Close() })
	return s
}
