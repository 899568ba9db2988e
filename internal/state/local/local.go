// Package local is the single-head implementation of internal/state: the
// daemon's durable state in its data directory. Boot states live in a bbolt
// database (state.db, bootstate.Store, which also locks the directory
// against a second daemon), rollouts in rollouts.json, the audit log in
// audit.log, the token key in token.key, the check-in replay guard's
// records in checkins.db (bbolt); learned addresses and console captures
// are kept in memory, as they always were (a restarted head learns them
// again).
package local

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/atomicfile"
	"github.com/netbootui/netbootui/internal/audit"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/sol"
	"github.com/netbootui/netbootui/internal/state"
)

// Files in the data directory.
const (
	StateDB  = "state.db"  // boot states and histories (bbolt); its lock is the directory's
	AuditLog = "audit.log" // one JSON line per entry
	TokenKey = "token.key" // the token key in hex, mode 0600
)

// auditKeep is how many audit entries are kept in memory for Recent.
const auditKeep = 1000

// Store is the local state.Store of one data directory.
type Store struct {
	dir    string
	boot   *bootstate.Store
	audit  *audit.Log
	docs   *Documents
	addrs  *Addresses
	consol *Consoles
	checks *Checkins
}

var (
	_ state.Store       = (*Store)(nil)
	_ state.AuditLister = (*audit.Log)(nil)
)

// Open opens (creating) the state in dir. The boot-state database is
// opened first: when another daemon holds dir, Open fails with an error
// naming it, before anything else is touched.
func Open(dir string) (_ *Store, err error) {
	if dir == "" {
		return nil, errors.New("state: data dir is empty")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Store{dir: dir, docs: NewDocuments(dir), addrs: NewAddresses(), consol: NewConsoles(0)}
	if s.boot, err = bootstate.OpenStore(filepath.Join(dir, StateDB)); err != nil {
		return nil, err
	}
	if s.audit, err = audit.Open(filepath.Join(dir, AuditLog), auditKeep); err != nil {
		s.boot.Close()
		return nil, err
	}
	if s.checks, err = OpenCheckins(filepath.Join(dir, CheckinsDB)); err != nil {
		s.audit.Close()
		s.boot.Close()
		return nil, err
	}
	return s, nil
}

// BootStates is the bbolt database state.db.
func (s *Store) BootStates() state.BootStates { return s.boot }

// Addresses are kept in memory.
func (s *Store) Addresses() state.Addresses { return s.addrs }

// Documents are files in the data directory.
func (s *Store) Documents() state.Documents { return s.docs }

// Audit is audit.log.
func (s *Store) Audit() state.Audit { return s.audit }

// Consoles are kept in memory.
func (s *Store) Consoles() state.Consoles { return s.consol }

// Checkins is checkins.db.
func (s *Store) Checkins() state.Checkins { return s.checks }

// TokenKey reads token.key, creating it with 32 random bytes (mode 0600)
// when it does not exist. A key file readable by group or others is
// refused.
func (s *Store) TokenKey() ([]byte, error) { return loadKey(filepath.Join(s.dir, TokenKey)) }

func loadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
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
		return key, nil
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
	key, err := hex.DecodeString(strings.TrimRight(string(b), "\r\n "))
	if err != nil {
		return nil, fmt.Errorf("%s: not a hex key: %w", path, err)
	}
	return key, nil
}

// SetTokenKey writes key as the token key of a data directory that has
// none yet (a restore, internal/backup); a directory that has a key keeps
// it and the call fails unless the key is the same.
func (s *Store) SetTokenKey(key []byte) error {
	path := filepath.Join(s.dir, TokenKey)
	if old, err := os.ReadFile(path); err == nil {
		if strings.TrimRight(string(old), "\r\n ") == hex.EncodeToString(key) {
			return nil
		}
		return fmt.Errorf("%s: a token key exists already", path)
	}
	return atomicfile.Write(path, []byte(hex.EncodeToString(key)+"\n"), 0o600)
}

// ImportAudit appends entries, their times kept, to the audit log with one
// sync (a restore fills a new data directory's log).
func (s *Store) ImportAudit(entries []audit.Entry) error { return s.audit.Append(entries) }

