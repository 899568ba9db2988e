package tftp

import "io"

// netascii converts a source to netascii (RFC 764, as RFC 1350 asks): LF
// becomes CR LF and a lone CR becomes CR NUL.
type netascii struct {
	r       io.Reader
	pending byte // the second byte of a pair that did not fit; 0: none
	has     bool
	in      []byte
}

func (n *netascii) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	out := 0
	if n.has {
		p[0] = n.pending
		n.has = false
		out = 1
	}
	if cap(n.in) < len(p) {
		n.in = make([]byte, len(p))
	}
	// Read at most half of what is left: every byte may become two.
	room := (len(p) - out) / 2
	if room == 0 {
		if out > 0 {
			return out, nil
		}
		room = 1
	}
	k, err := n.r.Read(n.in[:room])
	for _, c := range n.in[:k] {
		var a, b byte
		switch c {
		case '\n':
			a, b = '\r', '\n'
		case '\r':
			a, b = '\r', 0
		default:
			p[out] = c
			out++
			continue
		}
		p[out] = a
		out++
		if out < len(p) {
			p[out] = b
			out++
		} else {
			n.pending, n.has = b, true
		}
	}
	if err == io.EOF && n.has {
		err = nil // deliver the pending byte first
	}
	return out, err
}
