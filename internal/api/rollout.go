package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/rollout"
)

// The staged-rollout routes (see routes.go for the role of each):
//
//	GET  /v1/stages/                  every rollout kept
//	POST /v1/stages/                  stage a generation (apitype.StageRequest)
//	POST /v1/stages/preview           what staging would change, changing nothing
//	GET  /v1/stages/{id}              one rollout ("latest": the newest active); follow=1 streams it (follow.go)
//	POST /v1/stages/{id}/{action}     run, resume, halt, abort, promote, rollback

func (s *Server) stageList(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, daemon.RolloutViews(s.D.StageList()))
}

func (s *Server) stageGet(w http.ResponseWriter, r *http.Request) {
	if isFollow(r.URL.Query()) {
		s.stageFollow(w, r)
		return
	}
	ro, err := s.D.StageGet(stageID(r.PathValue("id")))
	if err != nil {
		writeStageErr(w, err)
		return
	}
	writeJSON(w, daemon.RolloutView(ro))
}

func (s *Server) stageAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ro, err := s.D.StageAction(stageID(r.PathValue("id")), action, Who(r.Context()))
		if err != nil {
			writeStageErr(w, err)
			return
		}
		writeJSON(w, daemon.RolloutView(ro))
	}
}

// stageUnknown answers an action no route names (each action has a route
// of its own, with its role).
func (s *Server) stageUnknown(w http.ResponseWriter, r *http.Request) {
	writeErr(w, badRequest(fmt.Errorf("unknown stage action %q (run, resume, halt, abort, promote, rollback)", r.PathValue("action"))))
}

func stageID(id string) string {
	if id == apitype.LatestStage {
		return ""
	}
	return id
}

func (s *Server) stageCreate(preview bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req apitype.StageRequest
		if err := decode(r, &req); err != nil {
			writeErr(w, err)
			return
		}
		req.Who = Who(r.Context())
		var ro *daemon.Rollout
		var err error
		if preview {
			ro, err = s.D.StagePreview(req)
		} else {
			ro, err = s.D.StageCreate(req)
		}
		if err != nil {
			writeStageErr(w, err)
			return
		}
		writeJSON(w, daemon.RolloutView(ro))
	}
}

// writeStageErr answers 404 for an unknown rollout or generation, 409 for
// a step the rollout's state forbids or a node in another rollout, and 400
// for anything else (bad selection, bad options).
func writeStageErr(w http.ResponseWriter, err error) {
	code, status := apitype.CodeInvalid, http.StatusBadRequest
	switch {
	case errors.Is(err, rollout.ErrNotFound), errors.Is(err, image.ErrNotFound):
		code, status = apitype.CodeNotFound, http.StatusNotFound
	case errors.Is(err, rollout.ErrState), errors.Is(err, rollout.ErrBusy):
		code, status = apitype.CodeConflict, http.StatusConflict
	}
	writeError(w, status, code, err.Error())
}
