package redfishsim_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
)

// client talks to s over HTTPS trusting its CA, with Basic credentials.
type client struct {
	t  *testing.T
	s  *redfishsim.Sim
	hc *http.Client
}

func newClient(t *testing.T, s *redfishsim.Sim) *client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CA().PEM())
	return &client{t: t, s: s, hc: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

// do sends a request with Basic root:password (pw "" sends none) and
// returns the status, headers and decoded body.
func (c *client) do(method, path, pw string, body any) (int, http.Header, map[string]any) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "https://"+c.s.Addr()+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if pw != "" {
		req.SetBasicAuth("root", pw)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, resp.Header, m
}

// TestSimBehaviour: the stateful parts and vendor shapes a client sees.
func TestSimBehaviour(t *testing.T) {
	s, err := redfishsim.Start(redfishsim.Options{Vendor: redfishsim.Supermicro, Password: pw, AsyncReset: true, TaskTime: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newClient(t, s)
	sys := s.SystemPath(0)

	if code, _, _ := c.do("GET", sys, "", nil); code != 401 {
		t.Fatalf("no credentials: %d", code)
	}
	if code, _, _ := c.do("GET", sys, "wrong", nil); code != 401 {
		t.Fatalf("wrong password: %d", code)
	}
	if code, h, _ := c.do("POST", "/redfish/v1/SessionService/Sessions", "", map[string]string{"UserName": "root", "Password": "wrong"}); code != 401 || h.Get("X-Auth-Token") != "" {
		t.Fatalf("login with a wrong password: %d", code)
	}
	// Supermicro keeps the Reset types in an ActionInfo resource.
	_, _, doc := c.do("GET", sys, pw, nil)
	reset := doc["Actions"].(map[string]any)["#ComputerSystem.Reset"].(map[string]any)
	if reset["@Redfish.ActionInfo"] != sys+"/ResetActionInfo" || reset["ResetType@Redfish.AllowableValues"] != nil {
		t.Fatalf("reset action %v", reset)
	}
	if code, _, _ := c.do("POST", sys+"/Actions/ComputerSystem.Reset", pw, map[string]string{"ResetType": "PowerCycle"}); code != 400 {
		t.Fatalf("a Reset type not offered: %d", code)
	}
	if code, _, _ := c.do("PATCH", sys, pw, map[string]any{"AssetTag": "x"}); code != 400 {
		t.Fatalf("PATCH of another property: %d", code)
	}
	if code, _, _ := c.do("PATCH", sys, pw, map[string]any{"Boot": map[string]string{"BootSourceOverrideTarget": "Diags"}}); code != 400 {
		t.Fatalf("a boot target not offered: %d", code)
	}
	// The override is kept until the next boot, which uses it up.
	if code, _, _ := c.do("PATCH", sys, pw, map[string]any{"Boot": map[string]string{"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe", "BootSourceOverrideMode": "Legacy"}}); code != 202 { // AsyncReset: a task
		t.Fatalf("boot override: %d", code)
	}
	if en, tg, mode, _ := s.Boot(0); en != "Once" || tg != "Pxe" || mode != "Legacy" {
		t.Fatalf("boot %s %s %s", en, tg, mode)
	}
	// An asynchronous Reset: 202 and a task monitor, 202 while it runs.
	code, h, _ := c.do("POST", sys+"/Actions/ComputerSystem.Reset", pw, map[string]string{"ResetType": "On"})
	mon := h.Get("Location")
	if code != 202 || !strings.HasPrefix(mon, "/redfish/v1/TaskService/TaskMonitors/") || h.Get("Retry-After") == "" {
		t.Fatalf("async reset: %d %v", code, h)
	}
	if code, _, _ := c.do("GET", mon, pw, nil); code != 202 {
		t.Fatalf("running task monitor: %d", code)
	}
	time.Sleep(300 * time.Millisecond)
	if code, _, task := c.do("GET", mon, pw, nil); code != 200 || task["TaskState"] != "Completed" {
		t.Fatalf("finished task monitor: %d %v", code, task)
	}
	if !s.Power(0) {
		t.Fatal("not on after On")
	}
	if en, tg, _, _ := s.Boot(0); en != "Disabled" || tg != "None" {
		t.Fatalf("the override outlived the boot: %s %s", en, tg)
	}
	// Sessions: a token works until it is deleted or the BMC forgets it.
	code, h, _ = c.do("POST", "/redfish/v1/SessionService/Sessions", "", map[string]string{"UserName": "root", "Password": pw})
	if code != 201 || h.Get("X-Auth-Token") == "" || s.Sessions() != 1 {
		t.Fatalf("login: %d %v", code, h)
	}
	tokenGet := func(tok string) int {
		req, _ := http.NewRequest("GET", "https://"+s.Addr()+sys, nil)
		req.Header.Set("X-Auth-Token", tok)
		resp, err := c.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := tokenGet(h.Get("X-Auth-Token")); got != 200 {
		t.Fatalf("with the token: %d", got)
	}
	s.ExpireSessions()
	if got := tokenGet(h.Get("X-Auth-Token")); got != 401 {
		t.Fatalf("with a forgotten token: %d", got)
	}
}

// TestVendorShapes: ids and quirks of each variant.
func TestVendorShapes(t *testing.T) {
	for _, tc := range []struct {
		v        redfishsim.Vendor
		path, id string
		maker    string
		oem      string
	}{
		{redfishsim.Dell, "/redfish/v1/Systems/System.Embedded.1", "/redfish/v1/Systems/System.Embedded.1", "Dell Inc.", "Dell"},
		{redfishsim.HPE, "/redfish/v1/Systems/1", "/redfish/v1/Systems/1/", "HPE", "Hpe"},
		{redfishsim.Lenovo, "/redfish/v1/Systems/1", "/redfish/v1/Systems/1", "Lenovo", "Lenovo"},
		{redfishsim.Supermicro, "/redfish/v1/Systems/1", "/redfish/v1/Systems/1", "Supermicro", "Supermicro"},
	} {
		t.Run(string(tc.v), func(t *testing.T) {
			s, err := redfishsim.Start(redfishsim.Options{Vendor: tc.v, Password: pw})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c := newClient(t, s)
			if s.SystemPath(0) != tc.path {
				t.Fatalf("path %s", s.SystemPath(0))
			}
			_, _, doc := c.do("GET", tc.path+"/", pw, nil) // a trailing slash is the same resource
			if doc["@odata.id"] != tc.id || doc["Manufacturer"] != tc.maker || doc["Oem"].(map[string]any)[tc.oem] == nil {
				t.Fatalf("system %v", doc)
			}
		})
	}
	if _, err := redfishsim.Start(redfishsim.Options{Vendor: "acme"}); err == nil {
		t.Fatal("an unknown vendor was accepted")
	}
}

// TestFaultsInjected: 503 with Retry-After and the black hole.
func TestFaultsInjected(t *testing.T) {
	s, err := redfishsim.Start(redfishsim.Options{Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newClient(t, s)
	s.SetFaults(redfishsim.Faults{Unavailable: true, RetryAfter: 30})
	if code, h, _ := c.do("GET", "/redfish/v1/", "", nil); code != 503 || h.Get("Retry-After") != "30" {
		t.Fatalf("unavailable: %d %v", code, h)
	}
	s.SetFaults(redfishsim.Faults{BlackHole: true})
	c.hc.Timeout = 300 * time.Millisecond
	req, _ := http.NewRequestWithContext(context.Background(), "GET", "https://"+s.Addr()+"/redfish/v1/", nil)
	start := time.Now()
	_, err = c.hc.Do(req)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() || time.Since(start) > 2*time.Second {
		t.Fatalf("black hole: %v after %s", err, time.Since(start))
	}
	s.SetFaults(redfishsim.Faults{})
	c.hc.Timeout = 5 * time.Second
	if code, _, _ := c.do("GET", "/redfish/v1/", "", nil); code != 200 {
		t.Fatalf("after the faults: %d", code)
	}
}

// recMachine is a Machine that records the network boots it was armed for
// (the BMC calls it from its handlers).
type recMachine struct {
	mu    sync.Mutex
	on    bool
	armed []bool // efi of each SetNextBootPXE
}

func (m *recMachine) PowerState() bool { m.mu.Lock(); defer m.mu.Unlock(); return m.on }
func (m *recMachine) SetPower(on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.on = on
	return nil
}
func (m *recMachine) PowerCycle() error { return m.SetPower(true) }
func (m *recMachine) Reset() error      { return m.SetPower(true) }
func (m *recMachine) SetNextBootPXE(efi bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.armed = append(m.armed, efi)
	return nil
}
func (m *recMachine) NextBootPXE() (pending, efi bool) {
	a := m.boots()
	return len(a) > 0, len(a) > 0 && a[len(a)-1]
}
func (m *recMachine) boots() []bool { m.mu.Lock(); defer m.mu.Unlock(); return slices.Clone(m.armed) }

// TestMachineFollowsOverride: a Pxe override arms the machine's network
// boot (EFI by the mode), a UefiHttp one too (always EFI), a disabled one
// does not.
func TestMachineFollowsOverride(t *testing.T) {
	m := &recMachine{}
	s, err := redfishsim.Start(redfishsim.Options{Vendor: redfishsim.Dell, Password: pw, Machines: []redfishsim.Machine{m}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := newClient(t, s)
	for _, boot := range []map[string]string{
		{"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe", "BootSourceOverrideMode": "Legacy"},
		{"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "UefiHttp", "BootSourceOverrideMode": "UEFI", "HttpBootUri": "http://10.0.2.2/loaders/ipxe.efi"},
		{"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "None"},
	} {
		if code, _, _ := c.do("PATCH", s.SystemPath(0), pw, map[string]any{"Boot": boot}); code/100 != 2 {
			t.Fatalf("PATCH %v: %d", boot, code)
		}
	}
	if a := m.boots(); len(a) != 2 || a[0] || !a[1] {
		t.Fatalf("armed %v, want [false true]", a)
	}
}
