package apiclient

import (
	"context"
	"errors"
	"time"

	"github.com/netbootui/netbootui/internal/apitype"
)

// Power runs a power operation on a selection and returns each node's result.
func (c *Client) Power(ctx context.Context, op, selection string) ([]apitype.PowerResult, error) {
	var v []apitype.PowerResult
	err := c.do(ctx, "POST", "/v1/power", apitype.PowerRequest{Op: op, Selection: selection}, &v)
	return v, err
}

// RebootClean reboots a selection to a clean state by the daemon's default
// path (auto: kexec where the node's agent polls, else PXE next boot and a
// power cycle), then waits until each node checks in with its assigned
// generation and is not dirty, or timeout (0: the daemon's default)
// passes. fn, if set, sees every progress line as it arrives; an error from
// fn stops reading and is returned. Cancelling ctx stops the run on the
// daemon.
func (c *Client) RebootClean(ctx context.Context, selection string, timeout time.Duration, fn func(apitype.RebootProgress) error) ([]apitype.RebootResult, error) {
	return c.RebootCleanRequest(ctx, apitype.RebootRequest{Selection: selection, Timeout: timeout}, fn)
}

// RebootCleanRequest is RebootClean with every setting of the request
// (Via, KexecTimeout).
func (c *Client) RebootCleanRequest(ctx context.Context, req apitype.RebootRequest, fn func(apitype.RebootProgress) error) ([]apitype.RebootResult, error) {
	var last apitype.RebootLine
	err := stream(ctx, c, "POST", "/v1/reboot-clean", req, func(l apitype.RebootLine) error {
		if l.Progress != nil && fn != nil {
			if err := fn(*l.Progress); err != nil {
				return err
			}
		}
		if l.Done {
			last = l
			return errStreamDone
		}
		return nil
	})
	switch {
	case errors.Is(err, ErrStreamEnded):
		return nil, errors.New("reboot-clean: the daemon closed the stream before the results")
	case err != nil:
		return nil, err
	case last.Error != "":
		return last.Results, errors.New(last.Error)
	}
	return last.Results, nil
}
