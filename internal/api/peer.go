package api

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/netbootui/netbootui/internal/apitype"
)

// caller is who is on the other end of a request's connection and the role
// it has. It is attached to the connection when it is accepted (ConnContext)
// and nothing a request carries can change it.
type caller struct {
	who  string
	role apitype.Role
}

type callerKey struct{}

func withCaller(ctx context.Context, c caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerOf(ctx context.Context) caller {
	if c, ok := ctx.Value(callerKey{}).(caller); ok {
		return c
	}
	return caller{who: "unknown"}
}

// Who returns the caller recorded for a request's connection.
func Who(ctx context.Context) string { return callerOf(ctx).who }

// RoleGroups names the unix groups whose members get each role when they
// call over the socket. A member of several gets the most allowed; root and
// the daemon's own user are admins; anyone else has no role and is refused.
type RoleGroups struct {
	Viewer, Operator, Admin string
}

// Default role groups (serve --viewer-group, --operator-group, --admin-group).
const (
	DefaultViewerGroup   = "netbootui-viewer"
	DefaultOperatorGroup = "netbootui-operator"
	DefaultAdminGroup    = "netbootui-admin"
)

// DefaultRoleGroups are the groups used when Server.Groups is the zero value.
func DefaultRoleGroups() RoleGroups {
	return RoleGroups{Viewer: DefaultViewerGroup, Operator: DefaultOperatorGroup, Admin: DefaultAdminGroup}
}

// role returns the role of a user in groups (names), root and self aside.
func (g RoleGroups) role(groups []string) apitype.Role {
	r := apitype.RoleNone
	for _, name := range groups {
		switch name {
		case "":
		case g.Admin:
			r = r.Max(apitype.RoleAdmin)
		case g.Operator:
			r = r.Max(apitype.RoleOperator)
		case g.Viewer:
			r = r.Max(apitype.RoleViewer)
		}
	}
	return r
}

// userGroups lists the names of the groups of the user with uid (its
// primary group included), from the system's user database.
func userGroups(uid uint32) ([]string, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return nil, err
	}
	gids, err := u.GroupIds()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, gid := range append(gids, u.Gid) {
		if g, err := user.LookupGroupId(gid); err == nil {
			names = append(names, g.Name)
		}
	}
	return names, nil
}

// peerRole decides the role of a unix-socket peer with uid.
func (s *Server) peerRole(uid uint32) apitype.Role {
	if uid == 0 || int(uid) == os.Getuid() {
		return apitype.RoleAdmin
	}
	lookup := s.lookupGroups
	if lookup == nil {
		lookup = userGroups
	}
	groups, err := lookup(uid)
	if err != nil {
		return apitype.RoleNone
	}
	g := s.Groups
	if g == (RoleGroups{}) {
		g = DefaultRoleGroups()
	}
	return g.role(groups)
}

// peerContext records who is on the other end of a unix-socket connection
// (from SO_PEERCRED) and the role its user's groups give it.
func (s *Server) peerContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return withCaller(ctx, caller{who: "unknown (" + c.RemoteAddr().Network() + ")"})
	}
	cred, err := peerCred(uc)
	if err != nil {
		return withCaller(ctx, caller{who: "unknown"})
	}
	name := strconv.Itoa(int(cred.Uid))
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return withCaller(ctx, caller{who: fmt.Sprintf("%s (uid %d, pid %d)", name, cred.Uid, cred.Pid), role: s.peerRole(cred.Uid)})
}

func peerCred(uc *net.UnixConn) (*unix.Ucred, error) {
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// ChownSocket gives the socket at path to group (a name or a number) with
// mode 0660, so that the group's members can connect (serve
// --api-socket-group); their role still comes from RoleGroups.
func ChownSocket(path, group string) error {
	gid, err := strconv.Atoi(group)
	if err != nil {
		g, lerr := user.LookupGroup(group)
		if lerr != nil {
			return fmt.Errorf("api socket group %q: %w", group, lerr)
		}
		gid, _ = strconv.Atoi(g.Gid)
	}
	if err := os.Chown(path, -1, gid); err != nil {
		return fmt.Errorf("api socket %s: %w", path, err)
	}
	return os.Chmod(path, 0o660)
}
