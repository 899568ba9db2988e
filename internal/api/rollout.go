package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/rollout"
)

// stages serves the staged-rollout routes, all under /v1/stages/:
//
//	GET  /v1/stages/                  every rollout kept
//	POST /v1/stages/                  stage a generation (apitype.StageRequest)
//	POST /v1/stages/preview           what staging would change, changing nothing
//	GET  /v1/stages/{id}              one rollout ("latest": the newest active)
//	POST /v1/stages/{id}/{action}     run, resume, halt, abort, promote, rollback
func (s *Server) stages() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stages/{$}", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, daemon.RolloutViews(s.D.StageList())) })
	mux.HandleFunc("POST /v1/stages/{$}", s.stageCreate(false))
	mux.HandleFunc("POST /v1/stages/preview", s.stageCreate(true))
	mux.HandleFunc("GET /v1/stages/{id}", func(w http.ResponseWriter, r *http.Request) {
		ro, err := s.D.StageGet(stageID(r.PathValue("id")))
		if err != nil {
			writeStageErr(w, err)
			return
		}
		writeJSON(w, daemon.RolloutView(ro))
	})
	mux.HandleFunc("POST /v1/stages/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		ro, err := s.D.StageAction(stageID(r.PathValue("id")), r.PathValue("action"), Who(r.Context()))
		if err != nil {
			writeStageErr(w, err)
			return
		}
		writeJSON(w, daemon.RolloutView(ro))
	})
	return mux
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
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(apitype.Error{Message: err.Error(), Code: code})
}
