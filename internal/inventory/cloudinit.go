package inventory

import (
	"errors"
	"io"
	"strings"
	"text/template"
)

// CloudTemplateData is what a node's user_data and vendor_data templates
// (Go text/template) are executed with by the cloud-init NoCloud
// datasource: write {{.Node}}, {{.Group}}, {{.IP}} and so on.
type CloudTemplateData struct {
	Node       string // node name (also the hostname cloud-init sets)
	Group      string // node's group, "" when none
	Image      string // image the node boots
	Generation string // generation it boots
	IP         string // node's fixed ip from the inventory, "" when none
}

// maxCloudData bounds a user_data or vendor_data template and its output.
const maxCloudData = 64 << 10

// ParseCloudTemplate parses a user_data or vendor_data template.
func ParseCloudTemplate(text string) (*template.Template, error) {
	if len(text) > maxCloudData {
		return nil, errors.New("template longer than 64 KiB")
	}
	return template.New("cloud").Option("missingkey=error").Parse(text)
}

// CheckCloudTemplate parses text and executes it once with sample data, so
// that a bad action or an unknown field is an inventory error, not a failed
// boot.
func CheckCloudTemplate(text string) error {
	t, err := ParseCloudTemplate(text)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "template: cloud:"))
	}
	if err := t.Execute(io.Discard, CloudTemplateData{Node: "n", Group: "g", Image: "i", Generation: "g1", IP: "10.0.0.1"}); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "template: cloud:"))
	}
	return nil
}

// RenderCloudTemplate executes a user_data or vendor_data template for d.
// The output is bounded to 64 KiB.
func RenderCloudTemplate(text string, d CloudTemplateData) (string, error) {
	t, err := ParseCloudTemplate(text)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := t.Execute(&limitWriter{w: &b, n: maxCloudData}, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, errors.New("output longer than 64 KiB")
	}
	l.n -= len(p)
	return l.w.Write(p)
}
