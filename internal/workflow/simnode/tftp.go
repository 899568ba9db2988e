package simnode

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// TFTP opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// tftpBlockSize is what the client asks for (an Ethernet frame's worth, as
// iPXE and pxelinux do).
const tftpBlockSize = 1468

// Packet is one TFTP packet as the client reads it.
type Packet struct {
	Op      uint16
	Block   uint16            // DATA and ACK
	Data    []byte            // DATA payload
	Options map[string]string // OACK options, names in lower case
	Code    uint16            // ERROR code
	Message string            // ERROR message
}

// ParsePacket decodes a packet a TFTP server sends a client (DATA, ACK,
// ERROR, OACK). Anything else or a malformed packet is an error saying what
// is wrong.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < 2 {
		return Packet{}, fmt.Errorf("tftp packet of %d bytes", len(b))
	}
	p := Packet{Op: binary.BigEndian.Uint16(b)}
	body := b[2:]
	switch p.Op {
	case opDATA, opACK:
		if len(body) < 2 {
			return p, fmt.Errorf("tftp opcode %d: no block number", p.Op)
		}
		p.Block = binary.BigEndian.Uint16(body)
		p.Data = body[2:]
		if p.Op == opACK && len(p.Data) > 0 {
			return p, errors.New("tftp ACK with trailing bytes")
		}
	case opERROR:
		if len(body) < 3 || body[len(body)-1] != 0 {
			return p, errors.New("tftp ERROR: malformed")
		}
		p.Code = binary.BigEndian.Uint16(body)
		p.Message = string(body[2 : len(body)-1])
	case opOACK:
		p.Options = map[string]string{}
		if len(body) > 0 && body[len(body)-1] != 0 {
			return p, errors.New("tftp OACK: option not terminated")
		}
		fields := bytes.Split(body, []byte{0})
		fields = fields[:len(fields)-1] // after the last NUL
		if len(fields)%2 != 0 {
			return p, errors.New("tftp OACK: option without a value")
		}
		for i := 0; i < len(fields); i += 2 {
			p.Options[string(bytes.ToLower(fields[i]))] = string(fields[i+1])
		}
	default:
		return p, fmt.Errorf("tftp opcode %d not expected by a client", p.Op)
	}
	return p, nil
}

// TFTPGet reads name from the TFTP server at server ("127.0.0.1:PORT")
// speaking from local address src, writes the file to w and returns its
// size. It asks for blksize 1468 and tsize, retransmits on a one-second
// silence up to five times, and gives up when ctx ends.
func TFTPGet(ctx context.Context, src netip.Addr, server, name string, w io.Writer) (int64, error) {
	srvAddr, err := net.ResolveUDPAddr("udp", server)
	if err != nil {
		return 0, fmt.Errorf("tftp %s: %w", server, err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: src.AsSlice()})
	if err != nil {
		return 0, fmt.Errorf("tftp from %s: %w", src, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	rrq := []byte{0, opRRQ}
	for _, s := range []string{name, "octet", "blksize", strconv.Itoa(tftpBlockSize), "tsize", "0"} {
		rrq = append(append(rrq, s...), 0)
	}
	last := rrq // what to send again on a timeout
	var peer *net.UDPAddr
	blksize := 512
	var want uint16 = 1
	var size int64
	buf := make([]byte, 65536)
	retries := 0
	if _, err := conn.WriteToUDP(rrq, srvAddr); err != nil {
		return 0, fmt.Errorf("tftp %s %q: %w", server, name, err)
	}
	ack := func(block uint16) error {
		last = []byte{0, opACK, byte(block >> 8), byte(block)}
		_, err := conn.WriteToUDP(last, peer)
		return err
	}
	for {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if ctx.Err() != nil {
			return size, fmt.Errorf("tftp %s %q: %w", server, name, ctx.Err())
		}
		nr, from, err := conn.ReadFromUDP(buf)
		if err != nil {
			if ctx.Err() != nil {
				return size, fmt.Errorf("tftp %s %q: %w", server, name, ctx.Err())
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && retries < 5 {
				retries++
				to := peer
				if to == nil {
					to = srvAddr
				}
				conn.WriteToUDP(last, to)
				continue
			}
			return size, fmt.Errorf("tftp %s %q: block %d: %w", server, name, want, err)
		}
		if peer == nil {
			if !from.IP.Equal(srvAddr.IP) {
				continue // not the server we asked
			}
			peer = from
		} else if !from.IP.Equal(peer.IP) || from.Port != peer.Port {
			continue // another transfer's packet: RFC 1350 says ignore
		}
		p, err := ParsePacket(buf[:nr])
		if err != nil {
			return size, fmt.Errorf("tftp %s %q: %w", server, name, err)
		}
		switch p.Op {
		case opERROR:
			return size, fmt.Errorf("tftp %s %q: error %d: %s", server, name, p.Code, p.Message)
		case opOACK:
			if want != 1 {
				continue
			}
			if v, ok := p.Options["blksize"]; ok {
				bs, err := strconv.Atoi(v)
				if err != nil || bs < 8 || bs > tftpBlockSize {
					return size, fmt.Errorf("tftp %s %q: server chose blksize %q", server, name, v)
				}
				blksize = bs
			}
			retries = 0
			if err := ack(0); err != nil {
				return size, err
			}
		case opDATA:
			switch p.Block {
			case want:
				if len(p.Data) > blksize {
					return size, fmt.Errorf("tftp %s %q: block %d of %d bytes, blksize %d", server, name, p.Block, len(p.Data), blksize)
				}
				if _, err := w.Write(p.Data); err != nil {
					return size, fmt.Errorf("tftp %s %q: %w", server, name, err)
				}
				size += int64(len(p.Data))
				retries = 0
				if err := ack(p.Block); err != nil {
					return size, err
				}
				if len(p.Data) < blksize {
					return size, nil
				}
				want++
			case want - 1: // our ACK was lost: say it again
				ack(p.Block)
			}
		}
	}
}
