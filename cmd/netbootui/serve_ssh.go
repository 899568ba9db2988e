package main

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/api"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/sshconsole"
	"github.com/netbootui/netbootui/internal/ui"
)

// sshLimits are the SSH console's limits from the command line.
type sshLimits struct {
	handshake time.Duration
	maxUnauth int
}

// startSSH serves the console over SSH on addr (nothing when addr is empty)
// until ctx ends. Each session's console calls the daemon in-process as the
// key that logged in, so the audit log names "ssh SHA256:… (comment)". The
// host key is kept in the data directory.
func startSSH(ctx context.Context, addr, authorizedKeys, dataDir string, limits sshLimits, srv *api.Server, logger *slog.Logger) error {
	if addr == "" {
		if authorizedKeys != "" {
			return errors.New("--authorized-keys given without --ssh-listen")
		}
		return nil
	}
	if authorizedKeys == "" {
		return errors.New("--ssh-listen needs --authorized-keys FILE (OpenSSH format)")
	}
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
		return err
	}
	if err := s.Listen(addr); err != nil {
		return err
	}
	logger.Info("ssh console listening", "addr", s.Addr().String(), "host_key", gossh.FingerprintSHA256(s.HostKey()), "authorized_keys", authorizedKeys)
	go func() {
		if err := s.Serve(); err != nil {
			logger.Error("ssh console", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	return nil
}
