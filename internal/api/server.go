// Package api is the server side of the daemon's local API: JSON over HTTP on
// a unix socket, for the console, the SSH console and the CLI verbs. Server
// exposes a *daemon.Daemon; the other end is internal/apiclient, and every
// type on the wire is in internal/apitype (the daemon's own types are
// converted at this boundary, see daemon/wire.go).
//
// Every route needs a role (viewer < operator < admin, see routes.go, the
// one place that decides): V viewer, O operator, A admin.
//
//	V GET   /v1/status                       inventory in force, reload error, listen addresses
//	V GET   /v1/nodes                        every node with its state
//	V GET   /v1/nodes/{name}                 one node
//	V GET   /v1/nodes/{name}/boot?format=    the node's rendered boot entry
//	V POST  /v1/nodes/{name}/preview         render a proposed override (apitype.Preview)
//	A PATCH /v1/nodes/{name}                 edit the node's inventory entry (apitype.Edit)
//	A POST  /v1/nodes/{name}                 add a node (apitype.Edit: its fields, "mac" required)
//	A DELETE /v1/nodes/{name}                remove a node (apitype.Edit: base revision only)
//	A POST  /v1/nodes/{name}/rename          rename a node (apitype.NodeRename)
//	V GET   /v1/unknown                      PXE clients not in the inventory (apitype.UnknownNode)
//	A POST  /v1/unknown/adopt                name unknown clients as nodes of a group (apitype.AdoptRequest)
//	A PATCH /v1/groups/{name}                edit a group's inventory entry
//	V GET   /v1/select?expr=                 expand a hostlist selection
//	V GET   /v1/events?node=&n=&follow=      history, then (follow=1) the live stream, as NDJSON
//	V GET   /v1/images                       images and generations
//	A POST  /v1/images/import                a generation from the files' content (multipart, see images.go)
//	A POST  /v1/images/{name}/publish        make a generation current
//	A POST  /v1/images/build                 build an image (apitype.BuildRequest); NDJSON progress, then the result
//	A POST  /v1/images/{name}/rollback       current generation back one publish
//	A POST  /v1/images/{name}/gc             remove old generations not in use
//	V GET   /v1/images/diff?a=&b=            what generation b changes from a (imagesessions.go)
//	V GET   /v1/images/{name}/generations/{gen}/verify  reread a generation's files
//	A POST  /v1/images/{name}/exec|shell     a command or a shell in a working copy (imagesessions.go)
//	A GET|POST /v1/images/{name}/sessions/{id}  the session; publish, commit or discard it
//	A POST  /v1/inventory/reload             reload the inventory file now
//	A POST  /v1/backup                       a backup of the daemon's state (internal/backup), streamed; it holds the token key
//	O POST  /v1/power                        a power operation on a selection (apitype.PowerRequest)
//	O POST  /v1/reboot-clean                 reboot a selection to a clean state; NDJSON progress, then the results
//	V GET   /v1/audit?n=&follow=             the newest audit entries; follow=1: then each as it is recorded, as NDJSON
//	V GET   /v1/nodes/{name}/sol?n=          the node's captured serial console lines (apitype.SOLLog)
//	O POST  /v1/nodes/{name}/console         Upgrade: netbootui-console; then the node's raw serial-over-LAN
//	V GET   /v1/stages/, /v1/stages/{id}     staged rollouts (apitype.Rollout); POST /v1/stages/preview (V)
//	V GET   /v1/stages/{id}?follow=1         the rollout, then its state after every change, as NDJSON (follow.go)
//	A POST  /v1/stages/                      stage a generation (apitype.StageRequest)
//	O POST  /v1/stages/{id}/run|resume|halt  drive a rollout; abort|promote|rollback need A
//	V GET   /v1/nodes/{name}/persist         the node's persisted paths and what each holds (apitype.PersistView)
//	A POST  /v1/nodes/{name}/persist/wipe    empty the node's persisted paths on the head (persist.go)
//	V GET /v1/groups/{name}, POST /v1/edit-preview, GET /v1/nodes/{name}/bmc: the console's reads (see consoleviews.go)
//
// A caller without the role gets 403 (code forbidden, naming the role
// needed), and the refusal is audited. Every mutation is audited, by the
// daemon with its results or by the guard; while the audit log cannot make
// an entry durable (full disk), mutations are refused with 503 (code
// unavailable) before anything is done.
//
// Errors are apitype.Error, {"error": "...", "code": "..."}, with a matching
// HTTP status: 400 invalid, 403 forbidden, 404 not_found, 409 conflict, 500
// internal, 503 unavailable.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/netlimit"
)

