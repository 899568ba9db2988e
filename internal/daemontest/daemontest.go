// Package daemontest starts a real daemon for tests: an inventory file and a
// data directory in a temporary folder, the HTTP boot server (and TFTP when
// asked) on 127.0.0.1:0, optionally the API on a unix socket with a client,
// all run by the daemon's own lifecycle and stopped when the test ends.
// Every test package that needs a daemon starts it here.
//
// Only tests import this package (it calls testing.TB); nothing else may.
package daemontest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/lifecycle"
)

// Options say what to start. The zero value (but for Inventory) is a daemon
// with HTTP on 127.0.0.1:0 and nothing else.
type Options struct {
	// Inventory is the content of nodes.yaml; "" keeps the file already in
	// Dir (a restart on an earlier Env's folder).
	Inventory string
	// Secrets, when not "", is written to secrets.yaml (mode 0600).
	Secrets string
	// Dir holds nodes.yaml and data/ (default: a new t.TempDir()).
	Dir string
	// Config is the daemon's configuration; InventoryPath and DataDir
	// default to Dir's, HTTPListen to 127.0.0.1:0 (NoHTTP: none) and
	// Logger to one that discards.
	Config daemon.Config
	// NoHTTP disables the HTTP boot server.
	NoHTTP bool
	// API, when set, makes the API server of the daemon (an *api.Server;
	// this package cannot import internal/api, whose own tests use it). It
	// is served on Dir/api.sock (Env.Socket) with the daemon's other
	// servers, and Env.Client calls it there.
	API func(d *daemon.Daemon) APIServer
	// Add, when set, adds more servers to the daemon's lifecycle (an SSH
	// console) after the API and before they are bound.
	Add func(d *daemon.Daemon) error
	// In, when set, runs the daemon's set-up (New, Add, Listen): f must
	// call do and return its error, e.g. from inside a network namespace
	// (lab.Netns.Do), so that the servers bind there.
	In func(do func() error) error
	// Before runs after the servers are bound and before they serve:
	// import generations, set the advertise URL from the bound port.
	Before func(d *daemon.Daemon) error
}

// APIServer is what Options.API returns: api.Server.
type APIServer interface {
	Service(path, group string) lifecycle.Service
}

// Env is a running daemon.
type Env struct {
	Dir           string
	InventoryPath string
	DataDir       string
	D             *daemon.Daemon
	// With Options.API: the API's socket and a client on it.
	Socket string
	Client *apiclient.Client

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan error
	err      error
}

// Discard is a logger that drops everything.
func Discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Start starts a daemon as o says and stops it when the test ends. Any
// failure fails the test at once.
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	e := &Env{Dir: o.Dir}
	if e.Dir == "" {
		e.Dir = t.TempDir()
	}
	cfg := o.Config
	if cfg.InventoryPath == "" {
		cfg.InventoryPath = filepath.Join(e.Dir, "nodes.yaml")
	}
	if cfg.DataDir == "" {
		cfg.DataDir = filepath.Join(e.Dir, "data")
	}
	if cfg.HTTPListen == "" && !o.NoHTTP {
		cfg.HTTPListen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = Discard()
	}
	e.InventoryPath, e.DataDir = cfg.InventoryPath, cfg.DataDir
	if o.Inventory != "" {
		if err := os.WriteFile(cfg.InventoryPath, []byte(o.Inventory), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if o.Secrets != "" {
		if err := os.WriteFile(filepath.Join(filepath.Dir(cfg.InventoryPath), "secrets.yaml"), []byte(o.Secrets), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setup := func() error {
		d, err := daemon.New(cfg)
		if err != nil {
			return err
		}
		e.D = d
		if o.API != nil {
			e.Socket = filepath.Join(e.Dir, "api.sock")
			d.Add("api", o.API(d).Service(e.Socket, ""))
			e.Client = apiclient.New(e.Socket)
		}
		if o.Add != nil {
			if err := o.Add(d); err != nil {
				d.Close()
				return err
			}
		}
		if err := d.Listen(); err != nil {
			d.Close()
			return err
		}
		return nil
	}
	in := o.In
	if in == nil {
		in = func(do func() error) error { return do() }
	}
	if err := in(setup); err != nil {
		t.Fatal(err)
	}
	d := e.D
	if o.Before != nil {
		if err := o.Before(d); err != nil {
			d.Close()
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- d.Run(ctx) }()
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Errorf("daemon stopped with %v", err)
		}
	})
	return e
}

// HTTPBase is the HTTP boot server's base URL, http://127.0.0.1:PORT.
func (e *Env) HTTPBase() string { return "http://" + e.D.HTTPAddr().String() }

// HTTPPort is the HTTP boot server's port.
func (e *Env) HTTPPort() string {
	_, port, _ := net.SplitHostPort(e.D.HTTPAddr().String())
	return port
}

// StopTimeout bounds how long Stop waits for the daemon to stop.
const StopTimeout = 30 * time.Second

// Stop stops the daemon (every server, then the state) and returns what
// Run returned, or an error when it did not stop within StopTimeout.
// Later calls return the same.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		e.cancel()
		select {
		case e.err = <-e.done:
		case <-time.After(StopTimeout):
			e.err = fmt.Errorf("daemon did not stop within %v", StopTimeout)
		}
	})
	return e.err
}
