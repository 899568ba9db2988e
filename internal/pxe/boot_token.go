package pxe

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Tokens issues and checks the per-node check-in tokens. A token is an HMAC of
// the node's name under a key that never leaves the head node, so a node can
// only report for itself and nothing per node needs storing. The token is
// rendered into the node's kernel command line.
type Tokens struct {
	key []byte
}

// NewTokens returns a Tokens using key (at least 16 bytes).
func NewTokens(key []byte) (*Tokens, error) {
	if len(key) < 16 {
		return nil, errors.New("token key: need at least 16 bytes")
	}
	return &Tokens{key: append([]byte(nil), key...)}, nil
}

// LoadTokens reads the key file at path, creating it with a fresh random key
// (mode 0600) when it does not exist. A key file readable by group or others is
// refused.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, err
		}
		_, err = f.Write([]byte(hex.EncodeToString(key) + "\n"))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		return NewTokens(key)
	}
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o, must be 0600 (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	key, err := hex.DecodeString(string(trimSpace(b)))
	if err != nil {
		return nil, fmt.Errorf("%s: not a hex key: %w", path, err)
	}
	return NewTokens(key)
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == ' ' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// derive returns the 128-bit HMAC of node for purpose, in hex.
func (t *Tokens) derive(purpose, node string) string {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(node))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// Token returns the check-in token of node.
func (t *Tokens) Token(node string) string { return t.derive("netbootui-checkin", node) }

// Verify reports whether token is node's token, in constant time.
func (t *Tokens) Verify(node, token string) bool {
	return hmac.Equal([]byte(t.Token(node)), []byte(token))
}

// FetchKey returns the key that proves node in its image URLs
// (?node=NAME&auth=KEY). It is derived apart from the check-in token, so an
// image URL that leaks (a proxy's log, a console capture) cannot be used to
// check in.
func (t *Tokens) FetchKey(node string) string { return t.derive("netbootui-fetch", node) }

// VerifyFetch reports whether key is node's fetch key, in constant time.
func (t *Tokens) VerifyFetch(node, key string) bool {
	return hmac.Equal([]byte(t.FetchKey(node)), []byte(key))
}