// Server serves the API for one daemon.
type Server struct {
	D      *daemon.Daemon
	Logger *slog.Logger
	// Limits: the socket's connections get its ReadHeaderTimeout and
	// IdleTimeout (zero: netlimit's defaults). Its read and write timeouts
	// do not apply: an import streams a caller's files, a follow stream
	// stays open as long as its caller watches.
	Limits netlimit.Limits
	// Groups maps the unix groups of socket callers to roles (zero value:
	// DefaultRoleGroups).
	Groups RoleGroups
	// followBuf is how many audit entries or events a follow stream's
	// subscription holds for a reader that lags (0: followBuffer).
	followBuf int

	lookupGroups func(uid uint32) ([]string, error) // tests: instead of the user database

	mu     sync.Mutex
	srv    *http.Server
	closed bool
}

// Listen binds a unix socket at path (mode 0660), replacing a stale socket
// that nothing answers on. It refuses to take over a live one, and never
// removes anything at path that is not a socket.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api socket %s: a %s is there, not a socket: not replacing it", path, fileKind(fi.Mode()))
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: another daemon is answering on it", path)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "folder"
	case m&os.ModeSymlink != 0:
		return "symbolic link"
	case m.IsRegular():
		return "regular file"
	}
	return "file"
}

// Serve answers API requests on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	l := s.Limits.WithDefaults()
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: l.ReadHeaderTimeout, IdleTimeout: l.IdleTimeout, ConnContext: s.peerContext}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.srv = srv
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server and its event streams.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	code, status := apitype.CodeInternal, http.StatusInternalServerError
	var invErr inventory.ErrorList
	var oneErr *inventory.Error
	switch {
	case errors.Is(err, inventory.ErrConflict), errors.Is(err, daemon.ErrBusy):
		code, status = apitype.CodeConflict, http.StatusConflict
	case errors.Is(err, daemon.ErrUnknownNode), errors.Is(err, image.ErrNotFound):
		code, status = apitype.CodeNotFound, http.StatusNotFound
	case errors.As(err, &invErr), errors.As(err, &oneErr), errors.Is(err, errBadRequest), errors.Is(err, daemon.ErrNotPersisted):
		code, status = apitype.CodeInvalid, http.StatusBadRequest
	}
	writeError(w, status, code, err.Error())
}

var errBadRequest = errors.New("bad request")

// ndjsonStream writes one JSON value per line and sends each at once: the
// answer of long operations (builds, reboot-clean) whose progress the client
// shows as it comes.
type ndjsonStream struct {
	enc     *json.Encoder
	flusher http.Flusher
}

func newNDJSONStream(w http.ResponseWriter) *ndjsonStream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	f, _ := w.(http.Flusher)
	return &ndjsonStream{enc: json.NewEncoder(w), flusher: f}
}

// send writes v as one line and flushes it.
func (n *ndjsonStream) send(v any) error {
	if err := n.enc.Encode(v); err != nil {
		return err
	}
	if n.flusher != nil {
		n.flusher.Flush()
	}
	return nil
}

func badRequest(err error) error { return fmt.Errorf("%w: %w", errBadRequest, err) }

func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest(err)
	}
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := apitype.Status{Inventory: s.D.InventoryStatus()}
	if a := s.D.HTTPAddr(); a != nil {
		st.HTTP = a.String()
		st.BootURL = s.D.BootURL()
	}
	if a := s.D.TFTPAddr(); a != nil {
		st.TFTP = a.String()
	}
	st.Cluster = s.D.ClusterStatus(r.Context())
	writeJSON(w, st)
}

