package sshconsole

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/atomicfile"
)

// HostKeyFile is the host key's file name in the daemon's data directory.
const HostKeyFile = "ssh_host_ed25519_key"

// LoadOrCreateHostKey returns the host key at path, generating an ed25519 key
// there (OpenSSH PEM, mode 0600, written temp+fsync+rename) the first time.
// An existing key readable by group or others, or one that does not parse, is
// an error naming the file; it is never replaced.
func LoadOrCreateHostKey(path string) (gossh.Signer, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createHostKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("ssh host key %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("ssh host key %s: not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("ssh host key %s: mode %04o is open to group or others, want 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ssh host key %s: %w", path, err)
	}
	s, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("ssh host key %s: %w", path, err)
	}
	return s, nil
}

func createHostKey(path string) (gossh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ssh host key %s: generate: %w", path, err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "netbootui host key")
	if err != nil {
		return nil, fmt.Errorf("ssh host key %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("ssh host key %s: %w", path, err)
	}
	if err := atomicfile.Write(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("ssh host key %s: %w", path, err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ssh host key %s: %w", path, err)
	}
	return s, nil
}
