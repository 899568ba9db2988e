package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/image"
)

// BuildLine is one line of the NDJSON answer to POST /v1/images/build: a
// progress step, then a last line with the generation or the error.
type BuildLine struct {
	Progress *image.Progress `json:"progress,omitempty"`
	Manifest *image.Manifest `json:"manifest,omitempty"`
	Error    string          `json:"error,omitempty"`
}

func (s *Server) buildImage(w http.ResponseWriter, r *http.Request) {
	var req daemon.BuildRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	req.Who = Who(r.Context())
	out := newNDJSONStream(w)
	lines := make(chan BuildLine, 64)
	go func() { // progress comes from the build's goroutine; the writer is ours
		defer close(lines)
		m, err := s.D.BuildImage(r.Context(), req, func(p image.Progress) {
			select {
			case lines <- BuildLine{Progress: &p}:
			default: // a slow client loses progress lines, never the result
			}
		})
		last := BuildLine{Manifest: m}
		if err != nil {
			last = BuildLine{Error: err.Error()}
		}
		lines <- last
	}()
	for l := range lines {
		out.send(l)
	}
}

// RollbackResult is the answer of a rollback.
type RollbackResult struct {
	Current string `json:"current"`
}

func (s *Server) rollbackImage(w http.ResponseWriter, r *http.Request) {
	gen, err := s.D.RollbackImage(r.PathValue("name"), Who(r.Context()))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, RollbackResult{Current: gen})
}

// GCRequest says how many generations to keep.
type GCRequest struct {
	Keep int `json:"keep"`
}

// GCResult lists the generations removed.
type GCResult struct {
	Removed []string `json:"removed"`
}

func (s *Server) gcImage(w http.ResponseWriter, r *http.Request) {
	var req GCRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	removed, err := s.D.GCImage(r.PathValue("name"), req.Keep, Who(r.Context()))
	if err != nil {
		writeErr(w, badRequest(err))
		return
	}
	writeJSON(w, GCResult{Removed: removed})
}

// Build runs a build in the daemon, calling fn for each progress line, and
// returns the generation. Cancelling ctx cancels the build.
func (c *Client) Build(ctx context.Context, req daemon.BuildRequest, fn func(image.Progress)) (*image.Manifest, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, "POST", "http://netbootui/v1/images/build", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("daemon at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) == nil && e.Message != "" {
			return nil, &e
		}
		return nil, fmt.Errorf("build: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var l BuildLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		switch {
		case l.Progress != nil:
			if fn != nil {
				fn(*l.Progress)
			}
		case l.Error != "":
			return nil, errors.New(l.Error)
		case l.Manifest != nil:
			return l.Manifest, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, errors.New("build: the daemon closed the stream without a result")
}

// Rollback moves an image's current generation back one publish.
func (c *Client) Rollback(ctx context.Context, name string) (string, error) {
	var r RollbackResult
	err := c.do(ctx, "POST", "/v1/images/"+url.PathEscape(name)+"/rollback", nil, &r)
	return r.Current, err
}

// GC removes old generations of an image, keeping keep and those in use.
func (c *Client) GC(ctx context.Context, name string, keep int) ([]string, error) {
	var r GCResult
	err := c.do(ctx, "POST", "/v1/images/"+url.PathEscape(name)+"/gc", GCRequest{Keep: keep}, &r)
	return r.Removed, err
}
