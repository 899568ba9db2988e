package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/clustercert"
	"github.com/netbootui/netbootui/internal/image"
)

// PeerOptions is how heads fetch image generations from each other when
// the cluster has its own trust (internal/clustercert): over HTTPS with
// mutual TLS on a listener of their own, instead of the boot HTTP server
// (which nodes use and which cannot ask them for a certificate).
type PeerOptions struct {
	// TLS is this head's certificate and the cluster's CA (nil: heads fetch
	// from each other's boot HTTP server, in the clear).
	TLS *clustercert.Bundle
	// Listen is the address of the generation server ("10.0.0.1:2382");
	// required with TLS.
	Listen string
	// URL is the base URL the other heads reach it at (default: https://
	// and the bound address, a wildcard replaced as for the boot URL).
	URL string
}

// peerService serves the image store's generation files to the other
// heads (GET /images/IMAGE/ID/FILE, a file of the generation's manifest
// only), over TLS that requires a certificate of the cluster's CA.
type peerService struct {
	d    *Daemon
	opts PeerOptions

	mu  sync.Mutex
	ln  net.Listener
	srv *http.Server
	url string
}

func (p *peerService) Listen() error {
	ln, err := net.Listen("tcp", p.opts.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", p.opts.Listen, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /images/{image}/{gen}/{file}", p.serveFile)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(p.d.log.Handler(), slog.LevelDebug)} // a refused stranger's handshake, at debug
	u := p.opts.URL
	if u == "" {
		u = "https://" + strings.TrimPrefix(defaultURL(ln.Addr()), "http://")
	}
	p.mu.Lock()
	p.ln, p.srv, p.url = tls.NewListener(ln, p.opts.TLS.Server), srv, u
	p.mu.Unlock()
	return nil
}

func (p *peerService) Serve() error {
	p.mu.Lock()
	ln, srv := p.ln, p.srv
	p.mu.Unlock()
	p.d.log.Info("cluster: generation server for the other heads listening (mutual TLS)", "addr", ln.Addr().String(), "url", p.url)
	return srv.Serve(ln)
}

func (p *peerService) Close() error {
	p.mu.Lock()
	ln, srv := p.ln, p.srv
	p.mu.Unlock()
	if ln == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	ln.Close()
	return err
}

// URL is where the other heads fetch this head's generations ("" before
// Listen).
func (p *peerService) URL() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.url
}

func (p *peerService) serveFile(w http.ResponseWriter, r *http.Request) {
	img, id, file := r.PathValue("image"), r.PathValue("gen"), r.PathValue("file")
	if !image.ValidImageName(img) || !image.ValidGenerationID(id) {
		http.NotFound(w, r)
		return
	}
	m, err := p.d.images.Generation(img, id)
	if err != nil || !slices.ContainsFunc(m.Files, func(f image.FileInfo) bool { return f.Name == file }) {
		http.NotFound(w, r)
		return
	}
	f, err := p.d.images.Open(img, id, file)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot read the file", http.StatusInternalServerError)
		return
	}
	http.ServeContent(w, r, file, st.ModTime(), f)
}

// peerBase is the base URL this head announces its generations at: its
// generation server's with the cluster's TLS, else its boot URL.
func (d *Daemon) peerBase() string {
	if d.peer != nil {
		return d.peer.URL()
	}
	return d.BootURL()
}

// peerClient is the HTTP client a head fetches generations from the other
// heads with: it presents this head's certificate and trusts only the
// cluster's CA, and takes only https URLs, when the cluster has its TLS.
func (d *Daemon) peerClient() *http.Client {
	if d.peer == nil {
		return &http.Client{Timeout: 30 * time.Minute}
	}
	return &http.Client{Timeout: 30 * time.Minute, Transport: &http.Transport{TLSClientConfig: d.peer.opts.TLS.Client.Clone(),
		TLSHandshakeTimeout: 10 * time.Second, ResponseHeaderTimeout: time.Minute}}
}
