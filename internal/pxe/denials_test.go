package pxe

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
)

// 20,000 bogus requests (refused check-ins, hostile loader names, unknown
// MACs) write a handful of WARN lines and events, not one each; the events
// let through say how many were held back, and a real node's event still
// gets through during the flood.
func TestDenialsAreRateLimited(t *testing.T) {
	inv, err := inventory.Parse("nodes.yaml", []byte("images:\n  img: {}\nnodes:\n  - {name: n1, image: img, nics: [{mac: '52:54:00:00:00:01'}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := NewTokens(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := NewRenderer("")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	var events []bootstate.Event
	b := &Boot{Inventory: func() *inventory.Inventory { return inv }, Tokens: tokens, Renderer: renderer, Images: unpublished{},
		Loaders: &FileRoot{Dir: t.TempDir()}, DefaultURL: "http://127.0.0.1",
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Events: func(ev bootstate.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }}
	now := time.Unix(1e9, 0) // one request a millisecond: 20 s of flood
	b.Noisy = DefaultNoisy()
	b.Noisy.Now = func() time.Time { return now }
	h := (&HTTPServer{Boot: b}).Handler()

	requests := []func(i int) (method, target, body string){
		func(i int) (string, string, string) {
			return "POST", "/checkin", "node=n1&token=bogus&boot_id=b1&seq=1"
		},
		func(i int) (string, string, string) {
			return "POST", "/checkin", fmt.Sprintf("node=x%d&token=bogus&boot_id=b1&seq=1", i)
		},
		func(i int) (string, string, string) { return "GET", "/loaders/..%2f..%2fetc%2fshadow", "" },
		func(i int) (string, string, string) {
			return "GET", fmt.Sprintf("/boot/02-00-00-%02x-%02x-%02x.ipxe", byte(i>>16), byte(i>>8), byte(i)), ""
		},
	}
	for i := range 20000 {
		method, target, body := requests[i%len(requests)](i)
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.RemoteAddr = fmt.Sprintf("10.9.%d.%d:%d", i%3, 7, 1024+i%5000) // three attackers, many ports
		if body != "" {
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		now = now.Add(time.Millisecond)
		if i == 10000 { // the real node boots in the middle of the flood
			r := httptest.NewRequest("GET", "/boot/52-54-00-00-00-01.ipxe", nil)
			r.RemoteAddr = "10.1.0.11:1234"
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	warns := strings.Count(logs.String(), "level=WARN")
	if warns > 30 {
		t.Errorf("%d WARN lines for 20,000 bogus requests", warns)
	}
	noisy, real, counted := 0, 0, false
	for _, ev := range events {
		switch {
		case ev.Node == "n1" && ev.Kind != bootstate.KindDenied:
			real++
		case ev.Kind == bootstate.KindDenied || ev.Kind == bootstate.KindUnknown:
			noisy++
			counted = counted || strings.Contains(ev.Message, "more like it from 10.9.")
		}
	}
	t.Logf("20,000 bogus requests: %d WARN lines, %d events", warns, noisy)
	if noisy > 100 {
		t.Errorf("%d events for 20,000 bogus requests", noisy)
	}
	if noisy == 0 || warns == 0 {
		t.Errorf("nothing reported (%d events, %d WARN lines): the refusals must still show", noisy, warns)
	}
	if !counted {
		t.Error("no event says how many like it were held back")
	}
	if real == 0 {
		t.Error("the real node's boot event was lost in the flood")
	}
}

// unpublished is an image store where no image has a generation yet.
type unpublished struct{}

func (unpublished) Current(string) (string, error) { return "", nil }
func (unpublished) Open(image, id, file string) (*os.File, error) {
	return nil, fmt.Errorf("%s/%s/%s: %w", image, id, file, os.ErrNotExist)
}
func (unpublished) Generation(img, id string) (*image.Manifest, error) {
	return nil, fmt.Errorf("image %s has no generation %q", img, id)
}
