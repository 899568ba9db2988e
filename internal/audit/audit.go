// Package audit keeps the daemon's audit log: one JSON line per admin action
// (who, what, when, on what, with which result), appended and synced to a file
// in the data directory, and the newest entries in memory for the console.
// Entries never hold secrets: callers pass results, not requests.
package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Entry is one audited action.
type Entry struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`              // unix user ("uid 0 (root)") or SSH key fingerprint
	Action  string    `json:"action"`           // "power cycle", "edit node n01", ...
	Target  string    `json:"target,omitempty"` // the selection as given
	Nodes   int       `json:"nodes,omitempty"`  // how many nodes it touched
	Result  string    `json:"result"`           // "ok", "3 ok, 1 failed", or the error
	Details []string  `json:"details,omitempty"`
}

// Log appends entries to a file and keeps the newest in memory.
type Log struct {
	mu     sync.Mutex
	f      *os.File
	recent []Entry
	max    int
}

// Open opens (creating, mode 0600) the audit log at path and loads its newest
// keep entries.
func Open(path string, keep int) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{f: f, max: keep}
	if l.max <= 0 {
		l.max = 1000
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e Entry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			l.keep(e)
		}
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
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
	l.keep(e)
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return l.f.Sync()
}

// Recent returns the newest n entries, oldest first.
func (l *Log) Recent(n int) []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= 0 || n > len(l.recent) {
		n = len(l.recent)
	}
	return append([]Entry(nil), l.recent[len(l.recent)-n:]...)
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
