package apiclient

import (
	"context"
	"net/url"

	"github.com/netbootui/netbootui/internal/apitype"
)

// StagePreview returns what staging req would change, changing nothing.
func (c *Client) StagePreview(ctx context.Context, req apitype.StageRequest) (*apitype.Rollout, error) {
	var ro apitype.Rollout
	err := c.do(ctx, "POST", "/v1/stages/preview", req, &ro)
	return &ro, err
}

// StageCreate stages a generation on a selection.
func (c *Client) StageCreate(ctx context.Context, req apitype.StageRequest) (*apitype.Rollout, error) {
	var ro apitype.Rollout
	err := c.do(ctx, "POST", "/v1/stages/", req, &ro)
	return &ro, err
}

// Stage returns rollout id ("" the newest active one).
func (c *Client) Stage(ctx context.Context, id string) (*apitype.Rollout, error) {
	if id == "" {
		id = apitype.LatestStage
	}
	var ro apitype.Rollout
	err := c.do(ctx, "GET", "/v1/stages/"+url.PathEscape(id), nil, &ro)
	return &ro, err
}

// Stages lists every rollout kept, oldest first.
func (c *Client) Stages(ctx context.Context) ([]*apitype.Rollout, error) {
	var v []*apitype.Rollout
	err := c.do(ctx, "GET", "/v1/stages/", nil, &v)
	return v, err
}

// StageAction applies run, resume, halt, abort, promote or rollback to
// rollout id ("" the newest active one) and returns the rollout after it.
func (c *Client) StageAction(ctx context.Context, id, action string) (*apitype.Rollout, error) {
	if id == "" {
		id = apitype.LatestStage
	}
	var ro apitype.Rollout
	err := c.do(ctx, "POST", "/v1/stages/"+url.PathEscape(id)+"/"+url.PathEscape(action), nil, &ro)
	return &ro, err
}

// FollowStage calls fn with rollout id ("" the newest active one) now and
// then with its state after every change (changes coalesce: fn sees the
// latest state) until ctx ends, fn returns an error, or the daemon closes
// the stream (the rollout is no longer kept, or the daemon stopped:
// ErrStreamEnded).
func (c *Client) FollowStage(ctx context.Context, id string, fn func(*apitype.Rollout) error) error {
	if id == "" {
		id = apitype.LatestStage
	}
	return followEnd(ctx, stream(ctx, c, "GET", "/v1/stages/"+url.PathEscape(id)+"?follow=1", nil, fn))
}
