package pxe

import (
	"bytes"
	"reflect"
	"strconv"
	"text/template"
	"text/template/parse"
)

// A program is a template compiled for the common case: text, {{.Field}}
// and {{if .Field}}...{{else}}...{{end}} over TemplateData, with comments
// and trim markers (which the parser has already applied). Running it gives
// the same bytes as text/template's Execute, without its per-field
// reflection lookups; rendering every node of a large cluster is about
// twice as fast. A template that uses anything else (functions, pipelines,
// variables, range, with) is run by text/template instead.
type program []op

type op struct {
	text  []byte  // literal output (kind opText)
	field int     // TemplateData field index (opField, opIf)
	kind  opKind  //
	then  program // opIf
	els   program // opIf
}

type opKind uint8

const (
	opText opKind = iota
	opField
	opIf
)

var dataType = reflect.TypeFor[TemplateData]()

// compileTemplate returns t as a program, or nil when t uses more than the
// subset above.
func compileTemplate(t *template.Template) program {
	if t == nil || t.Tree == nil || t.Root == nil || len(t.Templates()) > 1 {
		return nil
	}
	p, ok := compileList(t.Root)
	if !ok {
		return nil
	}
	if p == nil {
		p = program{} // an empty template still compiles
	}
	return p
}

func compileList(l *parse.ListNode) (program, bool) {
	if l == nil {
		return nil, true
	}
	var p program
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			p = append(p, op{kind: opText, text: n.Text})
		case *parse.CommentNode:
		case *parse.ActionNode:
			f, ok := simpleField(n.Pipe)
			if !ok {
				return nil, false
			}
			p = append(p, op{kind: opField, field: f})
		case *parse.IfNode:
			f, ok := simpleField(n.Pipe)
			if !ok {
				return nil, false
			}
			then, ok := compileList(n.List)
			if !ok {
				return nil, false
			}
			els, ok := compileList(n.ElseList)
			if !ok {
				return nil, false
			}
			p = append(p, op{kind: opIf, field: f, then: then, els: els})
		default:
			return nil, false
		}
	}
	return p, true
}

// simpleField accepts a pipeline that is exactly one .Field of TemplateData
// holding a string or an int.
func simpleField(pipe *parse.PipeNode) (int, bool) {
	if pipe == nil || len(pipe.Decl) != 0 || pipe.IsAssign || len(pipe.Cmds) != 1 || len(pipe.Cmds[0].Args) != 1 {
		return 0, false
	}
	fn, ok := pipe.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(fn.Ident) != 1 {
		return 0, false
	}
	sf, ok := dataType.FieldByName(fn.Ident[0])
	if !ok || len(sf.Index) != 1 || !sf.IsExported() {
		return 0, false
	}
	switch sf.Type.Kind() {
	case reflect.String, reflect.Int:
		return sf.Index[0], true
	}
	return 0, false
}

// run appends the program's output for d to buf.
func (p program) run(buf *bytes.Buffer, d *TemplateData) {
	v := reflect.ValueOf(d).Elem()
	p.runValue(buf, v)
}

func (p program) runValue(buf *bytes.Buffer, v reflect.Value) {
	for i := range p {
		o := &p[i]
		switch o.kind {
		case opText:
			buf.Write(o.text)
		case opField:
			f := v.Field(o.field)
			if f.Kind() == reflect.String {
				buf.WriteString(f.String())
			} else {
				var tmp [20]byte
				buf.Write(strconv.AppendInt(tmp[:0], f.Int(), 10))
			}
		case opIf:
			f := v.Field(o.field)
			if !f.IsZero() {
				o.then.runValue(buf, v)
			} else {
				o.els.runValue(buf, v)
			}
		}
	}
}

// fieldRefs returns the TemplateData fields a template mentions.
func fieldRefs(t *template.Template) map[string]bool {
	refs := map[string]bool{}
	if t == nil {
		return refs
	}
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.IfNode:
			walk(&n.BranchNode)
		case *parse.RangeNode:
			walk(&n.BranchNode)
		case *parse.WithNode:
			walk(&n.BranchNode)
		case *parse.BranchNode:
			walk(n.Pipe)
			if n.List != nil {
				walk(n.List)
			}
			if n.ElseList != nil {
				walk(n.ElseList)
			}
		case *parse.TemplateNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n != nil {
				for _, c := range n.Cmds {
					walk(c)
				}
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.FieldNode:
			if len(n.Ident) > 0 {
				refs[n.Ident[0]] = true
			}
		}
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			walk(tt.Root)
		}
	}
	return refs
}

// needsGeneration reports whether an override uses the generation's files
// without testing {{if .Generation}} itself: without a generation it could
// only fail to boot.
func needsGeneration(t *template.Template) bool {
	refs := fieldRefs(t)
	if refs["Generation"] {
		return false
	}
	for _, f := range []string{"KernelURL", "InitrdURL", "RootfsURL", "KernelPath", "InitrdPath", "Cmdline"} {
		if refs[f] {
			return true
		}
	}
	return false
}
