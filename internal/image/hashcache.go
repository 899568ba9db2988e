package image

import (
	"bytes"
	"encoding/gob"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/netbootui/netbootui/internal/atomicfile"
)

// hashCacheFile keeps, per image, the SHA-256 of the input files its last
// build hashed, keyed by what stat says of them: an unchanged recipe over a
// large tree is then a no-op after a walk, without reading the tree again.
const hashCacheFile = "hashcache.gob"

// cachedSum is one file's sum and the stat it was taken under. A file whose
// device, inode, size or mtime (nanoseconds) differ is read again: rsync's
// quick check, plus the inode. ctime is not used: the build's own hard
// links (a directory root is linked, not copied) change it on every build.
// A file rewritten in place with its size and mtime restored is not seen:
// build with Force after such a change.
type cachedSum struct {
	Dev, Ino    uint64
	Size, Mtime int64
	Sum         string
}

// hashCache is the cache of one build: what the previous build left (old)
// and what this one saw (next, saved after the hash step).
type hashCache struct {
	mu   sync.Mutex
	old  map[string]cachedSum
	next map[string]cachedSum
	// horizon: files modified at or after it are not kept, since a second
	// change within the same clock tick would not show (git's "racily
	// clean" entries).
	horizon     int64
	files, hits int
}

// hashCachePath is where the builder keeps image's cache of file sums.
func (b *Builder) hashCachePath(image string) string {
	return filepath.Join(b.store.dir, image, hashCacheFile)
}

// loadHashCache reads a cache; a missing or unreadable one is empty (every
// file is read).
func loadHashCache(p string) *hashCache {
	c := &hashCache{old: map[string]cachedSum{}, next: map[string]cachedSum{},
		horizon: time.Now().Add(-time.Second).UnixNano()}
	if data, err := os.ReadFile(p); err == nil {
		if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&c.old); err != nil {
			c.old = map[string]cachedSum{}
		}
	}
	return c
}

// save writes what this build saw (temp, fsync, rename); best effort.
func (c *hashCache) save(p string) {
	var buf bytes.Buffer
	c.mu.Lock()
	err := gob.NewEncoder(&buf).Encode(c.next)
	c.mu.Unlock()
	if err == nil {
		atomicfile.Write(p, buf.Bytes(), 0o644)
	}
}

// sum is the SHA-256 of file p whose lstat is fi, from the cache when its
// stat is unchanged. A nil cache reads every file.
func (c *hashCache) sum(p string, fi fs.FileInfo) (string, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if c == nil || !ok {
		return fileSHA(p)
	}
	k := cachedSum{Dev: uint64(st.Dev), Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano()}
	c.mu.Lock()
	old, hit := c.old[p]
	c.files++
	c.mu.Unlock()
	if hit && old.Dev == k.Dev && old.Ino == k.Ino && old.Size == k.Size && old.Mtime == k.Mtime {
		k.Sum = old.Sum
		c.mu.Lock()
		c.hits++
		c.mu.Unlock()
	} else {
		sum, err := fileSHA(p)
		if err != nil {
			return "", err
		}
		k.Sum = sum
	}
	if k.Mtime < c.horizon {
		c.mu.Lock()
		c.next[p] = k
		c.mu.Unlock()
	}
	return k.Sum, nil
}
