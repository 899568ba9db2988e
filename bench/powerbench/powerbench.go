// Package powerbench holds what the power benchmarks (bench/ipmi,
// bench/redfish) share: starting many simulated BMCs, checking a bulk
// call's results and printing the comparison with an outside tool.
package powerbench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/netbootui/netbootui/internal/power"
)

// StartAll starts n BMCs with start; when one fails, those started are
// stopped. The returned stopAll stops them all (call it once, deferred).
func StartAll[T any](n int, start func(i int) (T, error), stop func(T)) (bmcs []T, stopAll func(), err error) {
	stopAll = func() {
		for _, b := range bmcs {
			stop(b)
		}
	}
	for i := range n {
		b, err := start(i)
		if err != nil {
			stopAll()
			return nil, func() {}, err
		}
		bmcs = append(bmcs, b)
	}
	return bmcs, stopAll, nil
}

// Failures describes the failed results ("" when none): how many and the
// first error.
func Failures(res []power.Result) string {
	bad, first := 0, ""
	for _, r := range res {
		if r.Err != nil {
			if bad == 0 {
				first = r.Err.Error()
			}
			bad++
		}
	}
	if bad == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d failed, first: %s", bad, len(res), first)
}

// Times are one comparison's measurements.
type Times struct {
	Ours, Warm  time.Duration // netbootui cold (sessions made inside) and with sessions open
	Loop, Xargs time.Duration // the tool in a sequential loop and under xargs -P
}

// Report prints the comparison with tool, with how many times faster
// netbootui (cold) is.
func Report(w io.Writer, conc int, tool string, t Times) {
	fmt.Fprintf(w, "  %-34s %9v\n", fmt.Sprintf("netbootui (concurrency %d, cold)", conc), t.Ours.Round(time.Millisecond))
	fmt.Fprintf(w, "  %-34s %9v\n", "netbootui (sessions open)", t.Warm.Round(time.Millisecond))
	fmt.Fprintf(w, "  %-34s %9v   ours %.1fx faster\n", tool+" sequential loop", t.Loop.Round(time.Millisecond), t.Loop.Seconds()/t.Ours.Seconds())
	fmt.Fprintf(w, "  %-34s %9v   ours %.1fx faster\n", fmt.Sprintf("xargs -P %d %s", conc, tool), t.Xargs.Round(time.Millisecond), t.Xargs.Seconds()/t.Ours.Seconds())
}

// Measure runs power status of targets twice through a fresh power seam
// over the built-in backends at concurrency conc: cold (sessions made
// inside the measurement) and warm (sessions open). Any failed call fails
// it.
func Measure(ctx context.Context, targets []power.Target, conc int, timeout time.Duration, reg *power.Registry) (cold, warm time.Duration, err error) {
	seam := power.New(power.Config{CallTimeout: timeout}, reg)
	defer seam.Close()
	for i, d := range []*time.Duration{&cold, &warm} {
		t0 := time.Now()
		res, err := seam.Bulk(ctx, targets, power.OpStatus, power.BulkOptions{Concurrency: conc})
		if err != nil {
			return 0, 0, err
		}
		*d = time.Since(t0)
		if bad := Failures(res); bad != "" {
			return 0, 0, fmt.Errorf("ours (%s): %s", []string{"cold", "sessions open"}[i], bad)
		}
	}
	return cold, warm, nil
}
