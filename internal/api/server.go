// Package api is the daemon's local API: JSON over HTTP on a unix socket, for
// the console and the CLI verbs. Server exposes a *daemon.Daemon; Client is the
// other end.
//
//	GET   /v1/status                       inventory in force, reload error, listen addresses
//	GET   /v1/nodes                        every node with its state
//	GET   /v1/nodes/{name}                 one node
//	GET   /v1/nodes/{name}/boot?format=    the node's rendered boot entry
//	POST  /v1/nodes/{name}/preview         render a proposed override (daemon.Preview)
//	PATCH /v1/nodes/{name}                 edit the node's inventory entry (daemon.Edit)
//	PATCH /v1/groups/{name}                edit a group's inventory entry
//	GET   /v1/select?expr=                 expand a hostlist selection
//	GET   /v1/events?node=&n=&follow=&since=  history, then (follow=1) the live stream, as NDJSON
//	GET   /v1/images                       images and generations
//	POST  /v1/images/import                import files as a generation (daemon.ImportRequest)
//	POST  /v1/images/{name}/publish        make a generation current
//	POST  /v1/images/build                 build an image (daemon.BuildRequest); NDJSON progress, then the result
//	POST  /v1/images/{name}/rollback       current generation back one publish
//	POST  /v1/images/{name}/gc             remove old generations not in use
//	POST  /v1/inventory/reload             reload the inventory file now
//	POST  /v1/power                        a power operation on a selection (daemon.PowerRequest)
//	POST  /v1/reboot-clean                 reboot a selection to a clean state; NDJSON progress, then the results
//	GET   /v1/audit?n=                     the newest audit entries
//	GET   /v1/nodes/{name}/sol?n=          the node's captured serial console lines (daemon.SOLLog)
//	POST  /v1/nodes/{name}/console         Upgrade: netbootui-console; then the node's raw serial-over-LAN
//	*     /v1/stages/...                   staged rollouts: list, create, preview, show, run|resume|halt|abort|promote|rollback (see rollout.go)
//	GET /v1/groups/{name}, POST /v1/edit-preview, GET /v1/nodes/{name}/bmc: the console's reads (see consoleviews.go)
//
// Errors are {"error": "...", "code": "..."} with a matching HTTP status:
// 400 invalid, 404 not_found, 409 conflict.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
)

// Status is the answer of GET /v1/status.
type Status struct {
	Inventory daemon.InventoryStatus `json:"inventory"`
	HTTP      string                 `json:"http,omitempty"`
	TFTP      string                 `json:"tftp,omitempty"`
	BootURL   string                 `json:"boot_url,omitempty"`
}

// Error is the body of every failed request.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
}

// Error codes.
const (
	CodeInvalid  = "invalid"
	CodeNotFound = "not_found"
	CodeConflict = "conflict"
	CodeInternal = "internal"
)

func (e *Error) Error() string { return e.Message }

// Server serves the API for one daemon.
type Server struct {
	D      *daemon.Daemon
	Logger *slog.Logger

	mu     sync.Mutex
	srv    *http.Server
	closed bool
}

// Listen binds a unix socket at path (mode 0660), replacing a stale socket
// that nothing answers on. It refuses to take over a live one.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
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

// Serve answers API requests on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ConnContext: peerContext}
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

