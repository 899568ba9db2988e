package power_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/power"
)

// fake is a backend whose BMCs answer after delay, or never (silent hosts),
// counting calls in flight.
type fake struct {
	delay  time.Duration
	silent map[string]bool // host -> never answers
	probe  bool            // pretend to be a Prober

	inflight, max atomic.Int32
	mu            sync.Mutex
	starts        map[string][]time.Time // host -> call starts
	boots         []power.BootDevice
	closed        int
}

func (f *fake) enter(ctx context.Context, t power.Target) error {
	f.mu.Lock()
	if f.starts == nil {
		f.starts = map[string][]time.Time{}
	}
	f.starts[t.Host] = append(f.starts[t.Host], time.Now())
	f.mu.Unlock()
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.max.Load()
		if n <= m || f.max.CompareAndSwap(m, n) {
			break
		}
	}
	if f.silent[t.Host] {
		<-ctx.Done()
		return ctx.Err()
	}
	select {
	case <-time.After(f.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fake) Power(ctx context.Context, t power.Target, op power.Op) (power.Outcome, error) {
	if err := f.enter(ctx, t); err != nil {
		return power.Outcome{}, err
	}
	if t.Password.Reveal() != "pw" {
		return power.Outcome{}, power.NewError(t.Addr(), power.ErrAuth, "authentication failed for user %s", t.User)
	}
	return power.Outcome{Power: "on", Detail: string(op) + " done"}, nil
}

func (f *fake) BootOnce(ctx context.Context, t power.Target, dev power.BootDevice) (power.Outcome, error) {
	if err := f.enter(ctx, t); err != nil {
		return power.Outcome{}, err
	}
	f.mu.Lock()
	f.boots = append(f.boots, dev)
	f.mu.Unlock()
	return power.Outcome{Detail: fmt.Sprintf("next boot %s efi=%t", dev.Kind, dev.EFI)}, nil
}

func (f *fake) Facts(ctx context.Context, t power.Target) (power.Facts, error) {
	if err := f.enter(ctx, t); err != nil {
		return power.Facts{}, err
	}
	if t.Host == "noboot" {
		return power.Facts{Device: "model X", Unread: map[string]error{"boot": power.NewError(t.Addr(), power.ErrRefused, "no boot flags")}}, nil
	}
	return power.Facts{Device: "model X", Boot: "pxe, once", MACs: []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}}, nil
}

func (f *fake) Close() error {
	f.mu.Lock()
	f.closed++
	f.mu.Unlock()
	return nil
}

// prober is fake with a reachability probe that answers only for hosts
// that are not silent.
type prober struct{ *fake }

