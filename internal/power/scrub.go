package power

import "strings"

// Scrub removes password from a text passed through from a protocol
// library, replacing it with "[redacted]". A password too short to be
// replaced safely (under 4 bytes, it may be part of ordinary words) withholds
// the whole text: "PROTO error (details withheld: they contain the
// password)". Every backend passes library texts through it.
func Scrub(text, password, proto string) string {
	if password == "" || !strings.Contains(text, password) {
		return text
	}
	if len(password) < 4 {
		return proto + " error (details withheld: they contain the password)"
	}
	return strings.ReplaceAll(text, password, redacted)
}
