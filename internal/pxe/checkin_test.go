package pxe

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func checkinRequest(body string) *http.Request {
	r := httptest.NewRequest("POST", "/checkin", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestParseCheckinProbe(t *testing.T) {
	base := "node=n1&token=t&generation=g1&boot_id=b1&overlay_bytes=4096"
	tests := []struct {
		body    string
		probe   string
		message string
		err     string
	}{
		{base, "", "boot b1", ""},
		{base + "&probe=present", "present", "boot b1 probe=present", ""},
		{base + "&probe=absent", "absent", "boot b1 probe=absent", ""},
		{base + "&probe=maybe", "", "", `bad probe "maybe"`},
		{base + "&probe=" + url.QueryEscape("present\n"), "", "", "bad probe"},
		{"token=t", "", "", "needs node and token"},
		{"node=n1&token=t&overlay_bytes=-1", "", "", "bad overlay_bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.body, func(t *testing.T) {
			c, err := parseCheckin(checkinRequest(tc.body))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Probe != tc.probe || checkinMessage(c) != tc.message {
				t.Errorf("probe %q message %q, want %q %q", c.Probe, checkinMessage(c), tc.probe, tc.message)
			}
		})
	}
}

// FuzzParseCheckin: any body is parsed or refused, never panics, and what
// is accepted keeps its bounds.
func FuzzParseCheckin(f *testing.F) {
	f.Add("node=n1&token=t&generation=g&uptime=12.5&overlay_bytes=10&boot_id=x&probe=absent")
	f.Add("node=%zz")
	f.Add("probe=present&probe=absent&node=a&token=b")
	f.Fuzz(func(t *testing.T, body string) {
		c, err := parseCheckin(checkinRequest(body))
		if err != nil {
			return
		}
		if c.Node == "" || c.Token == "" || c.OverlayBytes < 0 || c.Uptime < 0 || len(c.BootID) > 64 {
			t.Fatalf("accepted %+v", c)
		}
		if c.Probe != "" && c.Probe != "present" && c.Probe != "absent" {
			t.Fatalf("probe %q accepted", c.Probe)
		}
	})
}
