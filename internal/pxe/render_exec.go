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
