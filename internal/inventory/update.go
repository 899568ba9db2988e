package inventory

import (
	"github.com/netbootui/netbootui/internal/atomicfile"

	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Update edits the inventory file at path:
//
//  1. it takes an exclusive flock on the sidecar file ".NAME.lock" in the same
//     folder, so that Updates from any number of processes run one at a time;
//  2. it removes temp files ".NAME.tmp-*" left by writers that died (any that a
//     lock holder sees is stale: a writer creates, renames or removes its temp
//     file while it holds the lock);
//  3. it re-reads the file; when baseRevision is not "" and differs from the
//     file's revision it returns a *ConflictError wrapping ErrConflict;
//  4. it applies edit to the file's YAML tree and validates the result with
//     Parse (with opts); an edit error or an invalid result leaves the file
//     untouched;
//  5. it writes a temp file in the same folder with the original's mode,
//     fsyncs it, renames it over the file and fsyncs the folder.
//
// It returns the new revision. An edit that changes nothing writes nothing
// and returns the current revision.
func Update(path, baseRevision string, edit func(*Document) error, opts ...Option) (string, error) {
	return UpdateWith(path, baseRevision, edit, nil, opts...)
}

// UpdateWith is Update with commit called, under the lock, between the
// validation of the result and the write of the file, with the file's
// bytes before and after: an error from commit leaves the file untouched
// and is returned. Several heads use it to land the edit in their shared
// store first (compare-and-swap), so that an edit lands once.
func UpdateWith(path, baseRevision string, edit func(*Document) error, commit func(before, after []byte) error, opts ...Option) (string, error) {
	unlock, err := lockFor(path)
	if err != nil {
		return "", err
	}
	defer unlock()
	// A symlinked inventory is written through the link: temp files sit
	// next to its target.
	target, err := atomicfile.Resolve(path)
	if err != nil {
		return "", fmt.Errorf("inventory: %w", err)
	}
	removeStaleTemps(target)

	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("inventory: %w", err)
	}
	data, err := readFile(path)
	if err != nil {
		return "", err
	}
	rev := Revision(data)
	if baseRevision != "" && rev != baseRevision {
		return "", &ConflictError{Path: path, Base: baseRevision, Current: rev, basename: filepath.Base(path)}
	}
	doc, err := ParseDocument(path, data)
	if err != nil {
		return "", err
	}
	before, err := doc.Bytes()
	if err != nil {
		return "", err
	}
	if err := edit(doc); err != nil {
		return "", err
	}
	after, err := doc.Bytes()
	if err != nil {
		return "", err
	}
	if bytes.Equal(before, after) {
		return rev, nil
	}
	if _, err := Parse(path, after, opts...); err != nil {
		return "", fmt.Errorf("inventory: edit rejected, %s left unchanged; the result would be invalid:\n%w", filepath.Base(path), err)
	}
	if commit != nil {
		if err := commit(data, after); err != nil {
			return "", err
		}
	}
	if err := atomicfile.Write(path, after, st.Mode().Perm()); err != nil {
		return "", err
	}
	return Revision(after), nil
}

// Rewrite replaces the file at path with what replace returns given its
// current bytes, under the lock Update takes (so an Update never runs in
// between), atomically and keeping the file's mode; a nil result or one
// equal to the current bytes writes nothing. Several heads mirror the
// shared inventory into their file with it. The result is not validated:
// it is a copy of a document another head validated.
func Rewrite(path string, replace func(current []byte) ([]byte, error)) error {
	unlock, err := lockFor(path)
	if err != nil {
		return err
	}
	defer unlock()
	target, err := atomicfile.Resolve(path)
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	removeStaleTemps(target)
	mode := os.FileMode(0o644)
	cur, err := readFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
	}
	next, err := replace(cur)
	if err != nil || next == nil || bytes.Equal(next, cur) {
		return err
	}
	return atomicfile.Write(path, next, mode)
}

// lockFor takes the exclusive lock that serializes Updates of path: a
// flock on the sidecar ".NAME.lock", which the holder removes when it is
// done, so that nothing is left beside the inventory. A writer that locked a
// sidecar another writer has since removed (or replaced) starts over, so
// that two writers never hold locks on different files.
func lockFor(path string) (func(), error) {
	lp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock")
	for {
		f, err := os.OpenFile(lp, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, fmt.Errorf("inventory: lock: %w", err)
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
			if !errors.Is(err, syscall.EINTR) {
				break
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("inventory: lock %s: %w", lp, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(lp)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			// Removing the sidecar before closing the descriptor (which
			// releases the lock) keeps waiting writers from locking a file
			// nobody else will see.
			return func() { os.Remove(lp); f.Close() }, nil
		}
		f.Close()
	}
}

// removeStaleTemps deletes temp files of dead writers. Call it with the lock held.
func removeStaleTemps(path string) {
	dir := filepath.Dir(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := atomicfile.TempPrefix(path)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// Watch polls path every interval until ctx is done. A change takes effect
// once the file has stayed the same for one interval. It calls onChange once
// at the start with the file's current inventory (or its error), then each
// time the file's content changes: with the new inventory, or with a nil
// inventory and the error (a parse ErrorList, or a read error such as the file
// being missing). The caller keeps its last good inventory on errors. The same
// error is not reported twice in a row. A change is noticed by the file's
// size, modification time, inode or ctime, then confirmed by its hash, so
// editors that save by rename are seen. onChange runs on Watch's goroutine.
// opts are Parse's.
func Watch(ctx context.Context, path string, interval time.Duration, onChange func(*Inventory, error), opts ...Option) {
	if interval <= 0 {
		interval = time.Second
	}
	type stamp struct {
		size        int64
		mtime       time.Time
		ino, ctimeS int64
		ctimeNs     int64
		err         string
	}
	stat := func() stamp {
		var s stamp
		st, err := os.Stat(path)
		if err != nil {
			s.err = err.Error()
		} else {
			s.size, s.mtime = st.Size(), st.ModTime()
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				s.ino, s.ctimeS, s.ctimeNs = int64(sys.Ino), int64(sys.Ctim.Sec), int64(sys.Ctim.Nsec)
			}
		}
		return s
	}
	var last, pending stamp
	havePending := false
	lastKey := "" // revision or error text last reported
	first := true
	check := func() {
		s := stat()
		if !first && s == last {
			havePending = false
			return
		}
		// A file written in place is seen half-written, and a truncated
		// inventory can be valid YAML: act only on a file that has stayed
		// the same for one interval and did not change while it was read.
		if !first && (!havePending || s != pending) {
			pending, havePending = s, true
			return
		}
		havePending = false
		data, err := readFile(path)
		if s2 := stat(); s2 != s {
			pending, havePending = s2, true
			return
		}
		last = s
		var key string
		var inv *Inventory
		if err != nil {
			key = "error:" + err.Error()
		} else {
			key = Revision(data)
			if key == lastKey {
				first = false
				return
			}
			inv, err = Parse(path, data, opts...)
			if err != nil {
				inv = nil
			}
		}
		if key == lastKey && !first {
			return
		}
		first = false
		lastKey = key
		onChange(inv, err)
	}
	check()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}
