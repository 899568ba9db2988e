package liveinit

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestParseLdd(t *testing.T) {
	out := `	linux-vdso.so.1 (0x00007ffd6c5f2000)
	libnl-3.so.200 => /lib/x86_64-linux-gnu/libnl-3.so.200 (0x00007f0e2a0f0000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0e29f0f000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f0e2a15c000)
`
	libs, err := parseLdd(out)
	if err != nil || !slices.Equal(libs, []string{"/lib/x86_64-linux-gnu/libnl-3.so.200", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}) {
		t.Fatalf("parseLdd = %q, %v", libs, err)
	}
	if _, err := parseLdd("\tlibfoo.so.1 => not found\n"); err == nil || !strings.Contains(err.Error(), "libfoo") {
		t.Fatalf("a missing library: %v", err)
	}
}

// TestAddPrograms copies a real dynamically linked program with its loader
// and libraries.
func TestAddPrograms(t *testing.T) {
	sh, err := exec.LookPath("dash")
	if err != nil {
		t.Skip("no dash")
	}
	tr := newTree()
	if err := addPrograms(tr, []string{sh}); err != nil {
		t.Fatal(err)
	}
	var haveLoader, haveLibc bool
	for name, e := range tr {
		haveLoader = haveLoader || strings.HasPrefix(name, "lib64/ld-linux")
		haveLibc = haveLibc || (strings.HasSuffix(name, "/libc.so.6") && len(e.data) > 100000)
	}
	if _, ok := tr[strings.TrimPrefix(sh, "/")]; !ok || !haveLoader || !haveLibc {
		t.Errorf("tree lacks the program, its loader or libc: program %v loader %v libc %v", ok, haveLoader, haveLibc)
	}
	if err := addPrograms(newTree(), []string{"relative/x"}); err == nil {
		t.Error("a relative program path accepted")
	}
	if err := addPrograms(newTree(), []string{"/nonexistent/prog"}); err == nil {
		t.Error("a missing program accepted")
	}
}
