package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/netbootui/netbootui/internal/api"
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

func start(t *testing.T) (*daemon.Daemon, *Client) {
	t.Helper()
	e := daemontest.Start(t, daemontest.Options{Inventory: inv, API: true})
	// A second daemon cannot take over a live socket.
	if _, err := Listen(e.Socket); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second Listen: %v", err)
	}
	return e.D, e.Client
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
	var apiErr *Error
	if _, err := c.Node(ctx, "nope"); !errors.As(err, &apiErr) || apiErr.Code != CodeNotFound {
		t.Fatalf("unknown node: %v", err)
	}
	names, err := c.Select(ctx, "@g")
	if err != nil || strings.Join(names, ",") != "n1,n2,solo" {
		t.Fatalf("select: %v %v", names, err)
	}
	if _, err := c.Select(ctx, ""); !errors.As(err, &apiErr) || apiErr.Code != CodeInvalid {
		t.Fatalf("empty selection: %v", err)
	}

	// Preview: a good override renders, a bad one is refused with its position.
	text, err := c.Preview(ctx, daemon.Preview{Node: "solo", Format: "ipxe", Override: "#!ipxe\necho hello {{.Name}}\nexit\n"})
	if err != nil || !strings.Contains(text, "echo hello solo") {
		t.Fatalf("preview: %q %v", text, err)
	}
	if _, err := c.Preview(ctx, daemon.Preview{Node: "solo", Format: "ipxe", Override: "#!ipxe\nkernl x\n"}); !errors.As(err, &apiErr) ||
		apiErr.Code != CodeInvalid || !strings.Contains(apiErr.Message, "2:1") {
		t.Fatalf("bad preview: %v", err)
	}

	// Edits: one from a stale revision conflicts.
	base := st.Inventory.Revision
	if _, err := c.EditNode(ctx, "solo", daemon.Edit{BaseRevision: base, Set: map[string]any{"kernel_args": "a=1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EditNode(ctx, "solo", daemon.Edit{BaseRevision: base, Set: map[string]any{"kernel_args": "a=2"}}); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale edit: %v", err)
	}
	if _, err := c.EditGroup(ctx, "g", daemon.Edit{Set: map[string]any{"password": "x"}}); !errors.As(err, &apiErr) || apiErr.Code != CodeInvalid {
		t.Fatalf("edit of a key that is not editable: %v", err)
	}

	// The event stream delivers history, then live events.
	ectx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := make(chan bootstate.Event, 16)
	go c.Events(ectx, "solo", 5, true, func(ev bootstate.Event) error { got <- ev; return nil })
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
