package local

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/netbootui/netbootui/internal/state"
)

// CheckinsDB is the file of the check-in replay guard's records.
const CheckinsDB = "checkins.db"

// Layout of checkins.db: bucket "checkins", node name -> revision (uint64
// big endian) followed by the state.CheckinSeen JSON.
var bucketCheckins = []byte("checkins")

// Checkins is the local state.Checkins: a bbolt database in the data
// directory, one key per node, fsynced by every Put (concurrent Puts share
// a transaction through bbolt's Batch).
type Checkins struct {
	db   *bolt.DB
	path string
}

var _ state.Checkins = (*Checkins)(nil)

// OpenCheckins opens (creating) the records at path. The data directory's
// lock is state.db's; this file is only ever opened by the process holding
// it.
func OpenCheckins(path string) (*Checkins, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketCheckins)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: %s: %w", path, err)
	}
	return &Checkins{db: db, path: path}, nil
}

// decodeCheckin splits a stored value into its revision and record.
func decodeCheckin(v []byte) (state.CheckinSeen, state.Rev, error) {
	var seen state.CheckinSeen
	if len(v) < 8 {
		return seen, 0, errors.New("short record")
	}
	if err := json.Unmarshal(v[8:], &seen); err != nil {
		return seen, 0, err
	}
	return seen, state.Rev(binary.BigEndian.Uint64(v[:8])), nil
}

// Get reads node's record.
func (c *Checkins) Get(node string) (seen state.CheckinSeen, rev state.Rev, err error) {
	err = c.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCheckins).Get([]byte(node))
		if v == nil {
			return nil
		}
		seen, rev, err = decodeCheckin(v)
		return err
	})
	if err != nil {
		return state.CheckinSeen{}, 0, fmt.Errorf("state: %s: check-ins of %s: %w", c.path, node, err)
	}
	return seen, rev, nil
}

// Put replaces node's record if its revision is still prev.
func (c *Checkins) Put(node string, seen state.CheckinSeen, prev state.Rev) (state.Rev, error) {
	js, err := json.Marshal(seen)
	if err != nil {
		return 0, err
	}
	var next state.Rev
	err = c.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCheckins)
		var cur state.Rev
		if v := b.Get([]byte(node)); v != nil {
			if _, cur, err = decodeCheckin(v); err != nil {
				return err
			}
		}
		if cur != prev {
			return fmt.Errorf("check-ins of %s: %w", node, state.ErrConflict)
		}
		next = cur + 1
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(js)), uint64(next))
		return b.Put([]byte(node), append(v, js...))
	})
	if errors.Is(err, state.ErrConflict) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("state: %s: %w", c.path, err)
	}
	return next, nil
}

// Close closes the database.
func (c *Checkins) Close() error { return c.db.Close() }

// MemoryCheckins is a state.Checkins in memory: what a pxe.Boot without a
// store uses, and the check-in records of statetest's Memory backing.
type MemoryCheckins struct {
	mu   sync.Mutex
	rev  state.Rev
	seen map[string]memorySeen
}

type memorySeen struct {
	seen state.CheckinSeen
	rev  state.Rev
}

var _ state.Checkins = (*MemoryCheckins)(nil)

// NewMemoryCheckins returns empty records.
func NewMemoryCheckins() *MemoryCheckins { return &MemoryCheckins{seen: map[string]memorySeen{}} }

// Get returns a copy of node's record.
func (c *MemoryCheckins) Get(node string) (state.CheckinSeen, state.Rev, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.seen[node]
	r.seen.Left = slices.Clone(r.seen.Left)
	return r.seen, r.rev, nil
}

// Put keeps a copy of seen if node's revision is still prev.
func (c *MemoryCheckins) Put(node string, seen state.CheckinSeen, prev state.Rev) (state.Rev, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[node].rev != prev {
		return 0, fmt.Errorf("check-ins of %s: %w", node, state.ErrConflict)
	}
	c.rev++
	seen.Left = slices.Clone(seen.Left)
	c.seen[node] = memorySeen{seen: seen, rev: c.rev}
	return c.rev, nil
}
