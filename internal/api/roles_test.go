package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/lab"
)

const (
	viewer   = apitype.RoleViewer
	operator = apitype.RoleOperator
	admin    = apitype.RoleAdmin
)

// documented is the role of every route as the package doc and README say.
var documented = map[string]apitype.Role{
	"GET /v1/status":                                 viewer,
	"GET /v1/nodes":                                  viewer,
	"GET /v1/nodes/{name}":                           viewer,
	"GET /v1/nodes/{name}/boot":                      viewer,
	"POST /v1/nodes/{name}/preview":                  viewer,
	"GET /v1/select":                                 viewer,
	"GET /v1/events":                                 viewer,
	"GET /v1/images":                                 viewer,
	"GET /v1/audit":                                  viewer,
	"GET /v1/nodes/{name}/sol":                       viewer,
	"GET /v1/groups/{name}":                          viewer,
	"POST /v1/edit-preview":                          viewer,
	"GET /v1/nodes/{name}/bmc":                       viewer,
	"GET /v1/nodes/{name}/persist":                   viewer,
	"POST /v1/nodes/{name}/persist/wipe":             admin,
	"GET /v1/stages/{$}":                             viewer,
	"POST /v1/stages/preview":                        viewer,
	"GET /v1/stages/{id}":                            viewer,
	"POST /v1/stages/{id}/{action}":                  viewer, // unknown actions: refused by the handler
	"POST /v1/power":                                 operator,
	"POST /v1/reboot-clean":                          operator,
	"POST /v1/nodes/{name}/console":                  operator,
	"POST /v1/stages/{id}/run":                       operator,
	"POST /v1/stages/{id}/resume":                    operator,
	"POST /v1/stages/{id}/halt":                      operator,
	"PATCH /v1/nodes/{name}":                         admin,
	"POST /v1/nodes/{name}":                          admin,
	"DELETE /v1/nodes/{name}":                        admin,
	"POST /v1/nodes/{name}/rename":                   admin,
	"GET /v1/unknown":                                viewer,
	"POST /v1/unknown/adopt":                         admin,
	"PATCH /v1/groups/{name}":                        admin,
	"POST /v1/inventory/reload":                      admin,
	"POST /v1/images/import":                         admin,
	"POST /v1/images/{name}/publish":                 admin,
	"POST /v1/images/build":                          admin,
	"POST /v1/images/{name}/rollback":                admin,
	"POST /v1/images/{name}/gc":                      admin,
	"GET /v1/images/diff":                            viewer,
	"GET /v1/images/{name}/generations/{gen}/verify": viewer,
	"POST /v1/images/{name}/exec":                    admin,
	"POST /v1/images/{name}/shell":                   admin,
	"GET /v1/images/{name}/sessions/{id}":            admin,
	"POST /v1/images/{name}/sessions/{id}":           admin,
	"POST /v1/images/{name}/sessions/{id}/size":      admin,
	"POST /v1/stages/{$}":                            admin,
	"POST /v1/stages/{id}/abort":                     admin,
	"POST /v1/stages/{id}/promote":                   admin,
	"POST /v1/stages/{id}/rollback":                  admin,
	"POST /v1/backup":                                admin,
}

// reads are the routes that change nothing although they are not GETs.
var reads = map[string]bool{
	"POST /v1/nodes/{name}/preview": true, "POST /v1/edit-preview": true,
	"POST /v1/stages/preview": true, "POST /v1/stages/{id}/{action}": true,
	"POST /v1/images/{name}/sessions/{id}/size": true, // a shell's terminal size
}

// TestRouteTable: the table holds every documented route with its
// documented role, and every route that is not a read is audited.
func TestRouteTable(t *testing.T) {
	s := &Server{}
	seen := map[string]bool{}
	for _, rt := range s.routes() {
		seen[rt.pattern] = true
		want, ok := documented[rt.pattern]
		if !ok {
			t.Errorf("route %s is not documented", rt.pattern)
			continue
		}
		if rt.role != want {
			t.Errorf("%s needs %s, documented %s", rt.pattern, rt.role, want)
		}
		read := strings.HasPrefix(rt.pattern, "GET ") || reads[rt.pattern]
		if read != (rt.audit == auditNone) {
			t.Errorf("%s: read %v, audit mode %d", rt.pattern, read, rt.audit)
		}
		if rt.action == "" || rt.h == nil {
			t.Errorf("%s has no action name or no handler", rt.pattern)
		}
	}
	for p := range documented {
		if !seen[p] {
			t.Errorf("documented route %s is not served", p)
		}
	}
}

