package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxStreamLine bounds one line of a stream (a reboot-clean's results for
// thousands of nodes are one line).
const maxStreamLine = 16 << 20

// errStreamDone is returned by a stream's line handler when the line it got
// was the last one wanted.
var errStreamDone = errors.New("stream done")

// ErrStreamEnded is what a follow stream returns when the daemon closed it
// (it stopped or restarted): the caller reconnects or gives up.
var ErrStreamEnded = errors.New("the daemon closed the stream before its end")

// followEnd is a follow stream's result: nil once the caller's ctx ended
// it, err otherwise.
func followEnd(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// stream makes a request whose answer is NDJSON, one T a line, and calls fn
// for each line as it arrives. Blank lines are keepalives. It returns nil
// when fn returns errStreamDone, fn's other errors as they are,
// ErrStreamEnded when the answer ends first, and ctx's error when ctx ended
// the read.
func stream[T any](ctx context.Context, c *Client, method, path string, in any, fn func(T) error) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readStream(ctx, resp.Body, fn)
}

// readStream is stream's reader, for any body.
func readStream[T any](ctx context.Context, body io.Reader, fn func(T) error) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), maxStreamLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var v T
		if err := json.Unmarshal(line, &v); err != nil {
			return fmt.Errorf("bad line from the daemon: %w", err)
		}
		if err := fn(v); err != nil {
			if errors.Is(err, errStreamDone) {
				return nil
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return ErrStreamEnded
}
