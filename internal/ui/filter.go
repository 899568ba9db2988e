package ui

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

// maxFilterNames bounds how many names a host-list term may expand to.
const maxFilterNames = 200_000

// Filter selects nodes. It is parsed from what the admin types after `/`:
// whitespace-separated terms that must all match. A term is
//
//	re:REGEX      the regular expression matches the name, group or stage
//	n[01-08],x1   a host list (see internal/hostlist): the name is in it
//	state:S       the boot stage is S (also stage:S; unknown for never seen)
//	group:G       the group is G;   image:I, power:P likewise
//	dirty         the node is dirty;  clean: it is not
//	drift         it runs another generation than it is assigned
//	marked        the node is marked
//	!TERM         any of the above, negated
//	anything else a case-insensitive substring of name, group, stage or error
//
// The zero Filter matches every node.
type Filter struct {
	Text  string
	terms []term
}

type term struct {
	neg   bool
	match func(n *apitype.NodeView, marked bool) bool
}

// FilterError is a filter that does not parse; Col is the 1-based column
// of the offending term.
type FilterError struct {
	Col int
	Msg string
}

// Error renders "filter: column N: MSG".
func (e *FilterError) Error() string { return fmt.Sprintf("filter: column %d: %s", e.Col, e.Msg) }

// ParseFilter parses the text of a filter.
func ParseFilter(text string) (Filter, error) {
	f := Filter{Text: text}
	i := 0
	for i < len(text) {
		if text[i] == ' ' || text[i] == '\t' {
			i++
			continue
		}
		start := i
		for i < len(text) && text[i] != ' ' && text[i] != '\t' {
			i++
		}
		t, err := parseTerm(text[start:i])
		if err != nil {
			return Filter{}, &FilterError{Col: start + 1, Msg: err.Error()}
		}
		f.terms = append(f.terms, t)
	}
	return f, nil
}

func stageName(n *apitype.NodeView) string {
	if n.State.Stage == "" {
		return "unknown"
	}
	return string(n.State.Stage)
}

func drift(n *apitype.NodeView) bool {
	return n.State.Generation != "" && n.Assigned != "" && n.State.Generation != n.Assigned
}

func parseTerm(s string) (term, error) {
	t := term{}
	if strings.HasPrefix(s, "!") {
		t.neg = true
		s = s[1:]
	}
	if s == "" {
		return t, fmt.Errorf("empty term")
	}
	lower := strings.ToLower(s)
	if k, v, ok := strings.Cut(s, ":"); ok {
		switch strings.ToLower(k) {
		case "re":
			re, err := regexp.Compile(v)
			if err != nil {
				return t, fmt.Errorf("re: %v", err)
			}
			t.match = func(n *apitype.NodeView, _ bool) bool {
				return re.MatchString(n.Name) || re.MatchString(n.Group) || re.MatchString(stageName(n))
			}
			return t, nil
		case "state", "stage":
			v = strings.ToLower(v)
			t.match = func(n *apitype.NodeView, _ bool) bool { return stageName(n) == v }
			return t, nil
		case "group":
			t.match = func(n *apitype.NodeView, _ bool) bool { return n.Group == v }
			return t, nil
		case "image":
			t.match = func(n *apitype.NodeView, _ bool) bool { return n.Image == v }
			return t, nil
		case "power":
			v = strings.ToLower(v)
			t.match = func(n *apitype.NodeView, _ bool) bool { return n.State.Power == v }
			return t, nil
		}
		return t, fmt.Errorf("unknown field %q (re, state, group, image, power)", k)
	}
	switch lower {
	case "dirty":
		t.match = func(n *apitype.NodeView, _ bool) bool { return n.Dirty }
		return t, nil
	case "clean":
		t.match = func(n *apitype.NodeView, _ bool) bool { return !n.Dirty }
		return t, nil
	case "drift":
		t.match = func(n *apitype.NodeView, _ bool) bool { return drift(n) }
		return t, nil
	case "marked":
		t.match = func(_ *apitype.NodeView, marked bool) bool { return marked }
		return t, nil
	}
	if hostlist.IsRange(s) {
		cnt, err := hostlist.Count(s)
		if err != nil {
			return t, err
		}
		if cnt > maxFilterNames {
			return t, fmt.Errorf("host list %q names %d hosts, more than %d", s, cnt, maxFilterNames)
		}
		names, err := hostlist.Expand(s)
		if err != nil {
			return t, err
		}
		set := make(map[string]struct{}, len(names))
		for _, n := range names {
			set[n] = struct{}{}
		}
		t.match = func(n *apitype.NodeView, _ bool) bool { _, ok := set[n.Name]; return ok }
		return t, nil
	}
	t.match = func(n *apitype.NodeView, _ bool) bool {
		return containsFold(n.Name, lower) || containsFold(n.Group, lower) ||
			containsFold(stageName(n), lower) || containsFold(n.State.Error, lower)
	}
	return t, nil
}

// containsFold reports whether s contains the lower-case needle, ignoring
// ASCII case, without allocating.
func containsFold(s, needle string) bool {
	if len(needle) > len(s) {
		return false
	}
	for i := 0; i+len(needle) <= len(s); i++ {
		j := 0
		for ; j < len(needle); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != needle[j] {
				break
			}
		}
		if j == len(needle) {
			return true
		}
	}
	return false
}

// Empty reports whether the filter matches everything.
func (f Filter) Empty() bool { return len(f.terms) == 0 }

// Match reports whether node n (marked or not) passes the filter.
func (f Filter) Match(n *apitype.NodeView, marked bool) bool {
	for _, t := range f.terms {
		if t.match(n, marked) == t.neg {
			return false
		}
	}
	return true
}
