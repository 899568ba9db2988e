package api

import (
	"net/http"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
)

func (s *Server) buildImage(w http.ResponseWriter, r *http.Request) {
	var req apitype.BuildRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	req.Who = Who(r.Context())
	out := newNDJSONStream(w)
	lines := make(chan apitype.BuildLine, 64)
	go func() { // progress comes from the build's goroutine; the writer is ours
		defer close(lines)
		m, err := s.D.BuildImage(r.Context(), req, func(p image.Progress) {
			bp := daemon.BuildProgressView(p)
			select {
			case lines <- apitype.BuildLine{Progress: &bp}:
			default: // a slow client loses progress lines, never the result
			}
		})
		last := apitype.BuildLine{Manifest: daemon.ManifestView(m)}
		if err != nil {
			last = apitype.BuildLine{Error: err.Error()}
		}
		lines <- last
	}()
	for l := range lines {
		out.send(l)
	}
}

func (s *Server) rollbackImage(w http.ResponseWriter, r *http.Request) {
	gen, err := s.D.RollbackImage(r.PathValue("name"), Who(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, apitype.RollbackResult{Current: gen})
}

func (s *Server) gcImage(w http.ResponseWriter, r *http.Request) {
	var req apitype.GCRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	removed, err := s.D.GCImage(r.PathValue("name"), req.Keep, Who(r.Context()))
	if err != nil {
		writeErr(w, badRequest(err))
		return
	}
	writeJSON(w, apitype.GCResult{Removed: removed})
}
