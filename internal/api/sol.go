package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/daemon"
)

// Serial console over the API.
//
//	GET  /v1/nodes/{name}/sol?n=     the node's captured console log (daemon.SOLLog)
//	POST /v1/nodes/{name}/console    Upgrade: netbootui-console; after "101
//	                                 Switching Protocols" the connection is the
//	                                 node's serial-over-LAN, raw, both ways
//
// Errors found before the session is active (unknown node, no BMC
// credentials, BMC refusing SOL) are ordinary JSON error answers. An error
// after the upgrade is written into the stream as one line
// "\r\n[netbootui: ...]\r\n" before the daemon closes the connection. The
// client detaches by closing its write side (or the connection).

// ConsoleProtocol is the Upgrade token of POST /v1/nodes/{name}/console.
const ConsoleProtocol = "netbootui-console"

// consoleWriteTimeout bounds a write to a console client that stopped
// reading.
const consoleWriteTimeout = 30 * time.Second

func (s *Server) solLog(w http.ResponseWriter, r *http.Request) {
	n := 0
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 || n > 100000 {
			writeErr(w, badRequest(fmt.Errorf("n=%q: want a number of lines from 0 to 100000", v)))
			return
		}
	}
	l, err := s.D.SOLLog(r.PathValue("name"), n)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, l)
}

func (s *Server) console(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Upgrade") != ConsoleProtocol {
		writeErr(w, badRequest(fmt.Errorf("console needs the header Upgrade: %s", ConsoleProtocol)))
		return
	}
	node := r.PathValue("name")
	var (
		conn   net.Conn
		brw    *bufio.ReadWriter
		hjErr  error
		upMu   sync.Mutex
		upDone bool
	)
	ready := func() {
		upMu.Lock()
		defer upMu.Unlock()
		conn, brw, hjErr = http.NewResponseController(w).Hijack()
		if hjErr != nil {
			return
		}
		conn.SetDeadline(time.Time{})
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + ConsoleProtocol + "\r\nConnection: Upgrade\r\n\r\n")
		hjErr = brw.Flush()
		upDone = hjErr == nil
	}
	in := readerFunc(func(p []byte) (int, error) {
		if hjErr != nil {
			return 0, hjErr
		}
		return brw.Read(p)
	})
	out := writerFunc(func(p []byte) (int, error) {
		if hjErr != nil {
			return 0, hjErr
		}
		conn.SetWriteDeadline(time.Now().Add(consoleWriteTimeout))
		return conn.Write(p)
	})
	// The hijacked connection outlives the request's context: the
	// session ends when the client closes or the SOL ends.
	err := s.D.Console(context.WithoutCancel(r.Context()), node, Who(r.Context()), in, out, ready)
	upMu.Lock()
	defer upMu.Unlock()
	if conn == nil {
		if err == nil {
			err = errors.New("console ended before it started")
		}
		writeErr(w, err)
		return
	}
	if err != nil && upDone {
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(conn, "\r\n[netbootui: %v]\r\n", err)
	}
	conn.Close()
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// SOLLog returns the last n lines (0: the daemon's default) of a node's
// captured console output.
func (c *Client) SOLLog(ctx context.Context, node string, n int) (daemon.SOLLog, error) {
	var l daemon.SOLLog
	q := ""
	if n > 0 {
		q = "?n=" + strconv.Itoa(n)
	}
	err := c.do(ctx, "GET", "/v1/nodes/"+url.PathEscape(node)+"/sol"+q, nil, &l)
	return l, err
}

// ConsoleConn is an attached serial console: Read is the node's output,
// Write goes to its serial port, CloseWrite detaches (the daemon then ends
// the session and closes), Close drops the connection.
type ConsoleConn struct {
	c  net.Conn
	br *bufio.Reader
}

// Read reads the node's console output.
func (cc *ConsoleConn) Read(p []byte) (int, error) { return cc.br.Read(p) }

// Write types into the node's console.
func (cc *ConsoleConn) Write(p []byte) (int, error) { return cc.c.Write(p) }

// CloseWrite tells the daemon the user detached.
func (cc *ConsoleConn) CloseWrite() error {
	if uc, ok := cc.c.(*net.UnixConn); ok {
		return uc.CloseWrite()
	}
	return cc.c.Close()
}

// Close closes the connection.
func (cc *ConsoleConn) Close() error { return cc.c.Close() }

// Console attaches to a node's serial-over-LAN console through the daemon.
// ctx bounds the attach only (until the session is active); the returned
// connection lives until closed.
func (c *Client) Console(ctx context.Context, node string) (*ConsoleConn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, fmt.Errorf("daemon at %s: %w", c.Socket, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, _ := http.NewRequest("POST", "http://netbootui/v1/nodes/"+url.PathEscape(node)+"/console", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", ConsoleProtocol)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("daemon at %s: %w", c.Socket, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("daemon at %s: %w", c.Socket, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		var e Error
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e = Error{Message: "console " + node + ": " + resp.Status, Code: CodeInternal}
		}
		return nil, &e
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	return &ConsoleConn{c: conn, br: br}, nil
}
