package ui

import "charm.land/bubbles/v2/key"

// KeyMap holds every key binding of the console; the help view is generated
// from it.
type KeyMap struct {
	Up, Down, PageUp, PageDown, Top, Bottom  key.Binding
	Enter, Back, Filter, Command, Help       key.Binding
	Mark, MarkAll, ClearMarks                key.Binding
	SortName, SortGroup, SortStage, SortGen  key.Binding
	SortCheckin, Reverse                     key.Binding
	Edit, EditGroup, Refresh                 key.Binding
	RebootClean, Power, SerialConsole, Stage key.Binding
	CancelAction                             key.Binding
	Build, ImageRollback, ImageShell         key.Binding
	StageHalt, StageResume, StageAbort       key.Binding
	StagePromote, StageRollback              key.Binding
	Adopt, AdoptGroup                        key.Binding
	PersistWipe                              key.Binding
	Quit, ForceQuit                          key.Binding
}

// DefaultKeyMap returns the k9s-like bindings.
func DefaultKeyMap() KeyMap {
	b := func(help, desc string, keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return KeyMap{
		Up:            b("k/↑", "up", "k", "up"),
		Down:          b("j/↓", "down", "j", "down"),
		PageUp:        b("pgup/ctrl+b", "page up", "pgup", "ctrl+b"),
		PageDown:      b("pgdn/ctrl+f", "page down", "pgdown", "ctrl+f"),
		Top:           b("g/home", "first row", "g", "home"),
		Bottom:        b("G/end", "last row", "G", "end"),
		Enter:         b("enter", "node detail", "enter"),
		Back:          b("esc", "back / clear filter", "esc"),
		Filter:        b("/", "filter (text, re:REGEX, n[01-08], state:S, group:G, dirty)", "/"),
		Command:       b(":", "command (:nodes :images :stage :events :action :q)", ":"),
		Help:          b("?", "help", "?"),
		Mark:          b("space", "mark node", "space"),
		MarkAll:       b("ctrl+a", "mark all shown", "ctrl+a"),
		ClearMarks:    b("ctrl+u", "clear marks", "ctrl+u"),
		SortName:      b("N", "sort by name", "N"),
		SortGroup:     b("O", "sort by group", "O"),
		SortStage:     b("S", "sort by stage", "S"),
		SortGen:       b("A", "sort by generation drift", "A"),
		SortCheckin:   b("C", "sort by last check-in", "C"),
		Reverse:       b("I", "reverse sort", "I"),
		Edit:          b("e", "edit the node's own kernel args / boot override in $EDITOR", "e"),
		EditGroup:     b("E", "edit the node's group: its kernel args / boot override in $EDITOR", "E"),
		Refresh:       b("ctrl+r", "refresh", "ctrl+r"),
		RebootClean:   b("R", "reboot to clean state", "R"),
		Power:         b("p", "power menu", "p"),
		SerialConsole: b("c", "serial console", "c"),
		Stage:         b("s", "stage an image", "s"),
		CancelAction:  b("ctrl+x", "cancel the running power action / reboot / build (esc only hides it)", "ctrl+x"),
		Build:         b("b", "images: rebuild the image; publish only on yes (default No)", "b"),
		ImageRollback: b("r", "images: roll the image back to its previous generation", "r"),
		ImageShell:    b("S", "images: a shell in a working copy of the image (admin); its change is shown on exit", "S"),
		StageHalt:     b("h", "rollout: halt", "h"),
		StageResume:   b("u", "rollout: resume", "u"),
		StageAbort:    b("x", "rollout: abort", "x"),
		StagePromote:  b("P", "rollout: promote (the generation becomes the default)", "P"),
		StageRollback: b("B", "rollout: roll back (previous assignments)", "B"),
		Adopt:         b("a", "unknown: adopt the marked machines (or the one under the cursor)", "a"),
		AdoptGroup:    b("t", "unknown: the group adopted machines join (next)", "t"),
		PersistWipe:   b("W", "persist: wipe the node's persisted paths (asks first; admin)", "W"),
		Quit:          b("q", "quit (at the top)", "q"),
		ForceQuit:     b("ctrl+c", "quit now", "ctrl+c"),
	}
}

// Groups returns the bindings in the sections the help view shows.
func (k KeyMap) Groups() []KeyGroup {
	return []KeyGroup{
		{"Move", []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}},
		{"Views", []key.Binding{k.Enter, k.Back, k.Filter, k.Command, k.Help, k.Refresh}},
		{"Marks", []key.Binding{k.Mark, k.MarkAll, k.ClearMarks}},
		{"Sort", []key.Binding{k.SortName, k.SortGroup, k.SortStage, k.SortGen, k.SortCheckin, k.Reverse}},
		{"Actions", []key.Binding{k.Edit, k.EditGroup, k.RebootClean, k.Power, k.CancelAction, k.SerialConsole, k.Stage}},
		{"Images (:images)", []key.Binding{k.Build, k.ImageRollback, k.ImageShell}},
		{"Rollout (s, :stage)", []key.Binding{k.StageHalt, k.StageResume, k.StageAbort, k.StagePromote, k.StageRollback}},
		{"Unknown machines (:unknown)", []key.Binding{k.Mark, k.Adopt, k.AdoptGroup}},
		{"Persisted paths (:persist)", []key.Binding{k.PersistWipe}},
		{"Quit", []key.Binding{k.Quit, k.ForceQuit}},
	}
}

// KeyGroup is a titled list of bindings.
type KeyGroup struct {
	Title    string
	Bindings []key.Binding
}
