package daemontest_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestOnlyTestsImportIt: no package of the module imports daemontest,
// statetest, clustertest, etcdtest or golden outside its _test.go files (go list's Imports leaves test
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
	// Test-support packages may build on each other (clustertest starts
	// its heads through daemontest); nothing else may import them.
	testOnly := []string{"internal/daemontest", "internal/state/statetest", "internal/clustertest", "internal/state/etcd/etcdtest", "internal/golden"}
	isTestOnly := func(pkg string) bool {
		return slices.ContainsFunc(testOnly, func(s string) bool { return strings.HasSuffix(pkg, "/"+s) })
	}
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, ": ")
		if isTestOnly(pkg) {
			continue
		}
		for _, imp := range strings.Fields(imports) {
			if isTestOnly(imp) {
				t.Errorf("%s imports %s outside its tests", pkg, imp)
			}
		}
	}
}

// TestNoTestMakesItsOwnDaemon: no test file of the module calls
// daemon.New (by a named or dot import, or from inside package daemon):
// every test starts its daemon through Start.
func TestNoTestMakesItsOwnDaemon(t *testing.T) {
	const daemonPkg = "github.com/netbootui/netbootui/internal/daemon"
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() && path != root && (strings.HasPrefix(de.Name(), ".") || de.Name() == "testdata") {
			return filepath.SkipDir
		}
		if de.IsDir() || !strings.HasSuffix(path, "_test.go") || strings.HasPrefix(path, filepath.Join(root, "internal", "daemontest")) {
			return nil
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		named, dot := "", f.Name.Name == "daemon" && filepath.Dir(path) == filepath.Join(root, "internal", "daemon")
		for _, imp := range f.Imports {
			if strings.Trim(imp.Path.Value, `"`) != daemonPkg {
				continue
			}
			switch {
			case imp.Name == nil:
				named = "daemon"
			case imp.Name.Name == ".":
				dot = true
			default:
				named = imp.Name.Name
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr:
				if x, ok := fn.X.(*ast.Ident); ok && named != "" && x.Name == named && fn.Sel.Name == "New" {
					t.Errorf("%s: %s.New: start the daemon with daemontest.Start", path, named)
				}
			case *ast.Ident:
				if dot && fn.Name == "New" {
					t.Errorf("%s: New (package daemon): start the daemon with daemontest.Start", path)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("looked at %d test files: not the module", files)
	}
}
