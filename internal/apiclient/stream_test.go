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

type line struct {
	N    int    `json:"n"`
	Last bool   `json:"last,omitempty"`
	Text string `json:"text,omitempty"`
}

func TestReadStream(t *testing.T) {
	long := strings.Repeat("y", 200<<10) // longer than the scanner's first buffer
	stopErr := errors.New("stop")
	cases := []struct {
		name    string
		body    string
		stopAt  int // fn returns stopErr at this N (0: never)
		wantN   []int
		wantErr error  // errors.Is
		wantMsg string // substring, when wantErr is nil and an error is expected
	}{
		{name: "done", body: `{"n":1}` + "\n\n" + `{"n":2,"last":true}` + "\n" + `{"n":3}` + "\n", wantN: []int{1, 2}},
		{name: "keepalives and spaces", body: "\n  \n" + `  {"n":1,"last":true}  ` + "\n", wantN: []int{1}},
		{name: "ended early", body: `{"n":1}` + "\n", wantN: []int{1}, wantErr: ErrStreamEnded},
		{name: "empty", body: "", wantErr: ErrStreamEnded},
		{name: "no final newline", body: `{"n":1,"last":true}`, wantN: []int{1}},
		{name: "bad line", body: `{"n":1}` + "\n{nope\n", wantN: []int{1}, wantMsg: "bad line from the daemon"},
		{name: "handler error", body: `{"n":1}` + "\n" + `{"n":2}` + "\n", stopAt: 2, wantN: []int{1, 2}, wantErr: stopErr},
		{name: "long line", body: fmt.Sprintf(`{"n":1,"text":%q,"last":true}`, long) + "\n", wantN: []int{1}},
		{name: "line over the limit", body: fmt.Sprintf(`{"n":1,"text":%q}`, strings.Repeat("z", maxStreamLine)) + "\n", wantMsg: "too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			err := readStream(context.Background(), strings.NewReader(tc.body), func(l line) error {
				got = append(got, l.N)
				if l.N == tc.stopAt {
					return stopErr
				}
				if l.Last {
					return errStreamDone
				}
				return nil
			})
			if fmt.Sprint(got) != fmt.Sprint(tc.wantN) {
				t.Errorf("lines %v, want %v", got, tc.wantN)
			}
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want %v", err, tc.wantErr)
				}
			case tc.wantMsg != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("error %v, want one with %q", err, tc.wantMsg)
				}
			case err != nil:
				t.Errorf("error %v", err)
			}
		})
	}
}

// serveUnix serves h on a unix socket for the test and returns a client.
func serveUnix(t *testing.T, h http.Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := New(sock)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// TestStreamingCalls runs the client's streaming calls against a server
// that answers as the daemon does: progress lines, keepalives, a last line;
// an error answer before the stream; a stream cut short; a follow that ends
// with the caller's context.
func TestStreamingCalls(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/images/build", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"progress":{"image":"img","step":"rootfs"}}`)
		fmt.Fprintln(w, `{"progress":{"image":"img","step":"squashfs","percent":50}}`)
		fmt.Fprintln(w, `{"manifest":{"image":"img","id":"g1","files":[{"name":"vmlinuz","size":3}]}}`)
	})
	mux.HandleFunc("POST /v1/reboot-clean", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `{"progress":{"node":"n1","step":"cycle"}}`)
		fmt.Fprintln(w)
		fmt.Fprintln(w, `{"progress":{"node":"n1","step":"clean"}}`)
		fmt.Fprintln(w, `{"results":[{"node":"n1","ok":true,"step":"clean"}],"done":true,"error":"cut short"}`)
	})
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("node") {
		case "bad":
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintln(w, `{"error":"bad n \"x\"","code":"invalid"}`)
			return
		case "short":
			fmt.Fprintln(w, `{"seq":1,"node":"short","kind":"fetch"}`)
			return
		}
		fmt.Fprintln(w, `{"seq":1,"node":"n1","kind":"fetch","stage":"nbp"}`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("PATCH /v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintln(w, `{"error":"stale revision","code":"conflict"}`)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintln(w, "not json")
	})
	c := serveUnix(t, mux)
	ctx := context.Background()

	var steps []string
	m, err := c.Build(ctx, apitype.BuildRequest{Image: "img"}, func(p apitype.BuildProgress) { steps = append(steps, p.Step) })
	if err != nil || m.ID != "g1" || m.Size() != 3 || strings.Join(steps, ",") != "rootfs,squashfs" {
		t.Fatalf("build: %+v %v %v", m, steps, err)
	}

	steps = nil
	res, err := c.RebootClean(ctx, "n1", 0, func(p apitype.RebootProgress) error { steps = append(steps, string(p.Step)); return nil })
	if err == nil || err.Error() != "cut short" || len(res) != 1 || !res[0].OK || strings.Join(steps, ",") != "cycle,clean" {
		t.Fatalf("reboot-clean: %+v %v %v", res, steps, err)
	}

	var ae *apitype.Error
	if err := c.Events(ctx, "bad", 1, false, func(apitype.Event) error { return nil }); !errors.As(err, &ae) || ae.Code != apitype.CodeInvalid {
		t.Fatalf("events refused: %v", err)
	}
	n := 0
	if err := c.Events(ctx, "short", 1, false, func(apitype.Event) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("events without follow: %d %v", n, err)
	}
	fctx, cancel := context.WithCancel(ctx)
	got := make(chan apitype.Event, 1)
	done := make(chan error, 1)
	go func() { done <- c.Events(fctx, "", 1, true, func(ev apitype.Event) error { got <- ev; return nil }) }()
	select {
	case ev := <-got:
		if ev.Stage != apitype.StageNBP {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("follow ended by its context: %v", err)
	}

	if _, err := c.EditNode(ctx, "n1", apitype.Edit{Set: map[string]any{"image": "x"}}); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "stale revision") {
		t.Fatalf("conflict: %v", err)
	}
	if _, err := c.Status(ctx); !errors.As(err, &ae) || ae.Code != apitype.CodeInternal || !strings.Contains(ae.Message, "500") {
		t.Fatalf("non-JSON error: %v", err)
	}
}

// FuzzReadStream feeds the stream reader arbitrary bodies: it never panics,
// and it ends with a line it was told is the last, an error, or the end.
func FuzzReadStream(f *testing.F) {
	f.Add([]byte("{\"n\":1}\n\n{\"n\":2,\"last\":true}\n"))
	f.Add([]byte("{\"n\":1}"))
	f.Add([]byte("\n\n\n"))
	f.Add([]byte("[1,2]\n{\"n\":\"x\"}\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		lines := 0
		err := readStream(context.Background(), strings.NewReader(string(body)), func(l line) error {
			lines++
			if l.Last {
				return errStreamDone
			}
			return nil
		})
		if err == nil && lines == 0 {
			t.Fatalf("no line, no error for %q", body)
		}
	})
}
