// Command ipmi-bench measures netbootui's IPMI fan-out against ipmitool on
// loopback ipmi_sim BMCs. Run it through run.sh; see README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/bench/powerbench"
	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
)

func main() {
	n := flag.Int("n", 200, "ipmi_sim BMCs")
	sinks := flag.Int("sinks", 100, "silent BMCs (UDP sinks) in the fault run")
	conc := flag.Int("conc", 64, "concurrency")
	timeout := flag.Duration("timeout", 5*time.Second, "per-call deadline")
	flag.Parse()
	if err := run(*n, *sinks, *conc, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "ipmi-bench:", err)
		os.Exit(1)
	}
}

func run(n, nsinks, conc int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "netbootui-ipmi-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t0 := time.Now()
	sims, stopAll, err := powerbench.StartAll(n, func(i int) (*ipmisim.Sim, error) {
		return ipmisim.Start(ctx, ipmisim.Options{Dir: fmt.Sprintf("%s/bmc%03d", dir, i)})
	}, func(s *ipmisim.Sim) { _ = s.Stop() })
	if err != nil {
		return err
	}
	defer stopAll()
	fmt.Printf("started %d ipmi_sim BMCs in %v\n", n, time.Since(t0).Round(time.Millisecond))
	target := func(node string, port int) power.Target {
		return power.Target{Node: node, Protocol: ipmi.Name, Host: "127.0.0.1", Port: port, User: "admin",
			Password: power.NewSecret("secret"), Options: ipmi.BMCOptions{CipherSuites: []int{3}}}
	}
	targets := make([]power.Target, n)
	for i, s := range sims {
		targets[i] = target(fmt.Sprintf("n%03d", i), s.Port())
	}

	// ours: a fresh power seam over IPMI (sessions opened inside the measurement)
	ours, warm, err := powerbench.Measure(ctx, targets, conc, timeout, backends.Registry())
	if err != nil {
		return err
	}

	args := func(s *ipmisim.Sim) []string {
		return []string{"-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", strconv.Itoa(s.Port()), "-U", "admin", "-P", "secret", "chassis", "power", "status"}
	}
	t0 = time.Now()
	for _, s := range sims {
		if out, err := exec.CommandContext(ctx, "ipmitool", args(s)...).CombinedOutput(); err != nil || !strings.Contains(string(out), "Chassis Power is") {
			return fmt.Errorf("ipmitool loop: %v %s", err, out)
		}
	}
	loop := time.Since(t0)

	var list strings.Builder
	for _, s := range sims {
		fmt.Fprintln(&list, s.Port())
	}
	t0 = time.Now()
	x := exec.CommandContext(ctx, "xargs", "-P", strconv.Itoa(conc), "-I{}", "ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", "{}", "-U", "admin", "-P", "secret", "chassis", "power", "status")
	x.Stdin = strings.NewReader(list.String())
	out, err := x.CombinedOutput()
	if err != nil || strings.Count(string(out), "Chassis Power is") != n {
		return fmt.Errorf("xargs ipmitool: %v (%d answers)", err, strings.Count(string(out), "Chassis Power is"))
	}
	xargs := time.Since(t0)

	fmt.Printf("power status of %d BMCs\n", n)
	powerbench.Report(os.Stdout, conc, "ipmitool", powerbench.Times{Ours: ours, Warm: warm, Loop: loop, Xargs: xargs})

	// fault run: n answering + nsinks silent
	var conns []net.PacketConn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	all := append([]power.Target(nil), targets...)
	for i := range nsinks {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		conns = append(conns, c)
		go func() {
			b := make([]byte, 2048)
			for {
				if _, _, err := c.ReadFrom(b); err != nil {
					return
				}
			}
		}()
		all = append(all, target(fmt.Sprintf("s%03d", i), c.LocalAddr().(*net.UDPAddr).Port))
	}
	pool := power.New(power.Config{CallTimeout: timeout}, backends.Registry())
	defer pool.Close()
	var mu sync.Mutex
	var okN, timeoutN int
	t0 = time.Now()
	if _, err := pool.Bulk(ctx, all, power.OpStatus, power.BulkOptions{Concurrency: conc, OnResult: func(r power.Result) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Err == nil:
			okN++
		case strings.Contains(r.Err.Error(), "no answer within"):
			timeoutN++
		}
	}}); err != nil {
		return err
	}
	total := time.Since(t0)
	verdict := "within"
	if total > timeout+time.Second {
		verdict = "OVER"
	}
	fmt.Printf("%d BMCs of which %d never answer (concurrency %d, deadline %v)\n", len(all), nsinks, conc, timeout)
	fmt.Printf("  total %v (%s deadline + 1s = %v); %d answered, %d timed out\n", total.Round(time.Millisecond), verdict, timeout+time.Second, okN, timeoutN)
	if okN != n || timeoutN != nsinks {
		return fmt.Errorf("fault run: %d ok, %d timeouts", okN, timeoutN)
	}
	return nil
}
