package ui

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/apitype"
)

// benchModel is a console on 10,000 nodes, already loaded.
func benchModel(b testing.TB) (*Model, []apitype.NodeView) {
	nodes := testCluster(10000)
	for i := range nodes {
		nodes[i].Name = fmt.Sprintf("n%05d", i+1)
	}
	m := New(&fakeBackend{}, Options{Now: func() time.Time { return epoch }, NoStream: true})
	b.Cleanup(m.Close)
	m.Update(tea.WindowSizeMsg{Width: 160, Height: 50})
	m.Update(nodesMsg{nodes: nodes})
	return m, nodes
}

// frameLoad is 100 ms of a cluster sending 1,000 events per second: 100
// events through Update and the one coalesced node-list refresh the console
// allows in that time.
type frameLoad struct {
	m     *Model
	nodes []apitype.NodeView
	evs   []apitype.Event
	seq   uint64
	i     int
}

func newFrameLoad(m *Model, nodes []apitype.NodeView) *frameLoad {
	return &frameLoad{m: m, nodes: nodes, evs: make([]apitype.Event, 100)}
}

// step feeds one 100 ms of load to the model.
func (l *frameLoad) step() {
	evs := make([]apitype.Event, len(l.evs)) // the message owns its slice
	for j := range evs {
		l.seq++
		evs[j] = apitype.Event{Seq: l.seq, Time: epoch, Node: l.nodes[int(l.seq)%len(l.nodes)].Name,
			Kind: apitype.KindProgress, Stage: apitype.StageRootfs, Bytes: int64(l.seq), Total: 1 << 30}
	}
	l.m.Update(eventsMsg{stream: l.m.stream, evs: evs})
	l.nodes[l.i%len(l.nodes)].State.Bytes += 4096
	l.i++
	l.m.Update(nodesMsg{nodes: l.nodes})
}

// BenchmarkFrame measures one frame under 1,000 events per second: every
// iteration is 100 ms of cluster time (frameLoad.step) followed by a render.
func BenchmarkFrame(b *testing.B) {
	m, nodes := benchModel(b)
	l := newFrameLoad(m, nodes)
	var render time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.step()
		t0 := time.Now()
		_ = m.Render()
		render += time.Since(t0)
	}
	b.ReportMetric(float64(render.Microseconds())/float64(b.N)/1000, "ms/render")
	b.ReportMetric(float64(rssKB("VmRSS:"))/1024, "MB-RSS")
}

// BenchmarkFilterKeystroke measures typing one character of a filter on
// 10,000 nodes, render included.
func BenchmarkFilterKeystroke(b *testing.B) {
	m, _ := benchModel(b)
	m.Update(keyMsg("/"))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		filterKeystroke(m, i)
	}
	b.ReportMetric(float64(rssKB("VmRSS:"))/1024, "MB-RSS")
}

// benchFilter is what the keystroke benchmarks type, over and over.
const benchFilter = "n0[1000-4000]"

// filterKeystroke types the i-th character of benchFilter into the open
// filter and renders.
func filterKeystroke(m *Model, i int) {
	r := rune(benchFilter[i%len(benchFilter)])
	if i%len(benchFilter) == 0 {
		m.inputText = ""
	}
	m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
	_ = m.Render()
}

// TestConsole10kBudget checks the console against the budgets on
// 10,000 nodes with 1,000 events per second: a frame (100 ms of events and
// the refresh they cause, then a render) under 4 ms, a filter keystroke
// (render included) under 10 ms, peak RSS under 150 MB; it prints each
// mean, p50 and p99. A measurement, not part of the default suite: it runs
// with NETBOOTUI_BUDGETS=1 (see README.md), never under -race or -cover.
func TestConsole10kBudget(t *testing.T) {
	if raceEnabled || testing.CoverMode() != "" || testing.Short() {
		t.Skip("timing budget not checked under -race, -cover or -short")
	}
	if os.Getenv("NETBOOTUI_BUDGETS") != "1" {
		t.Skip("a measurement: run with NETBOOTUI_BUDGETS=1")
	}
	m, nodes := benchModel(t)
	l := newFrameLoad(m, nodes)
	measure := func(what string, n int, budget time.Duration, fn func(i int)) {
		fn(0) // warm up
		d := make([]time.Duration, n)
		var sum time.Duration
		for i := range d {
			t0 := time.Now()
			fn(i + 1)
			d[i] = time.Since(t0)
			sum += d[i]
		}
		slices.Sort(d)
		mean := sum / time.Duration(n)
		t.Logf("%-18s mean %8v  p50 %8v  p99 %8v  (budget %v, %d runs)", what, mean.Round(time.Microsecond),
			d[n/2].Round(time.Microsecond), d[n*99/100].Round(time.Microsecond), budget, n)
		if mean > budget {
			t.Errorf("%s: mean %v over the budget %v", what, mean, budget)
		}
	}
	measure("frame", 600, 4*time.Millisecond, func(int) { l.step(); _ = m.Render() })
	m.Update(keyMsg("/"))
	measure("filter keystroke", 520, 10*time.Millisecond, func(i int) { filterKeystroke(m, i) })
	peak := rssKB("VmHWM:")
	t.Logf("%-18s %d MB peak (budget 150 MB)", "RSS", peak/1024)
	if peak > 150*1024 {
		t.Errorf("peak RSS %d MB over the budget 150 MB", peak/1024)
	}
}

// rssKB reads a memory line of /proc/self/status (VmRSS:, VmHWM:) in KiB.
func rssKB(field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field) {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}
