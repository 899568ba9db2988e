package api

import (
	"net"
	"sync"

	"github.com/netbootui/netbootui/internal/lifecycle"
)

// Service is s on the unix socket at path as a server of the daemon's
// lifecycle (daemon.Daemon.Add): Listen takes the socket (refusing one a
// live daemon answers on) and, when group is not "", gives it to that unix
// group (ChownSocket); Serve answers until Close; Close stops the server
// and its listener (which removes the socket file it made).
func (s *Server) Service(path, group string) lifecycle.Service {
	return &service{s: s, path: path, group: group}
}

type service struct {
	s     *Server
	path  string
	group string
	mu    sync.Mutex
	ln    net.Listener
}

func (v *service) Listen() error {
	ln, err := Listen(v.path)
	if err != nil {
		return err
	}
	if v.group != "" {
		if err := ChownSocket(v.path, v.group); err != nil {
			ln.Close()
			return err
		}
	}
	v.mu.Lock()
	v.ln = ln
	v.mu.Unlock()
	return nil
}

func (v *service) Serve() error {
	v.mu.Lock()
	ln := v.ln
	v.mu.Unlock()
	return v.s.Serve(ln)
}

func (v *service) Close() error {
	err := v.s.Close()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ln != nil {
		v.ln.Close() // Serve may not have run; a second close is harmless
	}
	return err
}
