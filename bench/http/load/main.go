// Command load is the HTTP load generator of bench/http/run.sh: C concurrent
// clients fetch one URL N times in all (bounded in count and by -timeout) and
// it prints the throughput and the latency percentiles as one line.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "URL to fetch")
	c := flag.Int("c", 1, "concurrent clients")
	n := flag.Int("n", 8, "requests in all")
	timeout := flag.Duration("timeout", 5*time.Minute, "stop after this long")
	label := flag.String("label", "", "label for the output line")
	flag.Parse()
	if *url == "" || *c < 1 || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: *c, DisableCompression: true}
	client := &http.Client{Transport: tr}
	var next atomic.Int64
	var bytes atomic.Int64
	var failures atomic.Int64
	lat := make([]time.Duration, *n)
	var wg sync.WaitGroup
	buf := make([][]byte, *c)
	start := time.Now()
	for w := range *c {
		buf[w] = make([]byte, 256<<10)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(*n) || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, "GET", *url, nil)
				resp, err := client.Do(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				got, err := io.CopyBuffer(io.Discard, resp.Body, buf[w])
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || (resp.ContentLength >= 0 && got != resp.ContentLength) {
					failures.Add(1)
				}
				bytes.Add(got)
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	done := lat[:min(int(next.Load()), *n)]
	sort.Slice(done, func(i, j int) bool { return done[i] < done[j] })
	pct := func(p float64) time.Duration {
		if len(done) == 0 {
			return 0
		}
		return done[min(len(done)-1, int(p*float64(len(done))))]
	}
	fmt.Printf("%-8s c=%-3d n=%-4d %8.1f MiB/s  p50 %-10v p99 %-10v failures %d\n", *label, *c, *n,
		float64(bytes.Load())/(1<<20)/el.Seconds(), pct(0.50).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), failures.Load())
	if failures.Load() > 0 {
		os.Exit(1)
	}
}
