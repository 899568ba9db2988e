package image

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
)

// Provenance says where a generation came from: the recipe and inputs it
// was built from, the builder that built it, and, for a generation made
// from another one (an admin's shell or exec session), its parent and the
// change. Every field is optional: manifests written before provenance
// existed load with a nil Provenance.
type Provenance struct {
	// RecipeHash is the sha256 of the recipe file (image.yaml) as built.
	RecipeHash string `json:"recipe_hash,omitempty"`
	// Builder names the program that made the generation: module
	// version and VCS revision (runtime/debug.ReadBuildInfo), and the
	// pipeline's own version.
	Builder string `json:"builder,omitempty"`
	// OCIDigest is the digest of the OCI image a root was taken from.
	OCIDigest string `json:"oci_digest,omitempty"`
	// Debootstrap names the suite, mirror and variant of a debootstrap
	// root.
	Debootstrap *DebootstrapSource `json:"debootstrap,omitempty"`
	// Packages are the Debian packages installed in the root (from its
	// /var/lib/dpkg/status), name to version; empty for a root without
	// dpkg.
	Packages map[string]string `json:"packages,omitempty"`
	// Parent is the generation this one was made from (shell, exec).
	Parent string `json:"parent,omitempty"`
	// Change says what was done to the parent: the command or
	// "interactive shell", who did it, and the diff's summary.
	Change *Change `json:"change,omitempty"`
}

// DebootstrapSource is what a debootstrap root was made from.
type DebootstrapSource struct {
	Suite   string `json:"suite"`
	Mirror  string `json:"mirror"`
	Variant string `json:"variant,omitempty"`
}

// Change is what an admin's session did to a parent generation.
type Change struct {
	// Command is the command run ("interactive shell" for a shell).
	Command string `json:"command"`
	// Who ran it, as the API named the caller.
	Who string `json:"who,omitempty"`
	// Summary is the diff's one-line summary ("+2 -0 ~1 files").
	Summary string `json:"summary"`
}

var builderOnce = sync.OnceValue(func() string {
	s := "netbootui"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return s + " (no build info); " + buildVersion
	}
	if v := bi.Main.Version; v != "" {
		s += " " + v
	}
	var rev, modified string
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.modified":
			if kv.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev != "" {
		s += " rev " + rev + modified
	} else {
		s += " (no VCS revision: built with -buildvcs=false)"
	}
	return s + "; " + buildVersion
})

// BuilderVersion names this program for a manifest's Provenance.Builder.
func BuilderVersion() string { return builderOnce() }

// dpkgStatus is the path of dpkg's database in a root.
const dpkgStatus = "var/lib/dpkg/status"

// ReadDpkgStatus parses a dpkg status file and returns the installed
// packages, name to version (name:arch when a name is installed for
// several architectures).
func ReadDpkgStatus(r io.Reader) (map[string]string, error) {
	type pkg struct{ name, arch, version, status string }
	var pkgs []pkg
	var cur pkg
	flush := func() {
		if cur.name != "" && strings.HasSuffix(cur.status, " installed") {
			pkgs = append(pkgs, cur)
		}
		cur = pkg{}
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // a continuation line (descriptions, conffiles)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("dpkg status: malformed line %q", line)
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.name = v
		case "Architecture":
			cur.arch = v
		case "Version":
			cur.version = v
		case "Status":
			cur.status = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dpkg status: %w", err)
	}
	flush()
	count := map[string]int{}
	for _, p := range pkgs {
		count[p.name]++
	}
	out := make(map[string]string, len(pkgs))
	for _, p := range pkgs {
		k := p.name
		if count[p.name] > 1 && p.arch != "" {
			k += ":" + p.arch
		}
		out[k] = p.version
	}
	return out, nil
}

// rootPackages reads the installed packages of a root tree (nil when it
// has no dpkg database).
func rootPackages(root string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(root, dpkgStatus))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadDpkgStatus(f)
}

// fileSum is the sha256 of a file, hex.
func fileSum(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// provenance is what a build of r records about its sources (the root's
// packages are added once the root is made).
func provenance(r *Recipe) (*Provenance, error) {
	sum, err := fileSum(r.File)
	if err != nil {
		return nil, err
	}
	p := &Provenance{RecipeHash: sum, Builder: BuilderVersion()}
	if r.Rootfs.Kind == RootfsDebootstrap {
		d := r.Rootfs.Debootstrap
		p.Debootstrap = &DebootstrapSource{Suite: d.Suite, Mirror: d.Mirror, Variant: d.Variant}
	}
	return p, nil
}

// FileCheck is the outcome of rechecking one file of a generation.
type FileCheck struct {
	Name string
	// Want is what the manifest says; Size and SHA256 what the file holds
	// now (Size -1 when it cannot be read: Err says why).
	Want   FileInfo
	Size   int64
	SHA256 string
	Err    string
}

// OK says whether the file matches its manifest entry.
func (c FileCheck) OK() bool {
	return c.Err == "" && c.Size == c.Want.Size && c.SHA256 == c.Want.SHA256
}

// CheckFiles rereads every file of a generation and compares its size and
// sha256 with the manifest's, returning one result per file (Verify stops
// at the first difference; this says which ones differ).
func (s *Store) CheckFiles(image, id string) ([]FileCheck, error) {
	m, err := s.Generation(image, id)
	if err != nil {
		return nil, err
	}
	out := make([]FileCheck, len(m.Files))
	var wg sync.WaitGroup
	for i, want := range m.Files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := FileCheck{Name: want.Name, Want: want, Size: -1}
			f, err := s.Open(image, id, want.Name)
			if err == nil {
				h := sha256.New()
				var n int64
				n, err = copyBuf(h, f)
				f.Close()
				if err == nil {
					c.Size, c.SHA256 = n, hex.EncodeToString(h.Sum(nil))
				}
			}
			if err != nil {
				c.Err = err.Error()
			}
			out[i] = c
		}()
	}
	wg.Wait()
	return out, nil
}

// sortedPackageNames lists a package map's names, sorted.
func sortedPackageNames(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// FormatPackages is a package map as "name version" lines, sorted.
func FormatPackages(m map[string]string) string {
	var b bytes.Buffer
	for _, k := range sortedPackageNames(m) {
		fmt.Fprintf(&b, "%s %s\n", k, m[k])
	}
	return b.String()
}
