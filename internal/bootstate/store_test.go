package bootstate

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openStore(t testing.TB, path string) *Store {
	t.Helper()
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// keysIn counts the persisted history events of node ("" for unknown
// clients).
func keysIn(t *testing.T, s *Store, node string) int {
	t.Helper()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUnknown)
		if node != "" {
			b = tx.Bucket(bucketHistory).Bucket([]byte(node))
		}
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error { n++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPersistenceRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "state.db") // parent created by OpenStore
	store := openStore(t, path)
	clk := newFakeClock()
	opts := Options{Store: store, Clock: clk.Now, HistoryPerNode: 5, FlushInterval: time.Hour}
	tr, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		node := fmt.Sprintf("n%02d", i)
		for _, ev := range fullBoot[:i+2] { // n00 stops after config ... n05 is booted
			clk.Advance(time.Second)
			ev.Node = node
			ev.Remote = "10.0.2.15:68"
			tr.Apply(ev)
		}
	}
	// Many progress events of one file: coalesced in the node's history.
	for i := range 50 {
		clk.Advance(300 * time.Millisecond)
		tr.Apply(Event{Node: "n03", Kind: KindProgress, Path: "/rootfs", Bytes: int64(i)})
	}
	tr.MarkDirty("n05", "debug shell")
	tr.Apply(Event{Kind: KindUnknown, MAC: "52:54:00:aa:bb:cc"})
	unknownSeq := tr.Seq()
	tr.Apply(Event{Node: "gone", Kind: KindFetch, Stage: StageNBP})
	if err := tr.flush(); err != nil { // "gone" reaches the store ...
		t.Fatal(err)
	}
	tr.Forget("gone") // ... and leaves it with the final flush
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	wantAll := tr.All()
	wantHist := map[string][]Event{}
	for _, st := range wantAll {
		wantHist[st.Node] = tr.History(st.Node, 0)
		if got := keysIn(t, store, st.Node); got != len(wantHist[st.Node]) {
			t.Errorf("%s: %d events in the store, %d in memory", st.Node, got, len(wantHist[st.Node]))
		}
	}
	if len(wantHist["n05"]) != 5 {
		t.Errorf("n05 history has %d events, want the bound 5", len(wantHist["n05"]))
	}
	if keysIn(t, store, "gone") != 0 {
		t.Error("forgotten node's history is still stored")
	}
	if err := store.Check(); err != nil {
		t.Fatal(err)
	}
	store.Close()

	// Reopen the file: the same states, histories and counter.
	store2 := openStore(t, path)
	opts.Store = store2
	tr2 := newTracker(t, opts)
	if got := tr2.All(); !reflect.DeepEqual(got, wantAll) {
		t.Errorf("reloaded All:\n%+v\nwant\n%+v", got, wantAll)
	}
	for node, want := range wantHist {
		if got := tr2.History(node, 0); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: reloaded history\n%+v\nwant\n%+v", node, got, want)
		}
	}
	if _, ok := tr2.Get("gone"); ok {
		t.Error("forgotten node came back")
	}
	// The global history is rebuilt from the per-node and unknown-client
	// histories (the forgotten node's event is gone with it).
	kept := 1 // the unknown client's event
	for _, h := range wantHist {
		kept += len(h)
	}
	if r := tr2.Recent(0); len(r) != kept || r[len(r)-1].Seq != unknownSeq {
		t.Errorf("global history rebuilt with %d events", len(r))
	}
	if r := tr2.Since(unknownSeq - 1); len(r) != 1 || r[0].MAC != "52:54:00:aa:bb:cc" {
		t.Errorf("Since after reload: %+v", r)
	}
	if tr2.Seq() != tr.Seq() {
		t.Errorf("Seq %d after reload, was %d", tr2.Seq(), tr.Seq())
	}
	if st := tr2.Apply(Event{Node: "n00", Kind: KindInfo}); st.Seq != tr.Seq()+1 {
		t.Errorf("next Seq %d, want %d", st.Seq, tr.Seq()+1)
	}
	// n00 was mid-boot (config): it keeps its stage, then stalls.
	if st, _ := tr2.Get("n00"); st.Stage != StageConfig {
		t.Fatalf("n00 reloaded in stage %s", st.Stage)
	}
	clk.Advance(DefaultStallTimeout)
	tr2.checkStalls(clk.Now())
	if st, _ := tr2.Get("n00"); st.Stage != StageStalled || !strings.HasPrefix(st.Error, "no progress in stage config for ") {
		t.Errorf("n00 after reload and timeout: %s %q", st.Stage, st.Error)
	}
}

