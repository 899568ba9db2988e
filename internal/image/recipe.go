package image

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// RecipeFile is the name of a recipe's description inside its folder.
const RecipeFile = "image.yaml"

// Pos is a position in a recipe file.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// RecipeError is a malformed recipe, at a position of its file.
type RecipeError struct {
	Pos
	Msg string
}

func (e *RecipeError) Error() string { return e.Pos.String() + ": " + e.Msg }

// Rootfs kinds.
const (
	RootfsDir         = "dir"
	RootfsTar         = "tar"
	RootfsBusybox     = "busybox"
	RootfsDebootstrap = "debootstrap"
	RootfsOCI         = "oci"
)

// Initramfs kinds.
const (
	InitramfsBuiltin = "builtin"
	InitramfsDracut  = "dracut"
)

// Recipe says how to build an image. Paths are absolute: relative paths in
// the file are taken from the recipe's folder, after ${var} expansion.
type Recipe struct {
	// File is the recipe file, Dir its folder.
	File, Dir string
	// Name is the image name (the `name:` key, else the folder's name).
	Name   string
	Rootfs RootfsSpec
	// Overlay is laid over the root ("" for none). The default is the
	// folder's overlay/ when it exists.
	Overlay string
	// Variants is the folder's overlay.d/ (group-<g>/, node-<n>/ trees),
	// shipped inside the image at /etc/netbootui/overlay.d; "" when absent.
	Variants    string
	Kernel      KernelSpec
	Initramfs   InitramfsSpec
	Compression string // mksquashfs compressor: zstd (default), xz, gzip, lzo, lz4
	// CompressionLevel is mksquashfs's -Xcompression-level (0: the
	// compressor's default; zstd 1-22, gzip 1-9, lz4 and lzo have none
	// here, xz and lzma take none).
	CompressionLevel int
	// Agent is the static node agent binary of the build host
	// (BuildOptions.Agent; not a recipe key): the built-in initramfs
	// carries it, a dracut image's root too. "" builds the image without.
	Agent string
}

// RootfsSpec says where the root filesystem comes from.
type RootfsSpec struct {
	Kind string // one of the Rootfs* constants
	Pos  Pos
	// Path is the directory, tar archive or OCI layout/archive.
	Path string
	// Busybox is the static busybox for RootfsBusybox ("" = liveinit's default).
	Busybox     string
	Debootstrap DebootstrapSpec
}

// DebootstrapSpec is a debootstrap root.
type DebootstrapSpec struct {
	Suite, Mirror, Variant string
	Packages               []string
}

// KernelSpec says where the kernel comes from.
type KernelSpec struct {
	Pos Pos
	// File is the kernel image; Modules its lib/modules/<version> folder.
	File, Modules string
	// FromRootfs takes the newest /boot/vmlinuz-* of the root and its
	// /lib/modules/<version>.
	FromRootfs bool
}

// InitramfsSpec says how the initramfs is made.
type InitramfsSpec struct {
	Kind string // InitramfsBuiltin or InitramfsDracut
	Pos  Pos
	// Modules are the kernel modules the builtin live init loads.
	Modules []string
	// Programs are programs of the build host the builtin live init
	// carries, with their shared libraries (e.g. /usr/sbin/nbd-client).
	Programs []string
	// DracutModules are the dracut modules added (default dmsquash-live livenet).
	DracutModules []string
	// DracutCompress is dracut's --compress: a program name dracut knows
	// (gzip, zstd, lz4, xz...) or a command with its options ("zstd -3 -T0"),
	// run in the root. Empty: dracut's default (gzip -9, slow on the
	// no-hostonly initramfs of a full kernel).
	DracutCompress string
}

