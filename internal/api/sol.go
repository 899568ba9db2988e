package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
)

// Serial console over the API.
//
//	GET  /v1/nodes/{name}/sol?n=     the node's captured console log (apitype.SOLLog)
//	POST /v1/nodes/{name}/console    Upgrade: netbootui-console; after "101
//	                                 Switching Protocols" the connection is the
//	                                 node's serial-over-LAN, raw, both ways
//
// Errors found before the session is active (unknown node, no BMC
// credentials, BMC refusing SOL) are ordinary JSON error answers. An error
// after the upgrade is written into the stream as one line
// "\r\n[netbootui: ...]\r\n" before the daemon closes the connection. The
// client detaches by closing its write side (or the connection).

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
	if r.Header.Get("Upgrade") != apitype.ConsoleProtocol {
		writeErr(w, badRequest(fmt.Errorf("console needs the header Upgrade: %s", apitype.ConsoleProtocol)))
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
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + apitype.ConsoleProtocol + "\r\nConnection: Upgrade\r\n\r\n")
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
