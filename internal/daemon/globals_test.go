package daemon_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// allowedGlobals are package-level variables that the check below would
// flag, with the reason they may stay ("pkg/dir.name").
var allowedGlobals = map[string]string{
	// The SOL hubs keyed by daemon: moving out of internal/daemon with the
	// power seam (issue 12 part 5).
	"internal/daemon.solMu":     "SOL hub, moving out",
	"internal/daemon.solStates": "SOL hub, moving out",
}

// TestNoPackageLevelMutableState: the daemon and every package of this
// module it links keep no mutable state at package level, so that two
// daemons in one process (tests, several heads) share nothing. Flagged: a
// package-level variable of a sync or sync/atomic type, and one that a
// function assigns, increments or deletes from (read-only tables such as
// regexps and lookup maps built in their declaration are fine).
func TestNoPackageLevelMutableState(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}} {{.Dir}}{{end}}",
		"github.com/netbootui/netbootui/internal/daemon").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/netbootui/netbootui/"
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, dir, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(path, module) {
			continue
		}
		checked++
		for _, v := range mutableGlobals(t, dir) {
			key := strings.TrimPrefix(path, module) + "." + v.name
			if _, ok := allowedGlobals[key]; !ok {
				t.Errorf("%s: package-level %s is %s", v.pos, key, v.why)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("checked %d packages of the module; go list said:\n%s", checked, out)
	}
}

type global struct {
	name, why string
	pos       token.Position
}

// mutableGlobals parses the non-test Go files of dir.
func mutableGlobals(t *testing.T, dir string) []global {
	t.Helper()
	fset := token.NewFileSet()
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	var parsed []*ast.File
	vars := map[string]token.Pos{}
	var found []global
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, af)
		for _, d := range af.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for _, n := range vs.Names {
					if n.Name == "_" {
						continue
					}
					vars[n.Name] = n.Pos()
					if syncType(vs.Type) {
						found = append(found, global{n.Name, "of a sync or atomic type", fset.Position(n.Pos())})
					}
				}
			}
		}
	}
	// Assignments to a package-level name inside functions. Locals that
	// shadow one are told apart by scope: a name declared in the function
	// (parameters, :=, var) is local from there on.
	for _, af := range parsed {
		ast.Inspect(af, func(n ast.Node) bool {
			fd, ok := n.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				return true
			}
			if fd.Name.Name == "init" && fd.Recv == nil {
				return false
			}
			locals := localNames(fd)
			report := func(e ast.Expr, how string) {
				id := rootIdent(e)
				if id == nil || locals[id.Name] {
					return
				}
				if _, ok := vars[id.Name]; ok {
					found = append(found, global{id.Name, how + " in " + fd.Name.Name, fset.Position(id.Pos())})
				}
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch s := n.(type) {
				case *ast.AssignStmt:
					if s.Tok != token.DEFINE {
						for _, l := range s.Lhs {
							report(l, "assigned")
						}
					}
				case *ast.IncDecStmt:
					report(s.X, "incremented")
				case *ast.CallExpr:
					if f, ok := s.Fun.(*ast.Ident); ok && (f.Name == "delete" || f.Name == "clear") && len(s.Args) > 0 {
						report(s.Args[0], "changed by "+f.Name)
					}
				}
				return true
			})
			return false
		})
	}
	return found
}

func syncType(e ast.Expr) bool {
	if st, ok := e.(*ast.StarExpr); ok {
		e = st.X
	}
	if ix, ok := e.(*ast.IndexExpr); ok {
		e = ix.X
	}
	sel, ok := e.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	pkg, ok := sel.X.(*ast.Ident)
	return ok && (pkg.Name == "sync" || pkg.Name == "atomic")
}

// rootIdent is x in x, x.f, x[i], *x, (x).
func rootIdent(e ast.Expr) *ast.Ident {
	for {
		switch v := e.(type) {
		case *ast.Ident:
			return v
		case *ast.SelectorExpr:
			e = v.X
		case *ast.IndexExpr:
			e = v.X
		case *ast.StarExpr:
			e = v.X
		case *ast.ParenExpr:
			e = v.X
		default:
			return nil
		}
	}
}

// localNames are the names a function declares: receiver, parameters,
// results, := and var anywhere in its body (coarse: a name declared
// anywhere in the function counts as local throughout it).
func localNames(fd *ast.FuncDecl) map[string]bool {
	m := map[string]bool{}
	addFields := func(fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, f := range fl.List {
			for _, n := range f.Names {
				m[n.Name] = true
			}
		}
	}
	addFields(fd.Recv)
	addFields(fd.Type.Params)
	addFields(fd.Type.Results)
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			if s.Tok == token.DEFINE {
				for _, l := range s.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						m[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range s.Names {
				m[id.Name] = true
			}
		case *ast.RangeStmt:
			if s.Tok == token.DEFINE {
				for _, e := range []ast.Expr{s.Key, s.Value} {
					if id, ok := e.(*ast.Ident); ok {
						m[id.Name] = true
					}
				}
			}
		case *ast.FuncLit:
			addFields(s.Type.Params)
			addFields(s.Type.Results)
		case *ast.TypeSwitchStmt:
			if a, ok := s.Assign.(*ast.AssignStmt); ok {
				for _, l := range a.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						m[id.Name] = true
					}
				}
			}
		}
		return true
	})
	return m
}
