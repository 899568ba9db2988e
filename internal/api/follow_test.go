package api

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/audit"
)

// stagedRollout imports two generations of img (the first current) and
// stages the second on solo as admin; it returns the rollout.
func stagedRollout(t *testing.T, dir string, c *apiclient.Client) *apitype.Rollout {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Import(ctx, apitype.ImportRequest{Image: "img", Publish: true}, writeImageFiles(t, dir, "1")); err != nil {
		t.Fatal(err)
	}
	m2, err := c.Import(ctx, apitype.ImportRequest{Image: "img"}, writeImageFiles(t, dir, "2"))
	if err != nil {
		t.Fatal(err)
	}
	ro, err := c.StageCreate(ctx, apitype.StageRequest{Selection: "solo", Generation: "img@" + m2.ID})
	if err != nil || ro.State != apitype.RolloutStaged {
		t.Fatalf("stage: %+v %v", ro, err)
	}
	return ro
}

// TestFollowStreams: a viewer's audit follow stream delivers its history,
// then an entry recorded after it opened; its rollout follow stream
// delivers the rollout, then its state after a run (the wave fails: solo
// has no BMC, the rollout halts) and a roll back.
func TestFollowStreams(t *testing.T) {
	dir := t.TempDir()
	_, srv, _ := startServer(t, dir, nil)
	ac, stopA := srv.InProcessClient("ssh SHA256:admin (test)", admin)
	defer stopA()
	vc, stopV := srv.InProcessClient("ssh SHA256:viewer (test)", viewer)
	defer stopV()
	ro := stagedRollout(t, dir, ac)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	entries := make(chan apitype.AuditEntry, 64)
	auditEnd := make(chan error, 1)
	go func() {
		auditEnd <- vc.FollowAudit(ctx, 1, func(e apitype.AuditEntry) error { entries <- e; return nil })
	}()
	states := make(chan *apitype.Rollout, 64)
	stageEnd := make(chan error, 1)
	go func() {
		stageEnd <- vc.FollowStage(ctx, ro.ID, func(r *apitype.Rollout) error { states <- r; return nil })
	}()
	if e := recv(t, ctx, entries); e.Action != "rollout create" {
		t.Fatalf("history: %+v, want the newest entry (the rollout's creation)", e)
	}
	if r := recv(t, ctx, states); r.ID != ro.ID || r.State != apitype.RolloutStaged {
		t.Fatalf("first state %+v", r)
	}

	if _, err := ac.EditNode(ctx, "solo", apitype.Edit{Set: map[string]any{"kernel_args": "quiet"}}); err != nil {
		t.Fatal(err)
	}
	if e := recv(t, ctx, entries); e.Action != "edit node solo" || e.Target != "kernel_args" || e.Who != "ssh SHA256:admin (test)" {
		t.Errorf("streamed entry %+v, want the edit recorded after the stream opened", e)
	}

	if _, err := ac.StageAction(ctx, ro.ID, apitype.StageRun); err != nil {
		t.Fatal(err)
	}
	var r *apitype.Rollout
	for r = recv(t, ctx, states); r.State != apitype.RolloutHalted; r = recv(t, ctx, states) {
		if r.State != apitype.RolloutRunning {
			t.Fatalf("after run: %s %q", r.State, r.Reason)
		}
	}
	if r.Waves[0].State != apitype.WaveFailed || r.Node("solo").Status != apitype.NodeReverted {
		t.Errorf("halted rollout: wave %s, solo %s", r.Waves[0].State, r.Node("solo").Status)
	}
	if _, err := ac.StageAction(ctx, ro.ID, apitype.StageRollback); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, ctx, states); r.State != apitype.RolloutRolledBack {
		t.Errorf("after rollback: %s", r.State)
	}
	cancel()
	if err := <-auditEnd; err != nil {
		t.Errorf("audit stream ended by its caller: %v", err)
	}
	if err := <-stageEnd; err != nil {
		t.Errorf("rollout stream ended by its caller: %v", err)
	}
}

// TestFollowSlowReader: follow streams whose reader reads nothing (their
// answers fill the in-memory connection) never hold an action up: audit
// entries past the stream's buffer are dropped, rollout changes coalesce.
// Bounded: the actions must finish within 20 s.
func TestFollowSlowReader(t *testing.T) {
	dir := t.TempDir()
	d, srv, _ := startServer(t, dir, func(s *Server) { s.followBuf = 1 })
	ac, stopA := srv.InProcessClient("ssh SHA256:admin (test)", admin)
	defer stopA()
	ro := stagedRollout(t, dir, ac)
	hc := inProcessHTTP(t, srv, caller{who: "ssh SHA256:slow (test)", role: viewer})
	for _, path := range []string{"/v1/audit?n=0&follow=1", "/v1/stages/" + ro.ID + "?follow=1", "/v1/events?follow=1"} {
		resp, err := hc.Get("http://netbootui" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close() // never read
	}
	done := make(chan error, 1)
	go func() {
		ctx := context.Background()
		for i := range 300 { // far more than the connection and the buffer hold
			if err := d.AuditRecord(audit.Entry{Who: "test", Action: "filler", Target: fmt.Sprint(i), Result: strings.Repeat("x", 200)}); err != nil {
				done <- err
				return
			}
		}
		for _, a := range []string{apitype.StageRun, apitype.StageRollback} {
			if _, err := ac.StageAction(ctx, ro.ID, a); err != nil && a == apitype.StageRollback {
				done <- err
				return
			}
			if a == apitype.StageRun { // wait for the wave to fail and halt the rollout
				for {
					r, err := ac.Stage(ctx, ro.ID)
					if err != nil || r.State == apitype.RolloutHalted {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
		}
		_, err := ac.EditNode(ctx, "solo", apitype.Edit{Set: map[string]any{"kernel_args": "slow"}})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("actions blocked behind follow streams nobody reads")
	}
}

func recv[T any](t *testing.T, ctx context.Context, c chan T) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-ctx.Done():
		t.Fatal("nothing streamed")
	}
	var zero T
	return zero
}
