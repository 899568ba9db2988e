package api

import (
	"net/http"

	"github.com/netbootui/netbootui/internal/apitype"
)

// persist answers GET /v1/nodes/{name}/persist: the node's persisted paths
// and what each holds on the head (or, for a persist disk, the disk, what
// the node reports and the newest wipe).
func (s *Server) persist(w http.ResponseWriter, r *http.Request) {
	v, err := s.D.Persist(r.PathValue("name"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, v)
}

// wipePersist answers POST /v1/nodes/{name}/persist/wipe (admin; the daemon
// audits it): the node's persisted paths emptied (on a persist disk: a
// wipe recorded for the node's next boot), then read again.
func (s *Server) wipePersist(w http.ResponseWriter, r *http.Request) {
	v, err := s.D.WipePersist(apitype.PersistWipeRequest{Node: r.PathValue("name"), Who: callerOf(r.Context()).who})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, v)
}
