package apitype

import "testing"

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		have, need Role
		ok         bool
	}{
		{RoleViewer, RoleViewer, true}, {RoleViewer, RoleOperator, false}, {RoleViewer, RoleAdmin, false},
		{RoleOperator, RoleViewer, true}, {RoleOperator, RoleOperator, true}, {RoleOperator, RoleAdmin, false},
		{RoleAdmin, RoleViewer, true}, {RoleAdmin, RoleOperator, true}, {RoleAdmin, RoleAdmin, true},
		{RoleNone, RoleViewer, false}, {RoleNone, RoleNone, false}, {Role("root"), RoleViewer, false},
	} {
		if got := tc.have.Allows(tc.need); got != tc.ok {
			t.Errorf("%s allows %s: %v, want %v", tc.have, tc.need, got, tc.ok)
		}
	}
	for _, s := range []string{"viewer", "operator", "admin"} {
		if r, err := ParseRole(s); err != nil || string(r) != s {
			t.Errorf("ParseRole(%q) = %q, %v", s, r, err)
		}
	}
	for _, s := range []string{"", "Admin", "root", "none"} {
		if _, err := ParseRole(s); err == nil {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
	if RoleViewer.Max(RoleAdmin) != RoleAdmin || RoleOperator.Max(RoleNone) != RoleOperator || RoleNone.String() != "none" {
		t.Error("Max or String")
	}
}
