package daemon_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
	"github.com/netbootui/netbootui/internal/image"
)

// inventory10k writes an inventory of 10,000 nodes in 10 groups.
func inventory10k(t testing.TB, dir string) string {
	var b strings.Builder
	b.WriteString("images:\n  compute: {kernel_args: quiet}\ngroups:\n")
	for g := range 10 {
		fmt.Fprintf(&b, "  g%d: {image: compute, kernel_args: \"console=ttyS0\"}\n", g)
	}
	b.WriteString("nodes:\n")
	for g := range 10 {
		fmt.Fprintf(&b, "  - name: r%d-n[0001-1000]\n    group: g%d\n    nics: [{mac: \"52:54:%02x:00:00:01\"}]\n", g, g, g)
	}
	p := filepath.Join(dir, "nodes.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// BenchmarkBootScript10k measures GET /boot/<mac>.ipxe over loopback HTTP
// against a 10,000-node inventory: the whole request (lookup, render, event)
// as a node sees it. It reports p50 and p99 latency.
func BenchmarkBootScript10k(b *testing.B) {
	dir := b.TempDir()
	inv := inventory10k(b, dir)
	src := map[string]string{}
	for _, f := range image.BootFiles {
		p := filepath.Join(dir, f)
		os.WriteFile(p, []byte(f), 0o644)
		src[f] = p
	}
	d := daemontest.Start(b, daemontest.Options{Dir: dir, Config: Config{InventoryPath: inv},
		Before: func(d *Daemon) error {
			_, err := d.ImportImage(ImportRequest{Image: "compute", Kernel: src["vmlinuz"], Initrd: src["initrd"], Rootfs: src["rootfs.squashfs"], Publish: true})
			return err
		}}).D
	base := "http://" + d.HTTPAddr().String() + "/boot/"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		g, i := rand.IntN(10), rand.IntN(1000)
		url := fmt.Sprintf("%s52:54:%02x:00:%02x:%02x.ipxe", base, g, (i+1)>>8, (i+1)&0xff)
		t0 := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %s", url, resp.Status)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
