// Package redfishsim is a simulated Redfish BMC for tests, the demo and the
// bench: an HTTPS server on loopback with sessions (X-Auth-Token, and Basic
// authentication), ComputerSystems with the Reset action and the one-time
// boot override, EthernetInterfaces, and task monitors, in the resource
// shapes of four vendor families (Vendor), with faults to inject (503 with
// Retry-After, tasks that never finish, a black hole, expired sessions). A
// system's power can drive a machine (Machine: a simulated node, a QEMU
// node), as ipmi_sim's chassis control does in the IPMI lab.
package redfishsim

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netbootui/netbootui/internal/power/powertest"
)

// Machine is what a simulated system powers: *simnode.Node has it (the
// interface is the powertest backend's). PowerCycle and Reset leave the
// machine on; SetNextBootPXE arms a one-time PXE boot.
type Machine = powertest.Machine

// Options describe a simulated BMC. Zero values take the defaults.
type Options struct {
	// Addr to listen on ("127.0.0.1:0").
	Addr string
	// Vendor picks the resource shapes (Dell when empty).
	Vendor Vendor
	// User and Password of the BMC's one account ("root" / "calvin").
	User, Password string
	// CA signs the server certificate (a new CA when nil; see Sim.CA).
	CA *CA
	// Systems is how many ComputerSystems the BMC has (1 when 0; a chassis
	// manager with several blades has more). Their ids follow the vendor's
	// first ("1", "2", ... or "System.Embedded.1", ...).
	Systems int
	// Machines are the machines the systems power, in order; a system
	// without one keeps its power state by itself (starting off).
	Machines []Machine
	// MACs are the first system's NIC MACs (two made up from the port when
	// empty).
	MACs []string
	// Serial is the first system's serial number (made up when empty).
	Serial string
	// AsyncReset answers Reset and the boot override PATCH with 202 and a
	// task monitor that completes after TaskTime (500 ms when 0), as BMCs
	// that queue jobs do (the change itself is made at once).
	AsyncReset bool
	TaskTime   time.Duration
}

// Faults are failures to inject; Sim.SetFaults changes them at any time.
type Faults struct {
	// Unavailable answers every request 503 with Retry-After in seconds
	// (the header is left out when RetryAfter is 0).
	Unavailable bool
	RetryAfter  int
	// TaskStuck answers Reset with 202 and a task that never finishes.
	TaskStuck bool
	// BlackHole accepts connections and TLS but never answers a request.
	BlackHole bool
	// DropBoot accepts a boot override PATCH but keeps nothing.
	DropBoot bool
}

// Sim is a running simulated Redfish BMC. It is safe for concurrent use.
type Sim struct {
	opts  Options
	shape shape
	ca    *CA
	srv   *http.Server
	ln    net.Listener
	addr  string
	done  chan struct{}

	mu       sync.Mutex
	faults   Faults
	sessions map[string]string // token → session id
	nextID   int
	systems  []*system
	tasks    map[string]*task
	logins   int
	resets   []string
	requests int
}

type system struct {
	id      string
	serial  string
	macs    []string
	machine Machine
	on      bool // when there is no machine
	boot    bootState
}

type bootState struct {
	enabled, target, mode, uri string
}

type task struct {
	id    string
	until time.Time // zero: never
	state string
}

