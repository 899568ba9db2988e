package liveinit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// ModuleDeps is a parsed modules.dep: every module of one kernel with the
// modules it needs, as paths relative to the kernel's lib/modules/<version>
// directory.
type ModuleDeps struct {
	byName map[string]string   // module name -> path
	deps   map[string][]string // path -> dependency paths, as listed
}

// ModuleName returns the kernel's name for a module file or module name:
// the base name without .ko and compression suffix, with '-' read as '_'
// (the kernel treats both the same), e.g. "kernel/fs/overlayfs/overlay.ko.xz"
// -> "overlay", "virtio-net" -> "virtio_net".
func ModuleName(p string) string {
	base := path.Base(filepath.ToSlash(p))
	for _, suf := range []string{".xz", ".zst", ".gz"} {
		base = strings.TrimSuffix(base, suf)
	}
	base = strings.TrimSuffix(base, ".ko")
	return strings.ReplaceAll(base, "-", "_")
}

// ParseModulesDep reads modules.dep text ("path: dep dep ...", one module a
// line, as written by depmod). filename names the source in errors, which
// carry file:line:col.
func ParseModulesDep(r io.Reader, filename string) (*ModuleDeps, error) {
	d := &ModuleDeps{byName: map[string]string{}, deps: map[string][]string{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.TrimSpace(text) == "" || strings.HasPrefix(strings.TrimSpace(text), "#") {
			continue
		}
		colon := strings.IndexByte(text, ':')
		if colon < 0 {
			return nil, fmt.Errorf("%s:%d:1: missing ':' after the module path", filename, line)
		}
		mod := strings.TrimSpace(text[:colon])
		if err := checkModulePath(mod); err != nil {
			return nil, fmt.Errorf("%s:%d:1: %v", filename, line, err)
		}
		if _, dup := d.deps[mod]; dup {
			return nil, fmt.Errorf("%s:%d:1: module %s listed twice", filename, line, mod)
		}
		var deps []string
		rest := text[colon+1:]
		col := colon + 2
		for _, f := range strings.Fields(rest) {
			if err := checkModulePath(f); err != nil {
				return nil, fmt.Errorf("%s:%d:%d: %v", filename, line, col+strings.Index(rest, f), err)
			}
			deps = append(deps, f)
		}
		d.deps[mod] = deps
		// The first path listed for a name wins, as with modprobe.
		if _, ok := d.byName[ModuleName(mod)]; !ok {
			d.byName[ModuleName(mod)] = mod
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %v", filename, line+1, err)
	}
	return d, nil
}

// checkModulePath accepts the relative, clean paths of module files that
// depmod writes; anything else (absolute paths, "..") is refused because it
// would name files outside the modules directory.
func checkModulePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty module path")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("module path %q is absolute (depmod writes relative paths)", p)
	case path.Clean(p) != p || p == "." || strings.HasPrefix(p, "../") || p == "..":
		return fmt.Errorf("module path %q is not a clean relative path", p)
	case !strings.Contains(path.Base(p), ".ko"):
		return fmt.Errorf("module path %q does not name a .ko file", p)
	}
	return nil
}

// Path returns the path of the named module, and whether it is known.
func (d *ModuleDeps) Path(name string) (string, bool) {
	p, ok := d.byName[ModuleName(name)]
	return p, ok
}

// Resolve returns the module files to load for names, dependencies first, each
// once, in a deterministic order (the order of names, each preceded by what it
// needs). Names in builtin (module names of modules.builtin) are skipped: the
// kernel already has them. An unknown name is an error.
func (d *ModuleDeps) Resolve(names []string, builtin map[string]bool) ([]string, error) {
	var order []string
	done := map[string]bool{}
	active := map[string]bool{}
	var visit func(p string, chain []string) error
	visit = func(p string, chain []string) error {
		if done[p] {
			return nil
		}
		if active[p] {
			return fmt.Errorf("module dependency cycle: %s -> %s", strings.Join(chain, " -> "), ModuleName(p))
		}
		deps, ok := d.deps[p]
		if !ok {
			return fmt.Errorf("module %s needs %s, which modules.dep does not list", chain[len(chain)-1], p)
		}
		active[p] = true
		chain = append(chain, ModuleName(p))
		// modprobe loads a line's dependencies from the last to the first.
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], chain); err != nil {
				return err
			}
		}
		active[p] = false
		done[p] = true
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		name := ModuleName(n)
		if strings.TrimSpace(n) == "" {
			return nil, fmt.Errorf("empty module name")
		}
		p, ok := d.byName[name]
		if !ok {
			if builtin[name] {
				continue
			}
			return nil, fmt.Errorf("module %q is neither in modules.dep nor built into the kernel", n)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// ParseModulesBuiltin reads modules.builtin (one module path a line) and
// returns the set of built-in module names.
func ParseModulesBuiltin(r io.Reader, filename string) (map[string]bool, error) {
	set := map[string]bool{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if err := checkModulePath(p); err != nil {
			return nil, fmt.Errorf("%s:%d:1: %v", filename, line, err)
		}
		set[ModuleName(p)] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %v", filename, line+1, err)
	}
	return set, nil
}

// ResolveModules reads dir/modules.dep (and dir/modules.builtin when present)
// of a kernel's lib/modules/<version> directory and resolves names as
// ModuleDeps.Resolve does.
func ResolveModules(dir string, names []string) ([]string, error) {
	depFile := filepath.Join(dir, "modules.dep")
	f, err := os.Open(depFile)
	if err != nil {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	defer f.Close()
	deps, err := ParseModulesDep(f, depFile)
	if err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	bFile := filepath.Join(dir, "modules.builtin")
	if bf, err := os.Open(bFile); err == nil {
		builtin, err = ParseModulesBuiltin(bf, bFile)
		bf.Close()
		if err != nil {
			return nil, err
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("kernel modules: %w", err)
	}
	order, err := deps.Resolve(names, builtin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", depFile, err)
	}
	return order, nil
}

// readModule returns the module file's content, decompressed: busybox insmod
// cannot load .ko.xz, .ko.zst or .ko.gz. gzip is undone here; xz and zstd by
// the xz and zstd programs.
func readModule(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var tool string
	switch {
	case strings.HasSuffix(file, ".ko.gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return out, nil
	case strings.HasSuffix(file, ".ko.xz"):
		tool = "xz"
	case strings.HasSuffix(file, ".ko.zst"):
		tool = "zstd"
	default:
		return data, nil
	}
	if _, err := exec.LookPath(tool); err != nil {
		return nil, fmt.Errorf("%s: decompressing needs the %s program: %w", file, tool, err)
	}
	cmd := exec.Command(tool, "-d", "-c")
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %s -d: %v: %s", file, tool, err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}

// vermagic returns the kernel release a module was built for, from the
// "vermagic=" string in its .modinfo section.
func vermagic(ko []byte) (string, bool) {
	const key = "\x00vermagic="
	i := bytes.Index(ko, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := ko[i+len(key):]
	if end := bytes.IndexByte(rest, 0); end >= 0 {
		rest = rest[:end]
	}
	f := strings.Fields(string(rest))
	if len(f) == 0 {
		return "", false
	}
	return f[0], true
}
