// Package sshconsole serves the netbootui console (internal/ui) over SSH,
// through charm.land/wish/v2 on golang.org/x/crypto/ssh.
//
// Only public keys listed in an OpenSSH authorized keys file may log in
// (password and keyboard-interactive are never offered); the file is read
// again when it changes. The host key is an ed25519 key generated once and
// kept (mode 0600). Every session needs a pty, gets its own console and its
// own Backend, made for the caller "ssh SHA256:… (comment)" so that the audit
// log names the key behind every action. The Backend maker is injected
// (Config.Backend; cmd/netbootui passes the API server's in-process client),
// so this package links the console and the API client, never the daemon.
package sshconsole

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"charm.land/wish/v2"
	"charm.land/wish/v2/activeterm"
	bm "charm.land/wish/v2/bubbletea"
	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/ratelimit"
	"github.com/netbootui/netbootui/internal/ui"
)

// Config says how to serve the console.
type Config struct {
	// AuthorizedKeys is the OpenSSH authorized keys file.
	AuthorizedKeys string
	// HostKey is the host key file, generated on first use.
	HostKey string
	// Backend returns the console's backend for a caller (AuthorizedKey.Who)
	// with the role of its key, and a function releasing it when the
	// session ends. The API behind it authorizes every call by that role.
	Backend func(who string, role apitype.Role) (ui.Backend, func())
	// UI are the console options of every session. NoEdit defaults to
	// NoEditMessage: an editor run by the daemon for a remote session would
	// have neither a terminal nor the right user. SerialConsole stays nil.
	UI ui.Options
	// MaxSessions bounds concurrent sessions (0: 16); more are refused.
	MaxSessions int
	// HandshakeTimeout is the time a connection has to finish the SSH
	// handshake, authentication included (0: DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration
	// MaxUnauthenticated caps connections that have not yet opened a
	// session within their HandshakeTimeout (0: DefaultMaxUnauthenticated);
	// more are closed at once, before the version line.
	MaxUnauthenticated int
	// Logger gets logins, refusals and session ends (nil: discarded).
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultHandshakeTimeout   = 20 * time.Second
	DefaultMaxUnauthenticated = 32
)

// Version is the software version the server announces: its version line is
// "SSH-2.0-" + Version.
const Version = "netbootui"

// NoEditMessage is what `e` says in SSH sessions: an editor would run as the
// daemon's user, on the daemon's terminal.
const NoEditMessage = "editing is not available over SSH: use `netbootui node set` or `group set` on the head node"

// Server is an SSH server of consoles.
type Server struct {
	cfg    Config
	keys   *AuthorizedKeys
	signer gossh.Signer
	srv    *ssh.Server
	logger *slog.Logger

	mu       sync.Mutex
	ln       net.Listener
	sessions int
	// live maps each session being served to its caller and, once the
	// console exists, the function releasing it. (A connection's context
	// is shared by all its sessions, so it cannot hold these.)
	live map[ssh.Session]*liveSession

	unauth  atomic.Int64  // connections in their handshake window
	refused atomic.Uint64 // connections closed because unauth was full
	// refusedLog limits the log line about refused connections.
	refusedLog ratelimit.Limiter
}

type liveSession struct {
	who     string
	role    apitype.Role
	release func()
}

// New reads the authorized keys and the host key (creating it if missing).
// It opens no socket: see Listen and Serve.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("sshconsole: Config.Backend is nil")
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 16
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxUnauthenticated <= 0 {
		cfg.MaxUnauthenticated = DefaultMaxUnauthenticated
	}
	if cfg.UI.NoEdit == "" {
		cfg.UI.NoEdit = NoEditMessage
	}
	s := &Server{cfg: cfg, logger: cfg.Logger, live: map[ssh.Session]*liveSession{},
		refusedLog: ratelimit.Limiter{Burst: 1, Every: time.Minute}}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.keys, err = OpenAuthorizedKeys(cfg.AuthorizedKeys, s.logger); err != nil {
		return nil, err
	}
	if s.signer, err = LoadOrCreateHostKey(cfg.HostKey); err != nil {
		return nil, err
	}
	s.srv, err = wish.NewServer(
		ssh.PublicKeyAuth(s.publicKey),
		func(srv *ssh.Server) error {
			srv.AddHostKey(s.signer)
			srv.PasswordHandler = nil
			srv.KeyboardInteractiveHandler = nil
			srv.HandshakeTimeout = cfg.HandshakeTimeout
			srv.ConnCallback = s.admit
			return nil
		},
		wish.WithVersion(Version), // the library adds "SSH-2.0-"
		wish.WithMiddleware(
			bm.Middleware(s.console),
			activeterm.Middleware(),
			s.session,
		),
	)
	if err != nil {
		return nil, fmt.Errorf("sshconsole: %w", err)
	}
	return s, nil
}

// HostKey returns the server's public host key.
func (s *Server) HostKey() gossh.PublicKey { return s.signer.PublicKey() }

