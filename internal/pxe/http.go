package pxe

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netbootui/netbootui/internal/agentproto"
	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/image"
	"github.com/netbootui/netbootui/internal/inventory"
)

// HTTPServer serves the HTTP side of network boot:
//
//	GET  /boot/<mac>.ipxe                 the node's iPXE script (unknown MACs get a retry script)
//	GET  /boot/<mac>.pxelinux             the node's pxelinux config (for lpxelinux and previews)
//	GET  /loaders/<name>                  bootloaders from the boot root (UEFI HTTP boot)
//	GET  /images/<image>/<gen>/<file>     generation files, with Range; ?node=NAME&auth=KEY proves the fetcher
//	POST /checkin                         check-in from the running OS (form: node, token, generation, uptime, overlay_bytes, boot_id, seq)
//	POST /agent/poll, /agent/report       the node agent's long poll and its report (package agentproto)
//	GET  /metrics                         Prometheus metrics
//	GET  /healthz                         liveness
//
// Files are sent with sendfile where the platform has it; progress of large
// files is reported as bootstate.KindProgress events.
type HTTPServer struct {
	Boot *Boot
	// ProgressEvery is the number of bytes between progress events of one
	// transfer (default 4 MiB); the last chunk always reports.
	ProgressEvery int64
	// Registry receives the server's metrics; nil uses a private registry.
	// Extra collectors (node states) can be registered on it by the caller.
	Registry *prometheus.Registry
	// AgentPollWait is how long an agent's poll is held open when there is
	// nothing to tell it (default DefaultAgentPollWait).
	AgentPollWait time.Duration

	requests *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	checkins *prometheus.CounterVec
	mux      *http.ServeMux
}

// Handler returns the server's http.Handler. It is built once.
func (s *HTTPServer) Handler() http.Handler {
	if s.mux != nil {
		return s.mux
	}
	if s.Registry == nil {
		s.Registry = prometheus.NewRegistry()
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netbootui_http_requests_total", Help: "Boot HTTP requests by route and status code.",
	}, []string{"route", "code"})
	s.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netbootui_http_sent_bytes_total", Help: "Bytes of boot files sent over HTTP, by file kind.",
	}, []string{"file"})
	s.checkins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "netbootui_checkins_total", Help: "Node check-ins by result.",
	}, []string{"result"})
	s.Registry.MustRegister(s.requests, s.bytes, s.checkins)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /boot/{file}", s.handleBoot)
	mux.HandleFunc("GET /loaders/{name...}", s.handleLoader)
	mux.HandleFunc("GET /images/{image}/{gen}/{file}", s.handleImage)
	mux.HandleFunc("POST /checkin", s.handleCheckin)
	mux.HandleFunc("POST "+agentproto.PollPath, s.handleAgentPoll)
	mux.HandleFunc("POST "+agentproto.ReportPath, s.handleAgentReport)
	mux.HandleFunc("GET /nocloud/{node}/{token}/{file}", s.handleNoCloud)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	s.mux = mux
	return mux
}

// ServeHTTP implements http.Handler.
func (s *HTTPServer) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.Handler().ServeHTTP(w, r) }

func (s *HTTPServer) count(route string, code int) {
	s.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

func remoteAddr(r *http.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// baseURL is the URL prefix written into entries for this request.
func (s *HTTPServer) baseURL(r *http.Request) string {
	if s.Boot.AdvertiseURL != "" {
		return s.Boot.AdvertiseURL
	}
	if safeHost(r.Host) {
		return "http://" + r.Host
	}
	return s.Boot.DefaultURL
}

// parseMAC accepts 52:54:00:12:34:56, 52-54-00-12-34-56 and 525400123456.
func parseMAC(s string) (net.HardwareAddr, error) {
	if len(s) == 12 && !strings.ContainsAny(s, ":-") {
		var b strings.Builder
		for i := 0; i < 12; i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(s[i : i+2])
		}
		s = b.String()
	}
	mac, err := net.ParseMAC(strings.ReplaceAll(s, "-", ":"))
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("bad MAC %q", s)
	}
	return mac, nil
}