func TestStoreUnknownClientsBounded(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	tr := newTracker(t, Options{Store: store, FlushEvents: 500})
	for i := range unknownKeep + 700 {
		tr.Apply(Event{Kind: KindUnknown, Remote: fmt.Sprintf("10.0.2.%d:68", i%250)})
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if n := keysIn(t, store, ""); n != unknownKeep {
		t.Errorf("%d unknown-client events stored, want %d", n, unknownKeep)
	}
	tr2 := newTracker(t, Options{Store: store})
	r := tr2.Recent(0)
	if len(r) != unknownKeep || r[len(r)-1].Seq != unknownKeep+700 {
		t.Errorf("reloaded %d unknown events, last %+v", len(r), r[len(r)-1])
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.db")
	openStore(t, path)
	start := time.Now()
	s, err := OpenStore(path)
	if err == nil {
		s.Close()
		t.Fatal("second OpenStore of a held database succeeded")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("second OpenStore took %v", el)
	}
	want := fmt.Sprintf("data dir %s is in use by another netbootui (pid %d)", dir, os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestOpenStoreErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer.db")
	db, err := bolt.Open(newer, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucket(bucketMeta)
		return b.Put(keyVersion, []byte("9"))
	})
	db.Close()
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o600)
	for _, c := range []struct{ path, want string }{
		{"", "path is empty"},
		{garbage, "open state database " + garbage},
		{newer, "state database " + newer + `: format version "9"`},
		{filepath.Join(blocker, "state.db"), "data dir " + blocker},
	} {
		s, err := OpenStore(c.path)
		if err == nil {
			s.Close()
			t.Errorf("OpenStore(%q) succeeded", c.path)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("OpenStore(%q) = %q, want it to say %q", c.path, err, c.want)
		}
	}
	// The garbage file is left as it was.
	if b, _ := os.ReadFile(garbage); !strings.HasPrefix(string(b), "not a database") {
		t.Error("OpenStore changed a file that is not a database")
	}
}

func TestCorruptRecordNamesTheNode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	store := openStore(t, path)
	store.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketNodes).Put([]byte("n07"), []byte("{broken"))
	})
	_, err := New(Options{Store: store})
	if err == nil || !strings.Contains(err.Error(), `state of node "n07"`) || !strings.Contains(err.Error(), path) {
		t.Errorf("New over a corrupt record: %v", err)
	}
}

func TestWriteErrorIsReportedAndRetried(t *testing.T) {
	store := openStore(t, filepath.Join(t.TempDir(), "state.db"))
	tr := newTracker(t, Options{Store: store, FlushInterval: time.Hour})
	tr.Apply(Event{Node: "n1", Kind: KindFetch, Stage: StageNBP})
	store.db.Close() // the next write fails
	if err := tr.flush(); err == nil {
		t.Fatal("flush to a closed database succeeded")
	}
	dropped, err := tr.PersistStatus()
	if err == nil || dropped != 0 {
		t.Errorf("PersistStatus = %d, %v", dropped, err)
	}
	tr.mu.Lock()
	pending, dirty := len(tr.pending), len(tr.dirty)
	tr.mu.Unlock()
	if pending != 1 || dirty != 1 {
		t.Errorf("after a failed write: %d events and %d states queued, want 1 and 1", pending, dirty)
	}
}

