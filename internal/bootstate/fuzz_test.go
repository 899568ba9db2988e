package bootstate

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseProcLocks(t *testing.T) {
	cases := []struct {
		name, in string
		want     []lockEntry
		err      string
	}{
		{"empty", "", nil, ""},
		{"kernel sample", "1: POSIX  ADVISORY  WRITE 1005 fd:01:2764855 0 EOF\n" +
			"2: FLOCK  ADVISORY  WRITE 4242 08:01:1179651 0 EOF\n" +
			"2: -> FLOCK  ADVISORY  WRITE 4343 08:01:1179651 0 EOF\n\n",
			[]lockEntry{
				{Class: "POSIX", PID: 1005, Major: 0xfd, Minor: 1, Inode: 2764855},
				{Class: "FLOCK", PID: 4242, Major: 8, Minor: 1, Inode: 1179651},
				{Class: "FLOCK", PID: 4343, Major: 8, Minor: 1, Inode: 1179651, Waiter: true},
			}, ""},
		{"short line", "1: FLOCK ADVISORY\n", nil, "/proc/locks:1: want"},
		{"no ordinal", "FLOCK ADVISORY WRITE 1 08:01:2 0 EOF\n", nil, "/proc/locks:1: want"},
		{"bad pid", "1: FLOCK ADVISORY WRITE x 08:01:2 0 EOF\n", nil, `/proc/locks:1: bad pid "x"`},
		{"negative pid", "1: FLOCK ADVISORY WRITE -4 08:01:2 0 EOF\n", nil, `/proc/locks:1: bad pid "-4"`},
		{"open file description lock", "1: OFDLCK ADVISORY  WRITE -1 fe:00:10150626 0 EOF\n2: FLOCK  ADVISORY  WRITE 19688 fe:00:10011554 0 EOF\n",
			[]lockEntry{
				{Class: "OFDLCK", PID: -1, Major: 0xfe, Minor: 0, Inode: 10150626},
				{Class: "FLOCK", PID: 19688, Major: 0xfe, Minor: 0, Inode: 10011554},
			}, ""},
		{"bad device", "1: FLOCK ADVISORY WRITE 1 08:01 0 EOF\n", nil, `/proc/locks:1: bad device:inode "08:01"`},
		{"bad major", "2: FLOCK ADVISORY WRITE 1 zz:01:2 0 EOF\n", nil, `/proc/locks:1: bad major "zz"`},
		{"bad minor on line 2", "1: FLOCK ADVISORY WRITE 1 08:01:2 0 EOF\n2: FLOCK ADVISORY WRITE 1 08:g1:2 0 EOF\n", nil, `/proc/locks:2: bad minor "g1"`},
		{"bad inode", "1: FLOCK ADVISORY WRITE 1 08:01:ff 0 EOF\n", nil, `/proc/locks:1: bad inode "ff"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseProcLocks(strings.NewReader(c.in))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

func TestLockHolder(t *testing.T) {
	path := t.TempDir() + "/f"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if pid := lockHolder(path); pid != 0 {
		t.Errorf("unlocked file held by %d", pid)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/proc/locks"); err != nil {
		t.Skip("no /proc/locks")
	}
	if pid := lockHolder(path); pid != os.Getpid() {
		t.Errorf("lockHolder = %d, want %d", pid, os.Getpid())
	}
}

func FuzzParseProcLocks(f *testing.F) {
	f.Add("1: FLOCK  ADVISORY  WRITE 4242 08:01:1179651 0 EOF\n1: -> FLOCK  ADVISORY  WRITE 1 08:01:1 0 EOF\n")
	f.Add("1: POSIX  ADVISORY  READ 1005 fd:01:2764855 128 128\n")
	f.Add("x")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseProcLocks(strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "/proc/locks:") {
				t.Fatalf("error does not name the line: %v", err)
			}
			return
		}
		// What parsed renders back to text that parses the same.
		var b strings.Builder
		for _, e := range got {
			w := ""
			if e.Waiter {
				w = "-> "
			}
			fmt.Fprintf(&b, "1: %s%s ADVISORY WRITE %d %x:%x:%d 0 EOF\n", w, e.Class, e.PID, e.Major, e.Minor, e.Inode)
		}
		again, err := parseProcLocks(strings.NewReader(b.String()))
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("round trip: %+v, %v; first %+v", again, err, got)
		}
	})
}

// FuzzApply drives the state machine with arbitrary event sequences and
// checks its invariants after every event.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 1, 0, 0, 2, 0, 0, 3, 0, 1, 0, 0, 2, 0, 0})
	f.Add([]byte{3, 0, 2, 0, 4, 0, 4, 0, 0, 6, 0, 0, 5, 0, 0, 1, 0, 0})
	f.Add([]byte{3, 0, 9, 3, 0, 10, 0, 5, 0, 8, 0, 1, 7, 0, 0})
	kinds := []Kind{KindFetch, KindProgress, KindCheckin, KindPower, KindFail, KindStall, KindMark, KindInfo, KindDenied, KindUnknown, "bogus"}
	stages := []Stage{StageNBP, StageConfig, StageKernel, StageInitrd, StageRootfs, "", StageBooted, StageStalled, "weird"}
	msgs := []string{"", ActionOn, ActionOff, ActionCycle, ActionReset, ActionSoft, "reason", PowerOn, PowerOff, "junk", ""}
	f.Fuzz(func(t *testing.T, data []byte) {
		clk := newFakeClock()
		tr, err := New(Options{Clock: clk.Now, HistoryPerNode: 8, GlobalHistory: 16, StallTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		var lastSeq uint64
		for len(data) >= 3 {
			b0, b1, b2 := data[0], data[1], data[2]
			data = data[3:]
			clk.Advance(time.Duration(b2) * time.Second)
			ev := Event{Node: "n1", Kind: kinds[int(b0)%len(kinds)], Stage: stages[int(b1)%len(stages)],
				Message: msgs[int(b2)%len(msgs)], Power: msgs[int(b1)%len(msgs)], Bytes: int64(b1), Total: int64(b2)}
			if b0&0x80 != 0 {
				ev.Error = "err"
			}
			if b0&0x40 != 0 {
				ev.Generation = "g1"
			}
			if b1&0x80 != 0 {
				tr.checkStalls(clk.Now())
			}
			st := tr.Apply(ev)
			if st.Seq < lastSeq {
				t.Fatalf("seq went back from %d to %d", lastSeq, st.Seq)
			}
			lastSeq = st.Seq
			if (st.Stage == StageFailed || st.Stage == StageStalled) != (st.Error != "") {
				t.Fatalf("stage %s with error %q after %+v", st.Stage, st.Error, ev)
			}
			if st.Stage != StageUnknown && (len(st.Timeline) == 0 || st.Timeline[len(st.Timeline)-1].Stage != st.Stage) {
				t.Fatalf("stage %s but timeline %+v after %+v", st.Stage, st.Timeline, ev)
			}
			if len(st.Timeline) > maxTimeline {
				t.Fatalf("timeline of %d marks", len(st.Timeline))
			}
			for i := 1; i < len(st.Timeline); i++ {
				if st.Timeline[i].Stage == st.Timeline[i-1].Stage || st.Timeline[i].Time.Before(st.Timeline[i-1].Time) {
					t.Fatalf("timeline repeats or goes back: %+v", st.Timeline)
				}
			}
			switch st.Power {
			case PowerOn, PowerOff, PowerUnknown:
			default:
				t.Fatalf("power %q", st.Power)
			}
			if dirty, reasons := st.Dirty("g2", 100); dirty != (len(reasons) > 0) {
				t.Fatalf("Dirty %v with reasons %q", dirty, reasons)
			}
			if h := tr.History("n1", 0); len(h) > 8 || (len(h) > 0 && h[len(h)-1].Seq != st.Seq) {
				t.Fatalf("history %+v for state at seq %d", h, st.Seq)
			}
		}
	})
}
