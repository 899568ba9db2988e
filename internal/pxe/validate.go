package pxe

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidationError is a problem in boot-entry text (an override), at a
// 1-based line and column (in characters) inside that text. The caller adds
// where the text itself sits, e.g. the override's place in nodes.yaml.
type ValidationError struct {
	Format string // "ipxe" or "pxelinux"
	Line   int
	Col    int
	Msg    string
}

// Error renders the error as FORMAT:LINE:COL: MSG.
func (e *ValidationError) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.Format, e.Line, e.Col, e.Msg)
}

// ipxeCommands are the commands of iPXE's documented command set
// (ipxe.org/cmd) plus the synonyms the source registers. A build has the
// ones its config enables; Debian's common build has most of them.
var ipxeCommands = wordSet(`
autoboot boot certfree certstat certstore chain choose clear colour config
console cpair cpuid dhcp digest echo exit fcels fcstat fdt form gdbstub goto
help ibstat ifclose ifconf ifopen ifstat imgargs imgdecrypt imgexec
imgextract imgfetch imgfree imgload imgmem imgselect imgstat imgtrust
imgverify inc initrd ipstat iseq isset item iwlist iwstat kernel login lotest
md5sum menu module neighbour nslookup nstat ntp param params pciscan ping
poweroff present profstat prompt pxebs read reboot replace route sanboot
sanhook sanunhook set sha1sum sha256sum shell shim show sleep sync time
usbscan vcreate vdestroy
`)

// pxelinuxDirectives are the configuration keywords of syslinux 6
// (doc/syslinux.txt and the menu, f-key and file-type keywords).
var pxelinuxDirectives = wordSet(`
allowoptions append boot bss com32 comboot config console default display
endtext f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12 fdimage fdt fdtdir font
implicit include initrd ipappend kbdmap kernel label linux localboot menu
nocomplete noescape nohalt onerror ontimeout path prompt pxe pxeretry say
serial sysappend text timeout totaltimeout ui
`)

// pxelinuxMenu are the second words of MENU lines (menu.c32/vesamenu.c32).
var pxelinuxMenu = wordSet(`
autoboot background begin clear cmdlinerow color default disable end exit
goto helpmsgendrow helpmsgrow hidden hiddenrow hide hshift immediate include
indent label margin master msgcolor nosave notabmsg passwd passwordmargin
passwordrow quit resolution rows save separator shiftkey start tabmsg
tabmsgrow timeoutrow title vshift width endrow
`)

func wordSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// ValidateIPXE checks an iPXE script: the first line is "#!ipxe"; every
// command is a known iPXE command; "||", "&&" and ";" join commands that
// exist; ":label" lines define labels and every goto names one; "#" starts
// a comment. A backslash at the end of a line continues it, as in iPXE. The
// error is a *ValidationError; the first problem in text order is reported.
func ValidateIPXE(text string) error {
	if err := checkText(FormatIPXE, text); err != nil {
		return err
	}
	return validateIPXE(text)
}

// ValidatePxelinux checks a pxelinux config: known directives
// (case-insensitive), numeric arguments where syslinux wants numbers, at
// least one LABEL, a DEFAULT (or UI) whose label exists, a kernel
// (KERNEL, LINUX, COM32, LOCALBOOT, CONFIG...) in every LABEL, and at least
// one KERNEL or LINUX. The error is a *ValidationError; the first problem
// in text order is reported.
func ValidatePxelinux(text string) error {
	return validatePxelinux(text, true)
}

func validatePxelinux(text string, requireKernel bool) error {
	if err := checkText(FormatPxelinux, text); err != nil {
		return err
	}
	return validatePxelinuxText(text, requireKernel)
}

// checkText refuses control characters (other than tab, and CR before a
// newline) and invalid UTF-8, at their position.
func checkText(format, text string) error {
	line, col := 1, 1
	for i := 0; i < len(text); {
		c, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			return &ValidationError{format, line, col, "invalid UTF-8"}
		case c == '\n':
			line, col = line+1, 0
		case c == '\t':
		case c == '\r' && (i+1 == len(text) || text[i+1] == '\n'):
		case isControl(c):
			return &ValidationError{format, line, col, fmt.Sprintf("control character %U", c)}
		}
		col++
		i += size
	}
	return nil
}

// srcLine is one line of text with its CR removed.
type srcLine struct {
	text string
	num  int
}

func splitLines(text string) []srcLine {
	parts := strings.Split(text, "\n")
	if len(parts) > 1 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	out := make([]srcLine, len(parts))
	for i, p := range parts {
		out[i] = srcLine{strings.TrimSuffix(p, "\r"), i + 1}
	}
	return out
}

