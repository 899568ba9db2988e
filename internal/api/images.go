package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
)

// importImage makes a generation of the files the caller sent: a
// multipart/form-data body whose first part (apitype.ImportRequestPart) is
// the request as JSON and whose next parts are the files' content, named
// apitype.FileKernel, FileInitrd and FileRootfs. The daemon opens no path
// the caller names; a body that is not multipart (an older client sending
// paths) is refused.
func (s *Server) importImage(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		writeErr(w, badRequest(fmt.Errorf("image import takes the files' content as multipart/form-data (%v); the daemon does not open paths a caller names", err)))
		return
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != apitype.ImportRequestPart {
		writeErr(w, badRequest(fmt.Errorf("image import: the first part must be %q", apitype.ImportRequestPart)))
		return
	}
	var req apitype.ImportRequest
	dec := json.NewDecoder(io.LimitReader(part, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeErr(w, badRequest(fmt.Errorf("image import request: %w", err)))
		return
	}
	noteAudit(r, req.Image, "")
	m, err := s.D.ImportStream(req, func() (string, io.Reader, error) {
		p, err := mr.NextPart()
		if err != nil {
			return "", nil, err // io.EOF after the last part
		}
		return p.FormName(), p, nil
	})
	if err != nil {
		writeErr(w, badRequest(err))
		return
	}
	noteAudit(r, req.Image, "generation "+m.ID+map[bool]string{true: ", published"}[req.Publish], manifestDetails(m)...)
	writeJSON(w, daemon.ManifestView(m))
}

// manifestDetails lists a generation's files for the audit log.
func manifestDetails(m *image.Manifest) []string {
	var out []string
	for _, f := range m.Files {
		out = append(out, fmt.Sprintf("%s %d bytes sha256 %s", f.Name, f.Size, f.SHA256))
	}
	return out
}

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
