package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"

	"github.com/netbootui/netbootui/internal/apitype"
)

// Image provenance, diffs and admins' sessions on images (issue 20).
//
//	V GET  /v1/images/{name}/generations/{gen}/verify   reread every file (apitype.VerifyResult)
//	V GET  /v1/images/diff?a=IMAGE[:GEN]&b=IMAGE[:GEN]  what B changes from A (apitype.ImageDiff)
//	A POST /v1/images/{name}/exec                       run a command in a working copy (apitype.ExecRequest);
//	                                                    NDJSON output, then the session and its diff
//	A POST /v1/images/{name}/shell?term=&rows=&cols=    Upgrade: netbootui-shell; an interactive shell in a
//	                                                    working copy, raw both ways; the session's id in the
//	                                                    101 answer's Netbootui-Session header
//	A GET  /v1/images/{name}/sessions/{id}              the session and its diff (apitype.SessionView)
//	A POST /v1/images/{name}/sessions/{id}/size         the shell's terminal was resized (apitype.TermSize, echoed)
//	A POST /v1/images/{name}/sessions/{id}              publish, commit or discard it (apitype.SessionDecision)
//
// The daemon runs the root's own programs chrooted in its own unpacked
// copy of the generation: a caller names an image, never a path.

func (s *Server) verifyImage(w http.ResponseWriter, r *http.Request) {
	v, err := s.D.VerifyImage(r.PathValue("name"), r.PathValue("gen"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, v)
}

func (s *Server) diffImages(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	a, b := q.Get("a"), q.Get("b")
	if a == "" || b == "" {
		writeErr(w, badRequest(fmt.Errorf("diff needs a=IMAGE[:GEN] and b=IMAGE[:GEN]")))
		return
	}
	d, err := s.D.DiffImages(r.Context(), a, b)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, d)
}

func (s *Server) execImage(w http.ResponseWriter, r *http.Request) {
	var req apitype.ExecRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	if len(req.Command) == 0 {
		writeErr(w, badRequest(fmt.Errorf("exec: no command")))
		return
	}
	out := newNDJSONStream(w)
	lines := make(chan apitype.ExecLine, 64)
	go func() { // the command's output comes from its own goroutine; the writer is ours
		defer close(lines)
		v, err := s.D.ExecImage(r.Context(), r.PathValue("name"), req.Command, Who(r.Context()), chunkWriter(func(p []byte) {
			lines <- apitype.ExecLine{Output: string(p)}
		}))
		last := apitype.ExecLine{Session: v}
		if err != nil {
			last = apitype.ExecLine{Error: err.Error()}
		}
		lines <- last
	}()
	for l := range lines {
		out.send(l)
	}
}

// chunkWriter hands each write, copied, to fn.
type chunkWriter func([]byte)

func (f chunkWriter) Write(p []byte) (int, error) {
	f(append([]byte(nil), p...))
	return len(p), nil
}

var termRE = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,64}$`)

func (s *Server) shellImage(w http.ResponseWriter, r *http.Request) {
	term := r.URL.Query().Get("term")
	if term != "" && !termRE.MatchString(term) {
		writeErr(w, badRequest(fmt.Errorf("term=%q: not a terminal type", term)))
		return
	}
	size, err := termSize(r.URL.Query().Get("rows"), r.URL.Query().Get("cols"))
	if err != nil {
		writeErr(w, badRequest(err))
		return
	}
	name, who := r.PathValue("name"), Who(r.Context())
	upgrade(w, r, apitype.ShellProtocol, func(in io.Reader, out io.Writer, ready func(http.Header)) error {
		var mu sync.Mutex // the shell's output and this line share out
		v, err := s.D.ShellImage(context.WithoutCancel(r.Context()), name, who, term, size, in, lockedWriter(&mu, out), func(id string) {
			ready(http.Header{apitype.SessionHeader: {id}})
		})
		if err == nil {
			mu.Lock()
			fmt.Fprintf(out, "\r\n[netbootui: session %s: %s]\r\n", v.ID, v.Diff.Summary)
			mu.Unlock()
		}
		return err
	})
}

// termSize reads a terminal's rows and cols (both absent: 24x80).
func termSize(rows, cols string) ([2]uint16, error) {
	if rows == "" && cols == "" {
		return [2]uint16{24, 80}, nil
	}
	r, err1 := strconv.Atoi(rows)
	c, err2 := strconv.Atoi(cols)
	if err1 != nil || err2 != nil || !validTermSize(r, c) {
		return [2]uint16{}, fmt.Errorf("rows=%q cols=%q: want two numbers from 1 to 1000", rows, cols)
	}
	return [2]uint16{uint16(r), uint16(c)}, nil
}

func validTermSize(rows, cols int) bool {
	return rows >= 1 && rows <= 1000 && cols >= 1 && cols <= 1000
}

// sessionResize gives the pty of a session's running shell the caller's
// new terminal size. It changes no state of the daemon's (the route is not
// audited: a terminal being resized is no change of an image's).
func (s *Server) sessionResize(w http.ResponseWriter, r *http.Request) {
	var sz apitype.TermSize
	if err := decode(r, &sz); err != nil {
		writeErr(w, err)
		return
	}
	if !validTermSize(sz.Rows, sz.Cols) {
		writeErr(w, badRequest(fmt.Errorf("terminal size %dx%d: want rows and cols from 1 to 1000", sz.Rows, sz.Cols)))
		return
	}
	if err := s.D.ResizeSession(r.PathValue("name"), r.PathValue("id"), sz.Rows, sz.Cols); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, sz)
}

func lockedWriter(mu *sync.Mutex, w io.Writer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return w.Write(p)
	})
}

func (s *Server) sessionGet(w http.ResponseWriter, r *http.Request) {
	v, err := s.D.Session(r.PathValue("name"), r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, v)
}

func (s *Server) sessionDecide(w http.ResponseWriter, r *http.Request) {
	var dec apitype.SessionDecision
	if err := decode(r, &dec); err != nil {
		writeErr(w, err)
		return
	}
	res, err := s.D.DecideSession(r.Context(), r.PathValue("name"), r.PathValue("id"), dec, Who(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, res)
}
