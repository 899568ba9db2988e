package pxe

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/image"
)

func checkinRequest(body string) *http.Request {
	r := httptest.NewRequest("POST", "/checkin", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func TestParseCheckinProbe(t *testing.T) {
	base := "node=n1&token=t&generation=g1&boot_id=b1&overlay_bytes=4096&seq=1"
	tests := []struct {
		body    string
		probe   string
		message string
		err     string
	}{
		{base, "", "boot b1", ""},
		{base + "&probe=present", "present", "boot b1 probe=present", ""},
		{base + "&probe=absent", "absent", "boot b1 probe=absent", ""},
		{base + "&probe=present,absent", "present,absent", "boot b1 probe=present,absent", ""},
		{base + "&probe=present,", "", "", "bad probe"},
		{base + "&probe=" + strings.Repeat("absent,", 16) + "absent", "", "", "at most 16"},
		{base + "&probe=maybe", "", "", `bad probe "maybe"`},
		{base + "&probe=" + url.QueryEscape("present\n"), "", "", "bad probe"},
		{base + "&probe=present&persist=" + url.QueryEscape("disk NBUI-PERSIST on /dev/vda"), "present",
			"boot b1 probe=present; persist: disk NBUI-PERSIST on /dev/vda", ""},
		{base + "&persist=" + url.QueryEscape("none: no partition labelled X"), "", "boot b1; persist: none: no partition labelled X", ""},
		{base + "&persist=" + url.QueryEscape("disk\nX"), "", "", "bad persist"},
		{base + "&persist=" + strings.Repeat("x", 513), "", "", "bad persist"},
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

// TestParseCheckinRefuses: non-finite and negative numbers, generations that
// are no generation id, and check-ins without their boot id and counter
// are refused (400) before anything else looks at them.
func TestParseCheckinRefuses(t *testing.T) {
	base := "node=n1&token=t&boot_id=0b6e7c2a-1f3d-4c55-9a61-2f0e8d1c3b4a&seq=3"
	for _, tc := range []struct{ extra, err string }{
		{"&uptime=NaN", "bad uptime"},
		{"&uptime=nan", "bad uptime"},
		{"&uptime=-NaN", "bad uptime"},
		{"&uptime=Inf", "bad uptime"},
		{"&uptime=%2BInf", "bad uptime"},
		{"&uptime=-Inf", "bad uptime"},
		{"&uptime=-1", "bad uptime"},
		{"&uptime=1e10", "bad uptime"},
		{"&uptime=12.34", ""},
		{"&overlay_bytes=-5", "bad overlay_bytes"},
		{"&overlay_bytes=1.5", "bad overlay_bytes"},
		{"&overlay_bytes=NaN", "bad overlay_bytes"},
		{"&overlay_bytes=99999999999999999999", "bad overlay_bytes"},
		{"&generation=DEADBEEF", "bad generation"},
		{"&generation=../x", "bad generation"},
		{"&generation=g1", ""},
		{"&seq=0", "bad seq"},
		{"&seq=-1", "bad seq"},
		{"&seq=NaN", "bad seq"},
		{"&seq=9223372036854775808", "bad seq"},
		{"&seq=", "bad seq"},
		{"&boot_id=", "needs a boot_id"},
		{"&boot_id=a%20b", "needs a boot_id"},
	} {
		t.Run(tc.extra, func(t *testing.T) {
			// The later value of a repeated key is ignored by Form.Get: put
			// the case first.
			body := strings.TrimPrefix(tc.extra, "&") + "&" + base
			_, err := parseCheckin(checkinRequest(body))
			if tc.err == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

// FuzzParseCheckin: any body is parsed or refused, never panics, and what
// is accepted keeps its bounds.
func FuzzParseCheckin(f *testing.F) {
	f.Add("node=n1&token=t&generation=g&uptime=12.5&overlay_bytes=10&boot_id=x&seq=1&probe=absent")
	f.Add("node=n1&token=t&uptime=NaN&boot_id=x&seq=2")
	f.Add("node=%zz")
	f.Add("probe=present&probe=absent&node=a&token=b")
	f.Add("node=n1&token=t&boot_id=x&seq=3&persist=disk+NBUI-PERSIST+on+%2Fdev%2Fvda")
	f.Fuzz(func(t *testing.T, body string) {
		c, err := parseCheckin(checkinRequest(body))
		if err != nil {
			return
		}
		if c.Node == "" || c.Token == "" || c.OverlayBytes < 0 || c.Uptime < 0 || c.Uptime > 1e9*time.Second ||
			!validBootID(c.BootID) || c.Seq == 0 || (c.Generation != "" && !image.ValidGenerationID(c.Generation)) {
			t.Fatalf("accepted %+v", c)
		}
		if !isOneLine(c.Persist, 512) || !isOneLine(c.Failed, 512) {
			t.Fatalf("persist %q or failed %q accepted", c.Persist, c.Failed)
		}
		if c.Probe != "" && c.Probe != "present" && c.Probe != "absent" {
			t.Fatalf("probe %q accepted", c.Probe)
		}
	})
}
