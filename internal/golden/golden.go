// Package golden compares a test's output with a golden file, or rewrites
// the file when the test runs with its package's update flag. Only tests
// import it.
package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// Check compares got with the file at path. With update it writes got to
// path (making its folder) and compares nothing. A missing file fails with
// how to create it; a difference fails with both texts. rerun says how to
// rewrite the file, e.g. "go test ./internal/ui -update-ui".
func Check(t testing.TB, path, got string, update bool, rerun string) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run %s to create it)", err, rerun)
	}
	if got != string(want) {
		t.Errorf("%s differs (run %s to accept it):\n--- got\n%s\n--- want\n%s", path, rerun, got, want)
	}
}
