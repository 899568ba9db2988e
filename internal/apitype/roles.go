package apitype

import "fmt"

// Role is what a caller of the API may do. Each role includes the ones
// below it: viewer < operator < admin.
type Role string

// Roles.
const (
	// RoleNone is a caller that may do nothing (a unix user in none of the
	// role groups).
	RoleNone Role = ""
	// RoleViewer reads: nodes, groups, boot entries and previews, events,
	// audit, images, rollouts, console logs, BMC facts.
	RoleViewer Role = "viewer"
	// RoleOperator also acts on nodes: power, reboot-clean, the serial
	// console, and running, halting and resuming a staged rollout.
	RoleOperator Role = "operator"
	// RoleAdmin also changes what nodes boot: inventory edits and reloads,
	// image import, publish, build, rollback and GC, staging, promoting,
	// aborting and rolling back a rollout.
	RoleAdmin Role = "admin"
)

// Roles lists the roles from the least to the most allowed.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Allows reports whether a caller with role r may use a route that needs
// role need.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() && r.rank() > 0 }

// Max returns the more allowed of r and o.
func (r Role) Max(o Role) Role {
	if o.rank() > r.rank() {
		return o
	}
	return r
}

// String names the role ("none" for RoleNone).
func (r Role) String() string {
	if r == RoleNone {
		return "none"
	}
	return string(r)
}

// ParseRole reads "viewer", "operator" or "admin".
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleViewer, RoleOperator, RoleAdmin:
		return r, nil
	}
	return RoleNone, fmt.Errorf("role %q: want viewer, operator or admin", s)
}
