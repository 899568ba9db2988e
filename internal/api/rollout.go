package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/rollout"
)

// LatestStage is the rollout id that names the newest rollout not yet
// promoted or rolled back.
const LatestStage = "latest"

// stages serves the staged-rollout routes, all under /v1/stages/:
//
//	GET  /v1/stages/                  every rollout kept
//	POST /v1/stages/                  stage a generation (daemon.StageRequest)
//	POST /v1/stages/preview           what staging would change, changing nothing
//	GET  /v1/stages/{id}              one rollout ("latest": the newest active)
//	POST /v1/stages/{id}/{action}     run, resume, halt, abort, promote, rollback
func (s *Server) stages() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stages/{$}", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.D.StageList()) })
	mux.HandleFunc("POST /v1/stages/{$}", s.stageCreate(false))
	mux.HandleFunc("POST /v1/stages/preview", s.stageCreate(true))
	mux.HandleFunc("GET /v1/stages/{id}", func(w http.ResponseWriter, r *http.Request) {
		ro, err := s.D.StageGet(stageID(r.PathValue("id")))
		if err != nil {
			writeStageErr(w, err)
			return
		}
		writeJSON(w, ro)
	})
	mux.HandleFunc("POST /v1/stages/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		ro, err := s.D.StageAction(stageID(r.PathValue("id")), r.PathValue("action"), Who(r.Context()))
		if err != nil {
			writeStageErr(w, err)
			return
		}
		writeJSON(w, ro)
	})
	return mux
}

func stageID(id string) string {
	if id == LatestStage {
		return ""
	}
	return id
}

func (s *Server) stageCreate(preview bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req daemon.StageRequest
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
		writeJSON(w, ro)
	}
}

// writeStageErr answers 404 for an unknown rollout or generation, 409 for
// a step the rollout's state forbids or a node in another rollout, and 400
// for anything else (bad selection, bad options).
func writeStageErr(w http.ResponseWriter, err error) {
	code, status := CodeInvalid, http.StatusBadRequest
	switch {
	case errors.Is(err, rollout.ErrNotFound), errors.Is(err, image.ErrNotFound):
		code, status = CodeNotFound, http.StatusNotFound
	case errors.Is(err, rollout.ErrState), errors.Is(err, rollout.ErrBusy):
		code, status = CodeConflict, http.StatusConflict
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(Error{Message: err.Error(), Code: code})
}

// StagePreview returns what staging req would change, changing nothing.
func (c *Client) StagePreview(ctx context.Context, req daemon.StageRequest) (*daemon.Rollout, error) {
	var ro daemon.Rollout
	err := c.do(ctx, "POST", "/v1/stages/preview", req, &ro)
	return &ro, err
}

// StageCreate stages a generation on a selection.
func (c *Client) StageCreate(ctx context.Context, req daemon.StageRequest) (*daemon.Rollout, error) {
	var ro daemon.Rollout
	err := c.do(ctx, "POST", "/v1/stages/", req, &ro)
	return &ro, err
}

// Stage returns rollout id ("" the newest active one).
func (c *Client) Stage(ctx context.Context, id string) (*daemon.Rollout, error) {
	if id == "" {
		id = LatestStage
	}
	var ro daemon.Rollout
	err := c.do(ctx, "GET", "/v1/stages/"+url.PathEscape(id), nil, &ro)
	return &ro, err
}

// Stages lists every rollout kept, oldest first.
func (c *Client) Stages(ctx context.Context) ([]*daemon.Rollout, error) {
	var v []*daemon.Rollout
	err := c.do(ctx, "GET", "/v1/stages/", nil, &v)
	return v, err
}

// StageAction applies run, resume, halt, abort, promote or rollback to
// rollout id ("" the newest active one) and returns the rollout after it.
func (c *Client) StageAction(ctx context.Context, id, action string) (*daemon.Rollout, error) {
	if id == "" {
		id = LatestStage
	}
	var ro daemon.Rollout
	err := c.do(ctx, "POST", "/v1/stages/"+url.PathEscape(id)+"/"+url.PathEscape(action), nil, &ro)
	return &ro, err
}
