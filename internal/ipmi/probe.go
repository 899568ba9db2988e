package ipmi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// An RMCP/ASF presence ping (IPMI 2.0 §13.2.3, DMTF ASF 2.0 §3.2.4.1) is the
// cheapest question a BMC answers: one 12-byte datagram, no session. The pool
// asks it before opening a session, outside the Bulk concurrency limit, so a
// BMC that never answers costs a socket and a timer instead of one of the
// concurrency slots.

const (
	rmcpVersion   = 0x06
	rmcpClassASF  = 0x06
	asfIANA       = 4542
	asfTypePing   = 0x80
	asfTypePong   = 0x40
	rmcpSeqNoAck  = 0xff
	probeInterval = 300 * time.Millisecond
)

// pingPacket builds a presence ping with the given message tag.
func pingPacket(tag byte) []byte {
	return []byte{
		rmcpVersion, 0x00, rmcpSeqNoAck, rmcpClassASF,
		byte(asfIANA >> 24 & 0xff), byte(asfIANA >> 16 & 0xff), byte(asfIANA >> 8 & 0xff), byte(asfIANA & 0xff),
		asfTypePing, tag, 0x00, 0x00,
	}
}

// Pong is what a presence pong says.
type Pong struct {
	Tag  byte
	IPMI bool // the "IPMI supported" entity bit
}

// ParsePong parses an RMCP/ASF presence pong datagram.
func ParsePong(b []byte) (Pong, error) {
	if len(b) < 12 {
		return Pong{}, fmt.Errorf("rmcp: pong of %d bytes, want at least 12", len(b))
	}
	if b[0] != rmcpVersion {
		return Pong{}, fmt.Errorf("rmcp: version %#02x, want %#02x", b[0], rmcpVersion)
	}
	if b[3]&0x0f != rmcpClassASF {
		return Pong{}, fmt.Errorf("rmcp: class %#02x is not ASF", b[3])
	}
	iana := uint32(b[4])<<24 | uint32(b[5])<<16 | uint32(b[6])<<8 | uint32(b[7])
	if iana != asfIANA {
		return Pong{}, fmt.Errorf("rmcp: IANA %d, want %d", iana, asfIANA)
	}
	if b[8] != asfTypePong {
		return Pong{}, fmt.Errorf("rmcp: ASF message type %#02x is not a pong", b[8])
	}
	n := int(b[11])
	if len(b) < 12+n {
		return Pong{}, fmt.Errorf("rmcp: pong data length %d exceeds the %d bytes received", n, len(b)-12)
	}
	p := Pong{Tag: b[9]}
	if n >= 9 {
		p.IPMI = b[12+8]&0x80 != 0
	}
	return p, nil
}

// Ping sends RMCP presence pings to addr (host:port) every 300 ms until a
// pong with the same tag arrives or ctx ends. It needs no session and no
// password: it tells whether anything answers RMCP at addr.
func Ping(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 256)
	for tag := byte(1); ; tag++ {
		if tag == 0 || tag == 0xff {
			tag = 1
		}
		if _, err := conn.Write(pingPacket(tag)); err != nil {
			return err
		}
		next := time.Now().Add(probeInterval)
		for {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			_ = conn.SetReadDeadline(next)
			if ctx.Err() != nil { // AfterFunc may have run before the deadline was set
				return ctx.Err()
			}
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					break // resend
				}
				return err
			}
			if p, err := ParsePong(buf[:n]); err == nil && p.Tag == tag {
				return nil
			}
		}
	}
}