func (s *Server) node(w http.ResponseWriter, r *http.Request) {
	v, err := s.D.Node(r.PathValue("name"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, v)
}

func (s *Server) boot(w http.ResponseWriter, r *http.Request) {
	text, err := s.D.BootEntry(r.PathValue("name"), r.URL.Query().Get("format"))
	if err != nil {
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, text)
}

func (s *Server) preview(w http.ResponseWriter, r *http.Request) {
	var p apitype.Preview
	if err := decode(r, &p); err != nil {
		writeErr(w, err)
		return
	}
	p.Node = r.PathValue("name")
	text, err := s.D.PreviewEntry(p)
	if err != nil {
		if !errors.Is(err, daemon.ErrUnknownNode) {
			err = badRequest(err)
		}
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, text)
}

func (s *Server) editNode(w http.ResponseWriter, r *http.Request) {
	s.edit(w, r, s.D.EditNode)
}

func (s *Server) editGroup(w http.ResponseWriter, r *http.Request) {
	s.edit(w, r, s.D.EditGroup)
}

func (s *Server) addNode(w http.ResponseWriter, r *http.Request) {
	s.edit(w, r, s.D.AddNode)
}

func (s *Server) removeNode(w http.ResponseWriter, r *http.Request) {
	s.edit(w, r, s.D.RemoveNode)
}

func (s *Server) adopt(w http.ResponseWriter, r *http.Request) {
	var req apitype.AdoptRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	req.Who = Who(r.Context())
	res, err := s.D.Adopt(r.Context(), req)
	if err != nil {
		writeRevision(w, "", err)
		return
	}
	writeJSON(w, res)
}

func (s *Server) renameNode(w http.ResponseWriter, r *http.Request) {
	var nr apitype.NodeRename
	if err := decode(r, &nr); err != nil {
		writeErr(w, err)
		return
	}
	nr.Who = Who(r.Context())
	rev, err := s.D.RenameNode(r.PathValue("name"), nr)
	writeRevision(w, rev, err)
}

func (s *Server) edit(w http.ResponseWriter, r *http.Request, f func(string, apitype.Edit) (string, error)) {
	var e apitype.Edit
	if err := decode(r, &e); err != nil {
		writeErr(w, err)
		return
	}
	e.Who = Who(r.Context())
	rev, err := f(r.PathValue("name"), e)
	writeRevision(w, rev, err)
}

// writeRevision answers an inventory change: its new revision, or its
// error (a conflict, an unknown node, else a bad request).
func writeRevision(w http.ResponseWriter, rev string, err error) {
	if err != nil {
		if !errors.Is(err, inventory.ErrConflict) && !errors.Is(err, daemon.ErrUnknownNode) {
			err = badRequest(err)
		}
		writeErr(w, err)
		return
	}
	writeJSON(w, apitype.EditResult{Revision: rev})
}

func (s *Server) selectNodes(w http.ResponseWriter, r *http.Request) {
	names, err := s.D.Select(r.URL.Query().Get("expr"))
	if err != nil {
		writeErr(w, badRequest(err))
		return
	}
	writeJSON(w, names)
}

// countParam reads query parameter name, a count (0 or more); def when it
// is absent.
func countParam(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, badRequest(fmt.Errorf("bad %s %q", name, v))
	}
	return n, nil
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	node := q.Get("node")
	n, err := countParam(q, "n", 100)
	if err != nil {
		writeErr(w, err)
		return
	}
	// notable=M: besides the newest n events, the newest M that are not
	// routine (check-ins, progress), which a busy cluster's check-ins
	// would leave out of the newest n.
	notable, err := countParam(q, "notable", 0)
	if err != nil {
		writeErr(w, err)
		return
	}
	follow := isFollow(q)
	var sub *bootstate.Subscription
	if follow { // subscribe before reading history so nothing falls between
		sub = s.D.Subscribe(s.followBuffer())
		defer sub.Close()
	}
	backlog := s.D.History(node, n)
	if notable > 0 && node == "" {
		backlog = bootstate.MergeSeq(backlog, s.D.Notable(notable))
	}
	enc := startNDJSON(w)
	var last uint64
	for _, ev := range backlog {
		enc.Encode(daemon.EventView(ev))
		last = ev.Seq
	}
	if !follow {
		return
	}
	followEvents(w, r, enc, sub.C, node, last)
}

func (s *Server) images(w http.ResponseWriter, r *http.Request) {
	list, err := s.D.ImageList()
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, list)
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	var req apitype.PublishRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	noteAudit(r, r.PathValue("name"), "generation "+req.Generation)
	if err := s.D.PublishImage(r.PathValue("name"), req.Generation); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, req)
}

func (s *Server) reload(w http.ResponseWriter, r *http.Request) {
	if err := s.D.Reload(); err != nil {
		writeErr(w, badRequest(err))
		return
	}
	st := s.D.InventoryStatus()
	noteAudit(r, st.Path, "revision "+st.Revision)
	writeJSON(w, st)
}

func (s *Server) powerOp(w http.ResponseWriter, r *http.Request) {
	var req apitype.PowerRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	req.Who = Who(r.Context())
	res, err := s.D.Power(r.Context(), req, nil)
	if err != nil {
		writeErr(w, badRequest(err))
		return
	}
	writeJSON(w, res)
}

func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	if isFollow(r.URL.Query()) {
		s.auditFollow(w, r, n)
		return
	}
	writeJSON(w, daemon.AuditViews(s.D.Audit(n)))
}
