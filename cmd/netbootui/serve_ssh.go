package main

import (
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/lifecycle"
	"github.com/netbootui/netbootui/internal/sshconsole"
	"github.com/netbootui/netbootui/internal/ui"
)

// sshLimits are the SSH console's limits from the command line.
type sshLimits struct {
	handshake time.Duration
	maxUnauth int
}

// checkSSHFlags refuses --authorized-keys without --ssh-listen and
// --ssh-listen without --authorized-keys.
func checkSSHFlags(addr, authorizedKeys string) error {
	switch {
	case addr == "" && authorizedKeys != "":
		return errors.New("--authorized-keys given without --ssh-listen")
	case addr != "" && authorizedKeys == "":
		return errors.New("--ssh-listen needs --authorized-keys FILE (OpenSSH format)")
	}
	return nil
}

// sshService is the console served over SSH on addr, as a server of the
// daemon's lifecycle. Each session's console calls the daemon in-process as
// the key that logged in, so the audit log names "ssh SHA256:… (comment)".
// The host key is kept in the data directory.
func sshService(addr, authorizedKeys, dataDir string, limits sshLimits, srv *api.Server, logger *slog.Logger) (lifecycle.Service, error) {
	s, err := sshconsole.New(sshconsole.Config{
		AuthorizedKeys: authorizedKeys,
		HostKey:        filepath.Join(dataDir, sshconsole.HostKeyFile),
		Backend: func(who string, role apitype.Role) (ui.Backend, func()) {
			return srv.InProcessClient(who, role)
		},
		UI:                 ui.Options{Dark: true},
		HandshakeTimeout:   limits.handshake,
		MaxUnauthenticated: limits.maxUnauth,
		Logger:             logger.With("component", "ssh"),
	})
	if err != nil {
		return nil, err
	}
	return lifecycle.Funcs{
		ListenFunc: func() error {
			if err := s.Listen(addr); err != nil {
				return err
			}
			logger.Info("ssh console listening", "addr", s.Addr().String(), "host_key", gossh.FingerprintSHA256(s.HostKey()), "authorized_keys", authorizedKeys)
			return nil
		},
		ServeFunc: s.Serve,
		CloseFunc: s.Close,
	}, nil
}
