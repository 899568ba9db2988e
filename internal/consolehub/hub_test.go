package consolehub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/state/local"
)

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	lab.Eventually(t, what, 5*time.Second, f)
}

// echo is a node's console: a banner per session, then "echo: LINE" for
// every line it reads. It counts its sessions; end, when set, ends a
// session with that error after the banner.
type echo struct {
	sessions atomic.Int32
	end      func(n int32) error
}

func (e *echo) session(ctx context.Context, in io.Reader, out io.Writer, onActive func()) error {
	n := e.sessions.Add(1)
	onActive()
	fmt.Fprintf(out, "session %d\r\n", n)
	if e.end != nil {
		if err := e.end(n); err != nil {
			return err
		}
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		buf := make([]byte, 256)
		var line []byte
		for {
			k, err := in.Read(buf)
			for _, c := range buf[:k] {
				if c == '\r' {
					lines <- string(line)
					line = nil
				} else {
					line = append(line, c)
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return nil
			}
			fmt.Fprintf(out, "echo: %s\r\n", l)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TestConsolesShareOneSession: two consoles on a node share one session:
// both see its output, both type into it, the log keeps it, and the session
// ends with its last user.
func TestConsolesShareOneSession(t *testing.T) {
	hs := New(nil, local.NewConsoles(0))
	defer hs.Close()
	e := &echo{}
	type console struct {
		in   *io.PipeWriter
		out  *lab.Buffer
		done chan error
	}
	var cs []console
	for range 2 {
		pr, pw := io.Pipe()
		c := console{in: pw, out: &lab.Buffer{}, done: make(chan error, 1)}
		ready := make(chan struct{})
		go func() { c.done <- hs.Attach(context.Background(), "n1", e.session, pr, c.out, func() { close(ready) }) }()
		<-ready
		cs = append(cs, c)
	}
	cs[0].in.Write([]byte("from one\r"))
	cs[1].in.Write([]byte("from two\r"))
	for i, c := range cs {
		eventually(t, fmt.Sprintf("both echoes on console %d", i), func() bool {
			return strings.Contains(c.out.String(), "echo: from one") && strings.Contains(c.out.String(), "echo: from two")
		})
	}
	if n := e.sessions.Load(); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}
	l := hs.Log("n1", 10)
	if !l.Active || !strings.Contains(strings.Join(l.Lines, "\n"), "echo: from two") {
		t.Errorf("log %+v", l)
	}
	hub := hs.Current("n1")
	for _, c := range cs {
		c.in.Close()
		if err := <-c.done; err != nil {
			t.Errorf("detach: %v", err)
		}
	}
	select {
	case <-hub.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the session outlived its users")
	}
	if l := hs.Log("n1", 10); l.Active || len(l.Lines) == 0 {
		t.Errorf("log after the session: %+v", l)
	}
}

// TestAgedSessionHandsOver: a session that ends with ErrSessionAged is
// followed by the next at once, and the console stays attached.
func TestAgedSessionHandsOver(t *testing.T) {
	hs := New(nil, local.NewConsoles(0))
	defer hs.Close()
	e := &echo{end: func(n int32) error {
		if n < 3 {
			return power.ErrSessionAged
		}
		return nil
	}}
	pr, pw := io.Pipe()
	out := &lab.Buffer{}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- hs.Attach(context.Background(), "n1", e.session, pr, out, nil) }()
	eventually(t, "third session", func() bool { return strings.Contains(out.String(), "session 3") })
	if d := time.Since(start); d > RetryAfter {
		t.Errorf("hand-overs took %v: they must not wait", d)
	}
	pw.Write([]byte("still\r"))
	eventually(t, "echo on the third session", func() bool { return strings.Contains(out.String(), "echo: still") })
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestPermanentErrorStopsTheHub: a session that cannot work (a refused
// password, no console at all) is not retried: the console gets the error,
// the log keeps it.
func TestPermanentErrorStopsTheHub(t *testing.T) {
	hs := New(nil, local.NewConsoles(0))
	defer hs.Close()
	var n atomic.Int32
	refuse := func(ctx context.Context, in io.Reader, out io.Writer, onActive func()) error {
		n.Add(1)
		return power.NewError("10.0.0.1:623", power.ErrAuth, "authentication failed for user admin")
	}
	called := false
	err := hs.Attach(context.Background(), "n1", refuse, strings.NewReader(""), io.Discard, func() { called = true })
	if !errors.Is(err, power.ErrAuth) || called || err.Error() != "console n1: BMC 10.0.0.1:623: authentication failed for user admin" {
		t.Fatalf("%v (ready called %v)", err, called)
	}
	time.Sleep(50 * time.Millisecond)
	if n.Load() != 1 {
		t.Errorf("%d attempts, want 1", n.Load())
	}
	if l := hs.Log("n1", 1); l.Active || !strings.Contains(l.Error, "authentication failed") {
		t.Errorf("log %+v", l)
	}
}

// TestCaptureRestartsAndClose: a capture keeps restarting a session that
// drops (as a node's console may during a power cycle); Close stops every
// hub, and nothing attaches afterwards.
func TestCaptureRestartsAndClose(t *testing.T) {
	hs := New(nil, local.NewConsoles(0))
	e := &echo{end: func(n int32) error {
		if n == 1 {
			return errors.New("dropped")
		}
		return nil
	}}
	stop := hs.Capture(map[string]Session{"n1": e.session})
	eventually(t, "second session", func() bool { return e.sessions.Load() >= 2 })
	if l := hs.Log("n1", 5); !strings.Contains(strings.Join(l.Lines, "\n"), "session 2") {
		t.Errorf("log %+v", l)
	}
	hub := hs.Current("n1")
	hs.Close()
	select {
	case <-hub.Done():
	default:
		t.Fatal("Close left the hub running")
	}
	stop()
	if err := hs.Attach(context.Background(), "n1", e.session, strings.NewReader(""), io.Discard, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
}
