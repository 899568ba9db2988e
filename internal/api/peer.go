package api

import (
	"context"
	"fmt"
	"net"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

type whoKey struct{}

// peerContext records who is on the other end of a unix-socket connection
// (from SO_PEERCRED), for the audit log.
func peerContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, whoKey{}, peerName(c))
}

// Who returns the caller recorded for a request's connection.
func Who(ctx context.Context) string {
	if w, ok := ctx.Value(whoKey{}).(string); ok {
		return w
	}
	return "unknown"
}

func peerName(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "unknown (" + c.RemoteAddr().Network() + ")"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "unknown"
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return "unknown"
	}
	name := strconv.Itoa(int(cred.Uid))
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("%s (uid %d, pid %d)", name, cred.Uid, cred.Pid)
}