func (s *HTTPServer) handleBoot(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	var format, macText string
	switch {
	case strings.HasSuffix(file, ".ipxe"):
		format, macText = "ipxe", strings.TrimSuffix(file, ".ipxe")
	case strings.HasSuffix(file, ".pxelinux"):
		format, macText = "pxelinux", strings.TrimSuffix(file, ".pxelinux")
	default:
		s.count("boot", http.StatusNotFound)
		http.NotFound(w, r)
		return
	}
	mac, err := parseMAC(macText)
	if err != nil {
		s.count("boot", http.StatusBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b := s.Boot
	inv := b.Inventory()
	client := remoteAddr(r)
	ev := bootstate.Event{Proto: "http", Path: r.URL.Path, Remote: client.String(), MAC: mac.String()}
	base := s.baseURL(r)
	n := inv.NodeByMAC(mac)
	if n == nil {
		ev.Kind, ev.Message = bootstate.KindUnknown, "boot script asked for by an unknown MAC"
		b.emit(ev)
		s.count("boot", http.StatusOK)
		if format == "ipxe" {
			writeText(w, UnknownIPXE(mac.String(), base+"/boot/${mac}.ipxe"))
		} else {
			writeText(w, DefaultPxelinux(""))
		}
		return
	}
	b.learn(client.Addr(), n.Name)
	ev.Node = n.Name
	pr := macProof(n, client.Addr())
	text, p, err := b.entry(inv, n, format, base)
	if err != nil {
		ev.Kind, ev.Stage, ev.Error = bootstate.KindFail, bootstate.StageConfig, err.Error()
		b.report(ev, pr)
		s.count("boot", http.StatusInternalServerError)
		http.Error(w, "netbootui: "+err.Error(), http.StatusInternalServerError)
		return
	}
	b.served(ev, p, len(text), pr)
	s.count("boot", http.StatusOK)
	writeText(w, text)
}

func writeText(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(text)))
	io.WriteString(w, text)
}

