package main

import (
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/lab"
)

// failoverInventory has four nodes with fixed loopback addresses: a boot
// request from n02's address proves n02 and moves its STAGE column.
const failoverInventory = `images:
  compute: {}
groups:
  compute: {image: compute}
nodes:
  - name: n[01-04]
    group: compute
    ip: 127.0.0.21
    nics:
      - {mac: "52:54:00:00:0f:01", boot: true}
`

// TestConsoleFollowsFailover: the console in tmux attached to three
// `serve --cluster` heads (NETBOOTUI_SOCKET=S1,S2,S3) is on h1 and says so
// in its title; h1 is SIGKILLed: the console reconnects to h2, says it
// moved and which head it is on, and shows n02's boot served by h2 live in
// the node list.
func TestConsoleFollowsFailover(t *testing.T) {
	lab.RequireTools(t, "tmux")
	sc := startServeCluster(t, []byte(failoverInventory), nil)
	var socks []string
	for _, p := range sc.procs {
		socks = append(socks, p.socket)
	}
	gen := importGeneration(t, apiclient.New(socks[0]), "compute", "", 1000, true).ID
	waitGenerations(t, apiclient.New(socks[1]), gen)
	c := startConsole(t, strings.Join(socks, ","), "TERM=xterm-256color")
	c.waitFor("start on h1", regexp.MustCompile(`4 nodes · 0 marked +head h1 · rev `))

	sc.kill(0)
	s := c.waitForWithin("failover", 60*time.Second, regexp.MustCompile(`(?s)head h2 · rev .*head h1 is gone: now on head h2`))
	t.Logf("the console after h1 was killed:\n%s", s)

	// A boot request from n02's fixed address to h2: the row moves live.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 22)}}).DialContext}}
	resp, err := client.Get("http://" + sc.sts[1].HTTP + "/boot/52:54:00:00:0f:02.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s = c.waitFor("n02's boot through h2", regexp.MustCompile(`(?m)^  n02 +compute +\S+ +config `))
	if !strings.Contains(s, "head h2 · rev ") {
		t.Errorf("the title no longer names h2:\n%s", s)
	}
	t.Logf("n02 booting from h2:\n%s", s)
}
