package apiclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
)

// fakeHead serves /v1/events (follow: one event naming the head, then the
// stream stays open) and /v1/status on a unix socket; stop closes it and
// every connection, as a head that dies.
type fakeHead struct {
	sock string
	srv  *http.Server
}

func startFakeHead(t *testing.T, dir, name string) *fakeHead {
	t.Helper()
	sock := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/events", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "{\"seq\":1,\"node\":%q,\"kind\":\"boot\"}\n", name)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/v1/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "{\"http\":%q}", name)
	})
	h := &fakeHead{sock: sock, srv: &http.Server{Handler: mux}}
	go h.srv.Serve(ln)
	t.Cleanup(func() { h.srv.Close() })
	return h
}

// TestSeveralSockets: a client given three heads' sockets uses the first
// that answers (the first is not there at all), stays on it, and when that
// head dies under a follow stream the stream ends with an error and the
// next stream and calls reach the next head.
func TestSeveralSockets(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "h0.sock")
	h1, h2 := startFakeHead(t, dir, "h1"), startFakeHead(t, dir, "h2")
	c := New(strings.Join([]string{missing, h1.sock, h2.sock}, ","))
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	follow := func() (string, chan error) {
		got, end := make(chan string, 1), make(chan error, 1)
		go func() {
			end <- c.Events(ctx, "", 10, true, func(ev apitype.Event) error {
				select {
				case got <- ev.Node:
				default:
				}
				return nil
			})
		}()
		select {
		case name := <-got:
			return name, end
		case err := <-end:
			t.Fatalf("stream ended before an event: %v", err)
		}
		return "", nil
	}
	name, end := follow()
	if name != "h1" {
		t.Fatalf("first stream from %s, want h1", name)
	}
	if st, err := c.Status(ctx); err != nil || st.HTTP != "h1" {
		t.Fatalf("status: %+v %v, want h1's", st, err)
	}
	h1.srv.Close() // the head dies: its listener and connections close
	// Cut mid-stream: an error (unexpected EOF), or ErrStreamEnded.
	if err := <-end; err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stream on a dead head: %v, want it cut", err)
	}
	if name, _ := follow(); name != "h2" {
		t.Fatalf("stream after h1 died from %s, want h2", name)
	}
	if st, err := c.Status(ctx); err != nil || st.HTTP != "h2" {
		t.Fatalf("status after h1 died: %+v %v, want h2's", st, err)
	}
	if !strings.Contains(c.String(), "daemons at ") {
		t.Errorf("name %q", c.String())
	}
}
