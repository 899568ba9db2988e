// Package nbd is the nbd root transport: the generation's squashfs, served
// as a read-only network block device by the site's NBD server (Debian's
// nbd-server), is attached by the node's initramfs with nbd-client and
// mounted read-only under a tmpfs overlay. The node reads only the blocks
// it touches; nothing is downloaded whole into RAM.
//
// It writes root=nbd:SERVER:PORT/EXPORT (dracut's syntax), EXPORT being
// IMAGE.GENERATION; ServerConfig writes the nbd-server configuration that
// serves each generation's squashfs from the image store as it is (no copy:
// generations are immutable).
package nbd

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/netbootui/netbootui/internal/roottransport"
)

// Name and Scheme of the transport.
const (
	Name   = "nbd"
	Scheme = "nbd"
)

// Transport is the nbd transport. Its zero value is ready to use.
type Transport struct{}

var _ roottransport.Transport = Transport{}

// Name implements roottransport.Transport.
func (Transport) Name() string { return Name }

// Scheme implements roottransport.Transport.
func (Transport) Scheme() string { return Scheme }

// ExportName is the NBD export of a generation.
func ExportName(image, gen string) string { return image + "." + gen }

var exportRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// KernelArgs implements roottransport.Transport:
// root=nbd:SERVER:PORT/IMAGE.GEN.
func (Transport) KernelArgs(b roottransport.Boot) ([]string, error) {
	if b.NBD.Server == "" {
		return nil, errors.New("nbd: the inventory names no NBD server (settings.nbd)")
	}
	if b.Image == "" || b.Generation == "" {
		return nil, errors.New("nbd: no generation to attach")
	}
	if b.Dracut {
		return nil, errors.New("nbd: a dracut initramfs would mount the device as the root itself, with no overlay: boot nbd images with the built-in live init (drop the image's initramfs: dracut)")
	}
	v := b.NBD.Server + ":" + strconv.Itoa(b.NBD.PortOrDefault()) + "/" + ExportName(b.Image, b.Generation)
	if _, err := (Transport{}).Locate(v); err != nil {
		return nil, err
	}
	return []string{roottransport.KeyRoot + "=" + Scheme + ":" + v}, nil
}

// Locate implements roottransport.Transport: SERVER:PORT/EXPORT, SERVER an
// IPv4 address, PORT a number, EXPORT letters, digits, '.', '_', '-'.
func (Transport) Locate(value string) (roottransport.Root, error) {
	server, rest, ok := strings.Cut(value, ":")
	if !ok {
		return roottransport.Root{}, errors.New("nbd: want SERVER:PORT/EXPORT")
	}
	if a, err := netip.ParseAddr(server); err != nil || !a.Is4() {
		return roottransport.Root{}, fmt.Errorf("nbd: server %q: want an IPv4 address", server)
	}
	port, export, ok := strings.Cut(rest, "/")
	if n, err := strconv.Atoi(port); !ok || err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return roottransport.Root{}, fmt.Errorf("nbd: want SERVER:PORT/EXPORT with a port 1-65535, got %q", value)
	}
	if !exportRE.MatchString(export) {
		return roottransport.Root{}, fmt.Errorf("nbd: export %q: use letters, digits, '.', '_' and '-'", export)
	}
	return roottransport.Root{Mount: value}, nil
}

// Export is one generation's squashfs served by the NBD server.
type Export struct {
	Name string // ExportName
	File string // the squashfs in the image store
}

// ServerConfig returns an nbd-server configuration listening on
// listen:port and serving exports read-only.
func ServerConfig(listen string, port int, exports []Export) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# nbd-server configuration written by netbootui\n[generic]\n\tlistenaddr = %s\n\tport = %d\n\tallowlist = false\n", listen, port)
	for _, e := range exports {
		fmt.Fprintf(&b, "[%s]\n\texportname = %s\n\treadonly = true\n", e.Name, e.File)
	}
	return b.String()
}
