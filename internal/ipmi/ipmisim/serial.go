package ipmisim

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// SerialPort is a TCP server on 127.0.0.1 that plays a node's serial port
// behind ipmi_sim's SOL (Options.SOLPort): on each connection it writes its
// banner, then "boot progress N" every Progress interval (when not 0), and
// answers each line typed with "echo: LINE" (and the prompt SetPrompt
// gives). It records what it received.
type SerialPort struct {
	ln       net.Listener
	banner   string
	progress time.Duration

	mu     sync.Mutex
	got    bytes.Buffer
	prompt string
}

// SetPrompt makes every echo end with prompt and a cursor-position query
// (ESC [ 6 n), as busybox's shell does after each prompt: a real terminal
// answers it in the input (ESC [ row ; col R).
func (s *SerialPort) SetPrompt(prompt string) {
	s.mu.Lock()
	s.prompt = prompt
	s.mu.Unlock()
}

// StartSerialPort starts a SerialPort; Close stops it.
func StartSerialPort(banner string, progress time.Duration) (*SerialPort, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ipmisim: serial port: %w", err)
	}
	s := &SerialPort{ln: ln, banner: banner, progress: progress}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s, nil
}

func (s *SerialPort) serve(c net.Conn) {
	defer c.Close()
	var wmu sync.Mutex // the progress writer and the echo share c
	write := func(format string, args ...any) error {
		wmu.Lock()
		defer wmu.Unlock()
		_, err := fmt.Fprintf(c, format, args...)
		return err
	}
	if s.banner != "" {
		write("%s\r\n", s.banner)
	}
	if s.progress > 0 {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(s.progress):
				}
				if write("boot progress %d\r\n", i) != nil {
					return
				}
			}
		}()
	}
	// what arrives is recorded at once (a terminal's answer ends with no
	// CR); lines are echoed at their CR
	var line []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		s.mu.Lock()
		s.got.Write(buf[:n])
		s.mu.Unlock()
		if err != nil {
			return
		}
		line = append(line, buf[:n]...)
		for {
			i := bytes.IndexByte(line, '\r')
			if i < 0 {
				break
			}
			s.echo(write, string(line[:i]))
			line = line[i+1:]
		}
	}
}

// echo answers one line typed.
func (s *SerialPort) echo(write func(string, ...any) error, line string) {
	s.mu.Lock()
	prompt := s.prompt
	s.mu.Unlock()
	if prompt != "" {
		prompt += "\x1b[6n"
	}
	write("echo: %s\r\n%s", strings.TrimSpace(line), prompt)
}

// Port is the TCP port to give ipmi_sim as its SOL target.
func (s *SerialPort) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Received returns everything typed into the serial port so far.
func (s *SerialPort) Received() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.String()
}

// Close stops accepting connections.
func (s *SerialPort) Close() error { return s.ln.Close() }