// TestCrashChild is the process TestSIGKILL kills: it applies events to
// the store named by NETBOOTUI_BOOTSTATE_CRASH_DB as fast as it can and
// prints "flushed SEQ" after every batch on disk.
func TestCrashChild(t *testing.T) {
	path := os.Getenv("NETBOOTUI_BOOTSTATE_CRASH_DB")
	if path == "" {
		t.Skip("only run as the child of TestSIGKILL")
	}
	store, err := OpenStore(path)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	var tr *Tracker
	tr, err = New(Options{Store: store, HistoryPerNode: 50, FlushInterval: 5 * time.Millisecond, FlushEvents: 300,
		ProgressInterval: -1,
		afterFlush: func(seq uint64) {
			dropped, _ := tr.PersistStatus()
			fmt.Printf("flushed %d %d\n", seq, dropped)
		}})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(3)
	}
	deadline := time.Now().Add(40 * time.Second) // bounded even if nobody kills us
	for i := 0; time.Now().Before(deadline); i++ {
		node := fmt.Sprintf("n%02d", i%20)
		ev := fullBoot[i/20%len(fullBoot)]
		ev.Node = node
		tr.Apply(ev)
		if i%10 == 0 { // a busy cluster, not a flood: the store keeps up
			time.Sleep(time.Millisecond)
		}
	}
	os.Exit(4)
}

// TestSIGKILL kills a process in the middle of writing the store, ten
// times over the same file: the store must open, pass bbolt's check, hold
// consistent states and histories, and have lost at most the batch being
// written.
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	path := filepath.Join(t.TempDir(), "state.db")
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 10 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "NETBOOTUI_BOOTSTATE_CRASH_DB="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := 1 + rng.IntN(8) // batches
		var flushed uint64
		dropped := false // the child fell behind and did not persist some events
		sc := bufio.NewScanner(out)
		seen := 0
		timeout := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
		for seen < killAfter && sc.Scan() {
			line := sc.Text()
			if s, ok := strings.CutPrefix(line, "flushed "); ok {
				f := strings.Fields(s)
				flushed, _ = strconv.ParseUint(f[0], 10, 64)
				if len(f) > 1 && f[1] != "0" {
					dropped = true
				}
				seen++
			} else if strings.HasPrefix(line, "error") {
				t.Fatalf("round %d: child: %s", round, line)
			}
		}
		time.Sleep(time.Duration(rng.IntN(12000)) * time.Microsecond) // land inside a later write
		cmd.Process.Signal(syscall.SIGKILL)
		go func() {
			for sc.Scan() {
			}
		}()
		err = cmd.Wait()
		timeout.Stop()
		if seen < killAfter {
			t.Fatalf("round %d: child ended after %d batches: %v", round, seen, err)
		}
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child not killed by SIGKILL: %v", round, err)
		}

		store, err := OpenStore(path)
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		if err := store.Check(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		tr, err := New(Options{Store: store, HistoryPerNode: 50})
		if err != nil {
			t.Fatalf("round %d: load after SIGKILL: %v", round, err)
		}
		if tr.Seq() < flushed {
			t.Errorf("round %d: store ends at seq %d, but %d was reported on disk", round, tr.Seq(), flushed)
		}
		for _, st := range tr.All() {
			h := tr.History(st.Node, 0)
			if len(h) == 0 || len(h) > 50 {
				t.Errorf("round %d: %s has %d history events", round, st.Node, len(h))
				continue
			}
			for i := 1; i < len(h); i++ {
				if h[i].Seq <= h[i-1].Seq {
					t.Errorf("round %d: %s history out of order", round, st.Node)
				}
			}
			// State and history are written in one transaction.
			if last := h[len(h)-1]; (last.Seq != st.Seq && !dropped) || last.Node != st.Node || last.Seq > st.Seq {
				t.Errorf("round %d: %s state at seq %d, history ends at %d", round, st.Node, st.Seq, last.Seq)
			}
		}
		t.Logf("round %d: killed after %d batches (seq %d on disk, %d loaded)", round, killAfter, flushed, tr.Seq())
		tr.Close()
		store.Close()
	}
}