// Close closes the audit log, the check-in records and the boot-state
// database (releasing the data directory).
func (s *Store) Close() error {
	return errors.Join(s.audit.Close(), s.checks.Close(), s.boot.Close())
}

// Documents keeps each document as a file of its name in one folder,
// replaced atomically (internal/atomicfile). Revisions are counted in
// memory: the folder belongs to one process (the data directory's lock), so
// only this process changes the files.
type Documents struct {
	dir  string
	mu   sync.Mutex
	revs map[string]state.Rev
}

// NewDocuments keeps documents in dir.
func NewDocuments(dir string) *Documents {
	return &Documents{dir: dir, revs: map[string]state.Rev{}}
}

func (d *Documents) path(name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || atomicfile.IsTemp(name) {
		return "", fmt.Errorf("state: bad document name %q", name)
	}
	return filepath.Join(d.dir, name), nil
}

// rev is the revision of an existing document (mu held).
func (d *Documents) rev(name string) state.Rev {
	r := d.revs[name]
	if r == 0 {
		r = 1
		d.revs[name] = r
	}
	return r
}

// Get reads the file.
func (d *Documents) Get(name string) ([]byte, state.Rev, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	return b, d.rev(name), nil
}

// Put replaces the file (mode 0644) if the revision is still prev.
func (d *Documents) Put(name string, data []byte, prev state.Rev) (state.Rev, error) {
	p, err := d.path(name)
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var cur state.Rev
	if _, err := os.Stat(p); err == nil {
		cur = d.rev(name)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	if cur != prev {
		return 0, fmt.Errorf("%s: %w", name, state.ErrConflict)
	}
	if err := atomicfile.Write(p, data, 0o644); err != nil {
		return 0, err
	}
	d.revs[name] = cur + 1
	return cur + 1, nil
}

// maxAddresses bounds the learned addresses: past it, expired ones are
// dropped.
const maxAddresses = 65536

// Addresses is the in-memory state.Addresses.
type Addresses struct {
	mu sync.Mutex
	m  map[netip.Addr]learned
}

type learned struct {
	node    string
	expires time.Time
}

// NewAddresses returns an empty address map.
func NewAddresses() *Addresses { return &Addresses{m: map[netip.Addr]learned{}} }

// Learn ties ip (unmapped from IPv4-in-IPv6) to node until expires.
func (a *Addresses) Learn(ip netip.Addr, node string, expires time.Time) {
	ip = ip.Unmap()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[ip] = learned{node: node, expires: expires}
	if len(a.m) > maxAddresses {
		now := time.Now()
		for k, v := range a.m {
			if now.After(v.expires) {
				delete(a.m, k)
			}
		}
	}
}

// Lookup returns the node ip is tied to at now.
func (a *Addresses) Lookup(ip netip.Addr, now time.Time) (string, bool) {
	a.mu.Lock()
	l, ok := a.m[ip.Unmap()]
	a.mu.Unlock()
	if !ok || now.After(l.expires) {
		return "", false
	}
	return l.node, true
}

// Consoles is the in-memory state.Consoles: one sol.Ring per node.
type Consoles struct {
	size  int
	mu    sync.Mutex
	rings map[string]*sol.Ring
}

// NewConsoles keeps size bytes per node (sol.DefaultRingSize when <= 0).
func NewConsoles(size int) *Consoles {
	return &Consoles{size: size, rings: map[string]*sol.Ring{}}
}

// Append writes p to node's ring.
func (c *Consoles) Append(node string, p []byte) {
	c.mu.Lock()
	r := c.rings[node]
	if r == nil {
		r = sol.NewRing(c.size)
		c.rings[node] = r
	}
	c.mu.Unlock()
	r.Write(p)
}

// Tail returns the last n lines of node's ring.
func (c *Consoles) Tail(node string, n int) (state.ConsoleLog, bool) {
	c.mu.Lock()
	r := c.rings[node]
	c.mu.Unlock()
	if r == nil {
		return state.ConsoleLog{Lines: []string{}}, false
	}
	return state.ConsoleLog{Lines: r.Tail(n), Kept: len(r.Bytes()), Total: r.Total(), Updated: r.Updated()}, true
}