var (
	varRE     = regexp.MustCompile(`\$\{([^}]*)\}`)
	varNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	wordRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_:-]*$`)
	suiteRE   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
)

// LoadRecipe reads dir/image.yaml. vars are the values of ${name} in path
// values (recipe_dir is always set).
func LoadRecipe(dir string, vars map[string]string) (*Recipe, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(abs, RecipeFile)
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	r, err := ParseRecipe(file, b, vars)
	if err != nil {
		return nil, err
	}
	if r.Overlay == "" {
		if fi, err := os.Stat(filepath.Join(abs, "overlay")); err == nil && fi.IsDir() {
			r.Overlay = filepath.Join(abs, "overlay")
		}
	}
	if fi, err := os.Stat(filepath.Join(abs, "overlay.d")); err == nil && fi.IsDir() {
		r.Variants = filepath.Join(abs, "overlay.d")
		if err := checkVariants(r.Variants); err != nil {
			return nil, err
		}
	}
	return r, nil
}

var variantRE = regexp.MustCompile(`^(group|node)-[A-Za-z0-9][A-Za-z0-9._-]*$`)

func checkVariants(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() || !variantRE.MatchString(e.Name()) {
			return fmt.Errorf("%s: want only group-<name>/ and node-<name>/ folders", filepath.Join(dir, e.Name()))
		}
	}
	return nil
}

// ParseRecipe parses a recipe file's content. file names it in errors and
// gives the folder relative paths start from. Every error is a
// *RecipeError with the position of the offending key or value.
func ParseRecipe(file string, data []byte, vars map[string]string) (*Recipe, error) {
	p := &parser{file: file, vars: map[string]string{"recipe_dir": filepath.Dir(file)}}
	for k, v := range vars {
		p.vars[k] = v
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &RecipeError{Pos{file, 1, 1}, "empty recipe"}
		}
		return nil, p.yamlErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, p.errf(&extra, "a recipe is one YAML document")
	} else if !errors.Is(err, io.EOF) {
		return nil, p.yamlErr(err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	r := &Recipe{File: file, Dir: filepath.Dir(file), Compression: "zstd"}
	fields, err := p.mapping(root, "recipe", map[string]bool{
		"name": false, "rootfs": true, "overlay": false, "kernel": true, "initramfs": true, "compression": false,
		"compression_level": false,
	})
	if err != nil {
		return nil, err
	}
	if n := fields["name"]; n != nil {
		if r.Name, err = p.str(n); err != nil {
			return nil, err
		}
		if !ValidImageName(r.Name) {
			return nil, p.errf(n, "image name %q: want lower-case letters, digits, '.', '_', '-' (at most 64)", r.Name)
		}
	} else {
		r.Name = filepath.Base(r.Dir)
		if !ValidImageName(r.Name) {
			return nil, p.errf(root, "folder name %q is not an image name: add a name: key", r.Name)
		}
	}
	if n := fields["overlay"]; n != nil {
		if r.Overlay, err = p.path(n); err != nil {
			return nil, err
		}
	}
	if n := fields["compression"]; n != nil {
		if r.Compression, err = p.str(n); err != nil {
			return nil, err
		}
		switch r.Compression {
		case "zstd", "xz", "gzip", "lzo", "lz4", "lzma":
		default:
			return nil, p.errf(n, "compression %q: want zstd, xz, gzip, lzo, lz4 or lzma", r.Compression)
		}
	}
	if n := fields["compression_level"]; n != nil {
		lv, err := p.str(n)
		if err != nil {
			return nil, err
		}
		max := map[string]int{"zstd": 22, "gzip": 9}[r.Compression]
		l, cerr := strconv.Atoi(lv)
		switch {
		case max == 0:
			return nil, p.errf(n, "compression_level: %s takes no level here (zstd 1-22, gzip 1-9)", r.Compression)
		case cerr != nil || l < 1 || l > max:
			return nil, p.errf(n, "compression_level %q: want 1-%d for %s", lv, max, r.Compression)
		}
		r.CompressionLevel = l
	}
	if err := p.rootfs(fields["rootfs"], &r.Rootfs); err != nil {
		return nil, err
	}
	if err := p.kernel(fields["kernel"], &r.Kernel); err != nil {
		return nil, err
	}
	if err := p.initramfs(fields["initramfs"], &r.Initramfs); err != nil {
		return nil, err
	}
	if r.Kernel.FromRootfs && r.Rootfs.Kind == RootfsBusybox {
		return nil, p.errf(fields["kernel"], "from_rootfs: the busybox root has no /boot: give kernel: {file: ...}")
	}
	if r.Initramfs.Kind == InitramfsDracut && r.Rootfs.Kind == RootfsBusybox {
		return nil, p.errf(fields["initramfs"], "dracut runs inside the image's root: the busybox root has none")
	}
	if r.Initramfs.Kind == InitramfsBuiltin && len(r.Initramfs.Modules) > 0 && !r.Kernel.FromRootfs && r.Kernel.Modules == "" {
		return nil, p.errf(fields["initramfs"], "modules listed but kernel has no modules: folder")
	}
	return r, nil
}

type parser struct {
	file string
	vars map[string]string
}

func (p *parser) pos(n *yaml.Node) Pos { return Pos{p.file, n.Line, n.Column} }

func (p *parser) errf(n *yaml.Node, format string, args ...any) error {
	return &RecipeError{p.pos(n), fmt.Sprintf(format, args...)}
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlErr turns a yaml syntax error into a RecipeError (yaml gives lines
// but not columns: the column is 1).
func (p *parser) yamlErr(err error) error {
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		if m[1] != "" {
			fmt.Sscan(m[1], &line)
		}
		msg = m[2]
	}
	return &RecipeError{Pos{p.file, line, 1}, "YAML syntax: " + msg}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "a document"
}

// mapping checks that n is a mapping whose keys are all in allowed (true =
// required) and returns the values by key.
func (p *parser) mapping(n *yaml.Node, what string, allowed map[string]bool) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, "%s: want a mapping, got %s", what, kindName(n))
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, p.errf(k, "%s: keys must be words", what)
		}
		if _, ok := allowed[k.Value]; !ok {
			return nil, p.errf(k, "%s: unknown key %q (want %s)", what, k.Value, keyList(allowed))
		}
		if out[k.Value] != nil {
			return nil, p.errf(k, "%s: key %q given twice", what, k.Value)
		}
		out[k.Value] = v
	}
	for k, req := range allowed {
		if req && out[k] == nil {
			return nil, p.errf(n, "%s: missing %q", what, k)
		}
	}
	return out, nil
}

func keyList(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return strings.Join(ks, ", ")
}

// oneOf checks that n is a mapping with exactly one key, among kinds.
func (p *parser) oneOf(n *yaml.Node, what string, kinds ...string) (string, *yaml.Node, error) {
	allowed := map[string]bool{}
	for _, k := range kinds {
		allowed[k] = false
	}
	m, err := p.mapping(n, what, allowed)
	if err != nil {
		return "", nil, err
	}
	if len(m) != 1 {
		return "", nil, p.errf(n, "%s: want exactly one of %s", what, strings.Join(kinds, ", "))
	}
	for k, v := range m {
		return k, v, nil
	}
	panic("unreachable")
}

func (p *parser) str(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", p.errf(n, "want a string, got %s", kindName(n))
	}
	if strings.ContainsRune(n.Value, 0) || strings.ContainsAny(n.Value, "\n\r") {
		return "", p.errf(n, "a string here is one line")
	}
	return n.Value, nil
}

func (p *parser) boolean(n *yaml.Node) (bool, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		return false, p.errf(n, "want true or false, got %s", kindName(n))
	}
	return n.Value == "true" || n.Value == "True" || n.Value == "TRUE", nil
}

func (p *parser) words(n *yaml.Node, what string, re *regexp.Regexp) ([]string, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n, "%s: want a list, got %s", what, kindName(n))
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range n.Content {
		s, err := p.str(e)
		if err != nil {
			return nil, err
		}
		if !re.MatchString(s) {
			return nil, p.errf(e, "%s: %q is not a valid name", what, s)
		}
		if seen[s] {
			return nil, p.errf(e, "%s: %q listed twice", what, s)
		}
		seen[s] = true
		out = append(out, s)
	}
	return out, nil
}

// path expands ${var}s and makes the result absolute (relative to the
// recipe's folder).
func (p *parser) path(n *yaml.Node) (string, error) {
	s, err := p.str(n)
	if err != nil {
		return "", err
	}
	var bad error
	s = varRE.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := p.vars[name]
		if bad == nil {
			switch {
			case !varNameRE.MatchString(name):
				bad = p.errf(n, "bad variable name %q", name)
			case !ok:
				bad = p.errf(n, "unknown variable ${%s} (set: %s)", name, varList(p.vars))
			case v == "":
				bad = p.errf(n, "variable ${%s} is empty", name)
			}
		}
		return v
	})
	if bad != nil {
		return "", bad
	}
	if strings.Contains(s, "$") {
		return "", p.errf(n, "path %q: '$' only as ${name}", s)
	}
	if s == "" {
		return "", p.errf(n, "empty path")
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(filepath.Dir(p.file), s)
	}
	return filepath.Clean(s), nil
}

func varList(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return strings.Join(ks, ", ")
}

func (p *parser) rootfs(n *yaml.Node, r *RootfsSpec) error {
	kind, v, err := p.oneOf(n, "rootfs", RootfsDir, RootfsTar, RootfsBusybox, RootfsDebootstrap, RootfsOCI)
	if err != nil {
		return err
	}
	r.Kind, r.Pos = kind, p.pos(v)
	switch kind {
	case RootfsDir, RootfsTar, RootfsOCI:
		r.Path, err = p.path(v)
		return err
	case RootfsBusybox:
		m, err := p.mapping(v, "rootfs.busybox", map[string]bool{"binary": false})
		if err != nil {
			return err
		}
		if b := m["binary"]; b != nil {
			r.Busybox, err = p.path(b)
		}
		return err
	case RootfsDebootstrap:
		m, err := p.mapping(v, "rootfs.debootstrap", map[string]bool{
			"suite": true, "mirror": false, "variant": false, "packages": false,
		})
		if err != nil {
			return err
		}
		d := &r.Debootstrap
		if d.Suite, err = p.str(m["suite"]); err != nil {
			return err
		}
		if !suiteRE.MatchString(d.Suite) {
			return p.errf(m["suite"], "suite %q: want a name like bookworm", d.Suite)
		}
		d.Mirror = "http://deb.debian.org/debian"
		if x := m["mirror"]; x != nil {
			if d.Mirror, err = p.str(x); err != nil {
				return err
			}
			if !strings.HasPrefix(d.Mirror, "http://") && !strings.HasPrefix(d.Mirror, "https://") &&
				!strings.HasPrefix(d.Mirror, "file:/") || strings.ContainsAny(d.Mirror, " \t") {
				return p.errf(x, "mirror %q: want an http://, https:// or file:/ URL", d.Mirror)
			}
		}
		d.Variant = "minbase"
		if x := m["variant"]; x != nil {
			if d.Variant, err = p.str(x); err != nil {
				return err
			}
			switch d.Variant {
			case "minbase", "buildd", "fakechroot", "standard":
			default:
				return p.errf(x, "variant %q: want minbase, buildd, fakechroot or standard", d.Variant)
			}
		}
		if x := m["packages"]; x != nil {
			if d.Packages, err = p.words(x, "packages", wordRE); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

func (p *parser) kernel(n *yaml.Node, k *KernelSpec) error {
	m, err := p.mapping(n, "kernel", map[string]bool{"file": false, "modules": false, "from_rootfs": false})
	if err != nil {
		return err
	}
	k.Pos = p.pos(n)
	if x := m["from_rootfs"]; x != nil {
		if k.FromRootfs, err = p.boolean(x); err != nil {
			return err
		}
	}
	switch {
	case k.FromRootfs && (m["file"] != nil || m["modules"] != nil):
		return p.errf(n, "kernel: from_rootfs takes the kernel and modules from the root: no file or modules")
	case !k.FromRootfs && m["file"] == nil:
		return p.errf(n, "kernel: want file: PATH or from_rootfs: true")
	}
	if x := m["file"]; x != nil {
		if k.File, err = p.path(x); err != nil {
			return err
		}
	}
	if x := m["modules"]; x != nil {
		if k.Modules, err = p.path(x); err != nil {
			return err
		}
	}
	return nil
}

var (
	modNameRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	programRE  = regexp.MustCompile(`^(/[A-Za-z0-9._+-]+)+$`)
	compressRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._=-]{0,63}$`)
)