// word is a whitespace-delimited word and where it starts.
type word struct {
	s         string
	line, col int
}

// dynamic reports whether the word comes from a template action or an iPXE
// setting, whose value is not known before the node boots.
func (w word) dynamic() bool {
	return strings.IndexByte(w.s, maskSentinel) >= 0 || strings.Contains(w.s, "${")
}

// runeCol is the 1-based column, in characters, of byte offset off in s.
func runeCol(s string, off int) int {
	if off > len(s) {
		off = len(s)
	}
	return utf8.RuneCountInString(s[:off]) + 1
}

// splitWords splits logical-line pieces (each a physical line fragment) into
// words on spaces and tabs. A word may run across a continuation.
func splitWords(pieces []srcLine) []word {
	var words []word
	var cur strings.Builder
	var start word
	in := false
	for _, p := range pieces {
		for i := 0; i < len(p.text); i++ {
			c := p.text[i]
			if c == ' ' || c == '\t' || c == '\r' {
				if in {
					start.s = cur.String()
					words = append(words, start)
					cur.Reset()
					in = false
				}
				continue
			}
			if !in {
				start = word{line: p.num, col: runeCol(p.text, i)}
				in = true
			}
			cur.WriteByte(c)
		}
	}
	if in {
		start.s = cur.String()
		words = append(words, start)
	}
	return words
}

type errList []*ValidationError

func (l *errList) add(format string, line, col int, msg string, args ...any) {
	*l = append(*l, &ValidationError{Format: format, Line: line, Col: col, Msg: fmt.Sprintf(msg, args...)})
}

// first returns the earliest error by position, or nil.
func (l errList) first() error {
	if len(l) == 0 {
		return nil
	}
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Col < l[j].Col
	})
	return l[0]
}

