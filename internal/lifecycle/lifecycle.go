// Package lifecycle runs a set of network servers as one: Listen binds every
// server in order and unwinds (closes those already bound) on the first
// failure; Serve serves them all, tracked, with background tasks beside
// them, until the context ends or one of them fails; then every server is
// closed, in reverse order, and Serve waits for all of them to return.
//
// The daemon runs its boot servers (HTTP, TFTP, proxyDHCP) and the servers
// its caller hands it (API socket, SSH console) in one Group.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// Service is one server a Group runs.
type Service interface {
	// Listen binds the server's sockets, so that a bad address or a
	// missing permission is reported before anything is served.
	Listen() error
	// Serve serves until Close. After Close it returns nil, net.ErrClosed
	// or http.ErrServerClosed (all mean a clean stop).
	Serve() error
	// Close stops the server and releases its sockets. It is called once,
	// after Listen (successful or not), whether or not Serve ran.
	Close() error
}

// Funcs makes a Service of three functions (nil ones do nothing).
type Funcs struct {
	ListenFunc func() error
	ServeFunc  func() error
	CloseFunc  func() error
}

// Listen calls ListenFunc.
func (f Funcs) Listen() error { return call(f.ListenFunc) }

// Serve calls ServeFunc.
func (f Funcs) Serve() error { return call(f.ServeFunc) }

// Close calls CloseFunc.
func (f Funcs) Close() error { return call(f.CloseFunc) }

func call(f func() error) error {
	if f == nil {
		return nil
	}
	return f()
}

// Group is a set of named services and background tasks. Add services,
// then Listen (or let Serve do it), then Serve once. A Group is not
// reusable.
type Group struct {
	mu       sync.Mutex
	services []named
	tasks    []task
	bound    int // services[:bound] are listening
	state    int // 0 new, 1 listening, 2 served or closed
}

type named struct {
	name string
	s    Service
}

type task struct {
	name string
	run  func(ctx context.Context) error
}

// Add appends a service; Listen binds services in the order they were
// added. It panics after Listen: the set is fixed by then.
func (g *Group) Add(name string, s Service) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != 0 {
		panic("lifecycle: Add after Listen")
	}
	g.services = append(g.services, named{name, s})
}

// Go adds a background task run by Serve with a context that ends when the
// group stops. A task that returns a non-nil error before then stops the
// group like a failed server.
func (g *Group) Go(name string, run func(ctx context.Context) error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state == 2 {
		panic("lifecycle: Go after Serve")
	}
	g.tasks = append(g.tasks, task{name, run})
}

// Listen binds every service in order. On the first failure it closes the
// services already bound, in reverse order, and returns the error naming
// the service; the group is then closed. Listen twice is a no-op.
func (g *Group) Listen() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.state {
	case 1:
		return nil
	case 2:
		return net.ErrClosed
	}
	g.state = 1
	for i, n := range g.services {
		if err := n.s.Listen(); err != nil {
			n.s.Close()
			g.closeLocked(i)
			g.state = 2
			return fmt.Errorf("%s: %w", n.name, err)
		}
		g.bound = i + 1
	}
	return nil
}

// closeLocked closes services[:n] in reverse order.
func (g *Group) closeLocked(n int) error {
	var errs []error
	for i := n - 1; i >= 0; i-- {
		if err := g.services[i].s.Close(); err != nil && !clean(err) {
			errs = append(errs, fmt.Errorf("%s: close: %w", g.services[i].name, err))
		}
	}
	g.bound = 0
	return errors.Join(errs...)
}

// Close closes a group that was bound but will not be served (Serve closes
// its own). Safe to call more than once and after Serve.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.state = 2
	return g.closeLocked(g.bound)
}

// clean reports whether a Serve error means the server was closed.
func clean(err error) bool {
	return err == nil || errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed)
}

// Serve listens if Listen was not called, then serves every service and
// runs every task until ctx ends or one of them fails. Then it cancels the
// tasks, closes every service (reverse order), waits for all of them, and
// returns the first failure (nil when ctx ended it).
func (g *Group) Serve(ctx context.Context) error {
	if err := g.Listen(); err != nil {
		return err
	}
	g.mu.Lock()
	if g.state != 1 {
		g.mu.Unlock()
		return net.ErrClosed
	}
	g.state = 2
	services, tasks := g.services[:g.bound], g.tasks
	g.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(services)+len(tasks))
	var wg sync.WaitGroup
	for _, n := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.s.Serve(); !clean(err) {
				errc <- fmt.Errorf("%s: %w", n.name, err)
				return
			}
			if ctx.Err() == nil {
				// A server that stops by itself leaves the group short:
				// stop everything rather than run without it.
				errc <- fmt.Errorf("%s: stopped", n.name)
			}
		}()
	}
	for _, t := range tasks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", t.name, err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	g.mu.Lock()
	cerr := g.closeLocked(len(services))
	g.mu.Unlock()
	wg.Wait()
	if err == nil {
		err = cerr
	}
	return err
}
