package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
)

func TestRecordReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"power on", "power off", "edit node n1"} {
		if err := l.Record(Entry{Who: "uid 0 (root)", Action: a, Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	if r := l.Recent(10); len(r) != 2 || r[1].Action != "edit node n1" || r[0].Time.IsZero() {
		t.Fatalf("recent %+v", r)
	}
	l.Close()
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
	// A torn last line (a crash mid-write) is skipped, the rest loads.
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026`)
	f.Close()
	l, err = Open(p, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r := l.Recent(0); len(r) != 3 || r[0].Action != "power on" {
		t.Fatalf("after reopen %+v", r)
	}
}

// TestTornLineThenRecord: an entry recorded after a torn last line is kept
// across a restart.
func TestTornLineThenRecord(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	os.WriteFile(p, []byte(`{"who":"a","action":"power on","result":"ok"}`+"\n"+`{"time":"2026`), 0o600)
	l, err := Open(p, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Record(Entry{Who: "b", Action: "power off", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = Open(p, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r := l.Recent(0); len(r) != 2 || r[1].Action != "power off" {
		t.Fatalf("after reopen %+v", r)
	}
}

// TestFailsClosedOnFullDisk fills a small tmpfs under the log: every entry
// recorded while Ready said yes is on disk after a restart, Ready says no
// (naming the cause) before the reserved room runs out, and says yes again
// once room is made.
func TestFailsClosedOnFullDisk(t *testing.T) {
	dir := lab.Tmpfs(t, 1<<20)
	p := filepath.Join(dir, "audit.log")
	l, err := Open(p, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Ready(); err != nil {
		t.Fatalf("ready on an empty disk: %v", err)
	}
	filler := lab.FillDisk(t, dir)
	recorded := 0
	var notReady error
	for i := 0; i < 1000; i++ {
		if notReady = l.Ready(); notReady != nil {
			break
		}
		e := Entry{Who: "uid 0 (root)", Action: "power cycle", Target: strings.Repeat("n", 100), Result: "ok"}
		if err := l.Record(e); err != nil {
			t.Fatalf("entry %d failed although the log was ready: %v", i, err)
		}
		recorded++
	}
	if notReady == nil || !strings.Contains(notReady.Error(), "no space left on device") || !strings.Contains(notReady.Error(), p) {
		t.Fatalf("after %d entries on a full disk, Ready: %v", recorded, notReady)
	}
	t.Logf("%d entries recorded after the disk filled", recorded)
	if recorded == 0 || recorded*200 > 2*Reserve {
		t.Fatalf("%d entries fit in the reserve", recorded)
	}
	// An entry recorded anyway does not fit: it is refused, and whatever
	// part of it was written does not spoil the entries after it.
	if err := l.Record(Entry{Who: "x", Action: "too big", Details: []string{strings.Repeat("d", 2*Reserve)}}); err == nil {
		t.Fatal("an entry larger than the reserve was written on a full disk")
	}
	l.Close()
	l, err = Open(p, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if n := len(l.Recent(0)); n != recorded {
		t.Fatalf("%d entries on disk, %d recorded", n, recorded)
	}
	if err := l.Ready(); err == nil {
		t.Fatal("ready after a restart on a full disk")
	}
	os.Remove(filler)
	if err := l.Ready(); err != nil {
		t.Fatalf("not ready once room was made: %v", err)
	}
	if err := l.Record(Entry{Who: "x", Action: "after", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if l, err = Open(p, 1000); err != nil {
		t.Fatal(err)
	}
	if r := l.Recent(0); len(r) != recorded+1 || r[len(r)-1].Action != "after" {
		data, _ := os.ReadFile(p)
		for i, line := range strings.Split(string(data), "\n") {
			t.Logf("line %d: %d bytes %.60q", i, len(line), line)
		}
		t.Fatalf("after room was made: %d entries, last %+v", len(r), r[len(r)-1])
	}
}

// TestFollow: Follow returns the newest entries and then streams each one
// recorded; a subscriber that reads nothing loses entries (Dropped) and
// never holds Record up; Close and Log.Close close C.
func TestFollow(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.log"), 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"a", "b", "c"} {
		l.Record(Entry{Who: "w", Action: a, Result: "ok"})
	}
	hist, sub := l.Follow(2, 4)
	if len(hist) != 2 || hist[0].Action != "b" || hist[1].Action != "c" {
		t.Fatalf("history %+v", hist)
	}
	_, slow := l.Follow(0, 1)
	l.Record(Entry{Who: "w", Action: "d", Result: "ok"})
	if e := <-sub.C; e.Action != "d" || e.Time.IsZero() {
		t.Errorf("streamed %+v", e)
	}
	done := make(chan struct{})
	go func() {
		for range 50 {
			l.Record(Entry{Who: "w", Action: "x", Result: "ok"})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Record blocked behind subscribers that read nothing")
	}
	if got := slow.Dropped(); got != 50 { // d filled its buffer of 1
		t.Errorf("slow subscriber dropped %d, want 50", got)
	}
	sub.Close()
	sub.Close()
	for range sub.C {
	}
	l.Close()
	for range slow.C { // closed by Log.Close
	}
	if _, s := l.Follow(1, 1); !isClosed(s.C) {
		t.Error("a subscription to a closed log is open")
	}
}

func isClosed(c <-chan Entry) bool {
	select {
	case _, ok := <-c:
		return !ok
	default:
		return false
	}
}

// All returns every entry of the file, past the newest that Recent keeps;
// Append adds entries with their own times and one sync, readable after a
// reopen.
func TestAllAndAppend(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(p, 2)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := l.Append([]Entry{{Time: old, Who: "a", Action: "one", Result: "ok"}, {Time: old, Who: "a", Action: "two", Result: "ok"}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"three", "four", "five"} {
		if err := l.Record(Entry{Who: "b", Action: a, Result: "ok"}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := l.All()
	if err != nil || len(all) != 5 || all[0].Action != "one" || !all[0].Time.Equal(old) || all[4].Action != "five" {
		t.Fatalf("All: %+v %v", all, err)
	}
	if r := l.Recent(0); len(r) != 2 || r[1].Action != "five" {
		t.Fatalf("Recent: %+v", r)
	}
	l.Close()
	l, err = Open(p, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r := l.Recent(0); len(r) != 5 || r[1].Action != "two" {
		t.Fatalf("after reopen: %+v", r)
	}
}
