package api

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// InProcessClient returns a Client that calls this server's handlers inside
// the process, over in-memory connections, with every request attributed to
// who in the audit log (e.g. "ssh SHA256:… (alice@laptop)") and authorized
// as role. It is how the SSH console, which runs inside the daemon, acts for
// the key that logged in, with the role its authorized_keys line gives it.
//
// The identity belongs to the connection object this function creates; no
// header or field a request carries can set it, and connections accepted on
// the unix socket keep their SO_PEERCRED identity. Call the returned function
// to stop the in-process server and its open streams.
func (s *Server) InProcessClient(who string, role apitype.Role) (*apiclient.Client, func()) {
	dial, stop := s.inProcess(caller{who: who, role: role})
	c := apiclient.NewDialer("in-process ("+who+")", dial)
	return c, func() {
		stop()
		c.CloseIdleConnections()
	}
}

// inProcess serves the API on in-memory connections made by dial, each
// attributed to c; stop ends the server and its open streams.
func (s *Server) inProcess(c caller) (dial func(context.Context) (net.Conn, error), stop func()) {
	ln := &memListener{conns: make(chan net.Conn), done: make(chan struct{})}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, conn net.Conn) context.Context {
			if ic, ok := conn.(*identityConn); ok {
				return withCaller(ctx, ic.caller)
			}
			return ctx
		},
	}
	go hs.Serve(ln)
	dial = func(ctx context.Context) (net.Conn, error) {
		client, server := net.Pipe()
		select {
		case ln.conns <- &identityConn{Conn: server, caller: c}:
			return client, nil
		case <-ln.done:
		case <-ctx.Done():
		}
		client.Close()
		server.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, net.ErrClosed
	}
	return dial, func() {
		hs.Close()
		ln.Close()
	}
}

// identityConn is one in-process connection and the caller it acts for.
type identityConn struct {
	net.Conn
	caller caller
}

// memListener hands in-memory connections to an http.Server.
type memListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr{} }

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "in-process" }
