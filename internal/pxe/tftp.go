package pxe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"

	"github.com/netbootui/netbootui/internal/tftp"
)

// TFTPSource finds what a TFTP read request names. name has passed
// CleanName. Errors matching ErrNotFound (or fs.ErrNotExist) become TFTP
// "file not found", errors matching ErrAccessDenied (or fs.ErrPermission)
// "access violation", anything else "undefined". The error text is logged,
// never sent to the client.
type TFTPSource interface {
	OpenTFTP(ctx context.Context, name string, client netip.AddrPort) (tftp.File, error)
}

// FileRootSource serves the files of a FileRoot over TFTP.
type FileRootSource struct {
	Root *FileRoot
}

// OpenTFTP implements TFTPSource.
func (s FileRootSource) OpenTFTP(_ context.Context, name string, _ netip.AddrPort) (tftp.File, error) {
	if s.Root == nil {
		return tftp.File{}, fmt.Errorf("%q: %w", name, ErrNotFound)
	}
	f, size, err := s.Root.Open(name)
	if err != nil {
		return tftp.File{}, err
	}
	return tftp.File{R: f, Size: size, Close: f.Close}, nil
}

// TFTPHandler is the boot policy's side of the TFTP server (package tftp
// speaks the protocol): every name passes CleanName before Source sees it,
// and a refused name is reported to OnDenied and answered with "access
// violation".
type TFTPHandler struct {
	Source TFTPSource
	// OnDenied, when set, is called for every name CleanName refuses, with
	// the name as the client sent it and a *NameError. It must not block.
	OnDenied func(client netip.AddrPort, name string, reason error)
}

// Open implements tftp.Handler.
func (h *TFTPHandler) Open(ctx context.Context, name string, client netip.AddrPort) (tftp.File, error) {
	clean, err := CleanName(name)
	if err != nil {
		if h.OnDenied != nil {
			h.OnDenied(client, name, err)
		}
		return tftp.File{}, fmt.Errorf("%w: %w", tftp.ErrDenied, err)
	}
	f, err := h.Source.OpenTFTP(ctx, clean, client)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, ErrNotFound), errors.Is(err, fs.ErrNotExist):
		return tftp.File{}, fmt.Errorf("%w: %w", tftp.ErrNotFound, err)
	case errors.Is(err, ErrAccessDenied), errors.Is(err, fs.ErrPermission):
		return tftp.File{}, fmt.Errorf("%w: %w", tftp.ErrDenied, err)
	}
	return tftp.File{}, err
}

// NewTFTPServer returns a TFTP server (default settings, see package tftp)
// that serves src behind CleanName. onDenied, when not nil, hears about
// every request refused for what it is rather than for what it names:
// names CleanName refuses, write requests, malformed requests.
func NewTFTPServer(src TFTPSource, onDenied func(client netip.AddrPort, name string, reason error)) *tftp.Server {
	s := tftp.New(&TFTPHandler{Source: src, OnDenied: onDenied})
	s.OnRefused = onDenied
	return s
}
