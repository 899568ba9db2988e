package etcd_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/state/etcd"
	"github.com/netbootui/netbootui/internal/state/etcd/etcdtest"
)

// timed is a Persister that times each batch write.
type timed struct {
	bootstate.Persister
	mu    sync.Mutex
	times []time.Duration
	evs   int
}

func (p *timed) Write(b *bootstate.Batch) error {
	t0 := time.Now()
	err := p.Persister.Write(b)
	p.mu.Lock()
	p.times = append(p.times, time.Since(t0))
	p.evs += len(b.Events)
	p.mu.Unlock()
	return err
}

// checkinNodes is the fleet whose check-ins are written.
const checkinNodes = 10000

// checkinPeriod is how often every node reports (the agent's interval).
const checkinPeriod = 30 * time.Second

// BenchmarkCheckins10k: 10,000 nodes check in once each, as fast as the
// tracker takes them, through the etcd store (batches every 200 ms or 1000
// events, as a head writes them), on one member and on three (each write
// replicated to a quorum, every member fsyncing, all on this machine). It
// reports the check-ins written per second, the batch write latency (p50,
// p99), and the headroom: how many times the rate 10,000 nodes reporting
// every 30 s need (333/s) the store sustains.
func BenchmarkCheckins10k(b *testing.B) {
	benchRun(b, func(b *testing.B, members int, tr *bootstate.Tracker, p *timed) {
		t0 := time.Now()
		for n := range checkinNodes {
			tr.Apply(checkin(n))
		}
		if err := tr.Close(); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(t0)
		if p.evs != checkinNodes {
			b.Fatalf("%d events written, want %d", p.evs, checkinNodes)
		}
		rate := float64(checkinNodes) / elapsed.Seconds()
		need := float64(checkinNodes) / checkinPeriod.Seconds()
		p50, p99 := p.percentile(50), p.percentile(99)
		b.ReportMetric(rate, "checkins/s")
		b.ReportMetric(rate/need, "headroom")
		b.ReportMetric(float64(p50.Microseconds())/1000, "batch-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "batch-p99-ms")
		b.Logf("%d members: %d check-ins in %v (%d batches): %.0f/s; batch write p50 %v p99 %v; 10,000 nodes every 30 s need %.0f/s: headroom %.1fx",
			members, checkinNodes, elapsed.Round(time.Millisecond), len(p.times), rate, p50.Round(time.Millisecond), p99.Round(time.Millisecond), need, rate/need)
	})
}

// BenchmarkCheckinsPaced: 10,000 nodes reporting every 30 s, paced (333
// check-ins a second, spread over the nodes) for 6 s, through the tracker
// and the etcd store on one member and on three: the batch write latency a
// head sees in steady state (p50, p99, max), and the headroom as the share
// of each 200 ms flush interval the write takes.
func BenchmarkCheckinsPaced(b *testing.B) {
	const run = 6 * time.Second
	benchRun(b, func(b *testing.B, members int, tr *bootstate.Tracker, p *timed) {
		perTick := max(1, checkinNodes*20/int(checkinPeriod.Milliseconds())) // check-ins per 20 ms tick
		tick := time.NewTicker(20 * time.Millisecond)
		n := 0
		for end := time.Now().Add(run); time.Now().Before(end); <-tick.C {
			for range perTick {
				tr.Apply(checkin(n))
				n++
			}
		}
		tick.Stop()
		if err := tr.Close(); err != nil {
			b.Fatal(err)
		}
		p50, p99, worst := p.percentile(50), p.percentile(99), p.percentile(100)
		b.ReportMetric(float64(n)/run.Seconds(), "checkins/s")
		b.ReportMetric(float64(p50.Microseconds())/1000, "batch-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "batch-p99-ms")
		b.ReportMetric(float64(200*time.Millisecond)/float64(p99), "headroom")
		b.Logf("%d members: %d check-ins in %v (%.0f/s) in %d batches: write p50 %v p99 %v max %v; a batch every 200 ms: p99 uses %.0f%% of it (headroom %.1fx)",
			members, n, run, float64(n)/run.Seconds(), len(p.times), p50.Round(time.Microsecond*100), p99.Round(time.Microsecond*100),
			worst.Round(time.Millisecond), 100*float64(p99)/float64(200*time.Millisecond), float64(200*time.Millisecond)/float64(p99))
	})
}

// benchRun runs run once per iteration on a tracker whose store is a fresh
// prefix of an etcd of one and of three members, timing each batch write.
func benchRun(b *testing.B, run func(b *testing.B, members int, tr *bootstate.Tracker, p *timed)) {
	for _, members := range []int{1, 3} {
		b.Run(fmt.Sprintf("%d members", members), func(b *testing.B) {
			var urls []string
			for _, m := range etcdtest.Cluster(b, members) {
				urls = append(urls, m.ClientURL())
			}
			for i := range b.N {
				s, err := etcd.Open(etcdtest.Client(b, urls...), etcd.Options{Prefix: fmt.Sprintf("/bench%d/", i), Head: "h1", MaxTxnOps: etcd.MaxTxnOps})
				if err != nil {
					b.Fatal(err)
				}
				p := &timed{Persister: s.BootStates()}
				tr, err := bootstate.New(bootstate.Options{Store: p})
				if err != nil {
					b.Fatal(err)
				}
				run(b, members, tr, p)
				s.Close()
			}
		})
	}
}

// checkin is node n's check-in.
func checkin(n int) bootstate.Event {
	return bootstate.Event{Node: fmt.Sprintf("n%05d", n%checkinNodes), Kind: bootstate.KindCheckin, Generation: "g1", Remote: "10.1.0.1:4711"}
}

// percentile returns the pth percentile of the write times (100: the
// slowest).
func (p *timed) percentile(pc int) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := slices.Sorted(slices.Values(p.times))
	if len(t) == 0 {
		return 0
	}
	return t[min(len(t)-1, len(t)*pc/100)]
}
