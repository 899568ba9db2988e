package sshconsole

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/netbootui/netbootui/internal/apitype"
)

// maxAuthorizedKeysSize bounds the authorized keys file.
const maxAuthorizedKeysSize = 1 << 20

// AuthorizedKey is one line of an authorized keys file.
type AuthorizedKey struct {
	Key         gossh.PublicKey
	Comment     string // the text after the key, often user@host
	Fingerprint string // SHA256:… as ssh-keygen -l prints it
	Line        int
	// Role is what the key's sessions may do: the line's
	// netbootui-role="..." option, DefaultKeyRole without one.
	Role apitype.Role
}

// RoleOption is the one key option an authorized keys line may carry:
// netbootui-role="viewer", "operator" or "admin".
const RoleOption = "netbootui-role"

// DefaultKeyRole is the role of a key listed without a RoleOption.
const DefaultKeyRole = apitype.RoleViewer

// keyRole reads a line's options: none, or one RoleOption.
func keyRole(options []string) (apitype.Role, error) {
	if len(options) == 0 {
		return DefaultKeyRole, nil
	}
	name, val, _ := strings.Cut(options[0], "=")
	if len(options) > 1 || name != RoleOption {
		return "", fmt.Errorf("key options are not supported (%s): only %s=\"viewer|operator|admin\"", strings.Join(options, ","), RoleOption)
	}
	return apitype.ParseRole(strings.Trim(val, `"`))
}

// Who is how the audit log names a session of this key:
// "ssh SHA256:… (comment)".
func (k AuthorizedKey) Who() string {
	if k.Comment == "" {
		return "ssh " + k.Fingerprint
	}
	return "ssh " + k.Fingerprint + " (" + k.Comment + ")"
}

// ParseAuthorizedKeys parses an authorized keys file in OpenSSH format: one
// public key per line, blank lines and # comments skipped. The one option a
// line may carry is netbootui-role="viewer|operator|admin" (RoleOption; the
// key's role, DefaultKeyRole without it). Other options (from=, command=,
// restrict, cert-authority…) are refused rather than ignored, since the
// console would not honour them; so are certificates. name is the file name
// used in errors ("file:line:col: …").
func ParseAuthorizedKeys(name string, data []byte) ([]AuthorizedKey, error) {
	var keys []AuthorizedKey
	for i, line := range strings.Split(string(data), "\n") {
		no := i + 1
		trimmed := strings.TrimLeft(line, " \t")
		col := len(line) - len(trimmed) + 1
		trimmed = strings.TrimRight(trimmed, " \t\r")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		pk, comment, options, rest, err := gossh.ParseAuthorizedKey([]byte(trimmed))
		if err != nil {
			return nil, fmt.Errorf("%s:%d:%d: not a public key: %v", name, no, col, err)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, fmt.Errorf("%s:%d:%d: unexpected text after the key", name, no, col)
		}
		role, err := keyRole(options)
		if err != nil {
			return nil, fmt.Errorf("%s:%d:%d: %v", name, no, col, err)
		}
		if _, ok := pk.(*gossh.Certificate); ok {
			return nil, fmt.Errorf("%s:%d:%d: certificates are not supported: list the public key", name, no, col)
		}
		keys = append(keys, AuthorizedKey{Key: pk, Comment: comment, Fingerprint: gossh.FingerprintSHA256(pk), Line: no, Role: role})
	}
	return keys, nil
}

// AuthorizedKeys is the allow-list of public keys, read from a file and read
// again whenever the file changes (checked at each login). A changed file
// that does not parse is logged with its file:line:col and the keys in force
// stay as they were; a file that is removed allows nobody.
type AuthorizedKeys struct {
	path   string
	logger *slog.Logger

	mu    sync.Mutex
	stamp fileStamp
	keys  []AuthorizedKey
	err   error // the last reload error, reported once per change
}

type fileStamp struct {
	ino, size int64
	mtime     time.Time
	ctime     int64
	exists    bool
}

// OpenAuthorizedKeys reads the authorized keys file at path. A missing,
// unreadable, group- or world-writable or invalid file is an error.
func OpenAuthorizedKeys(path string, logger *slog.Logger) (*AuthorizedKeys, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &AuthorizedKeys{path: path, logger: logger}
	st, keys, err := a.read()
	if err != nil {
		return nil, err
	}
	if !st.exists {
		return nil, fmt.Errorf("authorized keys %s: %w", path, fs.ErrNotExist)
	}
	a.stamp, a.keys = st, keys
	return a, nil
}

func stampOf(fi os.FileInfo) fileStamp {
	s := fileStamp{size: fi.Size(), mtime: fi.ModTime(), exists: true}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = int64(sys.Ino)
		s.ctime = sys.Ctim.Nano()
	}
	return s
}

// read stats and parses the file.
func (a *AuthorizedKeys) read() (fileStamp, []AuthorizedKey, error) {
	f, err := os.Open(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileStamp{}, nil, nil
	}
	if err != nil {
		return fileStamp{}, nil, fmt.Errorf("authorized keys: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fileStamp{}, nil, fmt.Errorf("authorized keys %s: %w", a.path, err)
	}
	st := stampOf(fi)
	if !fi.Mode().IsRegular() {
		return st, nil, fmt.Errorf("authorized keys %s: not a regular file", a.path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return st, nil, fmt.Errorf("authorized keys %s: mode %04o is writable by group or others", a.path, fi.Mode().Perm())
	}
	if fi.Size() > maxAuthorizedKeysSize {
		return st, nil, fmt.Errorf("authorized keys %s: %d bytes, more than %d", a.path, fi.Size(), maxAuthorizedKeysSize)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return st, nil, fmt.Errorf("authorized keys %s: %w", a.path, err)
	}
	keys, err := ParseAuthorizedKeys(a.path, buf.Bytes())
	return st, keys, err
}

// refresh reloads the file when its stamp changed. Callers hold a.mu.
func (a *AuthorizedKeys) refresh() {
	fi, err := os.Stat(a.path)
	var st fileStamp
	if err == nil {
		st = stampOf(fi)
	}
	if st == a.stamp {
		return
	}
	st, keys, err := a.read()
	if err != nil {
		a.stamp = st
		if a.err == nil || a.err.Error() != err.Error() {
			a.logger.Error("authorized keys not reloaded, keeping the keys in force", "err", err, "keys", len(a.keys))
		}
		a.err = err
		return
	}
	a.stamp, a.keys, a.err = st, keys, nil
	if !st.exists {
		a.logger.Warn("authorized keys file removed: no key is allowed", "path", a.path)
		return
	}
	a.logger.Info("authorized keys reloaded", "path", a.path, "keys", len(keys))
}

// Lookup reports whether k is authorized, reloading the file first if it
// changed, and returns its entry.
func (a *AuthorizedKeys) Lookup(k gossh.PublicKey) (AuthorizedKey, bool) {
	if k == nil {
		return AuthorizedKey{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	want := k.Marshal()
	for _, ak := range a.keys {
		if bytes.Equal(ak.Key.Marshal(), want) {
			return ak, true
		}
	}
	return AuthorizedKey{}, false
}

// Keys returns the keys in force.
func (a *AuthorizedKeys) Keys() []AuthorizedKey {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refresh()
	return append([]AuthorizedKey(nil), a.keys...)
}
