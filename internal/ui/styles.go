package ui

import (
	"image/color"

	"charm.land/lipgloss/v2"
)

// Styles is every style the console uses, built for a light or dark
// background. Colours are given in full; the program downsamples them to
// what the terminal supports (256 colours, 16, or none under NO_COLOR), so
// everything that matters is also told apart by text or by reverse video.
type Styles struct {
	Title, Header, StatusBar, Dim, Error, Warn, OK, Marked, Cursor, Drift lipgloss.Style
	Dialog, DialogTitle, Button, ButtonActive, HelpKey, HelpDesc, Prompt  lipgloss.Style
	BarFull, BarEmpty                                                     lipgloss.Style
	stage                                                                 map[string]lipgloss.Style
}

// NewStyles returns the styles for a dark (isDark) or light background.
func NewStyles(isDark bool) *Styles {
	ld := lipgloss.LightDark(isDark)
	c := func(light, dark string) color.Color { return ld(lipgloss.Color(light), lipgloss.Color(dark)) }
	accent := c("25", "39")
	red := c("124", "203")
	yellow := c("130", "220")
	green := c("28", "114")
	dim := c("244", "245")
	s := &Styles{
		Title:        lipgloss.NewStyle().Bold(true).Foreground(accent),
		Header:       lipgloss.NewStyle().Bold(true).Underline(true),
		StatusBar:    lipgloss.NewStyle().Foreground(dim),
		Dim:          lipgloss.NewStyle().Foreground(dim),
		Error:        lipgloss.NewStyle().Bold(true).Foreground(red),
		Warn:         lipgloss.NewStyle().Foreground(yellow),
		OK:           lipgloss.NewStyle().Foreground(green),
		Marked:       lipgloss.NewStyle().Bold(true).Foreground(accent),
		Cursor:       lipgloss.NewStyle().Reverse(true),
		Drift:        lipgloss.NewStyle().Bold(true).Foreground(yellow),
		Dialog:       lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(accent).Padding(0, 1),
		DialogTitle:  lipgloss.NewStyle().Bold(true),
		Button:       lipgloss.NewStyle().Padding(0, 1),
		ButtonActive: lipgloss.NewStyle().Padding(0, 1).Reverse(true).Bold(true),
		HelpKey:      lipgloss.NewStyle().Bold(true).Foreground(accent),
		HelpDesc:     lipgloss.NewStyle().Foreground(dim),
		Prompt:       lipgloss.NewStyle().Bold(true).Foreground(accent),
		BarFull:      lipgloss.NewStyle().Foreground(accent),
		BarEmpty:     lipgloss.NewStyle().Foreground(dim),
	}
	s.stage = map[string]lipgloss.Style{
		"booted":  lipgloss.NewStyle().Foreground(green),
		"failed":  lipgloss.NewStyle().Bold(true).Foreground(red),
		"stalled": lipgloss.NewStyle().Bold(true).Foreground(yellow),
		"off":     lipgloss.NewStyle().Foreground(dim),
	}
	return s
}

// Stage returns the style for a boot stage.
func (s *Styles) Stage(stage string) lipgloss.Style {
	if st, ok := s.stage[stage]; ok {
		return st
	}
	return lipgloss.NewStyle()
}
