package apiclient

import (
	"context"
	"errors"
	"net/url"

	"github.com/netbootui/netbootui/internal/apitype"
)

// Images lists images and their generations.
func (c *Client) Images(ctx context.Context) ([]apitype.ImageInfo, error) {
	var v []apitype.ImageInfo
	err := c.do(ctx, "GET", "/v1/images", nil, &v)
	return v, err
}

// Import imports files as a new generation.
func (c *Client) Import(ctx context.Context, r apitype.ImportRequest) (*apitype.Manifest, error) {
	var m apitype.Manifest
	err := c.do(ctx, "POST", "/v1/images/import", r, &m)
	return &m, err
}

// Publish makes gen the current generation of an image.
func (c *Client) Publish(ctx context.Context, img, gen string) error {
	return c.do(ctx, "POST", "/v1/images/"+url.PathEscape(img)+"/publish", apitype.PublishRequest{Generation: gen}, nil)
}

// Build runs a build in the daemon, calling fn for each progress line, and
// returns the generation. Cancelling ctx cancels the build.
func (c *Client) Build(ctx context.Context, req apitype.BuildRequest, fn func(apitype.BuildProgress)) (*apitype.Manifest, error) {
	var m *apitype.Manifest
	err := stream(ctx, c, "POST", "/v1/images/build", req, func(l apitype.BuildLine) error {
		switch {
		case l.Progress != nil:
			if fn != nil {
				fn(*l.Progress)
			}
		case l.Error != "":
			return errors.New(l.Error)
		case l.Manifest != nil:
			m = l.Manifest
			return errStreamDone
		}
		return nil
	})
	if errors.Is(err, errStreamEnded) {
		return nil, errors.New("build: the daemon closed the stream without a result")
	}
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Rollback moves an image's current generation back one publish.
func (c *Client) Rollback(ctx context.Context, name string) (string, error) {
	var r apitype.RollbackResult
	err := c.do(ctx, "POST", "/v1/images/"+url.PathEscape(name)+"/rollback", nil, &r)
	return r.Current, err
}

// GC removes old generations of an image, keeping keep and those in use.
func (c *Client) GC(ctx context.Context, name string, keep int) ([]string, error) {
	var r apitype.GCResult
	err := c.do(ctx, "POST", "/v1/images/"+url.PathEscape(name)+"/gc", apitype.GCRequest{Keep: keep}, &r)
	return r.Removed, err
}