func (p prober) Probe(ctx context.Context, t power.Target) error {
	if p.silent[t.Host] {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func seam(t *testing.T, f *fake, cfg power.Config) *power.Service {
	t.Helper()
	reg, err := power.NewRegistry(power.Protocol{Name: "fake", Port: 999, User: "root",
		Open: func(power.Settings) (power.Backend, error) {
			if f.probe {
				return prober{f}, nil
			}
			return f, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = -1
	}
	s := power.New(cfg, reg)
	t.Cleanup(func() { s.Close() })
	return s
}

func target(node, host string) power.Target {
	return power.Target{Node: node, Protocol: "fake", Host: host, Password: power.NewSecret("pw")}
}

// TestBulkBoundedInOrder: one result per target in the targets' order, at
// most Concurrency calls at the BMCs at once, a progress report for each.
func TestBulkBoundedInOrder(t *testing.T) {
	f := &fake{delay: 20 * time.Millisecond}
	s := seam(t, f, power.Config{})
	var targets []power.Target
	for i := range 24 {
		targets = append(targets, target(fmt.Sprintf("n%02d", i), fmt.Sprintf("bmc%02d", i)))
	}
	var reported atomic.Int32
	res, err := s.Bulk(context.Background(), targets, power.OpStatus, power.BulkOptions{Concurrency: 4,
		OnResult: func(power.Result) { reported.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || r.Node != targets[i].Node || r.BMC != targets[i].Host+":999" || r.Protocol != "fake" || r.Power != "on" {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	if got := f.max.Load(); got > 4 || got < 2 {
		t.Errorf("max in flight %d, want 2..4", got)
	}
	if reported.Load() != 24 {
		t.Errorf("%d progress reports", reported.Load())
	}
}

// TestBreakerAndDeadline: a silent BMC fails at the deadline with
// ErrTimeout (naming the BMC and the deadline), then is skipped at once
// (ErrCircuitOpen) until the cool-down ends; a success closes the breaker.
func TestBreakerAndDeadline(t *testing.T) {
	f := &fake{silent: map[string]bool{"dead": true}}
	s := seam(t, f, power.Config{CallTimeout: 150 * time.Millisecond, BreakerCooldown: 400 * time.Millisecond})
	tg := target("n1", "dead")
	r := s.Do(context.Background(), tg, power.OpStatus)
	if !errors.Is(r.Err, power.ErrTimeout) || r.Err.Error() != "BMC dead:999: no answer within 150ms" || r.Duration > time.Second {
		t.Fatalf("first call: %v in %v", r.Err, r.Duration)
	}
	r = s.Do(context.Background(), tg, power.OpOn)
	if !errors.Is(r.Err, power.ErrCircuitOpen) || r.Duration > 50*time.Millisecond || r.Err.Error() != "BMC dead:999: circuit open after a timeout, retry in 1s" {
		t.Fatalf("second call: %v in %v", r.Err, r.Duration)
	}
	if w := s.BreakerOpen(tg); w <= 0 || w > 400*time.Millisecond {
		t.Errorf("BreakerOpen %v", w)
	}
	time.Sleep(450 * time.Millisecond)
	f.mu.Lock()
	f.silent = nil
	f.mu.Unlock()
	if r = s.Do(context.Background(), tg, power.OpStatus); r.Err != nil || s.BreakerOpen(tg) != 0 {
		t.Fatalf("after the cool-down: %v, breaker %v", r.Err, s.BreakerOpen(tg))
	}
}

// TestRateLimitPerBMC: calls to one BMC start MinInterval apart; calls to
// other BMCs are not held back by it.
func TestRateLimitPerBMC(t *testing.T) {
	f := &fake{}
	s := seam(t, f, power.Config{MinInterval: 120 * time.Millisecond})
	targets := []power.Target{target("a", "chassis"), target("b", "chassis"), target("c", "chassis"), target("d", "other")}
	start := time.Now()
	if _, err := s.Bulk(context.Background(), targets, power.OpStatus, power.BulkOptions{}); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := f.starts["chassis"]
	if len(ts) != 3 {
		t.Fatalf("%d calls to the chassis", len(ts))
	}
	for i := 1; i < len(ts); i++ {
		if d := ts[i].Sub(ts[i-1]); d < 110*time.Millisecond {
			t.Errorf("calls %d and %d to one BMC %v apart", i-1, i, d)
		}
	}
	if d := f.starts["other"][0].Sub(start); d > 60*time.Millisecond {
		t.Errorf("the other BMC waited %v", d)
	}
}

// TestProbeOutsideConcurrency: with a Prober, silent BMCs wait in their
// probe, not in a concurrency slot: 20 silent BMCs and 4 answering ones at
// concurrency 1 finish in about one deadline.
func TestProbeOutsideConcurrency(t *testing.T) {
	f := &fake{probe: true, silent: map[string]bool{}}
	var targets []power.Target
	for i := range 20 {
		h := fmt.Sprintf("silent%d", i)
		f.silent[h] = true
		targets = append(targets, target(h, h))
	}
	for i := range 4 {
		targets = append(targets, target(fmt.Sprintf("ok%d", i), fmt.Sprintf("ok%d", i)))
	}
	s := seam(t, f, power.Config{CallTimeout: 300 * time.Millisecond})
	start := time.Now()
	res, err := s.Bulk(context.Background(), targets, power.OpStatus, power.BulkOptions{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("took %v", el)
	}
	for _, r := range res {
		if strings.HasPrefix(r.Node, "ok") != (r.Err == nil) {
			t.Errorf("%s: %v", r.Node, r.Err)
		}
	}
}

// TestBulkCancel: cancelling a run fails the targets not started with the
// context's error; every target still gets its result.
func TestBulkCancel(t *testing.T) {
	f := &fake{delay: 50 * time.Millisecond}
	s := seam(t, f, power.Config{})
	var targets []power.Target
	for i := range 8 {
		targets = append(targets, target(fmt.Sprint(i), fmt.Sprint("h", i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res, err := s.Bulk(ctx, targets, power.OpCycle, power.BulkOptions{Concurrency: 1, OnResult: func(r power.Result) {
		if r.Err == nil {
			cancel()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	ok, canceled := 0, 0
	for _, r := range res {
		switch {
		case r.Err == nil:
			ok++
		case errors.Is(r.Err, context.Canceled):
			canceled++
		default:
			t.Errorf("%s: %v", r.Node, r.Err)
		}
	}
	if len(res) != 8 || ok < 1 || ok+canceled != 8 || canceled < 6 {
		t.Fatalf("ok %d, canceled %d of %d", ok, canceled, len(res))
	}
}

// TestOpsMapToTheBackend: every operation reaches the backend's method for
// it; bootdev-pxe carries the node's EFI; bootflags and deviceid come from
// the facts; a fact the BMC did not tell fails with its own error.
func TestOpsMapToTheBackend(t *testing.T) {
	f := &fake{}
	s := seam(t, f, power.Config{})
	efi := target("u1", "h")
	efi.EFI = true
	tests := []struct {
		tg     power.Target
		op     power.Op
		detail string
		kind   error
	}{
		{target("n", "h"), power.OpCycle, "cycle done", nil},
		{efi, power.OpBootdevPXE, "next boot pxe efi=true", nil},
		{target("n", "h"), power.OpBootdevPXE, "next boot pxe efi=false", nil},
		{target("n", "h"), power.OpBootflags, "pxe, once", nil},
		{target("n", "h"), power.OpDeviceID, "model X", nil},
		{target("n", "noboot"), power.OpBootflags, "", power.ErrRefused},
		{target("n", "h"), "explode", "", power.ErrBadOp},
	}
	for _, tc := range tests {
		r := s.Do(context.Background(), tc.tg, tc.op)
		if tc.kind != nil {
			if !errors.Is(r.Err, tc.kind) {
				t.Errorf("%s: %v, want %v", tc.op, r.Err, tc.kind)
			}
			continue
		}
		if r.Err != nil || r.Detail != tc.detail {
			t.Errorf("%s: %q %v, want %q", tc.op, r.Detail, r.Err, tc.detail)
		}
		// deviceid also carries the NIC MACs the facts told (adoption by
		// BMC reads them); other operations carry none.
		if wantMACs := tc.op == power.OpDeviceID; (len(r.MACs) == 2) != wantMACs || (wantMACs && r.MACs[1] != "52:54:00:00:00:02") {
			t.Errorf("%s: MACs %v", tc.op, r.MACs)
		}
	}
}

// TestTargetProblems: what is wrong with a target or a selection is said
// before any BMC is asked.
func TestTargetProblems(t *testing.T) {
	f := &fake{}
	s := seam(t, f, power.Config{})
	tests := []struct {
		tg   power.Target
		want string
	}{
		{power.Target{Node: "x", Protocol: "redfish", Host: "h"}, `node x: power: unknown BMC protocol "redfish" (registered: fake)`},
		{power.Target{Node: "y", Protocol: "fake"}, "node y: no BMC host"},
		{power.Target{Node: "z", Protocol: "fake", Host: "h", Port: 70000}, "node z: BMC port 70000 out of range"},
	}
	for _, tc := range tests {
		if r := s.Do(context.Background(), tc.tg, power.OpStatus); r.Err == nil || r.Err.Error() != tc.want {
			t.Errorf("got %v, want %s", r.Err, tc.want)
		}
	}
	if _, err := s.Bulk(context.Background(), nil, power.OpStatus, power.BulkOptions{}); !errors.Is(err, power.ErrEmptySelection) {
		t.Errorf("empty selection: %v", err)
	}
	if _, err := s.Bulk(context.Background(), []power.Target{target("n", "h")}, "explode", power.BulkOptions{}); !errors.Is(err, power.ErrBadOp) {
		t.Errorf("bad op: %v", err)
	}
	if n := len(f.starts); n != 0 {
		t.Errorf("%d BMCs asked", n)
	}
	wrong := target("w", "h")
	wrong.Password = power.NewSecret("not-it")
	if r := s.Do(context.Background(), wrong, power.OpOn); !errors.Is(r.Err, power.ErrAuth) || strings.Contains(r.Err.Error(), "not-it") {
		t.Errorf("wrong password: %v", r.Err)
	}
}

// TestNoConsole: a backend without a serial console makes Console fail
// with an error that says so and matches ErrNoConsole and ErrUnsupported
// (a console hub does not retry it).
func TestNoConsole(t *testing.T) {
	s := seam(t, &fake{}, power.Config{})
	err := s.Console(context.Background(), target("n1", "h"), strings.NewReader(""), io.Discard, power.ConsoleOptions{})
	if !errors.Is(err, power.ErrNoConsole) || !errors.Is(err, power.ErrUnsupported) || !power.Permanent(err) ||
		err.Error() != "BMC h:999: the fake backend has no serial console" {
		t.Fatalf("%v", err)
	}
	if s.HasConsole(target("n1", "h")) {
		t.Error("HasConsole")
	}
}

// TestCloseOnceAndAfter: Close closes every opened backend once and stops
// the pollers; calls afterwards fail with ErrClosed.
func TestCloseOnceAndAfter(t *testing.T) {
	f := &fake{}
	reg, _ := power.NewRegistry(power.Protocol{Name: "fake", Port: 1, Open: func(power.Settings) (power.Backend, error) { return f, nil }})
	s := power.New(power.Config{MinInterval: -1}, reg)
	var polls atomic.Int32
	stopped := s.Poll(context.Background(), func() []power.Target { return []power.Target{target("n", "h")} }, 10*time.Millisecond, 2,
		func(power.Result) { polls.Add(1) })
	for polls.Load() < 3 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	s.Close()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		t.Fatal("poller still running")
	}
	if f.closed != 1 {
		t.Errorf("backend closed %d times", f.closed)
	}
	if r := s.Do(context.Background(), target("n", "h"), power.OpStatus); !errors.Is(r.Err, power.ErrClosed) {
		t.Errorf("after Close: %v", r.Err)
	}
}

// TestCallerCancelIsNotATimeout: a call the caller cancels is ErrCanceled
// (and context.Canceled), never ErrTimeout, and does not trip the breaker.
func TestCallerCancelIsNotATimeout(t *testing.T) {
	f := &fake{silent: map[string]bool{"h": true}}
	s := seam(t, f, power.Config{CallTimeout: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	r := s.Do(ctx, target("n", "h"), power.OpStatus)
	if !errors.Is(r.Err, power.ErrCanceled) || !errors.Is(r.Err, context.Canceled) || errors.Is(r.Err, power.ErrTimeout) {
		t.Fatalf("%v", r.Err)
	}
	if s.BreakerOpen(target("n", "h")) != 0 {
		t.Error("a cancel tripped the breaker")
	}
}

// TestSecretNeverPrinted: a target prints, marshals and logs without its
// password.
func TestSecretNeverPrinted(t *testing.T) {
	tg := power.Target{Node: "n1", Protocol: "ipmi", Host: "10.0.0.1", Port: 623, User: "admin", Password: power.NewSecret("Sup3r-s3cret")}
	js, _ := json.Marshal(tg)
	var log strings.Builder
	slog.New(slog.NewTextHandler(&log, nil)).Info("x", "target", tg, "pw", tg.Password)
	wrapped := struct{ T power.Target }{tg}
	for _, s := range []string{fmt.Sprint(tg), fmt.Sprintf("%v %+v %#v %s %q", tg, tg, tg, tg, tg), string(js), log.String(),
		fmt.Sprintf("%v %+v %#v", wrapped, wrapped, tg.Password)} {
		if strings.Contains(s, "Sup3r") {
			t.Errorf("password in %q", s)
		}
	}
	if !strings.Contains(string(js), `"password":"[redacted]"`) || tg.Password.Reveal() != "Sup3r-s3cret" {
		t.Errorf("json %s", js)
	}
	if js, _ := json.Marshal(power.Target{Node: "n"}); strings.Contains(string(js), "password") {
		t.Errorf("empty password marshalled: %s", js)
	}
}

// TestRegistry: names are checked, twice is refused, flat keys must be
// keys, lookups and names work.
func TestRegistry(t *testing.T) {
	open := func(power.Settings) (power.Backend, error) { return &fake{}, nil }
	for _, p := range []power.Protocol{
		{Name: "Bad", Open: open},
		{Name: "", Open: open},
		{Name: "nopen"},
		{Name: "flat", Flat: []string{"x"}, Open: open},
	} {
		if _, err := power.NewRegistry(p); err == nil {
			t.Errorf("%+v accepted", p.Name)
		}
	}
	r, err := power.NewRegistry(power.Protocol{Name: "b", Open: open}, power.Protocol{Name: "a-1", Open: open})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(power.Protocol{Name: "b", Open: open}); err == nil {
		t.Error("registered twice")
	}
	if _, ok := r.Lookup("a-1"); !ok || strings.Join(r.Names(), ",") != "a-1,b" {
		t.Errorf("names %v", r.Names())
	}
}
