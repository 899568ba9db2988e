// Command redfish-bench measures netbootui's Redfish fan-out against
// redfishtool on loopback simulated Redfish BMCs (redfishsim). Run it
// through run.sh; see README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/netbootui/netbootui/bench/powerbench"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/redfish"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
)

const password = "bench-Pa55"

func main() {
	n := flag.Int("n", 200, "simulated Redfish BMCs")
	conc := flag.Int("conc", 64, "concurrency")
	timeout := flag.Duration("timeout", 5*time.Second, "per-call deadline")
	flag.Parse()
	if err := run(*n, *conc, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: redfish-bench:", err)
		os.Exit(1)
	}
}

func run(n, conc int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 14*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "netbootui-redfish-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := redfishsim.NewCA()
	if err != nil {
		return err
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := ca.WriteFile(caFile); err != nil {
		return err
	}
	t0 := time.Now()
	sims, stopAll, err := powerbench.StartAll(n, func(i int) (*redfishsim.Sim, error) {
		return redfishsim.Start(redfishsim.Options{Vendor: redfishsim.Vendors[i%len(redfishsim.Vendors)], Password: password, CA: ca})
	}, func(s *redfishsim.Sim) { _ = s.Close() })
	if err != nil {
		return err
	}
	defer stopAll()
	fmt.Printf("started %d simulated Redfish BMCs (%s in turn) in %v\n", n, vendorNames(), time.Since(t0).Round(time.Millisecond))
	targets := make([]power.Target, n)
	for i, s := range sims {
		targets[i] = power.Target{Node: fmt.Sprintf("n%03d", i), Protocol: redfish.Name, Host: "127.0.0.1", Port: s.Port(), User: "root",
			Password: power.NewSecret(password), Options: redfish.BMCOptions{System: s.SystemPath(0), CA: caFile}}
	}

	// ours: a fresh power seam (sessions made inside the measurement)
	ours, warm, err := powerbench.Measure(ctx, targets, conc, timeout, backends.Registry())
	if err != nil {
		return err
	}

	// redfishtool: the system's PowerState, Basic authentication over
	// HTTPS (it does not check certificates).
	rtArgs := func(addr, id string) []string {
		return []string{"-r", addr, "-u", "root", "-p", password, "-S", "Always", "-T", "30", "-P", "PowerState", "Systems", "-I", id, "get"}
	}
	t0 = time.Now()
	for _, s := range sims {
		out, err := exec.CommandContext(ctx, "redfishtool", rtArgs(s.Addr(), systemID(s))...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"PowerState"`) {
			return fmt.Errorf("redfishtool loop (%s): %v %s", s.Addr(), err, out)
		}
	}
	loop := time.Since(t0)

	var list strings.Builder
	for _, s := range sims {
		fmt.Fprintf(&list, "%s %s\n", s.Addr(), systemID(s))
	}
	t0 = time.Now()
	// Each line is "ADDR ID"; sh puts them in $1 $2 (the password comes
	// from the environment, not the command line xargs would show).
	x := exec.CommandContext(ctx, "xargs", "-P", fmt.Sprint(conc), "-L", "1", "sh", "-c",
		`exec redfishtool -r "$1" -u root -p "$BENCH_PW" -S Always -T 30 -P PowerState Systems -I "$2" get`, "sh")
	x.Env = append(os.Environ(), "BENCH_PW="+password)
	x.Stdin = strings.NewReader(list.String())
	out, err := x.CombinedOutput()
	if got := strings.Count(string(out), `"PowerState"`); err != nil || got != n {
		return fmt.Errorf("xargs redfishtool: %v (%d answers of %d)\n%s", err, got, n, tail(string(out)))
	}
	xargs := time.Since(t0)

	fmt.Printf("power status of %d Redfish BMCs (%s)\n", n, time.Now().UTC().Format("2006-01-02"))
	powerbench.Report(os.Stdout, conc, "redfishtool", powerbench.Times{Ours: ours, Warm: warm, Loop: loop, Xargs: xargs})
	return nil
}

func systemID(s *redfishsim.Sim) string {
	return strings.TrimPrefix(s.SystemPath(0), "/redfish/v1/Systems/")
}

func vendorNames() string {
	v := make([]string, len(redfishsim.Vendors))
	for i, x := range redfishsim.Vendors {
		v[i] = string(x)
	}
	return strings.Join(v, ", ")
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}
