package pxe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TFTP opcodes (RFC 1350, RFC 2347).
const (
	tftpOpRRQ   = 1
	tftpOpWRQ   = 2
	tftpOpDATA  = 3
	tftpOpACK   = 4
	tftpOpERROR = 5
	tftpOpOACK  = 6
)

// TFTP error codes (RFC 1350).
const (
	tftpErrUndefined    = 0
	tftpErrNotFound     = 1
	tftpErrAccess       = 2
	tftpErrIllegalOp    = 4
	tftpMaxRequestBytes = 516 // what pin/tftp reads; longer requests are refused
)

// Block size limits (RFC 2348, and pin/tftp's own floor of 512).
const (
	tftpDefaultBlockSize = 512
	tftpMaxBlockSize     = 65464
	// DefaultTFTPBlockSize is the largest block TFTPServer sends unless told
	// otherwise: a 1500-byte Ethernet MTU minus IP, UDP and TFTP headers.
	DefaultTFTPBlockSize = 1468
)

// errNotRequest marks a datagram that is not a read or write request (a stray
// ACK, DATA or ERROR): it is dropped without an answer.
var errNotRequest = errors.New("not a TFTP request")

// tftpRequest is a parsed RRQ or WRQ.
type tftpRequest struct {
	op      uint16
	name    string // as sent, not yet cleaned
	mode    string // "octet" or "netascii"
	blksize int    // requested block size, 0 when not asked for (or invalid)
	tsize   bool   // the client asked for the transfer size
}

// parseTFTPRequest parses a datagram received on the server port. It returns
// errNotRequest for other opcodes, and an error saying what is wrong for a
// malformed request. Option names are case-insensitive (RFC 2347); unknown
// options and invalid option values are ignored, as RFC 2347 allows; trailing
// NUL padding, which some firmware sends, is accepted.
func parseTFTPRequest(p []byte) (tftpRequest, error) {
	var r tftpRequest
	if len(p) < 2 {
		return r, errNotRequest
	}
	r.op = binary.BigEndian.Uint16(p)
	if r.op != tftpOpRRQ && r.op != tftpOpWRQ {
		return r, errNotRequest
	}
	if len(p) > tftpMaxRequestBytes {
		return r, fmt.Errorf("request of %d bytes is longer than %d", len(p), tftpMaxRequestBytes)
	}
	body := p[2:]
	if len(body) == 0 || body[len(body)-1] != 0 {
		return r, errors.New("request is not NUL-terminated")
	}
	fields := strings.Split(string(body[:len(body)-1]), "\x00")
	// Drop trailing NUL padding.
	for len(fields) > 2 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	if len(fields) < 2 {
		return r, errors.New("request has no transfer mode")
	}
	r.name = fields[0]
	switch m := strings.ToLower(fields[1]); m {
	case "octet", "netascii":
		r.mode = m
	default:
		return r, fmt.Errorf("transfer mode %q not supported", fields[1])
	}
	opts := fields[2:]
	if len(opts)%2 != 0 {
		return r, fmt.Errorf("option %q has no value", opts[len(opts)-1])
	}
	seen := map[string]bool{}
	for i := 0; i < len(opts); i += 2 {
		name, value := strings.ToLower(opts[i]), opts[i+1]
		if seen[name] {
			continue // first one wins
		}
		seen[name] = true
		switch name {
		case "blksize":
			if n, err := strconv.Atoi(value); err == nil && n >= 8 && n <= tftpMaxBlockSize {
				r.blksize = n
			}
		case "tsize":
			if _, err := strconv.ParseUint(value, 10, 63); err == nil {
				r.tsize = true
			}
		}
	}
	return r, nil
}

// negotiatedBlockSize is the block size the server answers with: the
// client's request capped at max, or 512 when the client asked for none or
// for less than 512 (pin/tftp's floor: the option is then not acknowledged).
func (r tftpRequest) negotiatedBlockSize(max int) int {
	if r.blksize < tftpDefaultBlockSize {
		return tftpDefaultBlockSize
	}
	return min(r.blksize, max)
}

// canonical is the read request handed to pin/tftp: the cleaned name, the
// lower-case mode and only the options the server honours, block size
// already capped.
func (r tftpRequest) canonical(name string, maxBlock int) []byte {
	b := make([]byte, 0, 2+len(name)+len(r.mode)+32)
	b = binary.BigEndian.AppendUint16(b, tftpOpRRQ)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, r.mode...)
	b = append(b, 0)
	if r.blksize >= tftpDefaultBlockSize {
		b = append(b, "blksize\x00"...)
		b = strconv.AppendInt(b, int64(r.negotiatedBlockSize(maxBlock)), 10)
		b = append(b, 0)
	}
	if r.tsize {
		b = append(b, "tsize\x000\x00"...)
	}
	return b
}

// tftpErrorPacket builds an ERROR packet.
func tftpErrorPacket(code uint16, msg string) []byte {
	b := make([]byte, 0, 5+len(msg))
	b = binary.BigEndian.AppendUint16(b, tftpOpERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, msg...)
	return append(b, 0)
}
