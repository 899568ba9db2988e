// Package statetest is the conformance test of internal/state: what every
// implementation of state.Store (the single-head local store today, a
// shared one for several heads later) must do. An implementation's test
// calls Run with a way to open its store.
package statetest

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/state"
)

// Open opens the store named key: the same key opens the same durable
// state again (after the previous store was closed), another key an empty
// one. The test closes what Open returns.
type Open func(t *testing.T, key string) state.Store

// Run runs every conformance test against open.
func Run(t *testing.T, open Open) {
	t.Run("documents compare and swap", func(t *testing.T) { documents(t, open) })
	t.Run("one of concurrent puts wins", func(t *testing.T) { concurrentPuts(t, open) })
	t.Run("addresses expire", func(t *testing.T) { addresses(t, open) })
	t.Run("audit is durable", func(t *testing.T) { auditLog(t, open) })
	t.Run("consoles keep the tail", func(t *testing.T) { consoles(t, open) })
	t.Run("boot states round trip", func(t *testing.T) { bootStates(t, open) })
	t.Run("token key is made once", func(t *testing.T) { tokenKey(t, open) })
	t.Run("check-in records land once and last", func(t *testing.T) { checkins(t, open) })
}

// checkins: a node's record is put by compare-and-swap (a stale, made-up or
// "must not exist" revision is refused; of eight concurrent puts from one
// revision exactly one lands), records are per node, and the last one put
// survives a reopen.
func checkins(t *testing.T, open Open) {
	s := open(t, "checkins")
	c := s.Checkins()
	if seen, rev, err := c.Get("n01"); err != nil || rev != 0 || seen.BootID != "" || seen.Seq != 0 || len(seen.Left) != 0 {
		t.Fatalf("no record: %+v rev %d, %v", seen, rev, err)
	}
	first := state.CheckinSeen{BootID: "boot-a", Seq: 1}
	rev, err := c.Put("n01", first, 0)
	if err != nil || rev == 0 {
		t.Fatalf("first put: rev %d, %v", rev, err)
	}
	for _, tc := range []struct {
		name string
		prev state.Rev
	}{{"must not exist", 0}, {"made up", rev + 7}} {
		if _, err := c.Put("n01", state.CheckinSeen{BootID: "forged", Seq: 99}, tc.prev); !errors.Is(err, state.ErrConflict) {
			t.Errorf("put with a %s revision: %v, want ErrConflict", tc.name, err)
		}
	}
	want := state.CheckinSeen{BootID: "boot-b", Seq: 3, Left: []string{"boot-a"}}
	rev2, err := c.Put("n01", want, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put("n01", first, rev); !errors.Is(err, state.ErrConflict) {
		t.Errorf("put with a stale revision: %v, want ErrConflict", err)
	}
	if seen, rev, err := c.Get("n02"); err != nil || rev != 0 || seen.BootID != "" {
		t.Errorf("n02 has n01's record: %+v rev %d, %v", seen, rev, err)
	}
	exactlyOneLands(t, "check-in record", func(i int) error {
		_, err := c.Put("race", state.CheckinSeen{BootID: fmt.Sprint("b", i), Seq: 1}, 0)
		return err
	}, func(i int) bool { seen, _, _ := c.Get("race"); return seen.BootID == fmt.Sprint("b", i) })
	s.Close()
	s = open(t, "checkins")
	defer s.Close()
	seen, rev3, err := s.Checkins().Get("n01")
	if err != nil || rev3 != rev2 || seen.BootID != want.BootID || seen.Seq != want.Seq || !slices.Equal(seen.Left, want.Left) {
		t.Errorf("after a reopen: %+v rev %d (%v), want %+v rev %d", seen, rev3, err, want, rev2)
	}
}

func tokenKey(t *testing.T, open Open) {
	s := open(t, "key")
	k1, err := s.TokenKey()
	if err != nil || len(k1) < 16 {
		t.Fatalf("TokenKey = %d bytes, %v; want at least 16", len(k1), err)
	}
	if again, err := s.TokenKey(); err != nil || !bytes.Equal(again, k1) {
		t.Errorf("second TokenKey differs (%v)", err)
	}
	s.Close()
	s = open(t, "key")
	if after, err := s.TokenKey(); err != nil || !bytes.Equal(after, k1) {
		t.Errorf("TokenKey after reopen differs (%v)", err)
	}
	s.Close()
	other := open(t, "other key")
	defer other.Close()
	if k2, err := other.TokenKey(); err != nil || bytes.Equal(k2, k1) {
		t.Errorf("another store's key is the same (%v)", err)
	}
}

func documents(t *testing.T, open Open) {
	s := open(t, "docs")
	d := s.Documents()
	if b, rev, err := d.Get("rollouts.json"); err != nil || rev != 0 || b != nil {
		t.Fatalf("missing document: %q rev %d, %v", b, rev, err)
	}
	for _, tc := range []struct {
		name string
		data string
		prev func(cur state.Rev) state.Rev
		err  error
	}{
		{"create", "v1", func(state.Rev) state.Rev { return 0 }, nil},
		{"create again", "v1b", func(state.Rev) state.Rev { return 0 }, state.ErrConflict},
		{"update", "v2", func(cur state.Rev) state.Rev { return cur }, nil},
		{"stale", "v3", func(cur state.Rev) state.Rev { return cur - 1 }, state.ErrConflict},
		{"made up", "v3", func(cur state.Rev) state.Rev { return cur + 7 }, state.ErrConflict},
		{"update again", "v4", func(cur state.Rev) state.Rev { return cur }, nil},
	} {
		before, cur, err := d.Get("rollouts.json")
		if err != nil {
			t.Fatal(err)
		}
		rev, err := d.Put("rollouts.json", []byte(tc.data), tc.prev(cur))
		after, now, gerr := d.Get("rollouts.json")
		if gerr != nil {
			t.Fatal(gerr)
		}
		switch {
		case tc.err != nil:
			if !errors.Is(err, tc.err) || string(after) != string(before) || now != cur {
				t.Errorf("%s: Put = %d, %v; document %q rev %d, want %v and %q rev %d kept", tc.name, rev, err, after, now, tc.err, before, cur)
			}
		default:
			if err != nil || string(after) != tc.data || now != rev || rev == cur || rev == 0 {
				t.Errorf("%s: Put = %d, %v; document %q rev %d", tc.name, rev, err, after, now)
			}
		}
	}
	if _, _, err := d.Get("other.json"); err != nil {
		t.Errorf("another document: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Durable: the last accepted version, and it can be replaced from the
	// revision the new store reports.
	s = open(t, "docs")
	d = s.Documents()
	b, rev, err := d.Get("rollouts.json")
	if err != nil || string(b) != "v4" || rev == 0 {
		t.Fatalf("after reopen: %q rev %d, %v", b, rev, err)
	}
	if _, err := d.Put("rollouts.json", []byte("v5"), rev); err != nil {
		t.Fatalf("put after reopen: %v", err)
	}
	s.Close()
}

func concurrentPuts(t *testing.T, open Open) {
	s := open(t, "race")
	defer s.Close()
	d := s.Documents()
	rev, err := d.Put("doc", []byte("base"), 0)
	if err != nil {
		t.Fatal(err)
	}
	exactlyOneLands(t, "edit", func(i int) error {
		_, err := d.Put("doc", []byte(fmt.Sprint("edit ", i)), rev)
		return err
	}, func(i int) bool { b, _, _ := d.Get("doc"); return string(b) == fmt.Sprint("edit ", i) })
}

// exactlyOneLands runs put(0) .. put(7) at once, each a compare-and-swap
// from the same revision: exactly one must land, the others fail with
// ErrConflict, and landed(i) must hold for the one that did.
func exactlyOneLands(t *testing.T, what string, put func(i int) error, landed func(i int) bool) {
	t.Helper()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = put(i)
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
			if !landed(i) {
				t.Errorf("%s %d won but is not what is stored", what, i)
			}
		case !errors.Is(err, state.ErrConflict):
			t.Errorf("%s %d: %v", what, i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d %ss from the same revision landed, want 1", won, n, what)
	}
}

func addresses(t *testing.T, open Open) {
	s := open(t, "addrs")
	defer s.Close()
	a := s.Addresses()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	v4 := netip.MustParseAddr("10.1.0.7")
	a.Learn(netip.MustParseAddr("::ffff:10.1.0.7"), "n07", t0.Add(time.Minute)) // mapped: the same client
	a.Learn(netip.MustParseAddr("10.1.0.8"), "n08", t0.Add(time.Minute))
	a.Learn(netip.MustParseAddr("10.1.0.8"), "n09", t0.Add(2*time.Minute)) // the address moved
	for _, tc := range []struct {
		ip   netip.Addr
		at   time.Time
		node string
		ok   bool
	}{
		{v4, t0, "n07", true},
		{v4, t0.Add(time.Minute), "n07", true},
		{v4, t0.Add(time.Minute + time.Nanosecond), "", false},
		{netip.MustParseAddr("10.1.0.8"), t0.Add(90 * time.Second), "n09", true},
		{netip.MustParseAddr("10.1.0.9"), t0, "", false},
	} {
		node, ok := a.Lookup(tc.ip, tc.at)
		if node != tc.node || ok != tc.ok {
			t.Errorf("Lookup(%s, +%v) = %q %v, want %q %v", tc.ip, tc.at.Sub(t0), node, ok, tc.node, tc.ok)
		}
	}
}

func auditLog(t *testing.T, open Open) {
	s := open(t, "audit")
	a := s.Audit()
	if err := a.Ready(); err != nil {
		t.Fatalf("Ready of a new log: %v", err)
	}
	for i := range 3 {
		if err := a.Record(audit.Entry{Who: "uid 0 (root)", Action: fmt.Sprint("power cycle ", i), Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		got := a.Recent(2)
		if len(got) != 2 || got[0].Action != "power cycle 1" || got[1].Action != "power cycle 2" || got[1].Time.IsZero() {
			t.Errorf("%s: Recent(2) = %+v", when, got)
		}
		if all := a.Recent(0); len(all) != 3 {
			t.Errorf("%s: Recent(0) has %d entries, want 3", when, len(all))
		}
	}
	check("before close")
	s.Close()
	s = open(t, "audit")
	defer s.Close()
	a = s.Audit()
	check("after reopen")
}

func consoles(t *testing.T, open Open) {
	s := open(t, "consoles")
	defer s.Close()
	c := s.Consoles()
	if l, ok := c.Tail("n1", 5); ok || len(l.Lines) != 0 {
		t.Errorf("nothing captured: %+v %v", l, ok)
	}
	c.Append("n1", []byte("boot: loading\r\n\x1b[1mlogin: \x1b[0m"))
	c.Append("n1", []byte("\nKernel panic\n"))
	c.Append("n2", []byte("other node\n"))
	l, ok := c.Tail("n1", 2)
	var lines []string
	for _, s := range l.Lines {
		lines = append(lines, strings.TrimSpace(s))
	}
	if !ok || !slices.Equal(lines, []string{"login:", "Kernel panic"}) || l.Total != 44 || l.Kept != 44 || l.Updated.IsZero() {
		t.Errorf("Tail(n1, 2) = %+v %v", l, ok)
	}
}

func bootStates(t *testing.T, open Open) {
	s := open(t, "boot")
	tr, err := bootstate.New(bootstate.Options{Store: s.BootStates()})
	if err != nil {
		t.Fatal(err)
	}
	tr.Apply(bootstate.Event{Node: "n1", Kind: bootstate.KindFetch, Stage: bootstate.StageKernel, Path: "/g/vmlinuz"})
	tr.Apply(bootstate.Event{Node: "n1", Kind: bootstate.KindCheckin, Generation: "g1"})
	tr.Apply(bootstate.Event{Kind: bootstate.KindUnknown, MAC: "52:54:00:00:00:99"})
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, "boot")
	defer s.Close()
	tr, err = bootstate.New(bootstate.Options{Store: s.BootStates()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	st, ok := tr.Get("n1")
	if !ok || st.Stage != bootstate.StageBooted || st.Generation != "g1" {
		t.Errorf("n1 after reopen: %+v %v", st, ok)
	}
	if h := tr.History("n1", 10); len(h) != 2 {
		t.Errorf("n1's history after reopen: %d events, want 2", len(h))
	}
	if ev := tr.Apply(bootstate.Event{Node: "n2", Kind: bootstate.KindInfo}); ev.Seq <= 3 {
		t.Errorf("the counter went back: seq %d after 3 events", ev.Seq)
	}
}
