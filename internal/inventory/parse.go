package inventory

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/netbootui/netbootui/internal/hostlist"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/power/backends"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
	"github.com/netbootui/netbootui/internal/roottransport/nbd"
	"github.com/netbootui/netbootui/internal/roottransport/nfs"
)

// MaxNodes is the largest number of nodes an inventory may hold after its
// ranges are expanded.
const MaxNodes = 100_000

// Defaults used when neither a node nor its group says. A BMC's defaults
// are its protocol's (see DefaultBMCProtocol and power.Protocol).
const (
	DefaultArch   = ArchBIOS
	DefaultLoader = LoaderIPXE
)

var (
	nameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	generationRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	hostRE       = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
	macRE        = regexp.MustCompile(`^[0-9A-Fa-f]{2}(?:(:)[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){4}|(-)[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){4})$`)
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	persistRE    = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
	labelRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,15}$`)
)

// Keys allowed in each section, in the order the error message lists them.
var (
	topKeys         = []string{"settings", "images", "groups", "nodes"}
	settingsKeys    = []string{"secrets", "overlay_dirty_bytes", "nfs", "nbd"}
	nfsKeys         = []string{"server", "port", "export", "dir"}
	nbdKeys         = []string{"server", "port"}
	imageKeys       = []string{"description", "recipe", "kernel_args", "root"}
	groupKeys       = []string{"image", "arch", "loader", "kernel_args", "bmc", "boot_override", "persist", "persist_disk", "user_data", "vendor_data"}
	persistDiskKeys = []string{"label", "missing", "format"}
	nodeKeys        = []string{"name", "group", "ip", "arch", "loader", "image", "kernel_args", "nics", "bmc", "boot_override", "user_data", "vendor_data"}
	nicKeys         = []string{"mac", "boot", "name"}
	overrideKeys    = []string{"ipxe", "pxelinux"}
)

// Load reads and validates the inventory file at path.
func Load(path string, opts ...Option) (*Inventory, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, opts...)
}

// MaxFileSize bounds an inventory file. MaxNodes nodes written one entry
// each take about 6.5 MB; a bigger file is refused before it is parsed (a YAML
// node tree costs many times the file's size in memory).
const MaxFileSize = 16 << 20

// readFile reads an inventory file, refusing one larger than MaxFileSize
// without reading it.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > MaxFileSize {
		return nil, tooBig(path, st.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, tooBig(path, int64(len(data)))
	}
	return data, nil
}

func tooBig(path string, size int64) ErrorList {
	return ErrorList{{Pos: Pos{File: path, Line: 1, Col: 1},
		Msg: fmt.Sprintf("the file is %d bytes, larger than the %d MiB an inventory may be", size, MaxFileSize>>20)}}
}

// Revision returns the revision of an inventory file's bytes: hex sha256.
func Revision(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Parse validates an inventory read from path (the path is used in error
// positions and to find the secrets file). Any problem gives an ErrorList
// sorted by position; the inventory is returned only when there is none.
// The BMCs are checked against the built-in power backends (WithProtocols:
// others).
func Parse(path string, data []byte, opts ...Option) (*Inventory, error) {
	if len(data) > MaxFileSize {
		return nil, tooBig(path, int64(len(data)))
	}
	p := &parser{file: path}
	for _, o := range opts {
		o(p)
	}
	if p.protos == nil {
		p.protos = backends.Registry()
	}
	inv := p.parse(data)
	if len(p.errs) > 0 {
		return nil, sortErrors(p.errs)
	}
	inv.Revision = Revision(data)
	return inv, nil
}

// setting is a value with where it was written; set is false when absent.
type setting[T any] struct {
	v   T
	set bool
	at  *yaml.Node
}

func (s *setting[T]) put(v T, at *yaml.Node) { s.v, s.set, s.at = v, true, at }

// spec is what a group or a node entry says, before inheritance.
type spec struct {
	arch, loader     setting[string]
	image            setting[string] // image name
	generation       string
	kernelArgs       setting[string]
	bmc              bmcSpec
	bmcAt            *yaml.Node // the bmc key, for errors about the entry's BMC
	overrideIPXE     setting[string]
	overridePxelinux setting[string]
	persist          []string     // group only
	persistDisk      *PersistDisk // group only
	persistDiskAt    *yaml.Node   // its key, for errors found at a node
	userData         setting[string]
	vendorData       setting[string]
}

type nicSpec struct {
	name string
	mac  net.HardwareAddr
	at   *yaml.Node // the mac value
	boot bool
}

type parser struct {
	file   string
	protos *power.Registry // the BMC protocols (see WithProtocols)
	secret bool            // a secrets file: error messages never quote a value
	lines  int             // number of lines in the file, for clamping positions
	errs   ErrorList
	seen   map[string]bool // de-duplicates errors reported once per entry
	// repeated holds errors reported once for every entry that repeats them.
	repeated map[string]*repeatedError

	images     map[string]*Image
	groupSpecs map[string]*spec
	passwords  []passwordUse // every password value, to check against secrets
	nfs        NFS           // settings.nfs, read before the images
	nbd        NBD           // settings.nbd, read before the images
}

func (p *parser) pos(n *yaml.Node) Pos {
	if n == nil || n.Line == 0 {
		return Pos{File: p.file, Line: 1, Col: 1}
	}
	if p.lines > 0 && n.Line > p.lines {
		// An empty value after the last line ("---" alone): point at the end.
		return Pos{File: p.file, Line: p.lines, Col: 1}
	}
	return Pos{File: p.file, Line: n.Line, Col: max(n.Column, 1)}
}

func (p *parser) errorf(n *yaml.Node, format string, a ...any) {
	p.errs = append(p.errs, &Error{Pos: p.pos(n), Msg: fmt.Sprintf(format, a...)})
}

// errorOnce reports at most one error per key.
func (p *parser) errorOnce(key string, n *yaml.Node, format string, a ...any) {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[key] {
		return
	}
	p.seen[key] = true
	p.errorf(n, format, a...)
}

// errorRepeated reports one mistake that many entries repeat (a group name
// they all misspell) once, at its first use, and counts the other uses into
// that message instead of adding an error per entry.
func (p *parser) errorRepeated(key string, n *yaml.Node, format string, a ...any) {
	if p.repeated == nil {
		p.repeated = map[string]*repeatedError{}
	}
	if r := p.repeated[key]; r != nil {
		r.more++
		r.err.Msg = fmt.Sprintf("%s (and %d more entries)", r.msg, r.more)
		return
	}
	p.errorf(n, format, a...)
	e := p.errs[len(p.errs)-1]
	p.repeated[key] = &repeatedError{err: e, msg: e.Msg}
}

// repeatedError is an error reported once for many entries.
type repeatedError struct {
	err  *Error
	msg  string // the message of the first use
	more int    // uses after the first
}

// checkText reports control characters and invalid UTF-8 with their exact
// position, which the YAML library reports without one.
func (p *parser) checkText(data []byte) bool {
	line, col := 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			p.errs = append(p.errs, &Error{Pos: Pos{p.file, line, col}, Msg: fmt.Sprintf("invalid UTF-8 byte 0x%02x", data[i])})
			return false
		case r == '\n':
			line, col = line+1, 0
		case r == '\r' && (i+1 >= len(data) || data[i+1] != '\n'):
			p.errs = append(p.errs, &Error{Pos: Pos{p.file, line, col}, Msg: "carriage return without a line feed: save the file with \\n or \\r\\n line ends"})
			return false
		case r == '\u2028' || r == '\u2029':
			p.errs = append(p.errs, &Error{Pos: Pos{p.file, line, col}, Msg: fmt.Sprintf("line separator %U is not allowed", r)})
			return false
		case r == '\t' || r == '\r' || r == '\uFEFF':
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			p.errs = append(p.errs, &Error{Pos: Pos{p.file, line, col}, Msg: fmt.Sprintf("control character %U is not allowed", r)})
			return false
		}
		i += size
		col++
	}
	return true
}

// yamlError turns a yaml.v3 syntax error into a positioned Error. The library
// reports a line only, and often the line where the enclosing block started
// rather than the offending one; so the line is found again as the shortest
// run of leading lines that fails with the same message, searched outwards
// from the reported line (each try parses a prefix of the file, so a search
// over the whole file would cost a parse per halving). The column is that of
// the line's first tab for tab errors, else of its first non-blank character.
func (p *parser) yamlError(data []byte, err error) {
	msg := yamlMessage(err)
	line := 1
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if n := firstFailingLine(data, lines, line, msg); n > 0 {
		line = n
	}
	line = max(1, min(line, len(lines)))
	col := 1
	if line <= len(lines) {
		text := bytes.TrimRight(lines[line-1], "\r\n")
		trimmed := bytes.TrimLeft(text, " \t")
		col = utf8.RuneCount(text[:len(text)-len(trimmed)]) + 1
		if strings.Contains(msg, "tab") {
			if i := bytes.IndexByte(text, '\t'); i >= 0 {
				col = utf8.RuneCount(text[:i]) + 1
			}
		}
	}
	p.errs = append(p.errs, &Error{Pos: Pos{p.file, line, col}, Msg: "YAML syntax error: " + msg})
}

// yamlMessage strips "yaml: " and "line N: " from a yaml.v3 error.
func yamlMessage(err error) string {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		return m[2]
	}
	return strings.TrimPrefix(msg, "yaml: ")
}

// firstFailingLine returns the smallest n such that the first n lines of data
// (split into lines) fail to parse with msg, or 0 when the whole input does
// not. The whole input failed with msg at line hint; the search gallops from
// hint towards the answer and then bisects, so it parses O(log distance)
// prefixes rather than O(log lines).
func firstFailingLine(data []byte, lines [][]byte, hint int, msg string) int {
	ends := make([]int, len(lines)+1) // ends[n]: bytes in the first n lines
	for i, l := range lines {
		ends[i+1] = ends[i] + len(l)
	}
	fails := func(n int) bool {
		dec := yaml.NewDecoder(bytes.NewReader(data[:ends[n]]))
		for range 2 {
			var doc yaml.Node
			if err := dec.Decode(&doc); err != nil {
				return !errors.Is(err, io.EOF) && yamlMessage(err) == msg
			}
		}
		return false
	}
	total := len(lines)
	if total == 0 {
		return 0
	}
	hint = max(1, min(hint, total))
	// Find lo < hi with fails(hi) and !fails(lo) (lo 0 stands for "nothing").
	var lo, hi int
	if fails(hint) {
		hi = hint
		for step := 1; ; step *= 2 {
			lo = max(hint-step, 0)
			if lo == 0 || !fails(lo) {
				break
			}
			hi = lo
		}
	} else {
		lo = hint
		for step := 1; ; step *= 2 {
			hi = min(hint+step, total)
			if fails(hi) {
				break
			}
			if hi == total {
				return 0
			}
			lo = hi
		}
	}
	for lo+1 < hi { // fails(hi), !fails(lo)
		mid := lo + (hi-lo)/2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

func (p *parser) parse(data []byte) *Inventory {
	inv := &Inventory{Path: p.file, Groups: map[string]*Group{}, Images: map[string]*Image{}}
	p.images = inv.Images
	p.groupSpecs = map[string]*spec{}
	p.lines = bytes.Count(data, []byte("\n")) + 1
	if !p.checkText(data) {
		return inv
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errs = append(p.errs, &Error{Pos: Pos{p.file, 1, 1}, Msg: "empty inventory: expected a mapping with settings, images, groups and nodes"})
		} else {
			p.yamlError(data, err)
		}
		return inv
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorf(&extra, "a second YAML document is not allowed in an inventory")
		return inv
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(data, err)
		return inv
	}
	if len(doc.Content) == 0 {
		p.errorf(&doc, "empty inventory: expected a mapping with settings, images, groups and nodes")
		return inv
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "inventory must be a mapping with settings, images, groups and nodes, got %s", p.describe(root))
		return inv
	}
	var settingsN, imagesN, groupsN, nodesN *yaml.Node
	p.mapping(root, "the inventory", topKeys, func(key string, _, v *yaml.Node) {
		switch key {
		case "settings":
			settingsN = v
		case "images":
			imagesN = v
		case "groups":
			groupsN = v
		case "nodes":
			nodesN = v
		}
	})
	var secretsAt *yaml.Node
	p.mapping(settingsN, "settings", settingsKeys, func(key string, _, v *yaml.Node) {
		switch key {
		case "secrets":
			if s, ok := p.str(v, "settings.secrets"); ok {
				if s == "" {
					p.errorf(v, "settings.secrets is empty: name the secrets file or remove the key")
				}
				inv.Settings.Secrets = s
				secretsAt = v
			}
		case "overlay_dirty_bytes":
			if n, ok := p.integer(v, "settings.overlay_dirty_bytes"); ok {
				if n < 0 {
					p.errorf(v, "settings.overlay_dirty_bytes must not be negative, got %d", n)
				}
				inv.Settings.OverlayDirtyBytes = n
			}
		case "nfs":
			p.parseNFS(v, &inv.Settings.NFS)
		case "nbd":
			p.parseNBD(v, &inv.Settings.NBD)
		}
	})
	p.nfs, p.nbd = inv.Settings.NFS, inv.Settings.NBD
	p.parseImages(imagesN)
	p.parseGroups(groupsN, inv)
	p.parseNodes(nodesN, inv)
	if inv.Settings.Secrets != "" && secretsAt != nil {
		p.checkPasswords(inv.SecretsPath())
	}
	inv.index()
	return inv
}

// checkPasswords checks every password reference against the secrets file,
// when that file can be loaded. A missing or unreadable secrets file is not an
// inventory error: the power service reports it when it needs a password.
func (p *parser) checkPasswords(path string) {
	sec, err := LoadSecrets(path)
	if err != nil {
		return
	}
	for _, use := range p.passwords {
		n := use.at
		pw, ok := sec.Password(n.Value)
		if !ok {
			p.errorOnce("pwref "+p.pos(n).String(), n, "unknown password reference %q: not in %s bmc_passwords and %s is not set", n.Value, filepath.Base(path), EnvPasswordVar(n.Value))
			continue
		}
		if pr, known := p.protos.Lookup(use.protocol); known {
			if err := pr.CheckPassword(pw); err != nil {
				p.errorOnce("pwlen "+use.protocol+" "+n.Value, n, "password %q (from %s or %s): %v", n.Value, filepath.Base(path), EnvPasswordVar(n.Value), err)
			}
		}
	}
}

// describe names what n is for an error message: its kind and, for a scalar,
// its value; in a secrets file (p.secret) scalar values are left out, since
// any of them may be a password.
func (p *parser) describe(n *yaml.Node) string {
	if p.secret && n.Kind == yaml.ScalarNode {
		switch t := n.ShortTag(); t {
		case "!!null":
			return "nothing (null)"
		case "!!str":
			return "a string"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		default:
			return fmt.Sprintf("a %s value", t)
		}
	}
	return describe(n)
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing (null)"
		case "!!bool":
			return fmt.Sprintf("a boolean (%s)", n.Value)
		case "!!int", "!!float":
			return fmt.Sprintf("a number (%s)", n.Value)
		case "!!str":
			return fmt.Sprintf("a string (%q)", n.Value)
		default:
			return fmt.Sprintf("a %s value", n.ShortTag())
		}
	}
	return "an unknown YAML node"
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// alias reports (and rejects) YAML aliases, which the inventory does not use.
func (p *parser) alias(n *yaml.Node) bool {
	if n != nil && n.Kind == yaml.AliasNode {
		p.errorf(n, "YAML aliases (*%s) are not supported in an inventory: write the values out or use a group", n.Value)
		return true
	}
	return false
}

// mapping walks a mapping's pairs, rejecting duplicate and unknown keys. A
// missing or null value is an empty mapping. It returns how many keys it
// rejected, so that callers do not also report a required key as missing when
// it is probably the misspelt one.
func (p *parser) mapping(n *yaml.Node, what string, allowed []string, fn func(key string, k, v *yaml.Node)) (rejected int) {
	if isNull(n) || p.alias(n) {
		return 0
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping, got %s", what, p.describe(n))
		return 1
	}
	first := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if p.alias(k) || p.alias(v) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "a key in %s must be a plain name, got %s", what, p.describe(k))
			rejected++
			continue
		}
		if prev, dup := first[k.Value]; dup {
			p.errorf(k, "duplicate key %q in %s (first at line %d)", k.Value, what, prev.Line)
			continue
		}
		first[k.Value] = k
		if allowed != nil && !slices.Contains(allowed, k.Value) {
			p.errorf(k, "unknown key %q in %s (allowed: %s)", k.Value, what, strings.Join(allowed, ", "))
			rejected++
			continue
		}
		fn(k.Value, k, v)
	}
	return rejected
}

// str reads a string scalar; numbers are taken as written. ok is false when
// the value is null (not set) or has the wrong type (reported).
func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if isNull(n) || p.alias(n) {
		return "", false
	}
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!str", "!!int", "!!float":
			return n.Value, true
		}
	}
	p.errorf(n, "%s must be a string, got %s", what, p.describe(n))
	return "", false
}

func (p *parser) integer(n *yaml.Node, what string) (int64, bool) {
	if isNull(n) || p.alias(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var v int64
		if err := n.Decode(&v); err == nil {
			return v, true
		}
		p.errorf(n, "%s: number %s is out of range", what, n.Value)
		return 0, false
	}
	p.errorf(n, "%s must be a whole number, got %s", what, p.describe(n))
	return 0, false
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	if isNull(n) || p.alias(n) {
		return false, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	p.errorf(n, "%s must be true or false, got %s", what, p.describe(n))
	return false, false
}

func (p *parser) sequence(n *yaml.Node, what string) ([]*yaml.Node, bool) {
	if isNull(n) || p.alias(n) {
		return nil, false
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list, got %s", what, p.describe(n))
		return nil, false
	}
	return n.Content, true
}

// rootError says why an image's root transport name is refused.
func rootError(name string, err error) string {
	if err != nil {
		return err.Error()
	}
	return "empty: name a root transport (" + strings.Join(builtin.Registry().Names(), ", ") + ") or leave the key out"
}

func (p *parser) parseImages(n *yaml.Node) {
	p.mapping(n, "images", nil, func(name string, k, v *yaml.Node) {
		if !nameRE.MatchString(name) {
			p.errorf(k, "bad image name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
		img := &Image{Name: name, Defined: p.pos(k)}
		what := "image " + name
		p.mapping(v, what, imageKeys, func(key string, _, v *yaml.Node) {
			s, ok := p.str(v, what+": "+key)
			if !ok {
				return
			}
			switch key {
			case "description":
				img.Description = s
			case "recipe":
				img.Recipe = s
			case "kernel_args":
				img.KernelArgs = s
			case "root":
				if _, err := builtin.Registry().Lookup(s); err != nil || s == "" {
					p.errorf(v, "%s: root: %s", what, rootError(s, err))
					return
				}
				if s == nfs.Name && p.nfs.Server == "" {
					p.errorf(v, "%s: root: nfs needs the site's NFS server: add settings.nfs (server, export, dir)", what)
					return
				}
				if s == nbd.Name && p.nbd.Server == "" {
					p.errorf(v, "%s: root: nbd needs the site's NBD server: add settings.nbd (server, port)", what)
					return
				}
				img.Root = s
			}
		})
		p.images[name] = img
	})
}

func (p *parser) parseGroups(n *yaml.Node, inv *Inventory) {
	p.mapping(n, "groups", nil, func(name string, k, v *yaml.Node) {
		if !nameRE.MatchString(name) {
			p.errorf(k, "bad group name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
		sp := &spec{}
		p.parseSpec(v, "group "+name, groupKeys, groupBMCKeys, sp, func(key string, kn, v *yaml.Node) {
			switch key {
			case "persist":
				sp.persist = p.parsePersist(v, "group "+name)
			case "persist_disk":
				sp.persistDisk, sp.persistDiskAt = p.parsePersistDisk(kn, v, "group "+name), kn
			}
		})
		if sp.persistDisk != nil && len(sp.persist) == 0 {
			p.errorf(sp.persistDiskAt, "group %s: persist_disk without persist: name the paths it keeps", name)
		}
		p.groupSpecs[name] = sp
		bmcAt := sp.bmcAt
		if bmcAt == nil {
			bmcAt = k
		}
		g := &Group{
			Name:        name,
			Arch:        Arch(sp.arch.v),
			Loader:      Loader(sp.loader.v),
			Image:       sp.image.v,
			Generation:  sp.generation,
			KernelArgs:  sp.kernelArgs.v,
			BMC:         p.groupBMC("group "+name, &sp.bmc, bmcAt),
			Override:    Override{IPXE: sp.overrideIPXE.v, Pxelinux: sp.overridePxelinux.v},
			Persist:     sp.persist,
			PersistDisk: sp.persistDisk,
			Defined:     p.pos(k),
		}
		inv.Groups[name] = g
	})
}

// parseSpec reads the keys a group and a node share; fn gets the others.
func (p *parser) parseSpec(n *yaml.Node, what string, keys, bmcKeys []string, sp *spec, other ...func(key string, k, v *yaml.Node)) (rejected int) {
	if isNull(n) {
		return 0
	}
	return p.mapping(n, what, keys, func(key string, k, v *yaml.Node) {
		switch key {
		case "arch":
			if s, ok := p.str(v, what+": arch"); ok {
				if s != string(ArchBIOS) && s != string(ArchUEFI) {
					p.errorf(v, "%s: bad arch %q: must be bios or uefi", what, s)
					return
				}
				sp.arch.put(s, v)
			}
		case "loader":
			if s, ok := p.str(v, what+": loader"); ok {
				if s != string(LoaderIPXE) && s != string(LoaderPxelinux) {
					p.errorf(v, "%s: bad loader %q: must be ipxe or pxelinux", what, s)
					return
				}
				sp.loader.put(s, v)
			}
		case "image":
			if s, ok := p.str(v, what+": image"); ok {
				name, gen, hasGen := strings.Cut(s, "@")
				if hasGen && !generationRE.MatchString(gen) {
					p.errorf(v, "%s: bad generation id %q in %q: must match [a-z0-9][a-z0-9-]{0,63}", what, gen, s)
					return
				}
				if _, known := p.images[name]; !known {
					p.errorRepeated("image "+name, v, "%s: unknown image %q (images: %s)", what, name, keysOf(p.images))
					return
				}
				sp.image.put(name, v)
				sp.generation = gen
			}
		case "kernel_args":
			if s, ok := p.str(v, what+": kernel_args"); ok {
				sp.kernelArgs.put(strings.TrimSpace(s), v)
			}
		case "user_data", "vendor_data":
			if s, ok := p.str(v, what+": "+key); ok {
				if err := CheckCloudTemplate(s); err != nil {
					p.errorf(v, "%s: %s: %v", what, key, err)
					return
				}
				if key == "user_data" {
					sp.userData.put(s, v)
				} else {
					sp.vendorData.put(s, v)
				}
			}
		case "bmc":
			sp.bmcAt = k
			p.parseBMCEntry(v, what, bmcKeys, &sp.bmc)
		case "boot_override":
			p.mapping(v, what+": boot_override", overrideKeys, func(key string, _, v *yaml.Node) {
				s, ok := p.str(v, what+": boot_override."+key)
				if !ok {
					return
				}
				if key == "ipxe" {
					sp.overrideIPXE.put(s, v)
				} else {
					sp.overridePxelinux.put(s, v)
				}
			})
		default:
			for _, fn := range other {
				fn(key, k, v)
			}
		}
	})
}

func keysOf[V any](m map[string]V) string {
	if len(m) == 0 {
		return "none defined"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ", ")
}

// defn records where a name, MAC or IP was first used.
type defn struct {
	node  string
	rng   string // range entry name, "" for a single entry
	entry Pos    // the entry's name value
	at    Pos    // the MAC or IP value
}

func (d defn) where() string {
	if d.rng != "" {
		return fmt.Sprintf("range %s at %s", d.rng, d.entry)
	}
	return d.entry.String()
}

func (p *parser) parseNodes(n *yaml.Node, inv *Inventory) {
	entries, ok := p.sequence(n, "nodes")
	if !ok {
		return
	}
	names := map[string]defn{}
	macs := map[string]defn{}
	ips := map[netip.Addr]defn{}
	bmcs := map[string]defn{}
	total := 0
	for ei, e := range entries {
		if p.alias(e) {
			continue
		}
		if e.Kind != yaml.MappingNode {
			p.errorf(e, "nodes[%d] must be a mapping with name, nics and other keys, got %s", ei, p.describe(e))
			continue
		}
		var nameN, groupN, ipN, nicsN *yaml.Node
		var name string
		nameOK := false // the name is a string (a wrong type is reported once, here)
		for i := 0; i+1 < len(e.Content); i += 2 {
			if e.Content[i].Value == "name" {
				nameN = e.Content[i+1]
				name, nameOK = p.str(nameN, fmt.Sprintf("nodes[%d].name", ei))
				break
			}
		}
		what := fmt.Sprintf("nodes[%d]", ei)
		if name != "" {
			what = "node " + name
		}
		sp := &spec{}
		rejected := p.parseSpec(e, what, nodeKeys, nodeBMCKeys, sp, func(key string, k, v *yaml.Node) {
			switch key {
			case "group":
				groupN = v
			case "ip":
				ipN = v
			case "nics":
				nicsN = v
			}
		})
		if nameN == nil {
			if rejected == 0 {
				p.errorf(e, "%s has no name", what)
			}
			continue
		}
		if name == "" {
			if nameOK {
				p.errorf(nameN, "%s: name is empty", what)
			}
			continue
		}
		// Expand the name.
		nodeNames := []string{name}
		rng := ""
		if hostlist.IsRange(name) {
			rng = name
			cnt, err := hostlist.Count(name)
			if err == nil && total+cnt > MaxNodes {
				p.errorf(nameN, "%s: the inventory would hold more than %d nodes", what, MaxNodes)
				return
			}
			if err == nil {
				nodeNames, err = hostlist.Expand(name)
			}
			if err != nil {
				var he *hostlist.Error
				at := p.pos(nameN)
				msg := err.Error()
				if errors.As(err, &he) {
					msg = fmt.Sprintf("bad host list %q: column %d: %s", name, he.Col, he.Msg)
					if nameN.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
						at.Col++
					}
					if nameN.Style&(yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
						at.Col += utf8.RuneCountInString(name[:min(he.Col-1, len(name))])
					}
				}
				p.errs = append(p.errs, &Error{Pos: at, Msg: msg})
				continue
			}
			if len(nodeNames) == 0 {
				p.errorf(nameN, "%s: host list %q names no node", what, name)
				continue
			}
		}
		total += len(nodeNames)
		if total > MaxNodes {
			p.errorf(nameN, "%s: the inventory would hold more than %d nodes", what, MaxNodes)
			return
		}
		badName := false
		for _, nn := range nodeNames {
			if !nameRE.MatchString(nn) {
				p.errorf(nameN, "bad node name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", nn)
				badName = true
				break
			}
		}
		if badName {
			continue
		}

		// Group and inheritance.
		var gs *spec
		group := ""
		if g, ok := p.str(groupN, what+": group"); ok {
			if gs = p.groupSpecs[g]; gs == nil {
				p.errorRepeated("group "+g, groupN, "%s: unknown group %q (groups: %s)", what, g, keysOf(p.groupSpecs))
			}
			group = g
		}
		if gs == nil {
			gs = &spec{}
		}
		var ip netip.Addr
		if s, ok := p.str(ipN, what+": ip"); ok {
			a, err := netip.ParseAddr(s)
			switch {
			case err != nil:
				p.errorf(ipN, "%s: bad ip %q: not an IP address", what, s)
			case a.Zone() != "":
				p.errorf(ipN, "%s: bad ip %q: zoned addresses are not supported", what, s)
			case a.IsUnspecified() || a.IsMulticast():
				p.errorf(ipN, "%s: bad ip %q: not a unicast address", what, s)
			default:
				ip = a
			}
		}
		nics, nicsOK := p.parseNICs(nicsN, e, what, rejected > 0)
		if !nicsOK {
			continue
		}
		var bmcIP netip.Addr
		if sp.bmc.host.set {
			if a, err := netip.ParseAddr(sp.bmc.host.v); err == nil && a.Is4() {
				bmcIP = a
			}
		}
		entryPos := p.pos(nameN)
		bmcAt := sp.bmcAt
		if bmcAt == nil {
			bmcAt = nameN
		}
		// One BMC per entry: the nodes of a range share the protocol's
		// options (read-only) and differ only in bmc.host below.
		entryBMC := p.resolveBMC(what, &sp.bmc, &gs.bmc, bmcAt)
		for idx, nn := range nodeNames {
			node := &Node{
				Name:          nn,
				Group:         group,
				Arch:          Arch(pick(sp.arch, gs.arch, string(DefaultArch))),
				Loader:        Loader(pick(sp.loader, gs.loader, string(DefaultLoader))),
				KernelArgs:    joinArgs(gs.kernelArgs.v, sp.kernelArgs.v),
				OwnKernelArgs: sp.kernelArgs.v,
				Persist:       slices.Clone(gs.persist),
				PersistDisk:   gs.persistDisk,
				UserData:      pick(sp.userData, gs.userData, ""),
				VendorData:    pick(sp.vendorData, gs.vendorData, ""),
				Override: Override{
					IPXE:     pick(sp.overrideIPXE, gs.overrideIPXE, ""),
					Pxelinux: pick(sp.overridePxelinux, gs.overridePxelinux, ""),
				},
				BMC:     entryBMC,
				Defined: entryPos,
				Range:   rng,
			}
			if sp.image.set {
				node.Image, node.Generation = sp.image.v, sp.generation
			} else if gs.image.set {
				node.Image, node.Generation = gs.image.v, gs.generation
			}
			if gs.persistDisk != nil && p.images[node.Image] != nil && p.images[node.Image].Root == nfs.Name {
				p.errorOnce("pdisk"+entryPos.String(), gs.persistDiskAt,
					"group %s: persist_disk: node %s boots image %s, an nfs root, whose persisted paths live on the NFS server: persist_disk is for RAM roots (http-live, nbd)", group, nn, node.Image)
			}
			if ip.IsValid() {
				a, ok := addAddr(ip, idx)
				if !ok {
					p.errorOnce("ipov"+entryPos.String(), ipN, "%s: ip %s + %d overflows for node %s", what, ip, idx, nn)
				}
				node.IP = a
			}
			if bmcIP.IsValid() {
				a, ok := addAddr(bmcIP, idx)
				if !ok {
					p.errorOnce("bmcov"+entryPos.String(), sp.bmc.host.at, "%s: bmc.host %s + %d overflows for node %s", what, bmcIP, idx, nn)
				}
				node.BMC.Host = a.String()
			}
			node.NICs = make([]NIC, len(nics))
			for i, nic := range nics {
				mac, ok := addMAC(nic.mac, idx)
				if !ok {
					p.errorOnce("macov"+p.pos(nic.at).String(), nic.at, "%s: mac %s + %d overflows for node %s", what, nic.mac, idx, nn)
				}
				node.NICs[i] = NIC{Name: nic.name, MAC: mac, Boot: nic.boot}
			}

			// Uniqueness.
			if prev, dup := names[nn]; dup {
				p.errorOnce("name"+entryPos.String(), nameN, "duplicate node %s: also defined by %s", nn, prev.where())
				continue
			}
			me := defn{node: nn, rng: rng, entry: entryPos}
			names[nn] = me
			for i, nic := range node.NICs {
				key := nic.MAC.String()
				at := p.pos(nics[i].at)
				if prev, dup := macs[key]; dup && prev.node != nn {
					p.errorOnce("mac"+at.String(), nics[i].at, "duplicate MAC %s: node %s has it too (%s)", key, prev.node, prev.at)
					continue
				} else if dup {
					p.errorOnce("mac"+at.String(), nics[i].at, "duplicate MAC %s: node %s lists it twice (first at %s)", key, nn, prev.at)
					continue
				}
				d := me
				d.at = at
				macs[key] = d
			}
			if node.IP.IsValid() {
				at := p.pos(ipN)
				if prev, dup := ips[node.IP]; dup {
					p.errorOnce("ip"+at.String(), ipN, "duplicate ip %s: node %s has it too (%s)", node.IP, prev.node, prev.at)
				} else {
					d := me
					d.at = at
					ips[node.IP] = d
				}
			}
			p.uniqueBMC(bmcs, node, me, sp.bmc.host.at)
			inv.Nodes = append(inv.Nodes, node)
		}
	}
}

// uniqueBMC refuses a node on a BMC address (host:port) that a node of
// another entry already has: a power action for one would hit the other.
// The nodes of one range entry whose bmc.host is a name (not incremented)
// share it as written; nodes whose protocol options pick different machines
// behind one address (power.Protocol.Machine) do not collide. seen maps each
// address (and machine) to its first node.
func (p *parser) uniqueBMC(seen map[string]defn, node *Node, me defn, hostN *yaml.Node) {
	if node.BMC.Host == "" {
		return
	}
	addr := net.JoinHostPort(node.BMC.Host, strconv.Itoa(node.BMC.Port))
	key := addr
	if pr, ok := p.protos.Lookup(node.BMC.Protocol); ok && pr.Machine != nil {
		key += " " + pr.Machine(node.BMC.Options)
	}
	at := p.pos(hostN)
	prev, dup := seen[key]
	if dup && prev.entry != me.entry {
		p.errorOnce("bmc"+me.entry.String(), hostN, "duplicate BMC %s: node %s has it too (%s); node %s would power that machine", addr, prev.node, prev.at, node.Name)
		return
	}
	if !dup {
		me.at = at
		seen[key] = me
	}
}

// parseNICs reads a node entry's nics list.
func (p *parser) parseNICs(n, entry *yaml.Node, what string, typo bool) ([]nicSpec, bool) {
	if n == nil {
		if !typo {
			p.errorf(entry, "%s has no nics: list at least the boot NIC's mac", what)
		}
		return nil, false
	}
	items, ok := p.sequence(n, what+": nics")
	if !ok {
		if isNull(n) {
			p.errorf(n, "%s: nics is empty: list at least the boot NIC's mac", what)
		}
		return nil, false
	}
	if len(items) == 0 {
		p.errorf(n, "%s: nics is empty: list at least the boot NIC's mac", what)
		return nil, false
	}
	good := true
	var nics []nicSpec
	var bootAt *yaml.Node
	for i, it := range items {
		nicWhat := fmt.Sprintf("%s: nics[%d]", what, i)
		if !isNull(it) && it.Kind != yaml.MappingNode && !p.alias(it) {
			p.errorf(it, "%s must be a mapping like {mac: \"52:54:00:12:34:56\"}, got %s", nicWhat, p.describe(it))
			good = false
			continue
		}
		nic := nicSpec{}
		rejected := p.mapping(it, nicWhat, nicKeys, func(key string, _, v *yaml.Node) {
			switch key {
			case "mac":
				s, ok := p.str(v, nicWhat+".mac")
				if !ok {
					return
				}
				if !macRE.MatchString(s) {
					p.errorf(v, "%s: bad mac %q: write 6 bytes as hex pairs separated by ':' or '-'", nicWhat, s)
					good = false
					return
				}
				mac, err := net.ParseMAC(s)
				if err != nil || len(mac) != 6 {
					p.errorf(v, "%s: bad mac %q", nicWhat, s)
					good = false
					return
				}
				nic.mac, nic.at = mac, v
			case "boot":
				if b, ok := p.boolean(v, nicWhat+".boot"); ok && b {
					if bootAt != nil {
						p.errorf(v, "%s: more than one boot NIC (the first is at line %d)", what, bootAt.Line)
						good = false
						return
					}
					bootAt = v
					nic.boot = true
				}
			case "name":
				if s, ok := p.str(v, nicWhat+".name"); ok {
					nic.name = s
				}
			}
		})
		if nic.mac == nil {
			if good && rejected == 0 {
				at := it
				if isNull(it) {
					p.errorf(at, "%s is empty: it needs a mac", nicWhat)
				} else if !hasKey(it, "mac") {
					p.errorf(at, "%s has no mac", nicWhat)
				}
			}
			good = false
			continue
		}
		nics = append(nics, nic)
	}
	return nics, good
}

func hasKey(m *yaml.Node, key string) bool {
	if m == nil || m.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

// pick returns the node's value if set, else the group's, else def.
func pick[T any](node, group setting[T], def T) T {
	if node.set {
		return node.v
	}
	if group.set {
		return group.v
	}
	return def
}

func joinArgs(a, b string) string { return joinNonEmpty(" ", a, b) }

// joinNonEmpty joins a and b with sep, or returns the one that is not empty.
func joinNonEmpty(sep, a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + sep + b
}

// addAddr returns a+n, false on overflow past the address family's end.
func addAddr(a netip.Addr, n int) (netip.Addr, bool) {
	if n == 0 {
		return a, true
	}
	if a.Is4() {
		b := a.As4()
		v := uint64(binary.BigEndian.Uint32(b[:])) + uint64(n)
		if v > math.MaxUint32 {
			return a, false
		}
		binary.BigEndian.PutUint32(b[:], uint32(v))
		return netip.AddrFrom4(b), true
	}
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	lo2, carry := bits.Add64(lo, uint64(n), 0)
	hi2, over := bits.Add64(hi, 0, carry)
	if over != 0 {
		return a, false
	}
	binary.BigEndian.PutUint64(b[:8], hi2)
	binary.BigEndian.PutUint64(b[8:], lo2)
	return netip.AddrFrom16(b), true
}

// addMAC returns mac+n as a 48-bit number, false on overflow.
func addMAC(mac net.HardwareAddr, n int) (net.HardwareAddr, bool) {
	var v uint64
	for _, b := range mac {
		v = v<<8 | uint64(b)
	}
	v += uint64(n)
	out := make(net.HardwareAddr, 6)
	for i := 5; i >= 0; i-- {
		out[i] = byte(v)
		v >>= 8
	}
	if v != 0 {
		return mac, false
	}
	return out, true
}

// index builds the lookup maps.
func (inv *Inventory) index() {
	inv.byName = make(map[string]*Node, len(inv.Nodes))
	inv.byMAC = make(map[string]*Node, len(inv.Nodes))
	inv.byIP = make(map[netip.Addr]*Node, len(inv.Nodes))
	for _, n := range inv.Nodes {
		inv.byName[n.Name] = n
		for _, nic := range n.NICs {
			inv.byMAC[nic.MAC.String()] = n
		}
		if n.IP.IsValid() {
			inv.byIP[n.IP] = n
		}
	}
}

// SecretsPath returns the secrets file's path, resolved against the
// inventory's folder; "" when the inventory names none.
func (inv *Inventory) SecretsPath() string {
	s := inv.Settings.Secrets
	if s == "" || filepath.IsAbs(s) {
		return s
	}
	return filepath.Join(filepath.Dir(inv.Path), s)
}

// parseServer reads a settings.nfs or settings.nbd mapping: server (an IPv4
// address, as nodes reach it), port, and the keys other gets. It reports
// whether the mapping had no error of its own.
func (p *parser) parseServer(n *yaml.Node, what string, keys []string, server *string, port *int, other func(key string, v *yaml.Node)) bool {
	before := len(p.errs)
	p.mapping(n, what, keys, func(key string, _, v *yaml.Node) {
		w := what + "." + key
		switch key {
		case "port":
			if n, ok := p.integer(v, w); ok {
				if n < 1 || n > 65535 {
					p.errorf(v, "%s must be 1-65535, got %d", w, n)
					return
				}
				*port = int(n)
			}
		case "server":
			if s, ok := p.str(v, w); ok {
				if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
					p.errorf(v, "%s: bad server %q: want the IPv4 address nodes reach it at (the live init resolves no names)", w, s)
					return
				}
				*server = s
			}
		default:
			other(key, v)
		}
	})
	return len(p.errs) == before
}

// parseNFS reads settings.nfs: the site's NFS server as nodes reach it.
func (p *parser) parseNFS(n *yaml.Node, out *NFS) {
	if isNull(n) {
		return
	}
	clean := p.parseServer(n, "settings.nfs", nfsKeys, &out.Server, &out.Port, func(key string, v *yaml.Node) {
		what := "settings.nfs." + key
		s, ok := p.str(v, what)
		if !ok {
			return
		}
		if !strings.HasPrefix(s, "/") || path.Clean(s) != s || s == "/" || strings.ContainsAny(s, ":,= \t\n\"'\\") {
			p.errorf(v, "%s: bad path %q: want an absolute, clean path other than / without ':', ',', '=', quotes or blanks", what, s)
			return
		}
		if key == "export" {
			out.Export = s
		} else {
			out.Dir = s
		}
	})
	if out.Server == "" || out.Export == "" || out.Dir == "" {
		if clean { // else a key's own error says why
			p.errorf(n, "settings.nfs needs server, export and dir")
		}
		*out = NFS{}
	}
}

// parseNBD reads settings.nbd: the site's NBD server as nodes reach it.
func (p *parser) parseNBD(n *yaml.Node, out *NBD) {
	if isNull(n) {
		return
	}
	clean := p.parseServer(n, "settings.nbd", nbdKeys, &out.Server, &out.Port, nil)
	if out.Server == "" {
		if clean {
			p.errorf(n, "settings.nbd needs server")
		}
		*out = NBD{}
	}
}

// parsePersistDisk reads a group's persist_disk: {label, missing, format},
// every key optional ({} takes the defaults).
func (p *parser) parsePersistDisk(k, n *yaml.Node, what string) *PersistDisk {
	what += ": persist_disk"
	if p.alias(n) {
		return nil
	}
	if !isNull(n) && n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping ({} for the defaults: label %s, missing %s, format false), got %s",
			what, DefaultPersistLabel, PersistMissingFail, p.describe(n))
		return nil
	}
	d := &PersistDisk{Label: DefaultPersistLabel, Missing: PersistMissingFail, Defined: p.pos(k)}
	p.mapping(n, what, persistDiskKeys, func(key string, _, v *yaml.Node) {
		switch key {
		case "label":
			if s, ok := p.str(v, what+": label"); ok {
				if !labelRE.MatchString(s) {
					p.errorf(v, "%s: bad label %q: want 1 to 16 letters, digits, '.', '_' or '-', starting with a letter or digit (an ext4 label)", what, s)
					return
				}
				d.Label = s
			}
		case "missing":
			if s, ok := p.str(v, what+": missing"); ok {
				if s != PersistMissingFail && s != PersistMissingBoot {
					p.errorf(v, "%s: bad missing %q: want %s (the boot fails at stage persist) or %s (it goes on with the paths in RAM)", what, s, PersistMissingFail, PersistMissingBoot)
					return
				}
				d.Missing = s
			}
		case "format":
			if b, ok := p.boolean(v, what+": format"); ok {
				d.Format = b
			}
		}
	})
	return d
}

// parsePersist reads a group's persist: list of absolute paths a node keeps
// across reboots.
func (p *parser) parsePersist(n *yaml.Node, what string) []string {
	items, ok := p.sequence(n, what+": persist")
	if !ok {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, it := range items {
		s, ok := p.str(it, what+": persist entry")
		if !ok {
			continue
		}
		switch {
		case !strings.HasPrefix(s, "/") || path.Clean(s) != s || s == "/":
			p.errorf(it, "%s: persist: bad path %q: want an absolute, clean path other than /", what, s)
		case !persistRE.MatchString(s):
			p.errorf(it, "%s: persist: path %q: use letters, digits, '.', '_', '-' and '/'", what, s)
		case seen[s]:
			p.errorf(it, "%s: persist: %q listed twice", what, s)
		default:
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
