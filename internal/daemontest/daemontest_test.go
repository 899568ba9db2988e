package daemontest_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTestsImportIt: no package of the module imports daemontest or
// statetest outside its _test.go files (go list's Imports leaves test
// imports out), so that nothing shipped starts daemons the test way.
func TestOnlyTestsImportIt(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}: {{join .Imports " "}}`, "github.com/netbootui/netbootui/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 20 {
		t.Fatalf("go list listed %d packages:\n%s", len(lines), out)
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, ": ")
		for _, imp := range strings.Fields(imports) {
			for _, testOnly := range []string{"internal/daemontest", "internal/state/statetest"} {
				if strings.HasSuffix(imp, "/"+testOnly) {
					t.Errorf("%s imports %s outside its tests", pkg, imp)
				}
			}
		}
	}
}
