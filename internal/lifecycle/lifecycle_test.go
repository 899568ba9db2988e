package lifecycle

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// httpService is a real HTTP server on a loopback port.
type httpService struct {
	addr   string
	ln     net.Listener
	srv    *http.Server
	closed atomic.Int32
}

func (h *httpService) Listen() (err error) {
	h.ln, err = net.Listen("tcp", h.addr)
	return err
}

func (h *httpService) Serve() error {
	h.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })}
	return h.srv.Serve(h.ln)
}

func (h *httpService) Close() error {
	h.closed.Add(1)
	if h.ln != nil {
		h.ln.Close()
	}
	return nil
}

func get(t *testing.T, addr string) error {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// TestListenUnwinds: when the second service cannot bind (its port is
// taken), the first one is closed again and its port released.
func TestListenUnwinds(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	a := &httpService{addr: "127.0.0.1:0"}
	b := &httpService{addr: taken.Addr().String()}
	var g Group
	g.Add("a", a)
	g.Add("b", b)
	err = g.Listen()
	if err == nil || !strings.HasPrefix(err.Error(), "b: ") {
		t.Fatalf("Listen = %v, want b's bind error", err)
	}
	if a.closed.Load() != 1 || b.closed.Load() != 1 {
		t.Errorf("closes: a %d, b %d, want 1 each", a.closed.Load(), b.closed.Load())
	}
	// a's port is free again.
	ln, err := net.Listen("tcp", a.ln.Addr().String())
	if err != nil {
		t.Errorf("a's port still bound: %v", err)
	} else {
		ln.Close()
	}
	if err := g.Serve(context.Background()); err == nil {
		t.Error("Serve after a failed Listen succeeded")
	}
}

// TestServeUntilCancel: every service answers while served; cancelling
// closes them all and Serve returns nil after every Serve returned.
func TestServeUntilCancel(t *testing.T) {
	a, b := &httpService{addr: "127.0.0.1:0"}, &httpService{addr: "127.0.0.1:0"}
	var g Group
	g.Add("a", a)
	g.Add("b", b)
	taskDone := make(chan struct{})
	g.Go("task", func(ctx context.Context) error { <-ctx.Done(); close(taskDone); return nil })
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx) }()
	for _, s := range []*httpService{a, b} {
		if err := get(t, s.ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	<-taskDone
	for _, s := range []*httpService{a, b} {
		if s.closed.Load() != 1 {
			t.Errorf("closed %d times", s.closed.Load())
		}
		if get(t, s.ln.Addr().String()) == nil {
			t.Error("a service still answers after Serve returned")
		}
	}
}

// failing serves a while and then fails.
type failing struct{ stop chan struct{} }

func (f *failing) Listen() error { f.stop = make(chan struct{}); return nil }
func (f *failing) Serve() error {
	select {
	case <-f.stop:
		return nil
	case <-time.After(50 * time.Millisecond):
		return errors.New("boom")
	}
}
func (f *failing) Close() error { close(f.stop); return nil }

// TestFirstFailureStopsAll: one failing service or task stops the group,
// the others are closed, and the failure is returned with its name.
func TestFirstFailureStopsAll(t *testing.T) {
	for _, tc := range []struct {
		name string
		add  func(g *Group)
		want string
	}{
		{"service", func(g *Group) { g.Add("bad", &failing{}) }, "bad: boom"},
		{"task", func(g *Group) {
			g.Go("job", func(ctx context.Context) error { return errors.New("broke") })
		}, "job: broke"},
		{"service stops by itself", func(g *Group) { g.Add("quitter", Funcs{}) }, "quitter: stopped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &httpService{addr: "127.0.0.1:0"}
			var g Group
			g.Add("a", a)
			tc.add(&g)
			err := g.Serve(context.Background())
			if err == nil || err.Error() != tc.want {
				t.Errorf("Serve = %v, want %q", err, tc.want)
			}
			if a.closed.Load() != 1 {
				t.Errorf("the healthy service was closed %d times", a.closed.Load())
			}
		})
	}
}
