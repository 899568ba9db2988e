package apiclient

import (
	"context"
	"errors"
	"io"
	"net/url"
	"strconv"

	"github.com/netbootui/netbootui/internal/apitype"
)

// VerifyImage has the daemon reread every file of a generation against
// its manifest.
func (c *Client) VerifyImage(ctx context.Context, name, gen string) (*apitype.VerifyResult, error) {
	var v apitype.VerifyResult
	err := c.do(ctx, "GET", "/v1/images/"+url.PathEscape(name)+"/generations/"+url.PathEscape(gen)+"/verify", nil, &v)
	return &v, err
}

// DiffImages says what generation b changes from a, each "IMAGE:GEN" or
// "IMAGE" (its current generation).
func (c *Client) DiffImages(ctx context.Context, a, b string) (*apitype.ImageDiff, error) {
	var d apitype.ImageDiff
	err := c.do(ctx, "GET", "/v1/images/diff?"+url.Values{"a": {a}, "b": {b}}.Encode(), nil, &d)
	return &d, err
}

// ExecImage runs command in a working copy of an image's current
// generation (in the daemon, chrooted), copying its output to out, and
// returns the session waiting for a decision (DecideSession). A command
// that fails is not an error: see the session's Exit.
func (c *Client) ExecImage(ctx context.Context, name string, command []string, out io.Writer) (*apitype.SessionView, error) {
	var v *apitype.SessionView
	err := stream(ctx, c, "POST", "/v1/images/"+url.PathEscape(name)+"/exec", apitype.ExecRequest{Command: command}, func(l apitype.ExecLine) error {
		switch {
		case l.Output != "":
			if out != nil {
				_, err := io.WriteString(out, l.Output)
				return err
			}
		case l.Error != "":
			return errors.New(l.Error)
		case l.Session != nil:
			v = l.Session
			return errStreamDone
		}
		return nil
	})
	if errors.Is(err, ErrStreamEnded) {
		return nil, errors.New("image exec: the daemon closed the stream without a result")
	}
	return v, err
}

// ShellImage opens an interactive shell in a working copy of an image's
// current generation: the connection is the shell's terminal (raw both
// ways; term is its TERM, rows and cols its size, 0: 24x80). The
// session's id comes with it; when the shell exits the daemon closes the
// connection and the session waits for a decision.
func (c *Client) ShellImage(ctx context.Context, name, term string, rows, cols int) (conn *ConsoleConn, session string, err error) {
	q := url.Values{}
	if term != "" {
		q.Set("term", term)
	}
	if rows > 0 && cols > 0 {
		q.Set("rows", strconv.Itoa(rows))
		q.Set("cols", strconv.Itoa(cols))
	}
	path := "/v1/images/" + url.PathEscape(name) + "/shell"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	cc, h, err := c.upgrade(ctx, path, apitype.ShellProtocol, "image shell "+name)
	if err != nil {
		return nil, "", err
	}
	return cc, h.Get(apitype.SessionHeader), nil
}

// ResizeSession gives the terminal of the shell running in a session a
// new size (the caller's terminal was resized).
func (c *Client) ResizeSession(ctx context.Context, name, id string, rows, cols int) error {
	return c.do(ctx, "POST", "/v1/images/"+url.PathEscape(name)+"/sessions/"+url.PathEscape(id)+"/size",
		apitype.TermSize{Rows: rows, Cols: cols}, nil)
}

// Session returns an open session of an image with its diff.
func (c *Client) Session(ctx context.Context, name, id string) (*apitype.SessionView, error) {
	var v apitype.SessionView
	err := c.do(ctx, "GET", "/v1/images/"+url.PathEscape(name)+"/sessions/"+url.PathEscape(id), nil, &v)
	return &v, err
}

// DecideSession publishes, commits or discards a session.
func (c *Client) DecideSession(ctx context.Context, name, id string, dec apitype.SessionDecision) (*apitype.SessionResult, error) {
	var r apitype.SessionResult
	err := c.do(ctx, "POST", "/v1/images/"+url.PathEscape(name)+"/sessions/"+url.PathEscape(id), dec, &r)
	return &r, err
}