func validateIPXE(text string) error {
	var errs errList
	if !strings.HasPrefix(text, "#!ipxe") || (len(text) > 6 && !strings.ContainsRune(" \t\r\n", rune(text[6]))) {
		errs.add(FormatIPXE, 1, 1, "first line must be %q", "#!ipxe")
		return errs.first()
	}
	lines := splitLines(text)
	labels := map[string]int{}
	dynLabels := false
	var gotos []word
	commands := 0

	for i := 0; i < len(lines); i++ {
		// Join backslash continuations, as iPXE does (without a space).
		pieces := []srcLine{lines[i]}
		for strings.HasSuffix(pieces[len(pieces)-1].text, `\`) {
			last := &pieces[len(pieces)-1]
			last.text = strings.TrimSuffix(last.text, `\`)
			if i+1 >= len(lines) {
				break
			}
			i++
			pieces = append(pieces, lines[i])
		}
		words := splitWords(pieces)
		if len(words) == 0 {
			continue
		}
		if strings.HasPrefix(words[0].s, ":") {
			l := words[0]
			name := l.s[1:]
			switch {
			case name == "":
				errs.add(FormatIPXE, l.line, l.col, "empty label")
			case l.dynamic():
				dynLabels = true
			default:
				if prev, dup := labels[name]; dup {
					errs.add(FormatIPXE, l.line, l.col, "label %q already defined on line %d", name, prev)
				} else {
					labels[name] = l.line
				}
			}
			words = words[1:]
		}
		// Cut the comment, then split on the separators.
		for j, w := range words {
			if strings.HasPrefix(w.s, "#") {
				words = words[:j]
				break
			}
		}
		var seg []word
		var sep *word
		flush := func(next *word) {
			if len(seg) == 0 {
				switch {
				case sep != nil:
					errs.add(FormatIPXE, sep.line, sep.col, "no command after %q", sep.s)
				case next != nil:
					errs.add(FormatIPXE, next.line, next.col, "no command before %q", next.s)
				}
				return
			}
			commands++
			checkIPXECommand(&errs, seg, &gotos)
		}
		for j := range words {
			w := words[j]
			if w.s == "||" || w.s == "&&" || w.s == ";" {
				flush(&words[j])
				seg, sep = nil, &words[j]
				continue
			}
			seg = append(seg, w)
		}
		if len(seg) > 0 || sep != nil {
			flush(nil)
		}
	}
	if commands == 0 && len(errs) == 0 {
		errs.add(FormatIPXE, 1, 1, "script has no commands")
	}
	if !dynLabels {
		for _, g := range gotos {
			if _, ok := labels[g.s]; !ok {
				msg := fmt.Sprintf("goto target %q is not a label in this script", g.s)
				errs.add(FormatIPXE, g.line, g.col, "%s", msg+didYouMean(g.s, keys(labels), false))
			}
		}
	}
	return errs.first()
}

// checkIPXECommand checks one command (its words, separators excluded).
func checkIPXECommand(errs *errList, seg []word, gotos *[]word) {
	cmd := seg[0]
	if cmd.dynamic() {
		return
	}
	if !ipxeCommands[cmd.s] {
		msg := fmt.Sprintf("unknown command %q", cmd.s)
		errs.add(FormatIPXE, cmd.line, cmd.col, "%s", msg+didYouMean(cmd.s, keys(ipxeCommands), false))
		return
	}
	args := seg[1:]
	switch cmd.s {
	case "goto":
		if len(args) != 1 {
			errs.add(FormatIPXE, cmd.line, cmd.col, "goto takes one label, got %d arguments", len(args))
			return
		}
		if !args[0].dynamic() {
			*gotos = append(*gotos, args[0])
		}
	case "sleep":
		if len(args) != 1 {
			errs.add(FormatIPXE, cmd.line, cmd.col, "sleep takes one number of seconds, got %d arguments", len(args))
			return
		}
		if !args[0].dynamic() {
			if _, err := strconv.ParseUint(args[0].s, 0, 32); err != nil {
				errs.add(FormatIPXE, args[0].line, args[0].col, "sleep: %q is not a number of seconds", args[0].s)
			}
		}
	case "kernel", "chain", "imgfetch", "module", "initrd", "imgexec", "imgload", "imgselect":
		// "boot" alone boots the selected image; these need an image.
		if cmd.s != "imgexec" && nonOptions(args) == 0 {
			errs.add(FormatIPXE, cmd.line, cmd.col, "%s needs an image URL or name", cmd.s)
		}
	case "iseq":
		if nonOptions(args) != 2 {
			errs.add(FormatIPXE, cmd.line, cmd.col, "iseq takes two values, got %d", nonOptions(args))
		}
	}
}

// nonOptions counts the words that are not options. Options that take a
// value (--name x, -n x) are counted as one option.
func nonOptions(args []word) int {
	n := 0
	for i := 0; i < len(args); i++ {
		a := args[i].s
		switch {
		case a == "--name" || a == "-n" || a == "--timeout" || a == "-t" || a == "--key" || a == "-k":
			i++ // value follows
		case strings.HasPrefix(a, "-") && len(a) > 1 && !args[i].dynamic():
		default:
			n++
		}
	}
	return n
}

// Kinds of pxelinux directives that make a LABEL bootable.
var pxelinuxKernels = wordSet(`kernel linux boot bss pxe fdimage comboot com32 localboot config`)

// Directives with a number as argument.
var pxelinuxNumeric = wordSet(`prompt timeout totaltimeout implicit allowoptions noescape nocomplete nohalt ipappend sysappend localboot console pxeretry`)

// Directives that need an argument.
var pxelinuxNeedArg = wordSet(`default ui label kernel linux boot bss pxe fdimage comboot com32 config initrd display ontimeout onerror font kbdmap include path fdt fdtdir serial f0 f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12`)

// Directives that belong inside a LABEL.
var pxelinuxInLabel = wordSet(`kernel linux boot bss pxe fdimage comboot com32 localboot initrd`)

func validatePxelinuxText(text string, requireKernel bool) error {
	var errs errList
	const F = FormatPxelinux
	type label struct {
		w         word
		hasKernel bool
		broken    bool // a line inside had an error: do not pile on
	}
	var (
		labels     []*label
		byName     = map[string]*label{}
		cur        *label
		defaults   []word
		haveUI     bool
		kernels    int
		inText     *word
		dynDefault bool
		dynLabel   bool
	)
	checkLine := func(ln srcLine) {
		words := splitWords([]srcLine{ln})
		if len(words) == 0 || strings.HasPrefix(words[0].s, "#") {
			return
		}
		kw := words[0]
		key := strings.ToLower(kw.s)
		if inText != nil {
			if key == "endtext" {
				inText = nil
			}
			return
		}
		if kw.dynamic() {
			return
		}
		if !pxelinuxDirectives[key] {
			msg := fmt.Sprintf("unknown directive %q", kw.s)
			errs.add(F, kw.line, kw.col, "%s", msg+didYouMean(key, keys(pxelinuxDirectives), true))
			return
		}
		args := words[1:]
		if pxelinuxNeedArg[key] && len(args) == 0 {
			errs.add(F, kw.line, kw.col, "%s needs an argument", strings.ToUpper(key))
			return
		}
		if pxelinuxNumeric[key] && len(args) > 0 && !args[0].dynamic() {
			v, err := strconv.Atoi(args[0].s)
			if err != nil || (v < 0 && key != "localboot") {
				errs.add(F, args[0].line, args[0].col, "%s takes a number, not %q", strings.ToUpper(key), args[0].s)
				return
			}
		}
		if pxelinuxNumeric[key] && len(args) == 0 {
			errs.add(F, kw.line, kw.col, "%s needs a number", strings.ToUpper(key))
			return
		}
		if pxelinuxInLabel[key] && cur == nil {
			errs.add(F, kw.line, kw.col, "%s outside a LABEL (write LABEL name first)", strings.ToUpper(key))
			return
		}
		switch key {
		case "label":
			name := args[0]
			if name.dynamic() {
				dynLabel = true
				cur = &label{w: name}
				labels = append(labels, cur)
				break
			}
			if prev, dup := byName[name.s]; dup {
				errs.add(F, name.line, name.col, "label %q already defined on line %d", name.s, prev.w.line)
			}
			cur = &label{w: name}
			labels = append(labels, cur)
			byName[name.s] = cur
		case "default":
			if args[0].dynamic() {
				dynDefault = true
			}
			defaults = append(defaults, args[0])
		case "ui":
			haveUI = true
		case "text":
			if strings.ToLower(args0(args)) != "help" {
				errs.add(F, kw.line, kw.col, "TEXT must be followed by HELP")
				return
			}
			if cur == nil {
				errs.add(F, kw.line, kw.col, "TEXT HELP outside a LABEL")
			}
			kwc := kw
			inText = &kwc
		case "endtext":
			errs.add(F, kw.line, kw.col, "ENDTEXT without TEXT HELP")
		case "menu":
			if len(args) == 0 {
				errs.add(F, kw.line, kw.col, "MENU needs a keyword (TITLE, LABEL, DEFAULT...)")
				return
			}
			if sub := strings.ToLower(args[0].s); !pxelinuxMenu[sub] && !args[0].dynamic() {
				msg := fmt.Sprintf("unknown MENU keyword %q", args[0].s)
				errs.add(F, args[0].line, args[0].col, "%s", msg+didYouMean(sub, keys(pxelinuxMenu), true))
			}
		}
		if pxelinuxKernels[key] && cur != nil {
			cur.hasKernel = true
		}
		if key == "kernel" || key == "linux" {
			kernels++
		}
	}
	for _, ln := range splitLines(text) {
		before := len(errs)
		checkLine(ln)
		if cur != nil && len(errs) > before {
			cur.broken = true // do not pile "no KERNEL" on a line's error
		}
	}
	if inText != nil {
		errs.add(F, inText.line, inText.col, "TEXT HELP without ENDTEXT")
	}
	for _, l := range labels {
		if !l.hasKernel && !l.broken {
			errs.add(F, l.w.line, l.w.col, "label %q has no KERNEL, LINUX, COM32, LOCALBOOT or CONFIG", l.w.s)
		}
	}
	if len(errs) > 0 {
		return errs.first()
	}
	switch {
	case len(labels) == 0:
		errs.add(F, 1, 1, "no LABEL: the config boots nothing")
	case len(defaults) == 0 && !haveUI:
		errs.add(F, 1, 1, "no DEFAULT: name the label to boot with DEFAULT")
	case requireKernel && kernels == 0:
		errs.add(F, 1, 1, "no KERNEL or LINUX line")
	}
	if !dynDefault && !dynLabel {
		for _, d := range defaults {
			if _, ok := byName[d.s]; !ok {
				msg := fmt.Sprintf("DEFAULT %q is not a LABEL in this config", d.s)
				errs.add(F, d.line, d.col, "%s", msg+didYouMean(d.s, keys(byName), false))
			}
		}
	}
	return errs.first()
}

func args0(args []word) string {
	if len(args) == 0 {
		return ""
	}
	return args[0].s
}

// keys returns the keys of m, sorted.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// didYouMean returns ` (did you mean "X"?)` naming the candidate suggest
// picks for s, in upper case when upper (pxelinux keywords), or "" when no
// candidate is close. Every "unknown name" message of both validators ends
// with it.
func didYouMean(s string, candidates []string, upper bool) string {
	c := suggest(s, candidates)
	if c == "" {
		return ""
	}
	if upper {
		c = strings.ToUpper(c)
	}
	return fmt.Sprintf(" (did you mean %q?)", c)
}

// suggest returns the candidate closest to s by edit distance when it is
// close enough to be a likely typo (distance 1, or 2 for longer words),
// "" otherwise. Ties go to the alphabetically first candidate.
func suggest(s string, candidates []string) string {
	if s == "" || len(s) > 64 {
		return ""
	}
	sort.Strings(candidates)
	best, bestD := "", 1<<30
	for _, c := range candidates {
		d := editDistance(strings.ToLower(s), strings.ToLower(c))
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 1
	if len(s) >= 5 {
		limit = 2
	}
	if bestD > limit || best == s {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, by bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
