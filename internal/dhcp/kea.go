package dhcp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Kea class names the generated fragment defines.
const (
	keaIPXE     = "nb-ipxe"
	keaPxelinux = "nb-pxelinux"
)

type keaOption struct {
	Name       string `json:"name"`
	Data       string `json:"data"`
	AlwaysSend bool   `json:"always-send"`
}

type keaClass struct {
	Name         string      `json:"name"`
	Test         string      `json:"test,omitempty"`
	NextServer   string      `json:"next-server,omitempty"`
	BootFileName string      `json:"boot-file-name,omitempty"`
	OptionData   []keaOption `json:"option-data,omitempty"`
}

type keaReservation struct {
	HWAddress     string   `json:"hw-address"`
	IPAddress     string   `json:"ip-address,omitempty"`
	Hostname      string   `json:"hostname"`
	ClientClasses []string `json:"client-classes,omitempty"`
}

type keaFragment struct {
	ClientClasses        []keaClass       `json:"client-classes"`
	ReservationsGlobal   bool             `json:"reservations-global"`
	ReservationsInSubnet bool             `json:"reservations-in-subnet"`
	Reservations         []keaReservation `json:"reservations"`
}

// writeKea writes the members of a Dhcp4 object: classes (iPXE, then one
// per architecture rule; the pxelinux class is given by the node's
// reservation), and global reservations. Tests that read a reservation's
// class also read KNOWN, which makes Kea evaluate them after the host
// lookup.
func writeKea(w io.Writer, p *plan) error {
	known := ""
	if p.c.KnownOnly {
		known = " and member('KNOWN')"
	}
	frag := keaFragment{ReservationsGlobal: true, ReservationsInSubnet: true, Reservations: []keaReservation{}}
	if p.pxelinux {
		frag.ClientClasses = append(frag.ClientClasses, keaClass{Name: keaPxelinux})
	}
	pxeArches := p.pxelinuxArches()
	for _, r := range p.rules {
		c := keaClass{BootFileName: r.boot.File}
		switch {
		case r.ipxe:
			c.Name = keaIPXE
			c.Test = "(option[77].hex == 'iPXE' or option[175].exists)" + known
		default:
			c.Name = fmt.Sprintf("nb-arch-%d", uint16(r.arch))
			c.Test = fmt.Sprintf("not member('%s') and substring(option[93].hex,0,2) == 0x%04x", keaIPXE, uint16(r.arch))
			switch {
			case r.pxelinux:
				c.Name += "-pxelinux"
				c.Test += fmt.Sprintf(" and member('KNOWN') and member('%s')", keaPxelinux)
			case pxeArches[r.arch]:
				c.Test += fmt.Sprintf(" and not (member('KNOWN') and member('%s'))", keaPxelinux)
			}
			c.Test += known
		}
		if !r.boot.HTTP {
			c.NextServer = p.c.NextServer.String()
		}
		if r.boot.HTTPClient {
			c.OptionData = []keaOption{{Name: "vendor-class-identifier", Data: "HTTPClient", AlwaysSend: true}}
		}
		frag.ClientClasses = append(frag.ClientClasses, c)
	}
	for _, h := range p.hosts {
		r := keaReservation{HWAddress: h.mac, Hostname: h.name}
		if h.ip.IsValid() {
			r.IPAddress = h.ip.String()
		}
		if h.pxelinux {
			r.ClientClasses = []string{keaPxelinux}
		}
		frag.Reservations = append(frag.Reservations, r)
	}
	var js bytes.Buffer
	enc := json.NewEncoder(&js)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(frag); err != nil {
		return err
	}
	// Members only: drop the object's own braces.
	body := strings.TrimSpace(js.String())
	body = strings.TrimSuffix(strings.TrimPrefix(body, "{\n"), "\n}")
	var b strings.Builder
	b.WriteString(p.header("#"))
	b.WriteString("# Members of the Dhcp4 object: include inside it, after a comma, with\n#   <?include \"/etc/kea/netbootui-dhcp4.json\"?>\n")
	b.WriteString(body + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}
