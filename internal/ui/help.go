package ui

import (
	"fmt"
	"strings"
)

// helpView lists every binding of the key map.
type helpView struct {
	c      *Common
	offset int
}

func (h *helpView) lines() []string {
	s := h.c.Styles
	var out []string
	for _, g := range h.c.Keys.Groups() {
		out = append(out, s.Title.Render(g.Title))
		for _, b := range g.Bindings {
			hp := b.Help()
			out = append(out, fmt.Sprintf("  %s %s", s.HelpKey.Render(fit(hp.Key, 12)), s.HelpDesc.Render(hp.Desc)))
		}
	}
	out = append(out, "", s.Dim.Render("commands: "+strings.Join([]string{":nodes", ":events", ":images", ":stage", ":unknown", ":adopt BMC...", ":persist", ":action", ":help", ":q"}, " ")+" (tab completes)"))
	return out
}
