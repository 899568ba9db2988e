package simnode

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/bougou/go-ipmi/pkg/hal"
)

// consoleKeep bounds the console output waiting for the BMC to drain it.
const consoleKeep = 64 << 10

// Prompt is the simulated shell's prompt on the serial console. Like
// busybox's shell it is followed by a cursor-position query (ESC [ 6 n),
// which a real terminal answers in the input.
const Prompt = "~ # "

// serialConsole is the simulated machine's serial port, which the BMC's
// serial-over-LAN redirects (go-ipmi's hal.ConsoleHAL): the firmware's boot
// steps print on it, and a small shell answers what is typed (echoing as a
// tty does, swallowing the terminal's answers to its queries).
type serialConsole struct {
	n *Node

	mu       sync.Mutex
	attached bool
	cur      *consoleConn // the attachment that owns the port
	out      []byte       // written by the machine, not yet read by the BMC
	line     []byte       // typed since the last Enter
	esc      int          // 0, or 1 after ESC, 2 inside ESC [ ...
}

// Open attaches the BMC to the serial port. One attachment at a time, as
// on a real port: a new one takes the port over from the previous (whose
// session the BMC may not have ended yet).
func (c *serialConsole) Open(ctx context.Context) (hal.ConsoleConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		c.cur.closed = true
	}
	c.cur = &consoleConn{c: c}
	c.attached, c.line, c.esc, c.out = true, nil, 0, nil
	c.emit("\r\nsimulated node " + c.n.opts.MAC + " serial console (type help)\r\n" + Prompt + "\x1b[6n")
	return c.cur, nil
}

// print writes a line from the machine (its firmware) to the port.
func (c *serialConsole) print(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.attached {
		c.emit("\r" + line + "\r\n" + Prompt + string(c.line))
	}
}

// emit queues output, dropping the oldest beyond consoleKeep. Callers hold
// mu.
func (c *serialConsole) emit(s string) {
	c.out = append(c.out, s...)
	if over := len(c.out) - consoleKeep; over > 0 {
		c.out = append(c.out[:0:0], c.out[over:]...)
	}
}

// typed handles one byte from the BMC (what the admin typed).
func (c *serialConsole) typed(b byte) {
	switch {
	case c.esc == 1:
		c.esc = 0
		if b == '[' {
			c.esc = 2
		}
	case c.esc == 2:
		if b >= 0x40 && b <= 0x7e {
			c.esc = 0 // the end of a terminal's answer, e.g. ESC [ 24 ; 5 R
		}
	case b == 0x1b:
		c.esc = 1
	case b == '\r' || b == '\n':
		cmd := strings.TrimSpace(string(c.line))
		c.line = c.line[:0]
		c.emit("\r\n" + c.answer(cmd) + Prompt + "\x1b[6n")
	case b == 0x7f || b == 0x08:
		if len(c.line) > 0 {
			c.line = c.line[:len(c.line)-1]
			c.emit("\b \b")
		}
	case b == 0x03:
		c.line = c.line[:0]
		c.emit("^C\r\n" + Prompt + "\x1b[6n")
	case b >= 0x20 && b < 0x7f:
		c.line = append(c.line, b)
		c.out = append(c.out, b)
	}
}

// answer is the simulated shell's output for cmd, each line ending CR LF.
func (c *serialConsole) answer(cmd string) string {
	word, rest, _ := strings.Cut(cmd, " ")
	switch word {
	case "":
		return ""
	case "help":
		return "simulated shell: echo TEXT, uname, help\r\n"
	case "echo":
		return rest + "\r\n"
	case "uname":
		return "Linux (simulated by netbootui's simnode)\r\n"
	}
	return "sh: " + word + ": not found\r\n"
}

// consoleConn is one attachment of the BMC to the serial port.
type consoleConn struct {
	c      *serialConsole
	closed bool
}

func (k *consoleConn) Write(p []byte) (int, error) {
	c := k.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if k.closed {
		return 0, errors.New("simnode: serial console closed")
	}
	for _, b := range p {
		c.typed(b)
	}
	return len(p), nil
}

func (k *consoleConn) ReadAvailable(p []byte) (int, error) {
	c := k.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if k.closed {
		return 0, errors.New("simnode: serial console closed")
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

func (k *consoleConn) SendBreak(ctx context.Context) error { return nil }

func (k *consoleConn) Close() error {
	c := k.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if !k.closed {
		k.closed = true
	}
	if c.cur == k {
		c.cur, c.attached, c.out = nil, false, nil
	}
	return nil
}
