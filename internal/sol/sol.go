// Package sol holds the pieces of serial-over-LAN handling that need no BMC:
// Ring, a bounded per-node console log that keeps the newest bytes, and
// EscapeReader, which ends a console session on the "~." escape typed at the
// start of a line (as ssh does).
package sol

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"
	"time"
)

// DefaultRingSize is the console log kept per node: 256 KiB.
const DefaultRingSize = 256 << 10

// Ring is a bounded log of console output: it keeps the newest Size bytes
// and counts what it dropped. It is safe for concurrent use.
type Ring struct {
	mu      sync.Mutex
	buf     []byte // len(buf) == size once full; start is the oldest byte
	size    int
	start   int
	full    bool
	total   int64
	updated time.Time
}

// NewRing returns a Ring keeping the newest size bytes (DefaultRingSize
// when size <= 0).
func NewRing(size int) *Ring {
	if size <= 0 {
		size = DefaultRingSize
	}
	return &Ring{size: size, buf: make([]byte, 0, min(size, 4096))}
}

// Write appends p, dropping the oldest bytes beyond the bound. It never
// fails.
func (r *Ring) Write(p []byte) (int, error) {
	n := len(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total += int64(n)
	r.updated = time.Now()
	if len(p) >= r.size {
		p = p[len(p)-r.size:]
		r.buf = append(r.buf[:0], p...)
		r.start, r.full = 0, true
		return n, nil
	}
	if !r.full {
		if len(r.buf)+len(p) <= r.size {
			r.buf = append(r.buf, p...)
			if len(r.buf) == r.size {
				r.full = true
			}
			return n, nil
		}
		// Grow to the full size, then wrap.
		k := r.size - len(r.buf)
		r.buf = append(r.buf, p[:k]...)
		p = p[k:]
		r.full, r.start = true, 0
	}
	for len(p) > 0 {
		c := copy(r.buf[r.start:], p)
		p = p[c:]
		r.start = (r.start + c) % r.size
	}
	return n, nil
}

// Bytes returns a copy of the kept output, oldest first.
func (r *Ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]byte, 0, len(r.buf))
	if !r.full {
		return append(out, r.buf...)
	}
	out = append(out, r.buf[r.start:]...)
	return append(out, r.buf[:r.start]...)
}

// Total is how many bytes were ever written; Total minus len(Bytes()) were
// dropped.
func (r *Ring) Total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Updated is when the last byte was written (zero when none was).
func (r *Ring) Updated() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.updated
}

// Tail returns up to n of the last lines of the kept output, with carriage
// returns and other control characters except tab removed (console output
// is full of them) and without blank lines. A first line cut by
// the bound is dropped when older lines were lost.
func (r *Ring) Tail(n int) []string {
	if n <= 0 {
		return nil
	}
	b := r.Bytes()
	dropped := r.Total() > int64(len(b))
	lines := strings.Split(clean(b), "\n")
	if dropped && len(lines) > 1 {
		lines = lines[1:]
	}
	kept := lines[:0]
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			kept = append(kept, l)
		}
	}
	lines = kept
	if len(lines) == 0 {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// clean drops control characters other than newline and tab, and ANSI
// escape sequences (ESC [ ... final byte).
func clean(b []byte) string {
	var out bytes.Buffer
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == 0x1b:
			// Skip an escape sequence: ESC [ params final (0x40-0x7e), or ESC X.
			if i+1 < len(b) && b[i+1] == '[' {
				j := i + 2
				for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
					j++
				}
				i = j
			} else {
				i++
			}
		case c == '\n' || c == '\t' || c >= 0x20 && c != 0x7f:
			out.WriteByte(c)
		}
	}
	return out.String()
}

// Escape is the sequence that ends a console session, typed at the start of
// a line.
const Escape = "~."

