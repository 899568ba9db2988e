package pxe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// Tokens issues and checks the per-node check-in tokens. A token is an HMAC of
// the node's name under a key that never leaves the head node, so a node can
// only report for itself and nothing per node needs storing. The token is
// rendered into the node's kernel command line. The key comes from the
// state store (state.Store.TokenKey).
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

// derive returns the 128-bit HMAC of node for purpose, in hex.
func (t *Tokens) derive(purpose, node string) string {
	return hex.EncodeToString(t.deriveRaw(purpose, node))[:32]
}

// deriveRaw returns the HMAC-SHA256 of node for purpose under the key.
func (t *Tokens) deriveRaw(purpose, node string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(node))
	return m.Sum(nil)
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
