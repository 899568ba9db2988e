package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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
	node := r.PathValue("name")
	upgrade(w, r, apitype.ConsoleProtocol, func(in io.Reader, out io.Writer, ready func(http.Header)) error {
		// The hijacked connection outlives the request's context: the
		// session ends when the client closes or the SOL ends.
		return s.D.Console(context.WithoutCancel(r.Context()), node, Who(r.Context()), in, out, func() { ready(nil) })
	})
}

// upgrade serves a request that becomes a raw stream both ways (Upgrade:
// protocol): run gets the connection's reading and writing sides and
// calls ready (with headers for the 101 answer) once the session is
// active. Errors before ready are ordinary JSON error answers; an error
// after it is written into the stream as one line "\r\n[netbootui: ...]\r\n"
// before the connection is closed.
func upgrade(w http.ResponseWriter, r *http.Request, protocol string, run func(in io.Reader, out io.Writer, ready func(http.Header)) error) {
	if r.Header.Get("Upgrade") != protocol {
		writeErr(w, badRequest(fmt.Errorf("this needs the header Upgrade: %s", protocol)))
		return
	}
	var (
		conn   net.Conn
		brw    *bufio.ReadWriter
		hjErr  error
		upMu   sync.Mutex
		upDone bool
	)
	ready := func(h http.Header) {
		upMu.Lock()
		defer upMu.Unlock()
		conn, brw, hjErr = http.NewResponseController(w).Hijack()
		if hjErr != nil {
			return
		}
		conn.SetDeadline(time.Time{})
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + protocol + "\r\nConnection: Upgrade\r\n")
		h.Write(brw)
		brw.WriteString("\r\n")
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
	err := run(in, out, ready)
	upMu.Lock()
	defer upMu.Unlock()
	if conn == nil {
		if err == nil {
			err = errors.New("the session ended before it started")
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
