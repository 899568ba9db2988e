package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// TestUnknownAndAdopt: three machines missing from the inventory ask the
// HTTP boot server for their script one after the other; the table lists
// them in that order; adopting them (in another order) names them n3, n4,
// n5 in the order they first asked, and their next request gets their own
// boot script, without a restart.
func TestUnknownAndAdopt(t *testing.T) {
	d, _, sock := startServer(t, t.TempDir(), nil)
	c := apiclient.New(sock)
	ctx := context.Background()
	base := "http://" + d.HTTPAddr().String()
	ask := func(mac string) string {
		t.Helper()
		resp, err := http.Get(base + "/boot/" + mac + ".ipxe")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	macs := []string{"52:54:00:dd:00:07", "52:54:00:dd:00:02", "52:54:00:dd:00:05"}
	for _, m := range macs {
		if s := ask(m); !strings.Contains(s, "not in the inventory") {
			t.Fatalf("%s got:\n%s", m, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var list []apitype.UnknownNode
	if !waitFor(5*time.Second, func() bool { list, _ = c.Unknown(ctx); return len(list) == 3 }) {
		t.Fatalf("unknown table: %+v", list)
	}
	for i, u := range list {
		if u.MAC != macs[i] || u.Proto != "http" || !strings.HasPrefix(u.Address, "127.0.0.1:") || u.FirstSeen.IsZero() || u.Requests != 1 {
			t.Errorf("unknown[%d] = %+v, want %s", i, u, macs[i])
		}
	}
	var apiErr *apitype.Error
	if _, err := c.Adopt(ctx, apitype.AdoptRequest{MACs: []string{"52:54:00:ee:00:01"}, Group: "g"}); !errors.As(err, &apiErr) ||
		!strings.Contains(apiErr.Message, "not an unknown PXE client") {
		t.Fatalf("adopting a MAC never seen: %v", err)
	}
	if _, err := c.Adopt(ctx, apitype.AdoptRequest{MACs: macs, Group: "nosuch"}); !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, `unknown group "nosuch"`) {
		t.Fatalf("adopting into no group: %v", err)
	}
	res, err := c.Adopt(ctx, apitype.AdoptRequest{MACs: []string{macs[2], macs[0], macs[1]}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range res.Nodes {
		got = append(got, a.Name+"="+a.MAC)
	}
	if want := "n3=" + macs[0] + " n4=" + macs[1] + " n5=" + macs[2]; strings.Join(got, " ") != want {
		t.Fatalf("adopted %v, want %s", got, want)
	}
	if list, _ := c.Unknown(ctx); len(list) != 0 {
		t.Errorf("still unknown after adoption: %+v", list)
	}
	for i, m := range macs {
		n, err := c.Node(ctx, res.Nodes[i].Name)
		if err != nil || n.MAC != m || n.Group != "g" {
			t.Fatalf("node %s: %+v %v", res.Nodes[i].Name, n, err)
		}
		if s := ask(m); strings.Contains(s, "not in the inventory") {
			t.Errorf("%s is still unknown to the boot server:\n%s", m, s)
		}
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}
