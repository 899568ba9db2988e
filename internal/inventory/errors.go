package inventory

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Error is one problem in an inventory or secrets file, at a position.
type Error struct {
	Pos Pos
	Msg string
}

// Error renders FILE:LINE:COL: MSG.
func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ErrorList is every problem found in one file, in file order. The first one is
// the one to fix first. Parse and Load return their errors as an ErrorList.
type ErrorList []*Error

// Error prints one error per line.
func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// maxErrors bounds the length of an ErrorList.
const maxErrors = 100

// sortErrors orders errors by position, keeping the discovery order for equal
// positions, and caps the list.
func sortErrors(l ErrorList) ErrorList {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	if len(l) > maxErrors {
		rest := len(l) - maxErrors
		l = append(l[:maxErrors:maxErrors], &Error{Pos: l[maxErrors].Pos, Msg: fmt.Sprintf("too many errors (%d more not shown)", rest)})
	}
	return l
}

// ErrConflict is wrapped by the error Update returns when the file changed
// since the revision the caller based its edit on.
var ErrConflict = errors.New("inventory changed since it was read")

// ConflictError says which revisions collided. It wraps ErrConflict.
type ConflictError struct {
	Path     string
	Base     string // the revision the caller read
	Current  string // the revision on disk now
	basename string
}

// Error says which file changed, between which revisions, and what to do.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s changed since revision %s (now %s): reload and retry", e.basename, short(e.Base), short(e.Current))
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
