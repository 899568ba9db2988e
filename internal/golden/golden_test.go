package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder is a testing.TB that keeps what Check reports instead of
// failing the calling test.
type recorder struct {
	testing.TB
	failed, fatal bool
	msg           string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(f string, a ...any) {
	r.failed = true
	r.msg = f
}
func (r *recorder) Fatalf(f string, a ...any) {
	r.failed, r.fatal = true, true
	r.msg = f
	panic(r)
}
func (r *recorder) Fatal(a ...any) { r.Fatalf("fatal") }

func check(t *testing.T, path, got string, update bool) *recorder {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		Check(r, path, got, update, "go test -update")
	}()
	return r
}

func TestCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.golden")
	if r := check(t, path, "a\n", false); !r.fatal || !strings.Contains(r.msg, "to create it") {
		t.Fatalf("missing file: %+v", r)
	}
	if r := check(t, path, "a\n", true); r.failed {
		t.Fatalf("update: %+v", r)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "a\n" {
		t.Fatalf("written %q, %v", b, err)
	}
	if r := check(t, path, "a\n", false); r.failed {
		t.Fatalf("same text: %+v", r)
	}
	if r := check(t, path, "b\n", false); !r.failed || r.fatal {
		t.Fatalf("different text: %+v", r)
	}
}