// Handler returns the API's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.D.Nodes()) })
	mux.HandleFunc("GET /v1/nodes/{name}", s.node)
	mux.HandleFunc("GET /v1/nodes/{name}/boot", s.boot)
	mux.HandleFunc("POST /v1/nodes/{name}/preview", s.preview)
	mux.HandleFunc("PATCH /v1/nodes/{name}", s.editNode)
	mux.HandleFunc("PATCH /v1/groups/{name}", s.editGroup)
	mux.HandleFunc("GET /v1/select", s.selectNodes)
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/images", s.images)
	mux.HandleFunc("POST /v1/images/import", s.importImage)
	mux.HandleFunc("POST /v1/images/{name}/publish", s.publish)
	mux.HandleFunc("POST /v1/images/build", s.buildImage)
	mux.HandleFunc("POST /v1/images/{name}/rollback", s.rollbackImage)
	mux.HandleFunc("POST /v1/images/{name}/gc", s.gcImage)
	mux.HandleFunc("POST /v1/inventory/reload", s.reload)
	mux.HandleFunc("POST /v1/power", s.powerOp)
	mux.HandleFunc("POST /v1/reboot-clean", s.rebootClean)
	mux.HandleFunc("GET /v1/audit", s.auditLog)
	mux.HandleFunc("/v1/stages/", s.stages().ServeHTTP)
	mux.HandleFunc("GET /v1/nodes/{name}/sol", s.solLog)
	mux.HandleFunc("POST /v1/nodes/{name}/console", s.console)
	mux.HandleFunc("GET /v1/groups/{name}", s.group)
	mux.HandleFunc("POST /v1/edit-preview", s.editPreview)
	mux.HandleFunc("GET /v1/nodes/{name}/bmc", s.nodeBMC)
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	code, status := CodeInternal, http.StatusInternalServerError
	var invErr inventory.ErrorList
	var oneErr *inventory.Error
	switch {
	case errors.Is(err, inventory.ErrConflict):
		code, status = CodeConflict, http.StatusConflict
	case errors.Is(err, daemon.ErrUnknownNode), errors.Is(err, image.ErrNotFound):
		code, status = CodeNotFound, http.StatusNotFound
	case errors.As(err, &invErr), errors.As(err, &oneErr), errors.Is(err, errBadRequest):
		code, status = CodeInvalid, http.StatusBadRequest
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Error{Message: err.Error(), Code: code})
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
	st := Status{Inventory: s.D.InventoryStatus()}
	if a := s.D.HTTPAddr(); a != nil {
		st.HTTP = a.String()
		st.BootURL = s.D.BootURL()
	}
	if a := s.D.TFTPAddr(); a != nil {
		st.TFTP = a.String()
	}
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
	var p daemon.Preview
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

// EditResult is the answer to a successful edit.
type EditResult struct {
	Revision string `json:"revision"`
}

func (s *Server) editNode(w http.ResponseWriter, r *http.Request) {
	s.edit(w, r, s.D.EditNode)
}

func (s *Server) editGroup(w http.ResponseWriter, r *http.Request) {
	s.edit(w, r, s.D.EditGroup)
}

func (s *Server) edit(w http.ResponseWriter, r *http.Request, f func(string, daemon.Edit) (string, error)) {
	var e daemon.Edit
	if err := decode(r, &e); err != nil {
		writeErr(w, err)
		return
	}
	e.Who = Who(r.Context())
	rev, err := f(r.PathValue("name"), e)
	if err != nil {
		if !errors.Is(err, inventory.ErrConflict) && !errors.Is(err, daemon.ErrUnknownNode) {
			err = badRequest(err)
		}
		writeErr(w, err)
		return
	}
	writeJSON(w, EditResult{Revision: rev})
}

func (s *Server) selectNodes(w http.ResponseWriter, r *http.Request) {
	names, err := s.D.Select(r.URL.Query().Get("expr"))
	if err != nil {
		writeErr(w, badRequest(err))
		return
	}
	writeJSON(w, names)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	node := q.Get("node")
	n := 100
	if v := q.Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			writeErr(w, badRequest(fmt.Errorf("bad n %q", v)))
			return
		}
	}
	follow := q.Get("follow") == "1" || q.Get("follow") == "true"
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	var sub *bootstate.Subscription
	if follow { // subscribe before reading history so nothing falls between
		sub = s.D.Subscribe(4096)
		defer sub.Close()
	}
	var last uint64
	for _, ev := range s.D.History(node, n) {
		enc.Encode(ev)
		last = ev.Seq
	}
	if !follow {
		return
	}
	if flusher != nil {
		flusher.Flush()
	}
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if ev.Seq <= last || (node != "" && ev.Node != node) {
				continue
			}
			if err := enc.Encode(ev); err != nil {
				return
			}
			if flusher != nil && len(sub.C) == 0 {
				flusher.Flush()
			}
		case <-keepalive.C:
			io.WriteString(w, "\n") // blank lines are keepalives
			if flusher != nil {
				flusher.Flush()
			}
		}
	}
}

func (s *Server) images(w http.ResponseWriter, r *http.Request) {
	list, err := s.D.ImageList()
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, list)
}

func (s *Server) importImage(w http.ResponseWriter, r *http.Request) {
	var req daemon.ImportRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	m, err := s.D.ImportImage(req)
	if err != nil {
		writeErr(w, badRequest(err))
		return
	}
	writeJSON(w, m)
}

// PublishRequest names the generation to make current.
type PublishRequest struct {
	Generation string `json:"generation"`
}

func (s *Server) publish(w http.ResponseWriter, r *http.Request) {
	var req PublishRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
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
	writeJSON(w, s.D.InventoryStatus())
}

func (s *Server) powerOp(w http.ResponseWriter, r *http.Request) {
	var req daemon.PowerRequest
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
	writeJSON(w, s.D.Audit(n))
}
