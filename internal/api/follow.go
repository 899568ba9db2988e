package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/daemon"
)

// The follow streams (GET /v1/events, /v1/audit and /v1/stages/{id} with
// follow=1) are NDJSON: the current state or history first, then each
// change as it happens, flushed as written, a blank line every
// keepaliveEvery while nothing happens, until the caller goes away. The
// daemon's side never waits for a reader: a reader that does not keep up
// loses audit entries and events (the subscriptions drop), and reads a
// rollout's latest state (its changes coalesce).

// keepaliveEvery is how long a follow stream stays silent before it writes
// a keepalive line.
const keepaliveEvery = 15 * time.Second

// followBuffer is how many entries or events a follow stream's
// subscription holds for a reader that lags.
const followBuffer = 4096

func (s *Server) followBuffer() int {
	if s.followBuf > 0 {
		return s.followBuf
	}
	return followBuffer
}

// isFollow says whether a request asks for a follow stream.
func isFollow(q url.Values) bool {
	return q.Get("follow") == "1" || q.Get("follow") == "true"
}

// startNDJSON starts an NDJSON answer.
func startNDJSON(w http.ResponseWriter) *json.Encoder {
	w.Header().Set("Content-Type", "application/x-ndjson")
	return json.NewEncoder(w)
}

// follow flushes what was written so far, then writes line(v) for each v
// of c as it arrives (nothing when line returns nil, and ends the stream
// when it returns an error), flushing once c has nothing more queued, and
// a keepalive when nothing came for keepaliveEvery. It returns when the
// caller goes away, c is closed or a write fails.
func follow[T any](w http.ResponseWriter, r *http.Request, enc *json.Encoder, c <-chan T, line func(T) (any, error)) {
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()
	keepalive := time.NewTicker(keepaliveEvery)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case v, ok := <-c:
			if !ok {
				return
			}
			out, err := line(v)
			if err != nil {
				return
			}
			if out == nil {
				continue
			}
			if err := enc.Encode(out); err != nil {
				return
			}
			if len(c) == 0 {
				flush()
			}
		case <-keepalive.C:
			if _, err := io.WriteString(w, "\n"); err != nil { // blank lines are keepalives
				return
			}
			flush()
		}
	}
}

// auditFollow is GET /v1/audit?n=&follow=1: the newest n entries, then
// every entry as it is recorded.
func (s *Server) auditFollow(w http.ResponseWriter, r *http.Request, n int) {
	hist, sub := s.D.AuditFollow(n, s.followBuffer())
	defer sub.Close()
	enc := startNDJSON(w)
	for _, e := range hist {
		enc.Encode(daemon.AuditView(e))
	}
	follow(w, r, enc, sub.C, func(e audit.Entry) (any, error) { return daemon.AuditView(e), nil })
}

// stageFollow is GET /v1/stages/{id}?follow=1: the rollout now, then its
// state after every change (changes a slow reader missed coalesce into the
// latest state). It ends when the rollout is no longer kept.
func (s *Server) stageFollow(w http.ResponseWriter, r *http.Request) {
	changed, stop := s.D.StageWatch() // before the first read: no change falls between
	defer stop()
	ro, err := s.D.StageGet(stageID(r.PathValue("id")))
	if err != nil {
		writeStageErr(w, err)
		return
	}
	id := ro.ID // "latest" follows the rollout it named when the stream opened
	enc := startNDJSON(w)
	last, _ := json.Marshal(daemon.RolloutView(ro))
	enc.Encode(json.RawMessage(last))
	follow(w, r, enc, changed, func(struct{}) (any, error) {
		ro, err := s.D.StageGet(id)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(daemon.RolloutView(ro))
		if err != nil || bytes.Equal(b, last) {
			return nil, err // another rollout changed
		}
		last = b
		return json.RawMessage(b), nil
	})
}

// followEvents follows the boot events of node ("" all) after seq last.
func followEvents(w http.ResponseWriter, r *http.Request, enc *json.Encoder, c <-chan bootstate.Event, node string, last uint64) {
	follow(w, r, enc, c, func(ev bootstate.Event) (any, error) {
		if ev.Seq <= last || (node != "" && ev.Node != node) {
			return nil, nil
		}
		return daemon.EventView(ev), nil
	})
}
