package bootstate

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Store is the embedded database (bbolt) that keeps node states, each
// node's bounded event history and the event counter across restarts: the
// single-head Persister. Only one process can hold a Store open.
type Store struct {
	db   *bolt.DB
	path string
}

// Database layout, version 1:
//
//	meta    "version" -> "1", "seq" -> uint64 big endian (highest Seq written)
//	nodes   node name -> NodeState JSON
//	history node name -> bucket: Seq (uint64 big endian) -> Event JSON
//	unknown Seq -> Event JSON for events with Node "" (newest unknownKeep)
var (
	bucketMeta    = []byte("meta")
	bucketNodes   = []byte("nodes")
	bucketHistory = []byte("history")
	bucketUnknown = []byte("unknown")
	keyVersion    = []byte("version")
	keySeq        = []byte("seq")
)

const (
	storeVersion = "1"
	// unknownKeep bounds the persisted history of unknown clients.
	unknownKeep = 1000
	// lockTimeout is how long OpenStore waits for another process's lock.
	lockTimeout = time.Second
)

// OpenStore opens (creating if needed) the state database at path, e.g.
// /var/lib/netbootui/state.db. The parent directory is created if missing.
// When another process holds the database, OpenStore fails after about a
// second with an error naming the data directory and that process.
func OpenStore(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("bootstate: state database path is empty")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("bootstate: data dir %s: %w", dir, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		who := "pid unknown"
		if pid := lockHolder(path); pid > 0 {
			who = fmt.Sprintf("pid %d", pid)
		}
		return nil, fmt.Errorf("data dir %s is in use by another netbootui (%s): %s is locked", dir, who, path)
	}
	if err != nil {
		return nil, fmt.Errorf("bootstate: open state database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keyVersion); {
		case v == nil:
			if err := meta.Put(keyVersion, []byte(storeVersion)); err != nil {
				return err
			}
		case string(v) != storeVersion:
			return fmt.Errorf("format version %q, this netbootui reads version %s", v, storeVersion)
		}
		for _, b := range [][]byte{bucketNodes, bucketHistory, bucketUnknown} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bootstate: state database %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close closes the database and releases its lock. Close the Tracker
// that uses the store first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("bootstate: close %s: %w", s.path, err)
	}
	return nil
}

// Check verifies the consistency of the database file (pages, freelist).
func (s *Store) Check() error {
	return s.db.View(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("bootstate: state database %s is inconsistent: %w", s.path, errors.Join(errs...))
		}
		return nil
	})
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

// Load reads the whole store, keeping the newest perNode events of each
// node (Persister).
func (s *Store) Load(perNode int) (*Snapshot, error) {
	d := &Snapshot{History: make(map[string][]Event)}
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keySeq); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("meta/seq is %d bytes, want 8", len(v))
			}
			d.Seq = binary.BigEndian.Uint64(v)
		}
		err := tx.Bucket(bucketNodes).ForEach(func(k, v []byte) error {
			var st NodeState
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("state of node %q: %w", k, err)
			}
			if st.Node != string(k) {
				return fmt.Errorf("state under key %q names node %q", k, st.Node)
			}
			d.States = append(d.States, st)
			return nil
		})
		if err != nil {
			return err
		}
		hb := tx.Bucket(bucketHistory)
		for i := range d.States {
			name := d.States[i].Node
			b := hb.Bucket([]byte(name))
			if b == nil {
				continue
			}
			evs, err := readEvents(b, perNode)
			if err != nil {
				return fmt.Errorf("history of node %q: %w", name, err)
			}
			d.History[name] = evs
		}
		d.Unknown, err = readEvents(tx.Bucket(bucketUnknown), unknownKeep)
		if err != nil {
			return fmt.Errorf("history of unknown clients: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bootstate: state database %s: %w", s.path, err)
	}
	return d, nil
}

// readEvents returns the newest keep events of b, oldest first.
func readEvents(b *bolt.Bucket, keep int) ([]Event, error) {
	var evs []Event
	c := b.Cursor()
	for k, v := c.Last(); k != nil && len(evs) < keep; k, v = c.Prev() {
		if len(k) != 8 {
			return nil, fmt.Errorf("key %x is not a sequence number", k)
		}
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return nil, fmt.Errorf("event %d: %w", binary.BigEndian.Uint64(k), err)
		}
		if ev.Seq != binary.BigEndian.Uint64(k) {
			return nil, fmt.Errorf("event under key %d has seq %d", binary.BigEndian.Uint64(k), ev.Seq)
		}
		evs = append(evs, ev)
	}
	for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
		evs[i], evs[j] = evs[j], evs[i]
	}
	return evs, nil
}

// Write applies b in one transaction: all of it is on disk when Write
// returns nil, none of it otherwise (Persister).
func (s *Store) Write(b *Batch) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		nodes, hist, unk := tx.Bucket(bucketNodes), tx.Bucket(bucketHistory), tx.Bucket(bucketUnknown)
		for _, name := range b.Forgets {
			if err := nodes.Delete([]byte(name)); err != nil {
				return err
			}
			if hist.Bucket([]byte(name)) != nil {
				if err := hist.DeleteBucket([]byte(name)); err != nil {
					return err
				}
			}
		}
		var cur *bolt.Bucket
		curName := ""
		unknownWritten := false
		for i := range b.Events {
			p := &b.Events[i]
			bk := unk
			if p.Event.Node == "" {
				unknownWritten = true
			} else {
				if cur == nil || curName != p.Event.Node {
					var err error
					if cur, err = hist.CreateBucketIfNotExists([]byte(p.Event.Node)); err != nil {
						return fmt.Errorf("history bucket of node %q: %w", p.Event.Node, err)
					}
					curName = p.Event.Node
				}
				bk = cur
			}
			if p.Replaces != 0 {
				if err := bk.Delete(seqKey(p.Replaces)); err != nil {
					return err
				}
			}
			// A fresh slice per value: bbolt keeps it until the commit.
			v, err := json.Marshal(&p.Event)
			if err != nil {
				return err
			}
			if err := bk.Put(seqKey(p.Event.Seq), v); err != nil {
				return err
			}
		}
		for i := range b.States {
			v, err := json.Marshal(&b.States[i])
			if err != nil {
				return err
			}
			if err := nodes.Put([]byte(b.States[i].Node), v); err != nil {
				return err
			}
		}
		for name, from := range b.KeepFrom {
			hb := hist.Bucket([]byte(name))
			if hb == nil {
				continue
			}
			if err := deleteBefore(hb, from); err != nil {
				return err
			}
		}
		if unknownWritten {
			// Keep the newest unknownKeep: find the oldest of them.
			c := unk.Cursor()
			k, _ := c.Last()
			for i := 1; i < unknownKeep && k != nil; i++ {
				k, _ = c.Prev()
			}
			if k != nil {
				if err := deleteBefore(unk, binary.BigEndian.Uint64(k)); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(keySeq, seqKey(b.Seq))
	})
	if err != nil {
		return fmt.Errorf("bootstate: write state database %s: %w", s.path, err)
	}
	return nil
}

// deleteBefore deletes the keys of b below seq.
func deleteBefore(b *bolt.Bucket, seq uint64) error {
	c := b.Cursor()
	limit := seqKey(seq)
	for k, _ := c.First(); k != nil && bytes.Compare(k, limit) < 0; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}