// samplePath makes a path for a route pattern.
func samplePath(pattern string) string {
	_, path, _ := strings.Cut(pattern, " ")
	name := "solo"
	switch {
	case strings.HasPrefix(path, "/v1/groups/"):
		name = "g"
	case strings.HasPrefix(path, "/v1/images/"):
		name = "img"
	}
	return strings.NewReplacer("{name}", name, "{gen}", "0123456789abcdef", "{id}", "latest", "{action}", "bogus", "{$}", "").Replace(path)
}

// inProcessHTTP is a raw HTTP client whose requests reach srv as c.
func inProcessHTTP(t *testing.T, srv *Server, c caller) *http.Client {
	dial, stop := srv.inProcess(c)
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
	t.Cleanup(func() { tr.CloseIdleConnections(); stop() })
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// TestRoleMatrix calls every route as a caller with no role, a viewer, an
// operator and an admin: a caller below the route's role gets 403, code
// forbidden, a message naming the role needed, and an audit entry of the
// refusal under its name; a caller with the role is let through.
func TestRoleMatrix(t *testing.T) {
	d, srv, _ := startServer(t, t.TempDir(), nil)
	for _, role := range []apitype.Role{apitype.RoleNone, viewer, operator, admin} {
		c := caller{who: "matrix " + role.String(), role: role}
		hc := inProcessHTTP(t, srv, c)
		for _, rt := range srv.routes() {
			method, _, _ := strings.Cut(rt.pattern, " ")
			path := samplePath(rt.pattern)
			t.Run(role.String()+" "+method+" "+path, func(t *testing.T) {
				req, _ := http.NewRequest(method, "http://netbootui"+path, strings.NewReader("{}"))
				before := len(d.Audit(0))
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
				resp.Body.Close()
				if role.Allows(rt.role) {
					if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusServiceUnavailable {
						t.Fatalf("%s refused a %s: %s %s", rt.pattern, role, resp.Status, body)
					}
					return
				}
				var e apitype.Error
				if resp.StatusCode != http.StatusForbidden || json.Unmarshal(body, &e) != nil || e.Code != apitype.CodeForbidden ||
					!strings.Contains(e.Message, "needs the "+string(rt.role)+" role") || !strings.Contains(e.Message, c.who) {
					t.Fatalf("%s as %s: %s %s", rt.pattern, role, resp.Status, body)
				}
				entries := d.Audit(0)
				if len(entries) != before+1 {
					t.Fatalf("%d audit entries after a refusal, had %d", len(entries), before)
				}
				last := entries[len(entries)-1]
				if last.Who != c.who || !strings.HasPrefix(last.Action, "refused ") || last.Target != path ||
					!strings.Contains(last.Result, "needs the "+string(rt.role)+" role") {
					t.Fatalf("refusal audited as %+v", last)
				}
			})
		}
	}
}

// writeImageFiles writes a generation's three files under dir.
func writeImageFiles(t *testing.T, dir, tag string) apiclient.ImportFiles {
	t.Helper()
	f := apiclient.ImportFiles{Kernel: filepath.Join(dir, "vmlinuz-"+tag), Initrd: filepath.Join(dir, "initrd-"+tag),
		Rootfs: filepath.Join(dir, "rootfs-"+tag)}
	for _, p := range []string{f.Kernel, f.Initrd, f.Rootfs} {
		if err := os.WriteFile(p, []byte("content of "+filepath.Base(p)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// TestMutationsAudited: import and publish (which the daemon does not audit
// itself), reload, edit, power, rollback and gc each leave an audit entry
// naming the caller.
func TestMutationsAudited(t *testing.T) {
	dir := t.TempDir()
	d, srv, _ := startServer(t, dir, nil)
	const who = "ssh SHA256:mutations (test)"
	c, stop := srv.InProcessClient(who, admin)
	defer stop()
	ctx := context.Background()
	since := func() []string {
		var out []string
		for _, e := range d.Audit(0) {
			if e.Who == who {
				out = append(out, e.Action+": "+e.Result)
			}
		}
		return out
	}
	m1, err := c.Import(ctx, apitype.ImportRequest{Image: "img"}, writeImageFiles(t, dir, "1"))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := c.Import(ctx, apitype.ImportRequest{Image: "img", Publish: true}, writeImageFiles(t, dir, "2"))
	if err != nil || m1.ID == m2.ID || len(m2.Files) != 3 || m2.Files[0].Name != apitype.FileKernel {
		t.Fatalf("imports %+v %+v %v", m1, m2, err)
	}
	if err := c.Publish(ctx, "img", m1.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "img", "0000nosuch"); err == nil {
		t.Fatal("published a generation that does not exist")
	}
	if _, err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EditNode(ctx, "solo", apitype.Edit{Set: map[string]any{"kernel_args": "quiet"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Power(ctx, apitype.OpOn, "solo"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rollback(ctx, "img"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GC(ctx, "img", 1); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(since(), "\n")
	for _, want := range []string{
		"image import: ok: generation " + m1.ID,
		"image import: ok: generation " + m2.ID + ", published",
		"image publish: ok: generation " + m1.ID,
		"image publish: ",
		"inventory reload: ok: revision ",
		"edit node solo: ok",
		"power on: ",
		"image rollback: ",
		"image gc: ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no audit entry %q in:\n%s", want, got)
		}
	}
	if strings.Count(got, "image publish: ") != 2 {
		t.Errorf("the failed publish is not audited:\n%s", got)
	}
}

// TestImportTakesContentOnly: the daemon refuses an import that names paths,
// as JSON (the old request) or as a field of the multipart request.
func TestImportTakesContentOnly(t *testing.T) {
	_, srv, _ := startServer(t, t.TempDir(), nil)
	hc := inProcessHTTP(t, srv, caller{who: "root", role: admin})
	post := func(ctype string, body []byte) (int, apitype.Error) {
		resp, err := hc.Post("http://netbootui/v1/images/import", ctype, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e apitype.Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e
	}
	st, e := post("application/json", []byte(`{"image":"img","kernel":"/etc/shadow","initrd":"/etc/shadow","rootfs":"/etc/shadow"}`))
	if st != http.StatusBadRequest || !strings.Contains(e.Message, "does not open paths") {
		t.Fatalf("JSON import with paths: %d %+v", st, e)
	}
	const boundary = "b0undary"
	mp := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n" +
		`{"image":"img","kernel":"/etc/shadow"}` + "\r\n--" + boundary + "--\r\n"
	st, e = post("multipart/form-data; boundary="+boundary, []byte(mp))
	if st != http.StatusBadRequest || !strings.Contains(e.Message, `unknown field "kernel"`) {
		t.Fatalf("multipart import naming a path: %d %+v", st, e)
	}
	mp = "--" + boundary + "\r\nContent-Disposition: form-data; name=\"vmlinuz\"\r\n\r\nxx\r\n--" + boundary + "--\r\n"
	st, e = post("multipart/form-data; boundary="+boundary, []byte(mp))
	if st != http.StatusBadRequest || !strings.Contains(e.Message, `first part must be "request"`) {
		t.Fatalf("multipart import without its request: %d %+v", st, e)
	}
	c, stop := srv.InProcessClient("root", admin)
	defer stop()
	files := writeImageFiles(t, t.TempDir(), "x")
	files.Initrd = filepath.Dir(files.Initrd)
	if _, err := c.Import(context.Background(), apitype.ImportRequest{Image: "img"}, files); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("import of a folder: %v", err)
	}
}

// TestAuditFailsClosed puts the daemon's data on a small tmpfs and fills
// it: actions keep running while their entries can be made durable (the
// reserved room), then mutations are refused with code unavailable and a
// message that says why, reads keep working, every entry recorded is on
// disk, and once room is made mutations run again.
func TestAuditFailsClosed(t *testing.T) {
	dir := lab.Tmpfs(t, 16<<20)
	d, srv, _ := startServer(t, dir, nil)
	c, stop := srv.InProcessClient("full-disk test", admin)
	defer stop()
	ctx := context.Background()
	if _, err := c.Power(ctx, apitype.OpOn, "solo"); err != nil {
		t.Fatal(err)
	}
	filler := lab.FillDisk(t, dir)
	var refused error
	ran := 0
	for ; ran < 2000 && refused == nil; ran++ {
		_, refused = c.Power(ctx, apitype.OpOn, "solo")
	}
	var e *apitype.Error
	if !errors.As(refused, &e) || e.Code != apitype.CodeUnavailable || !strings.Contains(e.Message, "audit log") ||
		!strings.Contains(e.Message, "no space left on device") || !strings.Contains(e.Message, "nothing was done") {
		t.Fatalf("after %d actions on a full disk: %v", ran, refused)
	}
	t.Logf("%d actions ran after the disk filled, then: %v", ran-1, e.Message)
	if _, err := c.EditNode(ctx, "solo", apitype.Edit{Set: map[string]any{"kernel_args": "x"}}); !errors.As(err, &e) || e.Code != apitype.CodeUnavailable {
		t.Fatalf("edit on a full disk: %v", err)
	}
	if nodes, err := c.Nodes(ctx); err != nil || len(nodes) != 3 {
		t.Fatalf("read on a full disk: %v", err)
	}
	// Every entry the daemon holds is in the file: none was lost.
	data, err := os.ReadFile(filepath.Join(dir, "data", "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	onDisk := strings.Count(string(data), "\n")
	for _, en := range d.Audit(0) {
		for _, det := range en.Details {
			if strings.Contains(det, "not written to disk") {
				t.Fatalf("an action ran whose entry is not on disk: %+v", en)
			}
		}
	}
	if n := len(d.Audit(0)); n != onDisk || n < ran {
		t.Fatalf("%d entries in the daemon, %d on disk, %d actions", n, onDisk, ran)
	}
	os.Remove(filler)
	if _, err := c.Power(ctx, apitype.OpOn, "solo"); err != nil {
		t.Fatalf("after room was made: %v", err)
	}
}

// TestPeerRoles connects as another unix user (nobody): its role comes from
// its groups through SO_PEERCRED and the user database, the socket's group
// lets it connect, a viewer reads and is refused a power action (audited
// under its name), and an import of a file it cannot read fails in the
// client without reaching the daemon.
func TestPeerRoles(t *testing.T) {
	if os.Getuid() != 0 {
		lab.Missing(t, "root, to run a client as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		lab.Missing(t, "a user nobody: %v", err)
	}
	grp, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir, err := os.MkdirTemp("", "netbootui-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	d, _, sock := startServer(t, dir, func(s *Server) { s.Groups = RoleGroups{Viewer: grp.Name, Operator: "netbootui-test-none"} })
	if err := ChownSocket(sock, grp.Name); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o660 || int(st.Sys().(*syscall.Stat_t).Gid) != gid {
		t.Fatalf("socket %v %v", st.Mode(), err)
	}
	secret := filepath.Join(dir, "root-only")
	os.WriteFile(secret, []byte("secret"), 0o600)
	// The test binary, where nobody can run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "api.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPeerHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "NETBOOTUI_PEER_SOCKET="+sock, "NETBOOTUI_PEER_SECRET="+secret)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	for _, want := range []string{"nodes: 3", "power: forbidden: POST /v1/power needs the operator role; nobody (uid " + nobody.Uid,
		"has the viewer role", "import: image import: vmlinuz: open " + secret + ": permission denied"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("helper output lacks %q:\n%s", want, out)
		}
	}
	var refused bool
	for _, e := range d.Audit(0) {
		refused = refused || (e.Action == "refused power" && strings.HasPrefix(e.Who, "nobody (uid "+nobody.Uid))
		if strings.HasPrefix(e.Who, "nobody") && strings.Contains(e.Action, "import") {
			t.Errorf("the import reached the daemon: %+v", e)
		}
	}
	if !refused {
		t.Errorf("no audited refusal for nobody: %+v", d.Audit(0))
	}
}

// TestPeerHelper is the client TestPeerRoles runs as another user.
func TestPeerHelper(t *testing.T) {
	sock := os.Getenv("NETBOOTUI_PEER_SOCKET")
	if sock == "" {
		t.Skip("run by TestPeerRoles")
	}
	c := apiclient.New(sock)
	ctx := context.Background()
	nodes, err := c.Nodes(ctx)
	fmt.Printf("nodes: %d %v\n", len(nodes), err)
	_, err = c.Power(ctx, apitype.OpOn, "solo")
	var e *apitype.Error
	if errors.As(err, &e) {
		fmt.Printf("power: %s: %s\n", e.Code, e.Message)
	} else {
		fmt.Printf("power: %v\n", err)
	}
	secret := os.Getenv("NETBOOTUI_PEER_SECRET")
	_, err = c.Import(ctx, apitype.ImportRequest{Image: "img"}, apiclient.ImportFiles{Kernel: secret, Initrd: secret, Rootfs: secret})
	fmt.Printf("import: %v\n", err)
}

// TestGroupRoles maps a user's groups to the most allowed role, and root
// and the daemon's own user to admin.
func TestGroupRoles(t *testing.T) {
	groups := map[uint32][]string{1001: {"users"}, 1002: {"users", "ops"}, 1003: {"ops", "wheel", "watch"}, 1004: {"watch"}}
	s := &Server{Groups: RoleGroups{Viewer: "watch", Operator: "ops", Admin: "wheel"},
		lookupGroups: func(uid uint32) ([]string, error) {
			if g, ok := groups[uid]; ok {
				return g, nil
			}
			return nil, errors.New("no such user")
		}}
	for uid, want := range map[uint32]apitype.Role{0: admin, uint32(os.Getuid()): admin, 1001: apitype.RoleNone,
		1002: operator, 1003: admin, 1004: viewer, 4242: apitype.RoleNone} {
		if got := s.peerRole(uid); got != want {
			t.Errorf("uid %d: %q, want %q", uid, got, want)
		}
	}
	def := &Server{lookupGroups: func(uint32) ([]string, error) { return []string{DefaultOperatorGroup}, nil }}
	if got := def.peerRole(1001); got != operator {
		t.Errorf("default groups: %q", got)
	}
	if err := ChownSocket(filepath.Join(t.TempDir(), "nope"), "netbootui-no-such-group-x"); err == nil {
		t.Error("chown to a group that does not exist")
	}
}
