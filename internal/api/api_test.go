package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
)

const inv = `images:
  img: {}
groups:
  g: {image: img}
nodes:
  - name: n[1-2]
    group: g
    nics: [{mac: "52:54:00:aa:00:01"}]
  - name: solo
    group: g
    nics: [{mac: "52:54:00:bb:00:01"}]
`

func start(t *testing.T) (*daemon.Daemon, *apiclient.Client) {
	t.Helper()
	d, _, sock := startServer(t, t.TempDir(), nil)
	return d, apiclient.New(sock)
}

// startServer starts a daemon with its data in dir/data and its API on
// dir/api.sock; setup, if set, adjusts the server before it serves.
func startServer(t *testing.T, dir string, setup func(*Server)) (*daemon.Daemon, *Server, string) {
	t.Helper()
	var srv *Server
	e := daemontest.Start(t, daemontest.Options{Dir: dir, Inventory: inv, API: func(d *daemon.Daemon) daemontest.APIServer {
		srv = &Server{D: d}
		if setup != nil {
			setup(srv)
		}
		return srv
	}})
	// A second daemon cannot take over a live socket.
	if _, err := Listen(e.Socket); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second Listen: %v", err)
	}
	return e.D, srv, e.Socket
}

func TestAPI(t *testing.T) {
	d, c := start(t)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.Inventory.Nodes != 3 || st.HTTP == "" || st.TFTP != "" {
		t.Fatalf("status %+v, %v", st, err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 3 || nodes[1].Name != "n2" || nodes[1].MAC != "52:54:00:aa:00:02" {
		t.Fatalf("nodes %+v, %v", nodes, err)
	}
	var apiErr *apitype.Error
	if _, err := c.Node(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeNotFound {
		t.Fatalf("unknown node: %v", err)
	}
	names, err := c.Select(ctx, "@g")
	if err != nil || strings.Join(names, ",") != "n1,n2,solo" {
		t.Fatalf("select: %v %v", names, err)
	}
	if _, err := c.Select(ctx, ""); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeInvalid {
		t.Fatalf("empty selection: %v", err)
	}

	// Preview: a good override renders, a bad one is refused with its position.
	text, err := c.Preview(ctx, apitype.Preview{Node: "solo", Format: "ipxe", Override: "#!ipxe\necho hello {{.Name}}\nexit\n"})
	if err != nil || !strings.Contains(text, "echo hello solo") {
		t.Fatalf("preview: %q %v", text, err)
	}
	if _, err := c.Preview(ctx, apitype.Preview{Node: "solo", Format: "ipxe", Override: "#!ipxe\nkernl x\n"}); !errors.As(err, &apiErr) ||
		apiErr.Code != apitype.CodeInvalid || !strings.Contains(apiErr.Message, "2:1") {
		t.Fatalf("bad preview: %v", err)
	}

	// Edits: one from a stale revision conflicts.
	base := st.Inventory.Revision
	if _, err := c.EditNode(ctx, "solo", apitype.Edit{BaseRevision: base, Set: map[string]any{"kernel_args": "a=1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EditNode(ctx, "solo", apitype.Edit{BaseRevision: base, Set: map[string]any{"kernel_args": "a=2"}}); !errors.Is(err, apiclient.ErrConflict) {
		t.Fatalf("stale edit: %v", err)
	}
	if _, err := c.EditGroup(ctx, "g", apitype.Edit{Set: map[string]any{"password": "x"}}); !errors.As(err, &apiErr) || apiErr.Code != apitype.CodeInvalid {
		t.Fatalf("edit of a key that is not editable: %v", err)
	}

	// The event stream delivers history, then live events.
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := make(chan apitype.Event, 16)
	go c.Events(ectx, "solo", 5, true, func(ev apitype.Event) error { got <- ev; return nil })
	time.Sleep(200 * time.Millisecond)
	resp, err := http.Get("http://" + d.HTTPAddr().String() + "/boot/52:54:00:bb:00:01.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for {
		select {
		case ev := <-got:
			if ev.Node == "solo" && ev.Path == "/boot/52:54:00:bb:00:01.ipxe" {
				return
			}
		case <-ectx.Done():
			t.Fatal("no live event for the boot request")
		}
	}
}

// TestEventsNotableBacklog: after a busy stretch of check-ins, the newest
// n events are check-ins only; notable=M brings the rarer events from
// before them into the backlog, in Seq order, once each; a bad value is
// refused.
func TestEventsNotableBacklog(t *testing.T) {
	d, _, sock := startServer(t, t.TempDir(), nil)
	c := apiclient.New(sock)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d.Apply(bootstate.Event{Node: "n1", Kind: bootstate.KindInfo, Proto: "checkin", Message: "turned dirty: overlay"})
	for range 50 {
		d.Apply(bootstate.Event{Node: "n2", Kind: bootstate.KindCheckin})
	}
	d.Apply(bootstate.Event{Node: "solo", Kind: bootstate.KindFail, Error: "boom"})
	read := func(n, notable int) []apitype.Event {
		t.Helper()
		var evs []apitype.Event
		if err := c.EventsBacklog(ctx, "", n, notable, false, func(ev apitype.Event) error { evs = append(evs, ev); return nil }); err != nil {
			t.Fatal(err)
		}
		return evs
	}
	plain := read(10, 0)
	if len(plain) != 10 || slices.ContainsFunc(plain, func(ev apitype.Event) bool { return ev.Kind == apitype.KindInfo }) {
		t.Fatalf("the newest 10: %+v", plain)
	}
	with := read(10, 100)
	var kinds []apitype.Kind
	for i, ev := range with {
		if i > 0 && ev.Seq <= with[i-1].Seq {
			t.Fatalf("backlog out of Seq order or twice: %+v", with)
		}
		if !ev.Routine {
			kinds = append(kinds, ev.Kind)
		}
	}
	if len(with) < 11 || !slices.Contains(kinds, apitype.KindInfo) || kinds[len(kinds)-1] != apitype.KindFail || with[len(with)-1].Kind != apitype.KindFail {
		t.Fatalf("backlog with notable=100: %d events, notable kinds %v", len(with), kinds)
	}
	if !strings.Contains(with[slices.IndexFunc(with, func(ev apitype.Event) bool { return ev.Kind == apitype.KindInfo })].Message, "turned dirty") {
		t.Errorf("the info event is not the turned-dirty one: %+v", with)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://unix/v1/events?n=1&notable=-1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("notable=-1: status %d, want 400", resp.StatusCode)
	}
}
