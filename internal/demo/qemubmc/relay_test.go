package qemubmc

import (
	"bufio"
	"fmt"
	"net"
	"testing"
	"time"
)

// current waits until the relay has taken a connection on a side other
// than prev, and returns it.
func (r *serialRelay) current(t *testing.T, side *net.Conn, prev net.Conn) net.Conn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		c := *side
		r.mu.Unlock()
		if c != nil && c != prev {
			return c
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the relay did not take the connection")
	return nil
}

// TestRelayOutlivesTheVM: the BMC's connection stays while the VM side
// connects, goes and connects again (a power cycle), and bytes flow both
// ways across each VM connection.
func TestRelayOutlivesTheVM(t *testing.T) {
	r, err := startRelay(0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	bmc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.solPort()))
	if err != nil {
		t.Fatal(err)
	}
	defer bmc.Close()
	r.current(t, &r.bmc, nil)
	bmcIn := bufio.NewReader(bmc)
	var prev net.Conn
	for boot := 1; boot <= 3; boot++ {
		vm, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.serialPort()))
		if err != nil {
			t.Fatal(err)
		}
		prev = r.current(t, &r.vm, prev)
		fmt.Fprintf(vm, "boot %d\n", boot)
		bmc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := bmcIn.ReadString('\n'); err != nil || got != fmt.Sprintf("boot %d\n", boot) {
			t.Fatalf("boot %d: BMC side read %q, %v", boot, got, err)
		}
		fmt.Fprintf(bmc, "typed %d\n", boot)
		vm.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := bufio.NewReader(vm).ReadString('\n'); err != nil || got != fmt.Sprintf("typed %d\n", boot) {
			t.Fatalf("boot %d: VM side read %q, %v", boot, got, err)
		}
		vm.Close() // power off: QEMU exits
	}
}
