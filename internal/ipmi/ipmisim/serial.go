package ipmisim

import (
	"bufio"
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
// answers each line typed with "echo: LINE". It records what it received.
type SerialPort struct {
	ln       net.Listener
	banner   string
	progress time.Duration

	mu  sync.Mutex
	got bytes.Buffer
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
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\r')
		s.mu.Lock()
		s.got.WriteString(line)
		s.mu.Unlock()
		if err != nil {
			return
		}
		write("echo: %s\r\n", strings.TrimSpace(line))
	}
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
