package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/netbootui/netbootui/internal/daemon"
)

// RebootLine is one line of the NDJSON stream of POST /v1/reboot-clean:
// a progress line per node step or stage change, then one final line with
// Results (or Error when the run could not start or was cut short).
type RebootLine struct {
	Progress *daemon.RebootProgress `json:"progress,omitempty"`
	Results  []daemon.RebootResult  `json:"results,omitempty"`
	Done     bool                   `json:"done,omitempty"`
	Error    string                 `json:"error,omitempty"`
}

// RebootClean reboots a selection to a clean state: PXE next boot, power
// cycle, then wait until each node checks in with its assigned generation
// and is not dirty, or timeout (0: the daemon's default) passes. fn, if set,
// sees every progress line as it arrives; an error from fn stops reading and
// is returned. Cancelling ctx stops the run on the daemon.
func (c *Client) RebootClean(ctx context.Context, selection string, timeout time.Duration, fn func(daemon.RebootProgress) error) ([]daemon.RebootResult, error) {
	b, err := json.Marshal(daemon.RebootRequest{Selection: selection, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "http://netbootui/v1/reboot-clean", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("daemon at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e Error
		if json.NewDecoder(resp.Body).Decode(&e) != nil || e.Message == "" {
			e = Error{Message: "POST /v1/reboot-clean: " + resp.Status, Code: CodeInternal}
		}
		return nil, &e
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var l RebootLine
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, fmt.Errorf("reboot-clean: bad line from daemon: %w", err)
		}
		if l.Progress != nil && fn != nil {
			if err := fn(*l.Progress); err != nil {
				return nil, err
			}
		}
		if l.Done {
			if l.Error != "" {
				return l.Results, errors.New(l.Error)
			}
			return l.Results, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reboot-clean: %w", err)
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, errors.New("reboot-clean: the daemon closed the stream before the results")
}

// rebootClean streams a reboot-clean run as NDJSON RebootLines. The run
// stops when the client goes away.
func (s *Server) rebootClean(w http.ResponseWriter, r *http.Request) {
	var req daemon.RebootRequest
	if err := decode(r, &req); err != nil {
		writeErr(w, err)
		return
	}
	req.Who = Who(r.Context())
	out := newNDJSONStream(w)
	res, err := s.D.RebootClean(r.Context(), req, func(p daemon.RebootProgress) {
		out.send(RebootLine{Progress: &p})
	})
	if err != nil { // only before the run started: nothing was sent yet
		writeErr(w, badRequest(err))
		return
	}
	out.send(RebootLine{Results: res, Done: true})
}
