package qemubmc

import (
	"fmt"
	"net"
	"sync"
)

// serialRelay is the node's serial line, kept by the harness for the
// node's whole life: ipmi_sim's serial-over-LAN connects to one side
// (Options.SOLPort) and stays connected, while QEMU, which every power
// cycle restarts, connects to the other (Options.SerialPort) each time it
// starts. Without it ipmi_sim's connection dies with the first QEMU and a
// console or a reboot's capture sees nothing after a power cycle. Bytes
// that arrive while the other side is not connected are dropped, as a
// serial line with nobody listening drops them.
type serialRelay struct {
	bmcLn, vmLn net.Listener

	mu      sync.Mutex
	bmc, vm net.Conn
	closed  bool
	wg      sync.WaitGroup
}

// startRelay listens on 127.0.0.1:solPort (0 picks a port) for ipmi_sim and
// on a free 127.0.0.1 port for QEMU.
func startRelay(solPort int) (*serialRelay, error) {
	bmcLn, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", solPort))
	if err != nil {
		return nil, fmt.Errorf("qemubmc: SOL port: %w", err)
	}
	vmLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		bmcLn.Close()
		return nil, fmt.Errorf("qemubmc: serial port: %w", err)
	}
	r := &serialRelay{bmcLn: bmcLn, vmLn: vmLn}
	r.wg.Add(2)
	go r.accept(bmcLn, &r.bmc, &r.vm)
	go r.accept(vmLn, &r.vm, &r.bmc)
	return r, nil
}

func (r *serialRelay) solPort() int    { return r.bmcLn.Addr().(*net.TCPAddr).Port }
func (r *serialRelay) serialPort() int { return r.vmLn.Addr().(*net.TCPAddr).Port }

// accept makes each new connection on ln the current one of its side
// (closing the one before) and copies what it sends to the other side's
// current connection.
func (r *serialRelay) accept(ln net.Listener, side, other *net.Conn) {
	defer r.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return
		}
		if *side != nil {
			(*side).Close()
		}
		*side = c
		r.mu.Unlock()
		r.wg.Add(1)
		go r.pump(c, side, other)
	}
}

func (r *serialRelay) pump(c net.Conn, side, other *net.Conn) {
	defer r.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			r.mu.Lock()
			dst := *other
			r.mu.Unlock()
			if dst != nil {
				dst.Write(buf[:n]) // a dead peer is replaced by its next connection
			}
		}
		if err != nil {
			r.mu.Lock()
			if *side == c {
				*side = nil
			}
			r.mu.Unlock()
			c.Close()
			return
		}
	}
}

// Close stops both listeners and connections and waits for the copies.
func (r *serialRelay) Close() {
	r.mu.Lock()
	r.closed = true
	for _, c := range []net.Conn{r.bmc, r.vm} {
		if c != nil {
			c.Close()
		}
	}
	r.mu.Unlock()
	r.bmcLn.Close()
	r.vmLn.Close()
	r.wg.Wait()
}
