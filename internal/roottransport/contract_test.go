package roottransport_test

import (
	"io/fs"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/assets"
	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
)

// keysRead returns the sorted, distinct first submatches of re in text.
func keysRead(re *regexp.Regexp, text string) []string {
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		seen[m[1]] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// paramKeys returns the keys of the contract that reader reads, sorted.
func paramKeys(reader roottransport.Reader) []string {
	var out []string
	for _, p := range roottransport.Params() {
		if p.Readers&reader != 0 {
			out = append(out, p.Key)
		}
	}
	sort.Strings(out)
	return out
}

// assetText is an asset's text, or every file of an asset folder's
// (a dracut module's hooks) one after the other.
func assetText(t *testing.T, name string) string {
	t.Helper()
	ents, err := fs.ReadDir(assets.FS, name)
	if err != nil {
		return asset(t, name)
	}
	var b strings.Builder
	for _, e := range ents {
		b.WriteString(asset(t, name+"/"+e.Name()))
	}
	return b.String()
}

func asset(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(assets.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestScriptsReadTheContract checks that the node-side scripts read exactly
// the kernel-argument keys Params says they read: a key renamed on one side
// only, or read by a script without being in the contract, fails here.
func TestScriptsReadTheContract(t *testing.T) {
	casePattern := regexp.MustCompile(`(?m)^\s*(root|netbootui\.[a-z_]+)=\*\)`)
	cases := []struct {
		file   string
		reader roottransport.Reader
		re     *regexp.Regexp
	}{
		{"scripts/init.sh", roottransport.ReadByInit, casePattern},
		{"scripts/checkin.sh", roottransport.ReadByAgent, casePattern},
		{"dracut/90netbootui", roottransport.ReadByDracut,
			regexp.MustCompile(`getarg (netbootui\.[a-z_]+)=`)},
	}
	for _, tc := range cases {
		got := keysRead(tc.re, assetText(t, tc.file))
		if want := paramKeys(tc.reader); !slices.Equal(got, want) {
			t.Errorf("%s reads %v; roottransport.Params says %v", tc.file, got, want)
		}
	}
}

// TestNoUnknownKeys checks that every netbootui.KEY= written anywhere in the
// node-side assets and the boot templates is a key of the contract.
func TestNoUnknownKeys(t *testing.T) {
	known := map[string]bool{}
	for _, p := range roottransport.Params() {
		known[p.Key] = true
	}
	re := regexp.MustCompile(`netbootui\.[a-z_]+=`)
	err := fs.WalkDir(assets.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "recipes/") {
			return err
		}
		b, err := fs.ReadFile(assets.FS, p)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllString(string(b), -1) {
			if k := strings.TrimSuffix(m, "="); !known[k] {
				t.Errorf("%s: %s is not a key of roottransport.Params", p, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestInitDispatchesEveryScheme checks that the live init has a branch for
// the root= scheme of every registered transport, and no other.
func TestInitDispatchesEveryScheme(t *testing.T) {
	init := asset(t, "scripts/init.sh")
	i := strings.Index(init, "\ncase $root in\n")
	if i < 0 {
		t.Fatal("init.sh has no `case $root in` dispatch")
	}
	block := init[i:]
	block = block[:strings.Index(block, "\nesac")]
	got := keysRead(regexp.MustCompile(`(?m)^([a-z][a-z0-9+.-]*):\*\)`), block)
	if want := builtin.Registry().Schemes(); !slices.Equal(got, want) {
		t.Errorf("init.sh dispatches root= schemes %v; the registry has %v", got, want)
	}
}

// TestREADMEsNameEveryKey keeps the boot-contract tables true.
func TestREADMEsNameEveryKey(t *testing.T) {
	for _, f := range []string{"../image/liveinit/README.md", "README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range roottransport.Params() {
			short := strings.TrimPrefix(p.Key, "netbootui")
			if !strings.Contains(string(b), "`"+p.Key+"=") && !strings.Contains(string(b), "`"+short+"=") {
				t.Errorf("%s does not document %s=", f, p.Key)
			}
		}
	}
}
