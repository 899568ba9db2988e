package pxe

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
)

// The cloud-init NoCloud datasource: per node, under
//
//	/nocloud/NODE/TOKEN/meta-data     instance-id and local-hostname
//	/nocloud/NODE/TOKEN/user-data     the node's user_data template, executed
//	/nocloud/NODE/TOKEN/vendor-data   the node's vendor_data template, executed
//
// TOKEN is the node's check-in token: cloud-init's seedfrom URL
// (ds=nocloud;s=NoCloudURL) carries it, as it has no other way to prove the
// node. A node with a fixed inventory ip must also ask from that address.
// Anything else is refused (403) without saying which part was wrong.

// NoCloud file names.
const (
	NoCloudMetaData   = "meta-data"
	NoCloudUserData   = "user-data"
	NoCloudVendorData = "vendor-data"
)

// NoCloudURL is node's NoCloud seed URL under base (ending in "/", as
// cloud-init appends the file names to it).
func NoCloudURL(base, node, token string) string {
	return strings.TrimRight(base, "/") + "/nocloud/" + node + "/" + token + "/"
}

// NoCloud returns the content of one NoCloud file of node n (no proof is
// checked here: HTTPServer does that).
func (b *Boot) NoCloud(inv *inventory.Inventory, n *inventory.Node, file string) (string, error) {
	img, gen, err := b.Assignment(n)
	if err != nil && !errors.Is(err, image.ErrNotFound) {
		return "", err
	}
	d := inventory.CloudTemplateData{Node: n.Name, Group: n.Group, Image: img, Generation: gen}
	if n.IP.IsValid() {
		d.IP = n.IP.String()
	}
	switch file {
	case NoCloudMetaData:
		// A new generation is a new instance: cloud-init runs its
		// once-per-instance modules again on it.
		id := "netbootui-" + n.Name
		if gen != "" {
			id += "-" + gen
		}
		return "instance-id: " + id + "\nlocal-hostname: " + n.Name + "\n", nil
	case NoCloudUserData:
		return inventory.RenderCloudTemplate(n.UserData, d)
	case NoCloudVendorData:
		return inventory.RenderCloudTemplate(n.VendorData, d)
	}
	return "", errNoSuchFile
}

var errNoSuchFile = errors.New("no such NoCloud file")

func (s *HTTPServer) handleNoCloud(w http.ResponseWriter, r *http.Request) {
	b := s.Boot
	client := remoteAddr(r)
	name, token, file := r.PathValue("node"), r.PathValue("token"), r.PathValue("file")
	inv := b.Inventory()
	n := inv.Node(name)
	if n == nil || !b.Tokens.Verify(name, token) || (n.IP.IsValid() && !addrProves(n, client.Addr())) {
		// Never log the token: the path is written without it.
		ev := bootstate.Event{Proto: "http", Path: "/nocloud/" + name + "/…/" + file, Remote: client.String(),
			Error: "cloud-init datasource refused: no proof of node " + name}
		if n != nil {
			ev.Node = n.Name
		}
		b.deny(ev)
		s.count("nocloud", http.StatusForbidden)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	text, err := b.NoCloud(inv, n, file)
	switch {
	case errors.Is(err, errNoSuchFile):
		s.count("nocloud", http.StatusNotFound)
		http.NotFound(w, r)
		return
	case err != nil:
		b.logger().Warn("cloud-init datasource", "node", n.Name, "file", file, "err", err)
		s.count("nocloud", http.StatusInternalServerError)
		http.Error(w, "cannot render "+file+" for "+n.Name, http.StatusInternalServerError)
		return
	}
	b.emit(bootstate.Event{Node: n.Name, Kind: bootstate.KindInfo, Proto: "http", Path: "/nocloud/" + n.Name + "/…/" + file,
		Remote: client.String(), Message: "cloud-init fetched " + file})
	s.count("nocloud", http.StatusOK)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, text)
}
