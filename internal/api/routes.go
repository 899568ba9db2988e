package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/state"
)

// auditMode says who writes a route's audit entry.
type auditMode int

const (
	// auditNone: a read; nothing is audited (refusals aside).
	auditNone auditMode = iota
	// auditDaemon: a mutation whose outcome the daemon records itself,
	// with its results (per-node power results, the new revision, ...).
	auditDaemon
	// auditHere: a mutation the guard records once the handler answered.
	auditHere
)

// route is one API route: the role a caller needs and how the route is
// audited. Every route of the API is in routes(), and the guard is the one
// place that decides who may call what.
type route struct {
	pattern string // "METHOD /path", http.ServeMux syntax
	role    apitype.Role
	audit   auditMode
	action  string // what the audit log calls it
	h       http.HandlerFunc
}

// routes is the API's route table.
func (s *Server) routes() []route {
	const (
		viewer   = apitype.RoleViewer
		operator = apitype.RoleOperator
		admin    = apitype.RoleAdmin
	)
	read := func(pattern string, h http.HandlerFunc) route {
		return route{pattern: pattern, role: viewer, action: strings.ToLower(pattern), h: h}
	}
	rs := []route{
		read("GET /v1/status", s.status),
		read("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.D.Nodes()) }),
		read("GET /v1/nodes/{name}", s.node),
		read("GET /v1/nodes/{name}/boot", s.boot),
		read("POST /v1/nodes/{name}/preview", s.preview),
		read("GET /v1/select", s.selectNodes),
		read("GET /v1/events", s.events),
		read("GET /v1/images", s.images),
		read("GET /v1/images/diff", s.diffImages),
		read("GET /v1/images/{name}/generations/{gen}/verify", s.verifyImage),
		read("GET /v1/audit", s.auditLog),
		read("GET /v1/nodes/{name}/sol", s.solLog),
		read("GET /v1/groups/{name}", s.group),
		read("GET /v1/unknown", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.D.Unknown()) }),
		read("POST /v1/edit-preview", s.editPreview),
		read("GET /v1/nodes/{name}/bmc", s.nodeBMC),
		read("GET /v1/nodes/{name}/persist", s.persist),
		read("GET /v1/stages/{$}", s.stageList),
		read("POST /v1/stages/preview", s.stageCreate(true)),
		read("GET /v1/stages/{id}", s.stageGet),
		read("POST /v1/stages/{id}/{action}", s.stageUnknown),

		{pattern: "POST /v1/power", role: operator, audit: auditDaemon, action: "power", h: s.powerOp},
		{pattern: "POST /v1/reboot-clean", role: operator, audit: auditDaemon, action: "reboot-clean", h: s.rebootClean},
		{pattern: "POST /v1/nodes/{name}/console", role: operator, audit: auditDaemon, action: "console", h: s.console},

		{pattern: "PATCH /v1/nodes/{name}", role: admin, audit: auditDaemon, action: "edit node", h: s.editNode},
		{pattern: "POST /v1/nodes/{name}", role: admin, audit: auditDaemon, action: "add node", h: s.addNode},
		{pattern: "DELETE /v1/nodes/{name}", role: admin, audit: auditDaemon, action: "remove node", h: s.removeNode},
		{pattern: "POST /v1/nodes/{name}/rename", role: admin, audit: auditDaemon, action: "rename node", h: s.renameNode},
		{pattern: "POST /v1/nodes/{name}/persist/wipe", role: admin, audit: auditDaemon, action: "persist wipe", h: s.wipePersist},
		{pattern: "POST /v1/unknown/adopt", role: admin, audit: auditDaemon, action: "adopt", h: s.adopt},
		{pattern: "PATCH /v1/groups/{name}", role: admin, audit: auditDaemon, action: "edit group", h: s.editGroup},
		{pattern: "POST /v1/inventory/reload", role: admin, audit: auditHere, action: "inventory reload", h: s.reload},
		{pattern: "POST /v1/images/import", role: admin, audit: auditHere, action: "image import", h: s.importImage},
		{pattern: "POST /v1/images/{name}/publish", role: admin, audit: auditHere, action: "image publish", h: s.publish},
		{pattern: "POST /v1/images/build", role: admin, audit: auditDaemon, action: "image build", h: s.buildImage},
		{pattern: "POST /v1/images/{name}/rollback", role: admin, audit: auditDaemon, action: "image rollback", h: s.rollbackImage},
		{pattern: "POST /v1/images/{name}/gc", role: admin, audit: auditDaemon, action: "image gc", h: s.gcImage},
		{pattern: "POST /v1/images/{name}/exec", role: admin, audit: auditDaemon, action: "image exec", h: s.execImage},
		{pattern: "POST /v1/images/{name}/shell", role: admin, audit: auditDaemon, action: "image shell", h: s.shellImage},
		{pattern: "GET /v1/images/{name}/sessions/{id}", role: admin, action: "image session", h: s.sessionGet},
		{pattern: "POST /v1/images/{name}/sessions/{id}", role: admin, audit: auditDaemon, action: "image session", h: s.sessionDecide},
		// The shell's terminal size: no state changes, nothing is audited.
		{pattern: "POST /v1/images/{name}/sessions/{id}/size", role: admin, action: "image session resize", h: s.sessionResize},
		{pattern: "POST /v1/stages/{$}", role: admin, audit: auditDaemon, action: "rollout create", h: s.stageCreate(false)},
		// A backup holds the token key: admins only, and audited (a POST:
		// every route that is not a read is).
		{pattern: "POST /v1/backup", role: admin, audit: auditDaemon, action: "backup", h: s.backup},
	}
	for _, a := range []struct {
		name string
		role apitype.Role
	}{
		{apitype.StageRun, operator}, {apitype.StageResume, operator}, {apitype.StageHalt, operator},
		{apitype.StageAbort, admin}, {apitype.StagePromote, admin}, {apitype.StageRollback, admin},
	} {
		rs = append(rs, route{pattern: "POST /v1/stages/{id}/" + a.name, role: a.role, audit: auditDaemon,
			action: "rollout " + a.name, h: s.stageAction(a.name)})
	}
	return rs
}

