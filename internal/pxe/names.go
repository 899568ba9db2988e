package pxe

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrNotFound says that a requested file does not exist. Sources wrap it
// (fmt.Errorf("%w: ...", ErrNotFound)) and servers map it to "file not found"
// (TFTP error code 1, HTTP 404).
var ErrNotFound = errors.New("file not found")

// ErrAccessDenied says that a request was refused: a hostile or malformed
// name, a symlink leading out of the served directory, a file that is not a
// regular file, a write request. Servers map it to "access violation" (TFTP
// error code 2, HTTP 403). A *NameError from CleanName matches it with
// errors.Is.
var ErrAccessDenied = errors.New("access violation")

// MaxNameLen is the longest name, in bytes, that CleanName accepts.
const MaxNameLen = 255

// NameError is the error CleanName returns: the refused name (quoted) and why.
type NameError struct {
	Name   string // the name as received
	Reason string // why it was refused, e.g. `".." element`
}

// Error implements error.
func (e *NameError) Error() string {
	return fmt.Sprintf("name %q refused: %s", e.Name, e.Reason)
}

// Is makes errors.Is(err, ErrAccessDenied) true for a *NameError.
func (e *NameError) Is(target error) bool { return target == ErrAccessDenied }

// CleanName is the one gate every file name a client sends (TFTP or HTTP)
// passes before anything looks it up. It returns a clean, relative,
// slash-separated path, or a *NameError that says why the name was refused.
//
// Leading slashes are stripped (pxelinux and others send "/pxelinux.0"), so
// "/etc/passwd" means "etc/passwd" below the served directory. "." elements
// and repeated slashes are dropped, as is a trailing slash. Refused are: an
// empty name (also after cleaning), names longer than MaxNameLen bytes,
// invalid UTF-8, control characters (C0, DEL, C1), backslashes, '%' anywhere
// (TFTP clients do not escape names, so a percent-escape is hostile; HTTP
// paths arrive already decoded), a Windows drive prefix ("C:"), any ".."
// element (even one that would cancel out), elements starting with '.'
// (hidden files, and the temp files of in-progress atomic writes), ASCII
// space, and any non-ASCII character that is not a letter, digit or mark
// (Unicode look-alikes of '.' and '/', bidi overrides, zero-width and other
// format characters, non-ASCII spaces).
func CleanName(name string) (string, error) {
	bad := func(reason string) (string, error) {
		return "", &NameError{Name: name, Reason: reason}
	}
	switch {
	case name == "":
		return bad("empty name")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxNameLen))
	case !utf8.ValidString(name):
		return bad("invalid UTF-8")
	}
	for i, r := range name {
		switch {
		case r == 0:
			return bad(fmt.Sprintf("NUL byte at offset %d", i))
		case r < 0x80 && (r < 0x20 || r == 0x7f):
			return bad(fmt.Sprintf("control character %U at offset %d", r, i))
		case r == '\\':
			return bad(fmt.Sprintf("backslash at offset %d", i))
		case r == '%':
			return bad(fmt.Sprintf("'%%' at offset %d (names are not escaped)", i))
		case r == ' ':
			return bad(fmt.Sprintf("space at offset %d", i))
		case r >= 0x80 && !(unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)):
			return bad(fmt.Sprintf("character %U at offset %d is not a letter, digit or mark", r, i))
		}
	}
	rest := strings.TrimLeft(name, "/")
	var b strings.Builder
	b.Grow(len(rest))
	for elem := range strings.SplitSeq(rest, "/") {
		switch {
		case elem == "" || elem == ".":
			continue
		case elem == "..":
			return bad(`".." element`)
		case elem[0] == '.':
			return bad(fmt.Sprintf("hidden element %q", elem))
		}
		if b.Len() > 0 {
			b.WriteByte('/')
		}
		b.WriteString(elem)
	}
	out := b.String()
	if out == "" {
		return bad("no file name left after cleaning")
	}
	if len(out) >= 2 && out[1] == ':' && isASCIILetter(out[0]) {
		return bad("drive-letter prefix")
	}
	return out, nil
}

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