// EscapeReader passes bytes through from a terminal until "~." is typed at
// the start of a line (after CR or LF, or as the very first input); it then
// returns io.EOF and never reads again. "~~" at the start of a line sends
// one "~". A "~" followed by anything else is sent with it.
//
// Escape sequences (ESC [ ... final, ESC ] ... BEL or ESC \, ESC O x, ESC x)
// pass through without moving the line start: a terminal's answer to a
// query the node sent, such as the cursor position report ESC [ row ; col R
// that busybox's shell asks for after each prompt, arrives in the input
// between the user's Enter and "~." and must not hide the escape. A
// sequence arriving between the "~" and the "." passes through too.
type EscapeReader struct {
	r         *bufio.Reader
	lineStart bool
	tilde     bool // a "~" at the start of a line, held back
	seq       seqState
	done      bool
	pending   []byte
}

// seqState is where an escape sequence in the input is.
type seqState int

const (
	seqNone   seqState = iota
	seqEsc             // after ESC
	seqCSI             // ESC [ parameters, until a final byte 0x40-0x7e
	seqString          // ESC ] (also P, _, ^) until BEL or ESC \
	seqStrEsc          // an ESC inside a string: its end if "\" follows
	seqSS3             // ESC O: one more byte
)

// NewEscapeReader wraps r.
func NewEscapeReader(r io.Reader) *EscapeReader {
	return &EscapeReader{r: bufio.NewReader(r), lineStart: true}
}

// Escaped reports whether the session ended by the escape sequence.
func (e *EscapeReader) Escaped() bool { return e.done }

// Read implements io.Reader.
func (e *EscapeReader) Read(p []byte) (int, error) {
	if len(p) == 0 && !e.done {
		return 0, nil
	}
	n := 0
	for n < len(p) {
		if len(e.pending) > 0 {
			c := copy(p[n:], e.pending)
			e.pending = e.pending[c:]
			n += c
			continue
		}
		if e.done {
			break
		}
		if n > 0 && e.r.Buffered() == 0 {
			break // return what we have rather than block
		}
		c, err := e.r.ReadByte()
		if err != nil {
			if e.tilde {
				e.tilde = false
				e.pending = append(e.pending, '~')
				continue
			}
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		e.feed(c)
	}
	if n == 0 && e.done {
		return 0, io.EOF
	}
	return n, nil
}

// feed takes one input byte: it queues what is to be sent, or ends the
// session.
func (e *EscapeReader) feed(c byte) {
	if e.seq != seqNone && c < 0x20 && c != 0x1b && (c != 0x07 || e.seq != seqString) {
		e.seq = seqNone // a control byte (Enter after a lone ESC) ends it
	}
	if e.seq != seqNone || c == 0x1b {
		e.pending = append(e.pending, c)
		e.seq = nextSeq(e.seq, c)
		return
	}
	if e.tilde {
		e.tilde = false
		switch c {
		case '.':
			e.done = true
			return
		case '~':
			e.pending = append(e.pending, '~')
			e.lineStart = false
			return
		}
		e.pending = append(e.pending, '~')
	} else if e.lineStart && c == '~' {
		e.tilde = true
		return
	}
	e.pending = append(e.pending, c)
	e.lineStart = c == '\r' || c == '\n'
}

// nextSeq is the escape-sequence state after byte c.
func nextSeq(st seqState, c byte) seqState {
	switch st {
	case seqNone:
		return seqEsc // c is ESC
	case seqEsc:
		switch c {
		case '[':
			return seqCSI
		case ']', 'P', '_', '^':
			return seqString
		case 'O':
			return seqSS3
		case 0x1b:
			return seqEsc
		}
		return seqNone
	case seqCSI:
		if c >= 0x40 && c <= 0x7e {
			return seqNone // the final byte
		}
		return seqCSI
	case seqString:
		switch c {
		case 0x07:
			return seqNone
		case 0x1b:
			return seqStrEsc
		}
		return seqString
	case seqStrEsc:
		if c == '\\' {
			return seqNone
		}
		return seqString
	}
	return seqNone // seqSS3: its one byte
}