func (s *HTTPServer) handleLoader(w http.ResponseWriter, r *http.Request) {
	name, err := CleanName(r.PathValue("name"))
	client := remoteAddr(r)
	b := s.Boot
	if err != nil {
		b.emit(bootstate.Event{Kind: bootstate.KindDenied, Proto: "http", Path: r.URL.Path, Remote: client.String(), Error: err.Error()})
		s.count("loader", http.StatusForbidden)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	f, size, err := b.Loaders.Open(name)
	if err != nil {
		code := http.StatusNotFound
		if !errors.Is(err, ErrNotFound) {
			code = http.StatusForbidden
		}
		s.count("loader", code)
		http.Error(w, http.StatusText(code), code)
		return
	}
	defer f.Close()
	if n, pr := b.nodeByAddr(b.Inventory(), client.Addr()); n != nil && IsNBP(name) {
		b.report(bootstate.Event{Node: n.Name, Kind: bootstate.KindFetch, Stage: bootstate.StageNBP, Proto: "http", Path: r.URL.Path, Remote: client.String(), Total: size}, pr)
	}
	st, _ := f.Stat()
	s.count("loader", http.StatusOK)
	s.serveFile(w, r, f, size, st.ModTime(), "", nil)
}

func (s *HTTPServer) handleImage(w http.ResponseWriter, r *http.Request) {
	b := s.Boot
	rel := "images/" + r.PathValue("image") + "/" + r.PathValue("gen") + "/" + r.PathValue("file")
	img, gen, file, stage, ok := imagePath(rel)
	if !ok {
		s.count("image", http.StatusNotFound)
		http.NotFound(w, r)
		return
	}
	inv := b.Inventory()
	client := remoteAddr(r)
	ev := bootstate.Event{Proto: "http", Path: r.URL.Path, Remote: client.String(), Stage: stage, Generation: gen}
	n, pr := b.imageFetcher(inv, r, client.Addr(), ev)
	if n != nil {
		ev.Node = n.Name
		if pr == proofNode {
			b.learn(client.Addr(), n.Name)
		}
	}
	f, err := b.Images.Open(img, gen, file)
	if err != nil {
		if n != nil {
			ev.Kind, ev.Error = bootstate.KindFail, fmt.Sprintf("%s: 404 %s", stage, r.URL.Path)
			b.report(ev, pr)
		}
		s.count("image", http.StatusNotFound)
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.count("image", http.StatusInternalServerError)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	size := st.Size()
	var progress func(sent, total int64, done bool)
	if n != nil && r.Method == http.MethodGet {
		ev.Kind, ev.Total = bootstate.KindFetch, size
		b.report(ev, pr)
	}
	if n != nil && r.Method == http.MethodGet && pr == proofNode {
		progress = func(sent, total int64, done bool) {
			b.emit(bootstate.Event{Node: n.Name, Kind: bootstate.KindProgress, Stage: stage, Proto: "http",
				Path: r.URL.Path, Bytes: sent, Total: total, Generation: gen})
		}
	}
	s.count("image", http.StatusOK)
	// Generations are immutable: the path names the content.
	etag := `"` + gen + "-" + file + `"`
	sent := s.serveFile(w, r, f, size, st.ModTime(), etag, progress)
	s.bytes.WithLabelValues(file).Add(float64(sent))
}

// imageFetcher finds the node behind an image request and how well the
// request proves it: ?node=NAME with NAME's fetch key (&auth=), or NAME's
// fixed address, proves NAME; a ?node= without that proof is refused (a
// rate-limited denied event) and the client address decides, as for a
// request that names no node.
func (b *Boot) imageFetcher(inv *inventory.Inventory, r *http.Request, ip netip.Addr, ev bootstate.Event) (*inventory.Node, proof) {
	q := r.URL.Query()
	if name := q.Get("node"); name != "" {
		if n := inv.Node(name); n != nil {
			if b.keyProves(n, q.Get("auth"), ip) {
				return n, proofNode
			}
			ev.Node = n.Name
		}
		ev.Error = "image request names node " + oneLine(truncate(name, 64)) + " without its proof"
		b.deny(ev)
	}
	return b.nodeByAddr(inv, ip)
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// serveFile sends f (size bytes) honouring a single Range, HEAD and
// If-None-Match. Whole-file and single-range bodies are written as
// io.CopyN(w, f, n) chunks, which net/http hands to sendfile. Requests for
// several ranges go to http.ServeContent. progress, if set, is called after
// every ProgressEvery bytes and once at the end. It returns the bytes sent.
func (s *HTTPServer) serveFile(w http.ResponseWriter, r *http.Request, f *os.File, size int64, mod time.Time,
	etag string, progress func(sent, total int64, done bool)) int64 {
	h := w.Header()
	if etag != "" {
		h.Set("ETag", etag)
		if inm := r.Header.Get("If-None-Match"); inm != "" && inm == etag {
			w.WriteHeader(http.StatusNotModified)
			return 0
		}
	}
	start, length := int64(0), size
	status := http.StatusOK
	if rh := r.Header.Get("Range"); rh != "" {
		if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
			rh = "" // the client's copy is stale: send it all
		}
		if strings.Contains(rh, ",") {
			http.ServeContent(w, r, "", mod, f)
			return 0
		}
		if rh != "" {
			var ok bool
			start, length, ok = parseRange(rh, size)
			if !ok {
				h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
				http.Error(w, "requested range not satisfiable", http.StatusRequestedRangeNotSatisfiable)
				return 0
			}
			status = http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, size))
		}
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if !mod.IsZero() {
		h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return 0
	}
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return 0
		}
	}
	every := s.ProgressEvery
	if every <= 0 {
		every = 4 << 20
	}
	if progress == nil {
		every = length
	}
	var sent int64
	for sent < length {
		chunk := min(every, length-sent)
		n, err := io.CopyN(w, f, chunk)
		sent += n
		if progress != nil {
			progress(start+sent, size, sent == length)
		}
		if err != nil {
			break
		}
	}
	return sent
}

