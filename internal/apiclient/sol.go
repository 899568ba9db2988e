package apiclient

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
)

// SOLLog returns the last n lines (0: the daemon's default) of a node's
// captured console output.
func (c *Client) SOLLog(ctx context.Context, node string, n int) (apitype.SOLLog, error) {
	var l apitype.SOLLog
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
	if cw, ok := cc.c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return cc.c.Close()
}

// Close closes the connection.
func (cc *ConsoleConn) Close() error { return cc.c.Close() }

// Console attaches to a node's serial-over-LAN console through the daemon.
// ctx bounds the attach only (until the session is active); the returned
// connection lives until closed.
func (c *Client) Console(ctx context.Context, node string) (*ConsoleConn, error) {
	cc, _, err := c.upgrade(ctx, "/v1/nodes/"+url.PathEscape(node)+"/console", apitype.ConsoleProtocol, "console "+node)
	return cc, err
}

// upgrade asks for path with Upgrade: protocol and returns the raw
// connection once the daemon switched protocols, with the 101 answer's
// headers. ctx bounds the attach only.
func (c *Client) upgrade(ctx context.Context, path, protocol, what string) (*ConsoleConn, http.Header, error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", c.name, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req, _ := http.NewRequest("POST", "http://netbootui"+path, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", protocol)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("%s: %w", c.name, err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, fmt.Errorf("%s: %w", c.name, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		return nil, nil, responseError(resp, what)
	}
	if !stop() {
		conn.Close()
		return nil, nil, ctx.Err()
	}
	return &ConsoleConn{c: conn, br: br}, resp.Header, nil
}
