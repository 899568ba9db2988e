package ui

import (
	"context"

	"github.com/netbootui/netbootui/internal/apitype"
)

func (f *fakeBackend) Persist(ctx context.Context, name string) (apitype.PersistView, error) {
	if err := f.record("Persist %s", name); err != nil {
		return apitype.PersistView{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.find(name); err != nil {
		return apitype.PersistView{}, err
	}
	if v := f.persist[name]; v != nil {
		return *v, nil
	}
	return apitype.PersistView{Node: name, Note: "its group persists no paths (persist:)"}, nil
}

// WipePersist empties the node's paths as the daemon does, refusing a
// caller below admin as the daemon's guard does.
func (f *fakeBackend) WipePersist(ctx context.Context, name string) (apitype.PersistView, error) {
	if err := f.record("WipePersist %s", name); err != nil {
		return apitype.PersistView{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wipeRole != "" && !f.wipeRole.Allows(apitype.RoleAdmin) {
		return apitype.PersistView{}, &apitype.Error{Code: apitype.CodeForbidden,
			Message: "POST /v1/nodes/" + name + "/persist/wipe needs the admin role; tester has the " + string(f.wipeRole) + " role"}
	}
	v := f.persist[name]
	if v == nil || v.Note != "" {
		return apitype.PersistView{}, &apitype.Error{Code: apitype.CodeInvalid, Message: "nothing to wipe"}
	}
	if v.Disk != nil {
		// The daemon records the wipe; the node applies it at next boot.
		v.Disk.Wipe, v.Disk.WipeBy, v.Disk.WipePending = "00112233445566ff", "tester", true
		return *v, nil
	}
	removed := 0
	for i := range v.Paths {
		removed += v.Paths[i].Files
		v.Paths[i].Files, v.Paths[i].Bytes = 0, 0
	}
	out := *v
	out.Removed = removed
	return out, nil
}
