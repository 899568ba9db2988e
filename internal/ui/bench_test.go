package ui

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
)

// benchModel is a console on 10,000 nodes, already loaded.
func benchModel(b *testing.B) (*Model, []daemon.NodeView) {
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

// BenchmarkFrame measures one frame under 1,000 events per second: every
// iteration is 100 ms of cluster time (100 events and the one coalesced
// node-list refresh the console allows) followed by a render.
func BenchmarkFrame(b *testing.B) {
	m, nodes := benchModel(b)
	evs := make([]bootstate.Event, 100)
	var seq uint64
	var render time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range evs {
			seq++
			evs[j] = bootstate.Event{Seq: seq, Time: epoch, Node: nodes[int(seq)%len(nodes)].Name,
				Kind: bootstate.KindProgress, Stage: bootstate.StageRootfs, Bytes: int64(seq), Total: 1 << 30}
		}
		m.events.add(evs)
		nodes[i%len(nodes)].State.Bytes += 4096
		m.Update(nodesMsg{nodes: nodes})
		t0 := time.Now()
		_ = m.Render()
		render += time.Since(t0)
	}
	b.ReportMetric(float64(render.Microseconds())/float64(b.N)/1000, "ms/render")
	b.ReportMetric(float64(rssKB())/1024, "MB-RSS")
}

// BenchmarkFilterKeystroke measures typing one character of a filter on
// 10,000 nodes, render included.
func BenchmarkFilterKeystroke(b *testing.B) {
	m, _ := benchModel(b)
	m.Update(keyMsg("/"))
	text := "n0[1000-4000]"
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := rune(text[i%len(text)])
		if i%len(text) == 0 {
			m.inputText = ""
		}
		m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
		_ = m.Render()
	}
	b.ReportMetric(float64(rssKB())/1024, "MB-RSS")
}

func rssKB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}