// Start runs a simulated BMC until Close.
func Start(opts Options) (*Sim, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Vendor == "" {
		opts.Vendor = Dell
	}
	if !slices.Contains(Vendors, opts.Vendor) {
		return nil, fmt.Errorf("redfishsim: unknown vendor %q", opts.Vendor)
	}
	if opts.User == "" {
		opts.User = "root"
	}
	if opts.Password == "" {
		opts.Password = "calvin"
	}
	if opts.Systems <= 0 {
		opts.Systems = max(1, len(opts.Machines))
	}
	if opts.TaskTime <= 0 {
		opts.TaskTime = 500 * time.Millisecond
	}
	ca := opts.CA
	if ca == nil {
		var err error
		if ca, err = NewCA(); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	cert, err := ca.serverCert(ln.Addr().(*net.TCPAddr).IP)
	if err != nil {
		ln.Close()
		return nil, err
	}
	s := &Sim{opts: opts, shape: shapeOf(opts.Vendor), ca: ca, ln: ln, addr: ln.Addr().String(),
		done: make(chan struct{}), sessions: map[string]string{}, tasks: map[string]*task{}}
	port := ln.Addr().(*net.TCPAddr).Port
	for i := range opts.Systems {
		sy := &system{id: s.systemID(i), boot: bootState{enabled: "Disabled", target: "None", mode: "UEFI"}}
		sy.serial = fmt.Sprintf("SIM%05d%02d", port, i)
		sy.macs = []string{fmt.Sprintf("52:54:%02x:%02x:%02x:01", port>>8, port&0xff, i), fmt.Sprintf("52:54:%02x:%02x:%02x:02", port>>8, port&0xff, i)}
		if i == 0 {
			if opts.Serial != "" {
				sy.serial = opts.Serial
			}
			if len(opts.MACs) > 0 {
				sy.macs = slices.Clone(opts.MACs)
			}
		}
		if i < len(opts.Machines) {
			sy.machine = opts.Machines[i]
		}
		s.systems = append(s.systems, sy)
	}
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // clients that hang up mid-handshake are normal here
	}
	go s.srv.Serve(tls.NewListener(ln, s.srv.TLSConfig)) //nolint:errcheck // ends with Close
	return s, nil
}

func (s *Sim) systemID(i int) string {
	id := s.shape.systemID
	if i == 0 {
		return id
	}
	if p, ok := strings.CutSuffix(id, ".1"); ok {
		return p + "." + strconv.Itoa(i+1)
	}
	return strconv.Itoa(i + 1)
}

// Addr is the BMC's host:port.
func (s *Sim) Addr() string { return s.addr }

// Port is the BMC's port.
func (s *Sim) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// CA is the authority that signed the BMC's certificate.
func (s *Sim) CA() *CA { return s.ca }

// SystemPath is the path of the i-th system ("/redfish/v1/Systems/1").
func (s *Sim) SystemPath(i int) string { return "/redfish/v1/Systems/" + s.systems[i].id }

// Close stops the BMC; requests held by a black hole end.
func (s *Sim) Close() error {
	select {
	case <-s.done:
		return nil
	default:
	}
	close(s.done)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
}

// ExpireSessions forgets every session, as a BMC that restarted does: the
// next request with an old token gets 401.
func (s *Sim) ExpireSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.sessions)
}

// Logins counts the sessions made so far; Sessions those open now.
func (s *Sim) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Sessions counts the sessions open now.
func (s *Sim) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Resets returns the Reset types asked so far, "SYSTEMID TYPE" each, in
// order.
func (s *Sim) Resets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.resets)
}

// Power reports whether the i-th system is on.
func (s *Sim) Power(i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.systems[i].powered()
}

// SetPower sets the i-th system's power, as its front panel button would.
func (s *Sim) SetPower(i int, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.systems[i].setPower(on)
}

// Boot returns the i-th system's boot override: BootSourceOverrideEnabled,
// Target, Mode and HttpBootUri.
func (s *Sim) Boot(i int) (enabled, target, mode, uri string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.systems[i].boot
	return b.enabled, b.target, b.mode, b.uri
}

func (sy *system) powered() bool {
	if sy.machine != nil {
		return sy.machine.PowerState()
	}
	return sy.on
}

func (sy *system) setPower(on bool) error {
	if sy.machine != nil {
		return sy.machine.SetPower(on)
	}
	sy.on = on
	return nil
}

// booted is called when the system starts (power on, reset, cycle): a
// one-time override is used up.
func (sy *system) booted() {
	if sy.boot.enabled == "Once" {
		sy.boot.enabled, sy.boot.target = "Disabled", "None"
	}
}

