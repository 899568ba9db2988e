package pxe

import (
	"net"
	"strconv"
	"strings"
)

// The entries below are not per node; their inputs may come straight from a
// request (a MAC in a URL path), so they are made safe rather than refused.

// UnknownIPXE returns the iPXE script served to a MAC the inventory does not
// know: it prints the MAC, says to add it to the inventory, waits
// UnknownSeconds and chains retryURL, for ever, so that the machine boots as
// soon as an admin adds it. A mac that does not parse is shown stripped to
// hex digits and separators; unsafe bytes in retryURL are percent-encoded
// (retryURL may use iPXE settings such as ${mac}).
func UnknownIPXE(mac, retryURL string) string {
	m := displayMAC(mac)
	u := safeURL(retryURL)
	secs := strconv.Itoa(UnknownSeconds)
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	b.WriteString("# netbootui: this machine is not in the inventory\n")
	b.WriteString(":retry\n")
	b.WriteString("echo netbootui: unknown machine, MAC " + m + "\n")
	b.WriteString("echo netbootui: add a node with this MAC to the inventory (nodes.yaml) to boot it\n")
	b.WriteString("echo netbootui: asking again in " + secs + " s\n")
	b.WriteString("sleep " + secs + "\n")
	b.WriteString("chain --replace --autofree " + u + " || goto retry\n")
	b.WriteString("goto retry\n")
	return b.String()
}

// ChainIPXE returns the small script served to iPXE fetched over TFTP (or
// embedded in a ROM): it chains baseURL/boot/${mac}.ipxe, where iPXE itself
// expands ${mac} to the booting NIC's MAC (aa:bb:cc:dd:ee:ff), and retries
// every RetrySeconds when that fails. Unsafe bytes in baseURL are
// percent-encoded.
func ChainIPXE(baseURL string) string {
	u := safeURL(strings.TrimRight(baseURL, "/")) + "/boot/${mac}.ipxe"
	secs := strconv.Itoa(RetrySeconds)
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	b.WriteString(":retry\n")
	b.WriteString("chain --replace --autofree " + u + " || goto failed\n")
	b.WriteString(":failed\n")
	b.WriteString("echo netbootui: fetching the boot script failed (error ${errno}), retrying in " + secs + " s\n")
	b.WriteString("sleep " + secs + "\n")
	b.WriteString("goto retry\n")
	return b.String()
}

// DefaultPxelinux returns pxelinux.cfg/default, what pxelinux reads when no
// config names the machine (an unknown node): no menu, it prints msg (a
// default message when msg is ""; control characters become spaces) and
// boots the local disk with LOCALBOOT 0.
func DefaultPxelinux(msg string) string {
	if msg == "" {
		msg = "netbootui: this machine is not in the inventory; add its MAC to nodes.yaml to boot it over the network"
	}
	var b strings.Builder
	b.WriteString("# netbootui: default config, for machines not in the inventory\n")
	b.WriteString("DEFAULT local\n")
	b.WriteString("PROMPT 0\n")
	b.WriteString("TIMEOUT 10\n")
	for _, line := range strings.Split(msg, "\n") {
		b.WriteString("SAY " + oneLine(line) + "\n")
	}
	b.WriteString("SAY netbootui: booting from the local disk\n")
	b.WriteString("LABEL local\n")
	b.WriteString("  LOCALBOOT 0\n")
	return b.String()
}

// displayMAC renders a MAC from a request for humans: canonical when it
// parses, else only its hex digits and separators (at most 64), else
// "(none)".
func displayMAC(mac string) string {
	if hw, err := net.ParseMAC(mac); err == nil {
		return hw.String()
	}
	var b strings.Builder
	for _, c := range mac {
		if b.Len() >= 64 {
			break
		}
		if strings.ContainsRune("0123456789abcdefABCDEF:-.", c) {
			b.WriteRune(c)
		}
	}
	if b.Len() == 0 {
		return "(none)"
	}
	return b.String()
}

// safeURL percent-encodes the bytes of u that could end or extend an iPXE
// word or command: spaces and controls, '"', '#' at the start and a
// trailing backslash; with no space left, no "||", "&&" or ";" word can
// form. Non-ASCII bytes are encoded too. '$' is kept: the daemon's own URLs
// use iPXE's ${mac}, and iPXE expands settings inside one word after
// splitting the line, so an expansion can change the URL but never add a
// command.
func safeURL(u string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(u))
	for i := 0; i < len(u); i++ {
		c := u[i]
		bad := c <= 0x20 || c >= 0x7f || c == '"' ||
			(c == '#' && i == 0) || (c == '\\' && i == len(u)-1)
		if bad {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// oneLine replaces control characters with spaces and trims the result.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if isControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
