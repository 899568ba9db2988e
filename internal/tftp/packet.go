package tftp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   = 1
	opWRQ   = 2
	opDATA  = 3
	opACK   = 4
	opERROR = 5
	opOACK  = 6
)

// Error codes (RFC 1350).
const (
	errUndefined = 0
	errNotFound  = 1
	errAccess    = 2
	errIllegalOp = 4
)

// Request and option limits.
const (
	// maxRequestBytes bounds a request datagram: 512 bytes of name, mode
	// and options plus the opcode, as RFC 1350 implies. Longer ones are
	// refused as malformed.
	maxRequestBytes = 516
	// minBlockSize is the smallest block size the server acknowledges;
	// smaller requests are ignored and the transfer uses RFC 1350's 512.
	minBlockSize = 512
	// MaxBlockSize is the largest block size RFC 2348 allows.
	MaxBlockSize = 65464
	// DefaultBlockSize is the largest block the server sends unless told
	// otherwise: a 1500-byte Ethernet MTU minus IP, UDP and TFTP headers.
	DefaultBlockSize = 1468
	// maxWindowSize is the largest window RFC 7440 allows.
	maxWindowSize = 65535
)

// errNotRequest marks a datagram that is not a read or write request (a
// stray ACK, DATA or ERROR): it is dropped without an answer.
var errNotRequest = errors.New("not a TFTP request")

// request is a parsed RRQ or WRQ.
type request struct {
	op         uint16
	name       string // as sent
	mode       string // "octet" or "netascii"
	blksize    int    // requested block size, 0 when not asked for (or invalid)
	windowsize int    // requested window size (RFC 7440), 0 when not asked for (or invalid)
	tsize      bool   // the client asked for the transfer size
}

// parseRequest parses a datagram received on the server port. It returns
// errNotRequest for other opcodes, and an error saying what is wrong for a
// malformed request. Option names are case-insensitive (RFC 2347); unknown
// options and invalid option values are ignored, as RFC 2347 allows; the
// first of a repeated option wins; trailing NUL padding, which some firmware
// sends, is accepted.
func parseRequest(p []byte) (request, error) {
	var r request
	if len(p) < 2 {
		return r, errNotRequest
	}
	r.op = binary.BigEndian.Uint16(p)
	if r.op != opRRQ && r.op != opWRQ {
		return r, errNotRequest
	}
	if len(p) > maxRequestBytes {
		return r, fmt.Errorf("request of %d bytes is longer than %d", len(p), maxRequestBytes)
	}
	body := p[2:]
	if len(body) == 0 || body[len(body)-1] != 0 {
		return r, errors.New("request is not NUL-terminated")
	}
	fields := strings.Split(string(body[:len(body)-1]), "\x00")
	for len(fields) > 2 && fields[len(fields)-1] == "" { // NUL padding
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
	var seenBlk, seenWin, seenTsize bool
	for i := 0; i < len(opts); i += 2 {
		value := opts[i+1]
		switch strings.ToLower(opts[i]) {
		case "blksize":
			if !seenBlk {
				seenBlk = true
				if n, err := strconv.Atoi(value); err == nil && n >= 8 && n <= MaxBlockSize {
					r.blksize = n
				}
			}
		case "windowsize":
			if !seenWin {
				seenWin = true
				if n, err := strconv.Atoi(value); err == nil && n >= 1 && n <= maxWindowSize {
					r.windowsize = n
				}
			}
		case "tsize":
			if !seenTsize {
				seenTsize = true
				if _, err := strconv.ParseUint(value, 10, 63); err == nil {
					r.tsize = true
				}
			}
		}
	}
	return r, nil
}

// blockSize is the block size the server uses for r: the client's request
// capped at max, or 512 when the client asked for none or for less than
// 512 (the option is then not acknowledged).
func (r request) blockSize(max int) int {
	if r.blksize < minBlockSize {
		return minBlockSize
	}
	return min(r.blksize, max)
}

// windowSize is the window the server uses for r: the client's request
// capped at max, or 1 when it asked for none.
func (r request) windowSize(max int) int {
	if r.windowsize < 1 {
		return 1
	}
	return min(r.windowsize, max)
}

// oack builds the option acknowledgement for r, or nil when no option is
// acknowledged (the transfer then starts with DATA 1). size < 0 means
// unknown: tsize is then not acknowledged; nor is a size of 0, which curl
// takes for an invalid answer.
func (r request) oack(maxBlock, maxWindow int, size int64) []byte {
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 64), opOACK)
	n := len(b)
	if r.blksize >= minBlockSize {
		b = append(b, "blksize\x00"...)
		b = strconv.AppendInt(b, int64(r.blockSize(maxBlock)), 10)
		b = append(b, 0)
	}
	if r.tsize && size > 0 {
		b = append(b, "tsize\x00"...)
		b = strconv.AppendInt(b, size, 10)
		b = append(b, 0)
	}
	if r.windowsize >= 1 {
		b = append(b, "windowsize\x00"...)
		b = strconv.AppendInt(b, int64(r.windowSize(maxWindow)), 10)
		b = append(b, 0)
	}
	if len(b) == n {
		return nil
	}
	return b
}

// errorPacket builds an ERROR packet.
func errorPacket(code uint16, msg string) []byte {
	b := make([]byte, 0, 5+len(msg))
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, msg...)
	return append(b, 0)
}
