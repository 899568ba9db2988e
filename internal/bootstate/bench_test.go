package bootstate

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkApplyProgress is the HTTP server's call for every chunk of a
// rootfs: mostly throttled (state update only), a recorded event every
// ProgressInterval.
func BenchmarkApplyProgress(b *testing.B) {
	for _, c := range []struct {
		name     string
		store    bool
		interval time.Duration
	}{
		{"memory", false, 0},
		{"store", true, 0},
		{"memory/every-event-recorded", false, -1},
		{"store/every-event-recorded", true, -1},
	} {
		b.Run(c.name, func(b *testing.B) {
			opts := Options{ProgressInterval: c.interval, FlushInterval: 50 * time.Millisecond}
			if c.store {
				opts.Store = openStore(b, filepath.Join(b.TempDir(), "state.db"))
			}
			tr := newTracker(b, opts)
			sub := tr.Subscribe(16) // a console that never reads
			defer sub.Close()
			tr.Apply(Event{Node: "n01", Kind: KindFetch, Stage: StageRootfs, Path: "/g1/rootfs.squashfs", Total: 1 << 30})
			ev := Event{Node: "n01", Kind: KindProgress, Path: "/g1/rootfs.squashfs", Total: 1 << 30, Proto: "http"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				ev.Bytes = int64(i%16000) * 65536 // stays below Total: no completion event
				ev.Time = time.Time{}
				tr.Apply(ev)
			}
		})
	}
}

// BenchmarkApply1000Nodes applies a boot's mix of events to 1000 nodes
// from parallel goroutines.
func BenchmarkApply1000Nodes(b *testing.B) {
	for _, withStore := range []bool{false, true} {
		b.Run(fmt.Sprintf("store=%v", withStore), func(b *testing.B) {
			opts := Options{}
			if withStore {
				opts.Store = openStore(b, filepath.Join(b.TempDir(), "state.db"))
			}
			tr := newTracker(b, opts)
			names := make([]string, 1000)
			for i := range names {
				names[i] = fmt.Sprintf("n%04d", i)
			}
			mix := []Event{
				{Kind: KindFetch, Stage: StageConfig}, {Kind: KindFetch, Stage: StageKernel},
				{Kind: KindFetch, Stage: StageInitrd}, {Kind: KindFetch, Stage: StageRootfs, Total: 1 << 30},
			}
			for range 60 {
				mix = append(mix, Event{Kind: KindProgress, Bytes: 1 << 20, Total: 1 << 30})
			}
			mix = append(mix, Event{Kind: KindCheckin, Generation: "g1"})
			var next atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := next.Add(1) * 7919
				for pb.Next() {
					i++
					ev := mix[(i/1000)%uint64(len(mix))]
					ev.Node = names[i%1000]
					tr.Apply(ev)
				}
			})
		})
	}
}

// BenchmarkFlush measures the store's write rate: events per batch of 1000
// over 100 nodes.
func BenchmarkFlush(b *testing.B) {
	store := openStore(b, filepath.Join(b.TempDir(), "state.db"))
	tr := newTracker(b, Options{Store: store, FlushInterval: time.Hour, FlushEvents: 1 << 30, ProgressInterval: -1})
	b.ReportAllocs()
	for b.Loop() {
		for i := range 1000 {
			tr.Apply(Event{Node: fmt.Sprintf("n%03d", i%100), Kind: KindFetch, Stage: StageKernel, Path: "/g1/vmlinuz"})
		}
		if err := tr.flush(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
