// Package audit keeps the daemon's audit log: one JSON line per admin action
// (who, what, when, on what, with which result), appended and synced to a file
// in the data directory, and the newest entries in memory for the console.
// Entries never hold secrets: callers pass results, not requests.
//
// The log fails closed: it keeps Reserve bytes allocated past its end
// (fallocate, FALLOC_FL_KEEP_SIZE), so that the next entry has room even on
// a disk that filled up meanwhile, and Ready says whether that holds. The
// API asks Ready before every mutation and refuses the action when it does
// not: an action runs only when its entry can be made durable.
package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netbootui/netbootui/internal/fanout"
)

// Reserve is how many bytes the log keeps allocated past its end for the
// entries to come. Entries longer than that, or more of them than fit at
// once (mutations already under way when the disk filled), may still fail
// to be written on a full disk: each is then kept in memory with a note,
// and Ready fails.
const Reserve = 64 << 10

// Entry is one audited action.
type Entry struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`              // unix user ("uid 0 (root)") or SSH key fingerprint
	Action  string    `json:"action"`           // "power cycle", "edit node n01", ...
	Target  string    `json:"target,omitempty"` // the selection as given
	Nodes   int       `json:"nodes,omitempty"`  // how many nodes it touched
	Result  string    `json:"result"`           // "ok", "3 ok, 1 failed", or the error
	Details []string  `json:"details,omitempty"`
	// Paths says, per node, which path an action took and why
	// ("n07: kexec (agent polling)", "n08: power (kexec refused ...)"):
	// reboot-clean and rollout waves.
	Paths []string `json:"paths,omitempty"`
}

// Log appends entries to a file and keeps the newest in memory.
type Log struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	recent []Entry
	max    int
	// err is why the next entry may not be durable (a failed write, sync
	// or reservation); nil when it will be.
	err error
	// torn says a failed write left part of a line: the next entry starts
	// with a newline of its own.
	torn bool
	// subs follow the entries as they are kept (follow.go); published
	// under mu, so in the order kept.
	subs fanout.Hub[Entry]
}

// Open opens (creating, mode 0600) the audit log at path and loads its newest
// keep entries.
func Open(path string, keep int) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{f: f, path: path, max: keep}
	if l.max <= 0 {
		l.max = 1000
	}
	scanEntries(f, l.keep) // a line too long to read ends the loading; the daemon still starts
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, err
	}
	if end > 0 { // end a torn last line, so that the next entry starts a line of its own
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, end-1); err == nil && last[0] != '\n' {
			_, err := f.Write([]byte("\n"))
			l.torn = err != nil // a full disk: the next entry writes it
		}
	}
	l.err = l.reserve() // a full disk does not stop the daemon: Ready refuses actions
	return l, nil
}

// reserve makes sure Reserve bytes past the end of the file are allocated.
// The caller holds mu (or owns l).
func (l *Log) reserve() error {
	fi, err := l.f.Stat()
	if err != nil {
		return err
	}
	err = unix.Fallocate(int(l.f.Fd()), unix.FALLOC_FL_KEEP_SIZE, fi.Size(), Reserve)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		// No preallocation here: ask for the room instead.
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(l.f.Fd()), &st); err != nil {
			return err
		}
		if free := int64(st.Bavail) * int64(st.Bsize); free < Reserve {
			return fmt.Errorf("%d bytes free, %d needed", free, Reserve)
		}
		return nil
	}
	return err
}

// Ready returns nil when an entry recorded now will be durable, and
// otherwise why not (the disk is full, the last write or sync failed). It
// tries the reservation again, so a log recovers once room is made.
func (l *Log) Ready() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		if err := l.f.Sync(); err == nil {
			l.err = l.reserve()
		}
	}
	if l.err != nil {
		return fmt.Errorf("audit log %s cannot record an entry durably: %w", l.path, l.err)
	}
	return nil
}

func (l *Log) keep(e Entry) {
	l.recent = append(l.recent, e)
	if len(l.recent) > l.max {
		l.recent = append(l.recent[:0:0], l.recent[len(l.recent)-l.max:]...)
	}
}

// Record appends e (stamping the time when it is zero) and syncs the file.
func (l *Log) Record(e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	line := append(b, '\n')
	if l.torn {
		line = append([]byte{'\n'}, line...)
	}
	n, err := l.f.Write(line)
	l.torn = err != nil && n > 0
	if err == nil {
		err = l.f.Sync()
	}
	if err != nil {
		l.err = err
		// The console still shows it, saying it is not on disk.
		e.Details = append(e.Details, "audit: this entry was not written to disk: "+err.Error())
		l.keep(e)
		l.subs.Publish(e)
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	l.keep(e)
	l.subs.Publish(e)
	l.err = l.reserve()
	return nil
}

// Recent returns the newest n entries, oldest first.
func (l *Log) Recent(n int) []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recentLocked(n)
}

// recentLocked is Recent; the caller holds mu.
func (l *Log) recentLocked(n int) []Entry { return Newest(l.recent, n) }

// Newest returns a copy of the newest n of entries (all when n <= 0),
// oldest first: what every audit log's Recent answers.
func Newest(entries []Entry, n int) []Entry {
	if n <= 0 || n > len(entries) {
		n = len(entries)
	}
	return append([]Entry(nil), entries[len(entries)-n:]...)
}

// Close closes the file and ends every subscription.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.subs.Close()
	return l.f.Close()
}

// All returns every entry in the file, oldest first (not only the newest
// kept in memory), read while no entry is being recorded. Lines that do not
// parse (a torn last line after a crash) are skipped, as Open skips them.
func (l *Log) All() ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	var out []Entry
	if err := scanEntries(f, func(e Entry) { out = append(out, e) }); err != nil {
		return nil, err
	}
	return out, nil
}

// scanEntries calls fn with every entry of a log's JSON lines, skipping
// lines that do not parse.
func scanEntries(r io.Reader, fn func(Entry)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			fn(e)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// Append writes entries as they are (their times kept) after the log's
// end with one sync: a restore fills a new log this way. Nothing is
// published to followers.
func (l *Log) Append(entries []Entry) error {
	var b []byte
	for _, e := range entries {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.torn {
		b = append([]byte{'\n'}, b...)
	}
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	l.torn = false
	for _, e := range entries {
		l.keep(e)
	}
	l.err = l.reserve()
	return nil
}