// AuthorizedKeys returns the allow-list in force.
func (s *Server) AuthorizedKeys() *AuthorizedKeys { return s.keys }

// publicKey admits the keys in the authorized keys file.
func (s *Server) publicKey(ctx ssh.Context, key ssh.PublicKey) bool {
	_, ok := s.keys.Lookup(key)
	if !ok {
		s.logger.Info("ssh key refused", "user", ctx.User(), "remote", ctx.RemoteAddr().String(), "key", gossh.FingerprintSHA256(key))
	}
	return ok
}

// unauthKey holds, in a connection's context, the function that frees its
// unauthenticated slot.
type unauthKey struct{}

// admit takes an unauthenticated slot for a new connection, or closes the
// connection (before the version line) when there is none. The slot is
// freed when the connection opens a session, closes, or outlives its
// handshake timeout (by then the library has closed it, or it has
// authenticated).
func (s *Server) admit(ctx ssh.Context, c net.Conn) net.Conn {
	if s.unauth.Add(1) > int64(s.cfg.MaxUnauthenticated) {
		s.unauth.Add(-1)
		n := s.refused.Add(1)
		if ok, skipped := s.refusedLog.Allow(""); ok {
			s.logger.Warn("ssh connection refused: too many unauthenticated connections", "remote", c.RemoteAddr().String(),
				"max", s.cfg.MaxUnauthenticated, "refused_total", n, "not_logged", skipped)
		}
		return nil
	}
	g := &admitted{Conn: c}
	g.free = sync.OnceFunc(func() { s.unauth.Add(-1) })
	g.timer = time.AfterFunc(s.cfg.HandshakeTimeout, g.free)
	ctx.SetValue(unauthKey{}, g.free)
	return g
}

// admitted is a connection holding an unauthenticated slot until free runs.
type admitted struct {
	net.Conn
	free  func()
	timer *time.Timer
}

func (a *admitted) Close() error {
	a.timer.Stop()
	a.free()
	return a.Conn.Close()
}

// Unauthenticated is the number of connections in their handshake window.
func (s *Server) Unauthenticated() int { return int(s.unauth.Load()) }

// Refused is the number of connections closed because MaxUnauthenticated
// were open.
func (s *Server) Refused() uint64 { return s.refused.Load() }

// session is the outermost middleware: it names the caller from the key the
// connection authenticated with (checked again against the file), bounds
// the number of sessions, and releases the backend when the console ends.
func (s *Server) session(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		if free, ok := sess.Context().Value(unauthKey{}).(func()); ok {
			free() // authenticated and in a session
		}
		ak, ok := s.keys.Lookup(sess.PublicKey())
		if !ok {
			wish.Fatalln(sess, "netbootui: key not authorized")
			return
		}
		who := ak.Who()
		ls := &liveSession{who: who, role: ak.Role}
		s.mu.Lock()
		full := s.sessions >= s.cfg.MaxSessions
		if !full {
			s.sessions++
			s.live[sess] = ls
		}
		s.mu.Unlock()
		if full {
			s.logger.Warn("ssh console refused: too many sessions", "who", who, "max", s.cfg.MaxSessions)
			wish.Fatalln(sess, "netbootui: too many console sessions")
			return
		}
		start := time.Now()
		s.logger.Info("ssh console opened", "who", who, "role", string(ak.Role), "user", sess.User(), "remote", sess.RemoteAddr().String())
		next(sess)
		s.mu.Lock()
		s.sessions--
		delete(s.live, sess)
		release := ls.release
		s.mu.Unlock()
		if release != nil {
			release()
		}
		s.logger.Info("ssh console closed", "who", who, "remote", sess.RemoteAddr().String(), "duration", time.Since(start).Round(time.Millisecond))
	}
}

// console makes the session's console (the pty was checked by activeterm).
func (s *Server) console(sess ssh.Session) (tea.Model, []tea.ProgramOption) {
	s.mu.Lock()
	ls := s.live[sess]
	s.mu.Unlock()
	if ls == nil {
		return nil, nil
	}
	be, release := s.cfg.Backend(ls.who, ls.role)
	m := ui.New(be, s.cfg.UI)
	s.mu.Lock()
	ls.release = func() {
		m.Close()
		if release != nil {
			release()
		}
	}
	s.mu.Unlock()
	return m, nil
}

// Listen binds addr ("host:port", port 0 picks one).
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ssh console: listen %s: %w", addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// Addr is the listening address (nil before Listen).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts connections on the listener opened by Listen until Close;
// then it returns nil.
func (s *Server) Serve() error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("ssh console: Serve before Listen")
	}
	err := s.srv.Serve(ln)
	if errors.Is(err, ssh.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close stops listening and ends every session.
func (s *Server) Close() error {
	err := s.srv.Close()
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close() // Serve may never have run (a lifecycle unwinding)
	}
	s.mu.Unlock()
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}
