package lab

import (
	"bufio"
	"net"
	"strings"
	"testing"
)

// TestNetns shows the namespace has its bridge, that a socket opened in Do
// lives there (the bridge address does not exist outside it) and that a
// command run with Command reaches it.
func TestNetns(t *testing.T) {
	RequireTools(t, "socat")
	n := NewNetns(t)
	n.AddTap(t, "tap0")
	out, err := n.Command("ip", "-o", "addr", "show", "dev", NetnsBridge).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{NetnsBridgeIPv4 + "/24", NetnsBridgeIPv6 + "/64"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("bridge lacks %s:\n%s", want, out)
		}
	}
	if out, err := n.Command("ip", "-o", "link", "show", "master", NetnsBridge).CombinedOutput(); err != nil || !strings.Contains(string(out), "tap0") {
		t.Errorf("tap0 not on the bridge: %v: %s", err, out)
	}

	if ln, err := net.Listen("tcp", NetnsBridgeIPv4+":0"); err == nil {
		ln.Close()
		t.Fatalf("the host itself has %s: the test namespace's address is not private", NetnsBridgeIPv4)
	}
	var ln net.Listener
	if err := n.Do(func() (err error) {
		ln, err = net.Listen("tcp", NetnsBridgeIPv4+":0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		got <- line
	}()
	if out, err := n.Command("sh", "-c", "echo hello | socat - TCP:"+ln.Addr().String()).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if line := <-got; line != "hello\n" {
		t.Fatalf("listener in the namespace read %q", line)
	}
}
