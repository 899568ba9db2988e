package ipmi_test

import (
	"context"
	"errors"
	"github.com/netbootui/netbootui/internal/lab"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/ipmi"
	"github.com/netbootui/netbootui/internal/ipmi/ipmisim"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/sol"
)

// startSerialConsole plays a node's serial port for ipmi_sim's SOL: a
// banner, then "echo: LINE" for every line it receives.
func startSerialConsole(t *testing.T) *ipmisim.SerialPort {
	t.Helper()
	sp, err := ipmisim.StartSerialPort("node login banner", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// TestSOLAgainstIpmiSim: a SOL session through ipmi_sim to a TCP "serial
// port": the banner and answers come out, typed lines go in, and "~." at the
// start of a line ends the session with nothing after it sent.
func TestSOLAgainstIpmiSim(t *testing.T) {
	requireTool(t, "ipmi_sim")
	con := startSerialConsole(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim, err := ipmisim.Start(ctx, ipmisim.Options{Dir: t.TempDir(), Password: simPassword, SOLPort: con.Port()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	p := newPool(t, power.Config{CallTimeout: 5 * time.Second})
	pr, pw := io.Pipe()
	esc := sol.NewEscapeReader(pr)
	var out lab.Buffer
	active := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Console(ctx, simTarget(sim, "n01"), esc, &out, power.ConsoleOptions{OnActive: func() { close(active) }})
	}()
	select {
	case <-active:
	case err := <-done:
		t.Fatalf("SOL ended before activation: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("SOL not active within 15s")
	}
	for _, line := range []string{"hello node", "uname -a"} {
		if _, err := pw.Write([]byte(line + "\r")); err != nil {
			t.Fatal(err)
		}
		lab.Eventually(t, "echo of "+line, 10*time.Second, func() bool { return strings.Contains(out.String(), "echo: "+line) })
	}
	if !strings.Contains(con.Received(), "hello node\r") {
		t.Errorf("serial port got %q", con.Received())
	}
	// The escape: the session ends, "secret" never reaches the node.
	go pw.Write([]byte("~.secret\r"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("SOL after escape: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("escape did not end the session")
	}
	if !esc.Escaped() {
		t.Error("EscapeReader does not report the escape")
	}
	time.Sleep(300 * time.Millisecond)
	if strings.Contains(con.Received(), "secret") {
		t.Errorf("bytes after the escape reached the node: %q", con.Received())
	}
	// The payload was deactivated: a second session activates at once.
	ctx2, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	var out2 lab.Buffer
	err = p.Console(ctx2, simTarget(sim, "n01"), strings.NewReader("again\r"), &out2, power.ConsoleOptions{})
	if err != nil {
		t.Fatalf("second SOL session: %v", err)
	}
}

func TestSOLErrors(t *testing.T) {
	requireTool(t, "ipmi_sim")
	sim := startSim(t)
	p := newPool(t, power.Config{CallTimeout: 2 * time.Second})
	tests := []struct {
		name string
		t    power.Target
		kind error
		text string
	}{
		{"wrong password", withSuites(tgt("n1", sim.Port(), "", "wrong-pass"), 3),
			ipmi.ErrAuth, "authentication failed for user admin"},
		{"port closed", withSuites(tgt("n2", closedUDPPort(t), "", "x"), 3),
			nil, "BMC 127.0.0.1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := p.Console(ctx, tc.t, strings.NewReader(""), io.Discard, power.ConsoleOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %q", err, tc.text)
			}
			if tc.kind != nil && !errors.Is(err, tc.kind) {
				t.Errorf("err %v is not %v", err, tc.kind)
			}
			if strings.Contains(err.Error(), tc.t.Password.Reveal()) {
				t.Errorf("error shows the password: %v", err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Errorf("took %v, deadline is 2s", d)
			}
		})
	}
}

func closedUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

// TestSOLSessionAged: a SOL stream ends with ErrSessionAged once its session
// reaches SOLMaxAge, before go-ipmi's keepalive (30 s after the session
// opened) could race with its Close; SOL called again streams on a new
// session.
func TestSOLSessionAged(t *testing.T) {
	t.Parallel()
	requireTool(t, "ipmi_sim")
	con := startSerialConsole(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim, err := ipmisim.Start(ctx, ipmisim.Options{Dir: t.TempDir(), Password: simPassword, SOLPort: con.Port()})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	p := newPool(t, power.Config{CallTimeout: 5 * time.Second})
	for round := 1; round <= 2; round++ {
		pr, pw := io.Pipe()
		var out lab.Buffer
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- p.Console(ctx, simTarget(sim, "n01"), pr, &out, power.ConsoleOptions{}) }()
		if round == 1 {
			select {
			case err := <-done:
				if !errors.Is(err, ipmi.ErrSessionAged) {
					t.Fatalf("SOL ended with %v, want ErrSessionAged", err)
				}
				if d := time.Since(start); d < ipmi.SOLMaxAge || d > 29*time.Second {
					t.Fatalf("SOL session ended after %v: want between SOLMaxAge (%v) and go-ipmi's keepalive (30 s)", d, ipmi.SOLMaxAge)
				}
			case <-time.After(40 * time.Second):
				t.Fatal("SOL session did not end at SOLMaxAge")
			}
			pw.Close()
			continue
		}
		if _, err := pw.Write([]byte("again\r")); err != nil {
			t.Fatal(err)
		}
		lab.Eventually(t, "echo on the new session", 10*time.Second, func() bool { return strings.Contains(out.String(), "echo: again") })
		pw.Close()
		if err := <-done; err != nil {
			t.Fatalf("second SOL: %v", err)
		}
	}
}
