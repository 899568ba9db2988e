package pxe

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/inventory"
)

// inventory10k builds a 10,000-node cluster the way the loader would leave
// it: four groups (BIOS/UEFI x iPXE/pxelinux), per-node args on some, an
// override on one node in 500, and one node in 100 with no generation.
func inventory10k() []BootParams {
	const n = 10000
	out := make([]BootParams, 0, n)
	for i := 0; i < n; i++ {
		arch := inventory.ArchBIOS
		if i%2 == 1 {
			arch = inventory.ArchUEFI
		}
		loader := inventory.LoaderIPXE
		if i%4 >= 2 {
			loader = inventory.LoaderPxelinux
		}
		name := fmt.Sprintf("n%05d", i+1)
		node := &inventory.Node{
			Name:  name,
			Group: fmt.Sprintf("rack%02d", i/400),
			NICs: []inventory.NIC{{Name: "eno1", Boot: true,
				MAC: net.HardwareAddr{0x52, 0x54, 0, byte(i >> 16), byte(i >> 8), byte(i)}}},
			Arch: arch, Loader: loader, Image: "rocky9",
			KernelArgs: "console=ttyS0,115200n8",
		}
		if i%10 == 0 {
			node.KernelArgs += " nvme_core.io_timeout=255 mitigations=off"
		}
		if i%500 == 7 {
			node.Override = inventory.Override{
				IPXE:     "#!ipxe\nkernel {{.KernelURL}} {{.Cmdline}} debug || goto f\ninitrd --name initrd {{.InitrdURL}} || goto f\nboot || goto f\n:f\nshell\n",
				Pxelinux: "DEFAULT d\nLABEL d\n  KERNEL {{.KernelPath}}\n  INITRD {{.InitrdPath}}\n  APPEND {{.Cmdline}} debug\n",
			}
		}
		gen := "g7c1e0a9b3d52"
		if i%100 == 99 {
			gen = ""
		}
		out = append(out, paramsFor(node, gen))
	}
	return out
}

// renderAll renders both formats of every node and returns the bytes made.
func renderAll(b testing.TB, r *Renderer, nodes []BootParams) int {
	total := 0
	for _, p := range nodes {
		a, err := r.IPXE(p)
		if err != nil {
			b.Fatal(err)
		}
		c, err := r.Pxelinux(p)
		if err != nil {
			b.Fatal(err)
		}
		total += len(a) + len(c)
	}
	return total
}

// BenchmarkRender10k renders every boot entry, both formats, of a
// 10,000-node inventory per iteration (budget: 100 ms).
func BenchmarkRender10k(b *testing.B) {
	r := mustRenderer(b)
	nodes := inventory10k()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		renderAll(b, r, nodes)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/10k-nodes")
}

// BenchmarkRenderOne renders one node's iPXE script and reports the p50 and
// p99 of single calls (goal: p99 under 1 ms).
func BenchmarkRenderOne(b *testing.B) {
	for _, format := range []string{FormatIPXE, FormatPxelinux} {
		b.Run(format, func(b *testing.B) {
			r := mustRenderer(b)
			p := inventory10k()[0]
			lat := make([]time.Duration, 0, 1<<20)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				if _, err := r.Render(format, p); err != nil {
					b.Fatal(err)
				}
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(t0))
				}
			}
			b.StopTimer()
			p50, p99 := percentiles(lat)
			b.ReportMetric(float64(p50.Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(p99.Nanoseconds()), "p99-ns")
		})
	}
}

// threadCPU is the CPU time (user+system) the calling OS thread has used.
func threadCPU(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rusageThread is RUSAGE_THREAD (Linux).
const rusageThread = 1

func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// TestRender10kBudget measures the renderer against its budget: all entries
// (both formats) of a 10,000-node inventory in under 100 ms, and one render's
// p99 under 1 ms. It is a measurement, not part of the default suite: it runs
// only with NETBOOTUI_BUDGETS=1 (see bench/README.md), never under -race or
// -cover, where timing means nothing.
func TestRender10kBudget(t *testing.T) {
	if raceEnabled || testing.CoverMode() != "" || testing.Short() {
		t.Skip("timing budget not checked under -race, -cover or -short")
	}
	if os.Getenv("NETBOOTUI_BUDGETS") != "1" {
		t.Skip("a measurement: run with NETBOOTUI_BUDGETS=1")
	}
	r := mustRenderer(t)
	nodes := inventory10k()
	renderAll(t, r, nodes) // warm the override cache and buffer pool
	// The suite runs packages in parallel on 2 cores, so wall time measures
	// the neighbours as much as this code. The budget is checked on the
	// CPU time of the rendering thread (best of 5); wall time is logged.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	bestCPU, bestWall := time.Hour, time.Hour
	var bytes int
	for i := 0; i < 5; i++ {
		c0, w0 := threadCPU(t), time.Now()
		bytes = renderAll(t, r, nodes)
		if d := time.Since(w0); d < bestWall {
			bestWall = d
		}
		if d := threadCPU(t) - c0; d < bestCPU {
			bestCPU = d
		}
	}
	t.Logf("10,000 nodes x 2 formats (%d bytes): best CPU %v, best wall %v", bytes, bestCPU, bestWall)
	if bestCPU > 100*time.Millisecond {
		t.Errorf("rendering 10,000 nodes took %v of CPU, budget 100ms", bestCPU)
	}
	lat := make([]time.Duration, 0, 20000)
	for i := 0; i < 20000; i++ {
		p := nodes[i%len(nodes)]
		t0 := time.Now()
		if _, err := r.Render(FormatFor(p.Node), p); err != nil {
			t.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	p50, p99 := percentiles(lat)
	t.Logf("one render: p50 %v, p99 %v", p50, p99)
	if p99 > time.Millisecond {
		t.Errorf("one render p99 %v, goal 1ms", p99)
	}
}