// serve is the whole HTTP API.
func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	f := s.faults
	s.mu.Unlock()
	if f.BlackHole {
		s.blackHole(w, r)
		return
	}
	if f.Unavailable {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		s.fail(w, http.StatusServiceUnavailable, "Base.1.8.ServiceTemporarilyUnavailable", "The service is temporarily unavailable.")
		return
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	w.Header().Set("OData-Version", "4.0")
	switch {
	case p == "/redfish":
		s.json(w, 200, map[string]any{"v1": "/redfish/v1/"})
		return
	case p == "/redfish/v1":
		s.json(w, 200, s.root())
		return
	case p == "/redfish/v1/odata":
		s.json(w, 200, map[string]any{"@odata.context": "/redfish/v1/$metadata", "value": []any{}})
		return
	case p == "/redfish/v1/SessionService/Sessions" && r.Method == http.MethodPost:
		s.login(w, r)
		return
	}
	sid, ok := s.authorized(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Basic realm="Redfish"`)
		s.fail(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.")
		return
	}
	s.route(w, r, p, sid)
}

func (s *Sim) id(p string) map[string]any {
	if s.shape.trailingSlash {
		p += "/"
	}
	return map[string]any{"@odata.id": p}
}

func (s *Sim) root() map[string]any {
	return map[string]any{
		"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot",
		"Id": "RootService", "Name": "Root Service", "RedfishVersion": "1.15.0", "UUID": "00000000-0000-4000-8000-" + fmt.Sprintf("%012d", s.Port()),
		"Vendor":         s.shape.manufacturer,
		"Systems":        s.id("/redfish/v1/Systems"),
		"Managers":       s.id("/redfish/v1/Managers"),
		"Chassis":        s.id("/redfish/v1/Chassis"),
		"SessionService": s.id("/redfish/v1/SessionService"),
		"TaskService":    s.id("/redfish/v1/TaskService"),
		"Links":          map[string]any{"Sessions": s.id("/redfish/v1/SessionService/Sessions")},
	}
}

// login makes a session: POST {UserName, Password} → 201, X-Auth-Token,
// Location.
func (s *Sim) login(w http.ResponseWriter, r *http.Request) {
	var body struct{ UserName, Password string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
		s.fail(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	if !s.credentials(body.UserName, body.Password) {
		s.fail(w, http.StatusUnauthorized, "Base.1.8.InsufficientPrivilege", "Invalid user name or password.")
		return
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	s.mu.Lock()
	s.nextID++
	id := strconv.Itoa(s.nextID)
	token := hex.EncodeToString(tok)
	s.sessions[token] = id
	s.logins++
	s.mu.Unlock()
	loc := "/redfish/v1/SessionService/Sessions/" + id
	w.Header().Set("X-Auth-Token", token)
	w.Header().Set("Location", loc)
	s.json(w, http.StatusCreated, map[string]any{"@odata.id": loc, "@odata.type": "#Session.v1_3_0.Session", "Id": id, "Name": "User Session", "UserName": body.UserName})
}

func (s *Sim) credentials(user, password string) bool {
	u := subtle.ConstantTimeCompare([]byte(user), []byte(s.opts.User))
	p := subtle.ConstantTimeCompare([]byte(password), []byte(s.opts.Password))
	return u&p == 1
}

// authorized checks X-Auth-Token or Basic credentials; sid is the session
// id ("" for Basic).
func (s *Sim) authorized(r *http.Request) (sid string, ok bool) {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		s.mu.Lock()
		defer s.mu.Unlock()
		sid, ok = s.sessions[tok]
		return sid, ok
	}
	if u, p, ok := r.BasicAuth(); ok {
		return "", s.credentials(u, p)
	}
	return "", false
}

func (s *Sim) json(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fail writes a Redfish error answer.
func (s *Sim) fail(w http.ResponseWriter, code int, msgID, msg string) {
	s.json(w, code, map[string]any{"error": map[string]any{
		"code": msgID, "message": msg,
		"@Message.ExtendedInfo": []any{map[string]any{"MessageId": msgID, "Message": msg, "Severity": "Critical"}},
	}})
}

// blackHole takes the connection away from net/http so that not one byte
// of a response is ever written (a handler that merely returns would send
// an empty 200), and holds it until the peer hangs up or the sim closes.
func (s *Sim) blackHole(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		select {
		case <-r.Context().Done():
		case <-s.done:
		}
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		io.Copy(io.Discard, conn) //nolint:errcheck // ends when the peer hangs up or the conn is closed
	}()
	select {
	case <-gone:
	case <-s.done:
	}
}