// Handler returns the API's routes, each behind the guard.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.pattern, s.guard(rt))
	}
	return mux
}

// guard authorizes a request against its route's role, refusing (403,
// apitype.CodeForbidden, audited) a caller whose role is not enough;
// refuses a mutation (503, apitype.CodeUnavailable) while its audit entry
// could not be made durable; and records the entry of the routes it audits
// itself.
func (s *Server) guard(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := callerOf(r.Context())
		if !c.role.Allows(rt.role) {
			msg := fmt.Sprintf("%s %s needs the %s role; %s has %s", r.Method, r.URL.Path, rt.role, c.who, roleName(c.role))
			if err := s.D.AuditRecord(audit.Entry{Who: c.who, Action: "refused " + rt.action, Target: r.URL.Path,
				Result: "forbidden: needs the " + string(rt.role) + " role"}); err != nil {
				s.logger().Error("audit log", "err", err)
			}
			writeError(w, http.StatusForbidden, apitype.CodeForbidden, msg)
			return
		}
		if rt.audit == auditNone {
			rt.h(w, r)
			return
		}
		if err := s.D.AuditReady(); err != nil {
			hint := " (make room on the daemon's data directory)"
			if errors.Is(err, state.ErrNoQuorum) {
				hint = ""
			}
			writeError(w, http.StatusServiceUnavailable, apitype.CodeUnavailable,
				"refused, nothing was done: "+err.Error()+hint)
			return
		}
		if rt.audit == auditDaemon {
			rt.h(w, r)
			return
		}
		n := &auditNote{}
		rec := &answerRecorder{ResponseWriter: w}
		rt.h(rec, r.WithContext(withAuditNote(r.Context(), n)))
		res := "ok"
		if rec.status >= 300 {
			var e apitype.Error
			if json.Unmarshal(rec.body, &e) != nil || e.Message == "" {
				e.Message = http.StatusText(rec.status)
			}
			res = e.Message
		} else if n.result != "" {
			res = "ok: " + n.result
		}
		if err := s.D.AuditRecord(audit.Entry{Who: c.who, Action: rt.action, Target: n.target, Result: res, Details: n.details}); err != nil {
			s.logger().Error("audit log", "err", err)
		}
	}
}

func roleName(r apitype.Role) string {
	if r == apitype.RoleNone {
		return "no role"
	}
	return "the " + string(r) + " role"
}

// auditNote is what a handler of an auditHere route tells the guard about
// the action: its target, a short result and details.
type auditNote struct {
	target, result string
	details        []string
}

type auditNoteKey struct{}

func withAuditNote(ctx context.Context, n *auditNote) context.Context {
	return context.WithValue(ctx, auditNoteKey{}, n)
}

// noteAudit fills the request's audit note, if the guard made one.
func noteAudit(r *http.Request, target, result string, details ...string) {
	if n, ok := r.Context().Value(auditNoteKey{}).(*auditNote); ok {
		n.target, n.result, n.details = target, result, details
	}
}

// answerRecorder keeps the status and the start of the body of an answer.
type answerRecorder struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (a *answerRecorder) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
	a.ResponseWriter.WriteHeader(code)
}

func (a *answerRecorder) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	if room := 4096 - len(a.body); room > 0 {
		a.body = append(a.body, p[:min(room, len(p))]...)
	}
	return a.ResponseWriter.Write(p)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(apitype.Error{Message: msg, Code: code})
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}
