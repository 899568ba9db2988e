package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/inventory"
)

// The console's reads besides the node list (see daemon/consoleviews.go):
//
//	GET  /v1/groups/{name}         a group's own settings and nodes (apitype.GroupView)
//	POST /v1/edit-preview          render a node's entry after a proposed node or group edit (apitype.EditPreview)
//	GET  /v1/nodes/{name}/bmc      read the node's BMC device ID and power state (apitype.BMCFacts)

func (s *Server) group(w http.ResponseWriter, r *http.Request) {
	v, err := s.D.Group(r.PathValue("name"))
	if errors.Is(err, daemon.ErrUnknownGroup) {
		writeError(w, http.StatusNotFound, apitype.CodeNotFound, err.Error())
		return
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, v)
}

func (s *Server) editPreview(w http.ResponseWriter, r *http.Request) {
	var p apitype.EditPreview
	if err := decode(r, &p); err != nil {
		writeErr(w, err)
		return
	}
	text, err := s.D.PreviewEdit(p)
	if err != nil {
		if !errors.Is(err, daemon.ErrUnknownNode) && !errors.Is(err, inventory.ErrConflict) {
			err = refusal{err}
		}
		writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, text)
}

// refusal is a bad request whose message is the reason alone (the
// console shows it as it is).
type refusal struct{ err error }

func (r refusal) Error() string   { return r.err.Error() }
func (r refusal) Unwrap() []error { return []error{errBadRequest, r.err} }

func (s *Server) nodeBMC(w http.ResponseWriter, r *http.Request) {
	f, err := s.D.NodeBMC(r.Context(), r.PathValue("name"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, f)
}
