package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/url"
	"os"
	"path/filepath"

	"github.com/netbootui/netbootui/internal/apitype"
)

// Images lists images and their generations.
func (c *Client) Images(ctx context.Context) ([]apitype.ImageInfo, error) {
	var v []apitype.ImageInfo
	err := c.do(ctx, "GET", "/v1/images", nil, &v)
	return v, err
}

// ImportFiles names the files of an import on the caller's side.
type ImportFiles struct {
	Kernel, Initrd, Rootfs string
}

// Import makes a new generation of r.Image from files: it opens them here,
// with the caller's rights (a file the caller cannot read fails here, and
// the daemon is not asked), and streams their content to the daemon, which
// never opens a path a caller names.
func (c *Client) Import(ctx context.Context, r apitype.ImportRequest, files ImportFiles) (*apitype.Manifest, error) {
	parts := []struct{ name, path string }{
		{apitype.FileKernel, files.Kernel}, {apitype.FileInitrd, files.Initrd}, {apitype.FileRootfs, files.Rootfs},
	}
	opened := make([]*os.File, 0, len(parts))
	defer func() {
		for _, f := range opened {
			f.Close()
		}
	}()
	for _, p := range parts {
		f, err := openRegular(p.path)
		if err != nil {
			return nil, fmt.Errorf("image import: %s: %w", p.name, err)
		}
		opened = append(opened, f)
	}
	pr, pw := io.Pipe()
	defer pr.Close() // stops the writer when the daemon answers before reading it all
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(func() error {
			w, err := mw.CreateFormField(apitype.ImportRequestPart)
			if err == nil {
				err = json.NewEncoder(w).Encode(r)
			}
			for i, p := range parts {
				if err != nil {
					return err
				}
				if w, err = mw.CreateFormFile(p.name, filepath.Base(p.path)); err == nil {
					_, err = io.Copy(w, opened[i])
				}
			}
			if err != nil {
				return err
			}
			return mw.Close()
		}())
	}()
	resp, err := c.sendBody(ctx, "POST", "/v1/images/import", mw.FormDataContentType(), pr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var m apitype.Manifest
	return &m, json.NewDecoder(resp.Body).Decode(&m)
}

// openRegular opens a regular file for reading.
func openRegular(path string) (*os.File, error) {
	if path == "" {
		return nil, errors.New("no file given")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file", path)
		}
		return nil, err
	}
	return f, nil
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
	if errors.Is(err, ErrStreamEnded) {
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
