package ui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// The fake's groups, edit previews and BMC facts: what E and the detail's
// BMC rows call.

// fakeGroups returns the groups of the fake's nodes; a group's kernel args
// are its first node's (the fake's nodes have none of their own).
func (f *fakeBackend) fakeGroup(name string) (apitype.GroupView, bool) {
	g := apitype.GroupView{Name: name, Defined: "nodes.yaml:3:3", Nodes: []string{}}
	for _, n := range f.nodes {
		if n.Group == name {
			if len(g.Nodes) == 0 {
				g.KernelArgs, g.Image = n.KernelArgs, n.Image
			}
			g.Nodes = append(g.Nodes, n.Name)
		}
	}
	g.IPXE = f.groupIPXE[name]
	return g, len(g.Nodes) > 0
}

func (f *fakeBackend) Group(ctx context.Context, name string) (apitype.GroupView, error) {
	if err := f.record("Group %s", name); err != nil {
		return apitype.GroupView{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.fakeGroup(name)
	if !ok {
		return g, &apitype.Error{Message: fmt.Sprintf("unknown group %q", name), Code: apitype.CodeNotFound}
	}
	return g, nil
}

func (f *fakeBackend) PreviewEdit(ctx context.Context, p apitype.EditPreview) (string, error) {
	if err := f.record("PreviewEdit %s group=%s %s set=%v unset=%v", p.Node, p.Group, p.Format, sortedStrings(setKeys(p.Edit)), p.Edit.Unset); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.find(p.Node)
	if err != nil {
		return "", err
	}
	n := f.nodes[i]
	if ov, ok := p.Edit.Set["boot_override."+p.Format].(string); ok {
		if strings.Contains(ov, "{{") && !strings.Contains(ov, "}}") {
			return "", &apitype.Error{Message: "boot_override." + p.Format + ": template: 2:1: unclosed action", Code: apitype.CodeInvalid}
		}
		return strings.ReplaceAll(ov, "{{.Node}}", p.Node), nil
	}
	args := n.KernelArgs
	if v, ok := p.Edit.Set["kernel_args"].(string); ok {
		if strings.Contains(v, `"`) {
			return "", &apitype.Error{Message: `nodes.yaml:4:30: kernel_args: unbalanced quote`, Code: apitype.CodeInvalid}
		}
		args = v
	}
	if len(p.Edit.Unset) > 0 {
		args = ""
	}
	return fakeEntry(n.Assigned, args), nil
}

func fakeEntry(gen, args string) string {
	return fmt.Sprintf("#!ipxe\nkernel http://10.0.0.1/%s/vmlinuz %s\ninitrd http://10.0.0.1/%s/initrd\nboot\n", gen, args, gen)
}

func setKeys(e apitype.Edit) []string {
	keys := []string{}
	for k := range e.Set {
		keys = append(keys, k)
	}
	return keys
}

func (f *fakeBackend) EditGroup(ctx context.Context, name string, e apitype.Edit) (string, error) {
	if err := f.record("EditGroup %s base=%s set=%v unset=%v", name, e.BaseRevision, sortedStrings(setKeys(e)), e.Unset); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.BaseRevision != f.revision() {
		return "", fmt.Errorf("%w: inventory changed since %s", apiclient.ErrConflict, e.BaseRevision)
	}
	if _, ok := f.fakeGroup(name); !ok {
		return "", &apitype.Error{Message: fmt.Sprintf("unknown group %q", name), Code: apitype.CodeNotFound}
	}
	for i := range f.nodes {
		if f.nodes[i].Group != name {
			continue
		}
		if v, ok := e.Set["kernel_args"].(string); ok {
			f.nodes[i].KernelArgs = v
		}
		if len(e.Unset) > 0 {
			f.nodes[i].KernelArgs = ""
		}
	}
	if v, ok := e.Set["boot_override.ipxe"].(string); ok {
		if f.groupIPXE == nil {
			f.groupIPXE = map[string]string{}
		}
		f.groupIPXE[name] = v
	}
	f.rev++
	return f.revision(), nil
}

func (f *fakeBackend) NodeBMC(ctx context.Context, name string) (apitype.BMCFacts, error) {
	if err := f.record("NodeBMC %s", name); err != nil {
		return apitype.BMCFacts{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i, err := f.find(name)
	if err != nil {
		return apitype.BMCFacts{}, err
	}
	n := f.nodes[i]
	fb := apitype.BMCFacts{Node: name, BMC: n.BMC, ReadAt: epoch.Add(-2 * time.Second), PollEvery: 30 * time.Second}
	if e := f.powerFail[name]; e != "" {
		fb.DeviceError, fb.PowerError = e, e
		return fb, nil
	}
	fb.Device = "device 32 rev 1, firmware 1.00, IPMI 2.0, manufacturer 4753, product 3"
	fb.Power = n.State.Power
	return fb, nil
}
