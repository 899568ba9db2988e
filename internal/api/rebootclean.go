package api

import (
	"net/http"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
)

// rebootClean streams a reboot-clean run as NDJSON apitype.RebootLines. The run
// stops when the client goes away.
func (s *Server) rebootClean(w http.ResponseWriter, r *http.Request) {
	var req apitype.RebootRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	req.Who = Who(r.Context())
	out := newNDJSONStream(w)
	res, err := s.D.RebootClean(r.Context(), req, func(p daemon.RebootProgress) {
		wp := daemon.RebootProgressView(p)
		out.send(apitype.RebootLine{Progress: &wp})
	})
	if err != nil { // only before the run started: nothing was sent yet
		writeErr(w, badRequest(err))
		return
	}
	out.send(apitype.RebootLine{Results: daemon.RebootResultViews(res), Done: true})
}