// parseRange parses one "bytes=a-b", "bytes=a-" or "bytes=-n" range against
// size.
func parseRange(h string, size int64) (start, length int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if a == "" { // suffix: the last b bytes
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		n = min(n, size)
		return size - n, n, size > 0
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 || first >= size {
		return 0, 0, false
	}
	last := size - 1
	if b != "" {
		l, err := strconv.ParseInt(b, 10, 64)
		if err != nil || l < first {
			return 0, 0, false
		}
		last = min(l, size-1)
	}
	return first, last - first + 1, true
}

// Checkin is what a running node reports.
type Checkin struct {
	Node         string
	Token        string
	Generation   string
	Uptime       time.Duration
	OverlayBytes int64
	BootID       string
	// Seq is the agent's counter: it starts at 1 in every boot and grows
	// with every attempt. With BootID it makes each check-in unique, so a
	// replayed one is refused.
	Seq   uint64
	Probe string // "present" or "absent" per probed path, comma-separated; "": the agent's netbootui.probe test hook
	// Failed is set by the live init when the boot cannot go on: "STAGE:
	// reason" (e.g. "rootfs: cannot mount the NFS root 10.0.2.2:/x").
	// The check-in then marks the node failed at that stage instead of
	// booted.
	Failed string
	// Persist is where the node keeps its persisted paths this boot, as its
	// live init found them: "disk LABEL on DEVICE[, wipe ID applied]",
	// "nfs SERVER:PATH", or "none: why" (a persist disk missing and the
	// group's missing: boot). "" when it persists nothing.
	Persist string
}

// checkinMessage is the check-in event's message: "boot BOOT_ID", then
// " probe=present|absent" when the agent sent a probe.
func checkinMessage(c Checkin) string {
	m := "boot " + c.BootID
	if c.Probe != "" {
		m += " probe=" + c.Probe
	}
	if c.Persist != "" {
		m += "; persist: " + c.Persist
	}
	return m
}

// isOneLine reports whether s is at most max bytes without control
// characters.
func isOneLine(s string, max int) bool {
	return len(s) <= max && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// parseCheckin reads a check-in from a form body (or query string).
func parseCheckin(r *http.Request) (Checkin, error) {
	r.Body = http.MaxBytesReader(nil, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		return Checkin{}, fmt.Errorf("bad check-in body: %w", err)
	}
	c := Checkin{
		Node:       r.Form.Get("node"),
		Token:      r.Form.Get("token"),
		Generation: r.Form.Get("generation"),
		BootID:     r.Form.Get("boot_id"),
	}
	if c.Node == "" || c.Token == "" {
		return c, errors.New("check-in needs node and token")
	}
	if v := r.Form.Get("uptime"); v != "" {
		sec, err := strconv.ParseFloat(v, 64)
		// !(sec >= 0) also refuses NaN, which compares false to everything.
		if err != nil || !(sec >= 0) || sec > 1e9 {
			return c, fmt.Errorf("bad uptime %q: want a finite number of seconds", short(v))
		}
		c.Uptime = time.Duration(sec * float64(time.Second)).Round(time.Second)
	}
	if v := r.Form.Get("overlay_bytes"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return c, fmt.Errorf("bad overlay_bytes %q: want a size in bytes", short(v))
		}
		c.OverlayBytes = n
	}
	c.Failed = r.Form.Get("failed")
	if !isOneLine(c.Failed, 512) {
		return c, errors.New("bad failed: want one line of at most 512 bytes")
	}
	c.Persist = r.Form.Get("persist")
	if !isOneLine(c.Persist, 512) {
		return c, errors.New("bad persist: want one line of at most 512 bytes")
	}
	if len(c.Generation) > 64 || len(c.BootID) > 64 {
		return c, errors.New("check-in field too long")
	}
	if c.Generation != "" && !image.ValidGenerationID(c.Generation) {
		return c, fmt.Errorf("bad generation %q", c.Generation)
	}
	if !validBootID(c.BootID) {
		return c, errors.New("check-in needs a boot_id (letters, digits and '-')")
	}
	v := r.Form.Get("seq")
	seq, err := strconv.ParseUint(v, 10, 63)
	if err != nil || seq == 0 {
		return c, fmt.Errorf("bad seq %q: want the agent's check-in counter, from 1 (an agent older than the daemon: rebuild the image)", short(v))
	}
	c.Seq = seq
	v = r.Form.Get("probe")
	if v != "" {
		words := strings.Split(v, ",")
		if len(words) > 16 {
			return c, errors.New("bad probe: at most 16 answers")
		}
		for _, w := range words {
			if w != "present" && w != "absent" {
				return c, fmt.Errorf("bad probe %q: want present or absent, comma-separated", short(v))
			}
		}
	}
	c.Probe = v
	return c, nil
}

// short cuts an echoed value to 32 bytes.
func short(v string) string { return truncate(v, 32) }

// validBootID accepts the kernel's boot_id (a UUID) and the agent's fallback
// (hex): 1 to 64 letters, digits and '-' (the node agent's rule too).
func validBootID(s string) bool { return agentproto.ValidBootID(s) }

// knownGeneration reports whether gen is a generation node n can be running:
// one the image store has for the node's assigned image or for any image of
// the inventory. "" (not reported) is known.
func (b *Boot) knownGeneration(inv *inventory.Inventory, n *inventory.Node, gen string) bool {
	if gen == "" {
		return true
	}
	if img, _, _ := b.Assignment(n); img != "" {
		if _, err := b.Images.Generation(img, gen); err == nil {
			return true
		}
	}
	for img := range inv.Images {
		if _, err := b.Images.Generation(img, gen); err == nil {
			return true
		}
	}
	return false
}

func (s *HTTPServer) handleCheckin(w http.ResponseWriter, r *http.Request) {
	b := s.Boot
	client := remoteAddr(r)
	c, err := parseCheckin(r)
	if err != nil {
		s.checkins.WithLabelValues("bad").Inc()
		s.count("checkin", http.StatusBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	inv := b.Inventory()
	n := inv.Node(c.Node)
	if n == nil || !b.Tokens.Verify(c.Node, c.Token) || (n.IP.IsValid() && !addrProves(n, client.Addr())) {
		// Never log the token itself.
		reason := "bad token"
		switch {
		case n == nil:
			reason = "unknown node"
		case b.Tokens.Verify(c.Node, c.Token):
			reason = "not from the node's address " + n.IP.String()
		}
		ev := bootstate.Event{Proto: "http", Path: "/checkin", Remote: client.String(),
			Error: "check-in refused: " + reason + " for node " + c.Node}
		if n != nil {
			ev.Node = n.Name
		}
		b.Denied(ev, "check-in refused")
		s.checkins.WithLabelValues("denied").Inc()
		s.count("checkin", http.StatusForbidden)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	if !b.knownGeneration(inv, n, c.Generation) {
		s.checkins.WithLabelValues("bad").Inc()
		s.count("checkin", http.StatusBadRequest)
		http.Error(w, "unknown generation "+c.Generation, http.StatusBadRequest)
		return
	}
	if err := b.admitCheckin(n.Name, c.BootID, c.Seq); errors.Is(err, errReplay) {
		b.deny(bootstate.Event{Node: n.Name, Proto: "http", Path: "/checkin", Remote: client.String(),
			Error: "check-in refused: " + err.Error()})
		s.checkins.WithLabelValues("replay").Inc()
		s.count("checkin", http.StatusConflict)
		http.Error(w, err.Error(), http.StatusConflict)
		return
	} else if err != nil {
		// The guard could not make the check-in's record durable: refused,
		// so that it cannot be replayed; the agent tries again.
		b.logger().Error("check-in not recorded", "node", n.Name, "err", err)
		s.checkins.WithLabelValues("error").Inc()
		s.count("checkin", http.StatusServiceUnavailable)
		http.Error(w, "check-in not recorded, try again", http.StatusServiceUnavailable)
		return
	}
	b.learn(client.Addr(), n.Name)
	if c.Failed != "" {
		stage, reason, _ := strings.Cut(c.Failed, ":")
		b.emit(bootstate.Event{Node: n.Name, Kind: bootstate.KindFail, Proto: "http", Path: "/checkin",
			Remote: client.String(), Generation: c.Generation,
			Error: "boot failed at stage " + strings.TrimSpace(stage) + ": " + strings.TrimSpace(reason)})
		s.checkins.WithLabelValues("failed").Inc()
		s.count("checkin", http.StatusOK)
		io.WriteString(w, "ok\n")
		return
	}
	b.notePersist(n.Name, c)
	b.emit(bootstate.Event{Node: n.Name, Kind: bootstate.KindCheckin, Proto: "http", Path: "/checkin",
		Remote: client.String(), Generation: c.Generation, Uptime: c.Uptime, OverlayBytes: c.OverlayBytes,
		Message: checkinMessage(c)})
	s.checkins.WithLabelValues("ok").Inc()
	s.count("checkin", http.StatusOK)
	io.WriteString(w, "ok\n")
}