func (p *parser) initramfs(n *yaml.Node, s *InitramfsSpec) error {
	kind, v, err := p.oneOf(n, "initramfs", InitramfsBuiltin, InitramfsDracut)
	if err != nil {
		return err
	}
	s.Kind, s.Pos = kind, p.pos(v)
	switch kind {
	case InitramfsBuiltin:
		m, err := p.mapping(v, "initramfs.builtin", map[string]bool{"modules": false, "programs": false})
		if err != nil {
			return err
		}
		if x := m["modules"]; x != nil {
			if s.Modules, err = p.words(x, "modules", modNameRE); err != nil {
				return err
			}
		}
		if x := m["programs"]; x != nil {
			if s.Programs, err = p.words(x, "programs", programRE); err != nil {
				return err
			}
		}
		return nil
	case InitramfsDracut:
		m, err := p.mapping(v, "initramfs.dracut", map[string]bool{"modules": false, "compress": false})
		if err != nil {
			return err
		}
		s.DracutModules = []string{"dmsquash-live", "livenet"}
		if x := m["modules"]; x != nil {
			if s.DracutModules, err = p.words(x, "modules", modNameRE); err != nil {
				return err
			}
		}
		if x := m["compress"]; x != nil {
			if s.DracutCompress, err = p.str(x); err != nil {
				return err
			}
			if !compressRE.MatchString(s.DracutCompress) {
				return p.errf(x, "compress %q: want a program and its options (letters, digits, spaces, '-', '.', '_', '=')", s.DracutCompress)
			}
		}
		return nil
	}
	return nil
}
