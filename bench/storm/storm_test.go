package storm

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
)

// TestMain makes the test binary a storm node worker when the storm
// starts it as one.
func TestMain(m *testing.M) {
	if os.Getenv(WorkerEnv) == "1" {
		if err := RunWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestStorm300: 300 simulated nodes (in two node processes) switched on at
// once all boot over TFTP and HTTP and check in, with no failure and
// nothing left behind in the daemon's process.
func TestStorm300(t *testing.T) {
	if testing.Short() {
		t.Skip("storm skipped under -short")
	}
	var out strings.Builder
	rep, err := Run(context.Background(), Config{Nodes: 300, Timeout: 90 * time.Second, DataDir: t.TempDir(),
		Sizes: [3]int64{64 << 10, 64 << 10, 128 << 10}, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log("\n" + out.String() + text.String())
	if rep.Booted != 300 || rep.Failed != 0 || len(rep.Failures) != 0 {
		t.Fatalf("booted %d, failed %d: %v", rep.Booted, rep.Failed, rep.Failures)
	}
	if got := strings.Join(rep.stageNames(), " "); got != "boot checkin initrd kernel nbp rootfs script" {
		t.Fatalf("stages %q", got)
	}
	for _, s := range rep.Stages {
		if s.Count != 300 || s.P50 <= 0 || s.P50 > s.P99 || s.P99 > s.Max {
			t.Errorf("stage %+v", s)
		}
	}
	if rep.AllDone <= 0 || rep.AllDone > 90*time.Second {
		t.Errorf("all done after %s", rep.AllDone)
	}
	// Nothing left behind in the daemon's process: the nodes ran elsewhere,
	// so goroutines and files are back where they were once the node
	// processes are gone.
	if rep.Before == nil || rep.After == nil {
		t.Fatal("no before/after snapshot of the daemon")
	}
	if rep.Before.OpenFiles < 5 || rep.Before.Goroutines < 5 {
		t.Fatalf("implausible snapshot %+v", *rep.Before)
	}
	if d := rep.After.Goroutines - rep.Before.Goroutines; d > 5 {
		t.Errorf("goroutines %d -> %d", rep.Before.Goroutines, rep.After.Goroutines)
	}
	if d := rep.After.OpenFiles - rep.Before.OpenFiles; d > 2 {
		t.Errorf("open files %d -> %d", rep.Before.OpenFiles, rep.After.OpenFiles)
	}
}

func TestDistribution(t *testing.T) {
	tests := []struct {
		ds            []time.Duration
		p50, p99, max time.Duration
	}{
		{[]time.Duration{5}, 5, 5, 5},
		{[]time.Duration{4, 1, 3, 2}, 2, 4, 4},
		{func() []time.Duration {
			var ds []time.Duration
			for i := 100; i >= 1; i-- {
				ds = append(ds, time.Duration(i))
			}
			return ds
		}(), 50, 99, 100},
	}
	for _, tc := range tests {
		s := distribution("x", tc.ds)
		if s.P50 != tc.p50 || s.P99 != tc.p99 || s.Max != tc.max || s.Count != len(tc.ds) {
			t.Errorf("%v: %+v", tc.ds, s)
		}
	}
}

// TestStormAgainstPeers: the same 100-node storm served by tftpd-hpa and
// nginx also completes, and the ratio is reported.
func TestStormAgainstPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("storm skipped under -short")
	}
	for _, tool := range PeerTools {
		requireTool(t, tool)
	}
	if os.Geteuid() != 0 {
		t.Skip("in.tftpd -s needs root")
	}
	rep, err := Run(context.Background(), Config{Nodes: 100, Timeout: 60 * time.Second, DataDir: t.TempDir(),
		Sizes: [3]int64{64 << 10, 64 << 10, 128 << 10}, Peers: true})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log("\n" + text.String())
	if rep.Failed != 0 || rep.Peer == nil || rep.Peer.Booted != 100 || rep.Peer.Failed != 0 || rep.Ratio == "" || rep.Ratio == "n/a" {
		t.Fatalf("netbootui %d/%d, peer %+v, ratio %q", rep.Booted, rep.Failed, rep.Peer, rep.Ratio)
	}
	if !strings.Contains(text.String(), "tftpd-hpa + nginx: booted 100, failed 0") || !strings.Contains(text.String(), "ratio "+rep.Ratio) {
		t.Fatalf("report:\n%s", text.String())
	}
}

// requireTool skips when tool is missing, unless NETBOOTUI_REQUIRE_TOOLS=1.
func requireTool(t *testing.T, tool string) {
	t.Helper()
	lab.RequireTools(t, tool)
}

// TestSummarize: the median and spread of the rounds' ratios; a round with
// a failed node (either run) makes the summary a failure with no median.
func TestSummarize(t *testing.T) {
	run := func(ours, peers time.Duration, failedOurs, failedPeers int) Report {
		return Report{AllDone: ours, Failed: failedOurs, Peer: &Report{AllDone: peers, Failed: failedPeers}}
	}
	tests := []struct {
		name             string
		reps             []Report
		failed           int
		median, min, max float64
		text             string
	}{
		{"odd", []Report{run(2*time.Second, 3*time.Second, 0, 0), run(4*time.Second, 2*time.Second, 0, 0), run(time.Second, time.Second, 0, 0)},
			0, 1, 0.5, 1.5, "ratio median 1.00 [min 0.50 - max 1.50] over 3 rounds"},
		{"even", []Report{run(time.Second, 2*time.Second, 0, 0), run(time.Second, 3*time.Second, 0, 0)},
			0, 2.5, 2, 3, "ratio median 2.50 [min 2.00 - max 3.00] over 2 rounds"},
		{"a failed node of ours", []Report{run(time.Second, 2*time.Second, 0, 0), run(time.Second, 2*time.Second, 1, 0)},
			1, 0, 0, 0, "FAIL: 1 of 2 rounds had failed nodes"},
		{"a failed node of the peers'", []Report{run(time.Second, 2*time.Second, 0, 3)},
			1, 0, 0, 0, "FAIL: 1 of 1 rounds had failed nodes"},
		{"no peers", []Report{{AllDone: time.Second}}, 0, 0, 0, 0, "round 1: netbootui 1s, tftpd-hpa + nginx -, ratio -"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize(tt.reps)
			if s.Failed != tt.failed || s.Median != tt.median || s.Min != tt.min || s.Max != tt.max {
				t.Errorf("summary %+v, want failed %d, median %v [%v - %v]", s, tt.failed, tt.median, tt.min, tt.max)
			}
			var b strings.Builder
			s.WriteText(&b)
			if !strings.Contains(b.String(), tt.text) {
				t.Errorf("text %q, want it to contain %q", b.String(), tt.text)
			}
		})
	}
}
