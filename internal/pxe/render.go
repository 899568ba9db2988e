package pxe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"unicode/utf8"

	"github.com/netbootui/netbootui/assets"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/roottransport"
	"github.com/netbootui/netbootui/internal/roottransport/builtin"
)

// Boot-entry formats accepted by Renderer.Render and Preview.
const (
	FormatIPXE     = "ipxe"
	FormatPxelinux = "pxelinux"
)

// Bootloader file names, as shipped by Debian's ipxe, pxelinux and
// syslinux-efi packages. BootloaderFor picks one per node.
const (
	BootloaderUndionly    = "undionly.kpxe" // BIOS, iPXE over the card's UNDI driver
	BootloaderPxelinux    = "pxelinux.0"    // BIOS, pxelinux
	BootloaderIPXEEFI     = "ipxe.efi"      // UEFI, iPXE with its own drivers (the default)
	BootloaderSnponlyEFI  = "snponly.efi"   // UEFI, iPXE over the firmware's SNP driver
	BootloaderSyslinuxEFI = "syslinux.efi"  // UEFI, syslinux (pxelinux's EFI build)
)

// Retry timing written into the entries, in seconds.
const (
	// RetrySeconds is how long a node waits after a failed kernel, initrd or
	// boot before it fetches its script again.
	RetrySeconds = 5
	// WaitSeconds is how long a node with no generation to boot waits before
	// it asks again.
	WaitSeconds = 10
	// UnknownSeconds is how long a machine missing from the inventory waits
	// before it asks again.
	UnknownSeconds = 10
)

// MaxCmdline is the longest kernel command line rendered, in bytes: the x86
// kernel's COMMAND_LINE_SIZE. A longer line would be cut by the kernel.
const MaxCmdline = 2048

// BootParams is what a boot entry is rendered from. The caller (the boot
// server) fills it per request; Validate says whether it is safe to render.
type BootParams struct {
	Node *inventory.Node

	// Image and Generation name what the entry boots. An empty Generation
	// renders an entry that prints why and retries instead of booting.
	Image      string
	Generation string

	// BaseURL is http://HEAD:PORT as the node reaches the daemon.
	BaseURL string
	// KernelURL, InitrdURL and RootfsURL are the generation's files over
	// HTTP (with ?node=NAME), used by iPXE and in root=live:.
	KernelURL, InitrdURL, RootfsURL string
	// KernelPath and InitrdPath are the same files as TFTP-relative paths
	// (images/IMG/GEN/vmlinuz), used by pxelinux.
	KernelPath, InitrdPath string

	// CheckinURL is where the running OS reports; Token authenticates it.
	CheckinURL string
	Token      string
	// AgentKey is the daemon's public instruction key for the node agent
	// (Tokens.AgentKey), written as netbootui.agent_key= when set.
	AgentKey string

	// Transport decides the root= words of the command line from the
	// generation and the node; nil is the default transport (http-live).
	Transport roottransport.Transport
	// NFS is the site's NFS server (settings.nfs), for the nfs transport.
	NFS roottransport.NFSSite
	// PersistWipe is the newest wipe requested of the node's persist disk
	// ("" when none; only a node with persist_disk has one).
	PersistWipe string
	// NBD is the site's NBD server (settings.nbd), for the nbd transport.
	NBD roottransport.NBDSite

	// KernelArgs are the image's arguments then the group's and node's,
	// already merged by the caller.
	KernelArgs string

	// ScriptURL is the node's own iPXE script, chained again to retry.
	// "" means BaseURL + "/boot/" + MAC + ".ipxe" (the form ChainIPXE asks for).
	ScriptURL string
	// ConfigPath is the node's own pxelinux config, TFTP-relative, loaded
	// again to retry. "" means "pxelinux.cfg/01-" + MAC with dashes.
	ConfigPath string
	// FallbackBaseURLs are the other live heads (several heads), tried in
	// order when the node's own script cannot be chained again.
	FallbackBaseURLs []string
}

// TemplateData is what the templates and overrides are executed with. Its
// fields are the BootParams' plus a few derived ones; write {{.KernelURL}},
// {{.Cmdline}} and so on in a template or an override.
type TemplateData struct {
	Name   string // node name
	Group  string // node's group, "" when none
	MAC    string // boot MAC, aa:bb:cc:dd:ee:ff ("" when the node has no NIC)
	Arch   string // "bios" or "uefi"
	Loader string // "ipxe" or "pxelinux"

	Image, Generation               string
	BaseURL                         string
	KernelURL, InitrdURL, RootfsURL string
	KernelPath, InitrdPath          string
	CheckinURL, Token               string
	KernelArgs                      string // normalised: single spaces

	// Cmdline is the whole kernel command line for this format (see
	// KernelCmdline).
	Cmdline string
	// ScriptURL and ConfigPath are the retry targets, defaults applied.
	ScriptURL, ConfigPath string
	// FallbackChain is "" on a single head; on several it is what an iPXE
	// retry tries after ScriptURL: "chain --replace --autofree URL || "
	// for the node's script on each other live head, in order. The
	// renderer builds it from checked URLs (the one field that holds
	// separators); write it between "|| " and "goto LABEL".
	FallbackChain string

	RetrySeconds int // wait after a failed boot
	WaitSeconds  int // wait when there is no generation
	WaitTenths   int // WaitSeconds in tenths (pxelinux TIMEOUT unit)
}

// Renderer renders boot entries from templates parsed once. It is safe for
// concurrent use.
type Renderer struct {
	ipxe         *template.Template
	pxelinux     *template.Template
	ipxeProg     program // nil: run ipxe with text/template
	pxelinuxProg program

	overrides  sync.Map // override key -> *overrideEntry
	nOverrides atomic.Int64
	bufs       sync.Pool
}

// maxCachedOverrides bounds the cache of parsed override templates; past it,
// overrides are parsed per call.
const maxCachedOverrides = 4096

type overrideEntry struct {
	text     string
	tmpl     *template.Template
	prog     program
	needsGen bool // uses the generation's files (see needsGeneration)
	err      error
}

// Template file names, in the embedded assets/templates and in an admin's
// template directory.
const (
	IPXETemplateName     = "ipxe.tmpl"
	PxelinuxTemplateName = "pxelinux.tmpl"
)

// NewRenderer parses the boot-entry templates. dir "" uses the embedded ones;
// otherwise dir must hold ipxe.tmpl and/or pxelinux.tmpl, and a file missing
// there falls back to the embedded one. Every template is rendered once with
// sample values and the result validated, so a broken template is refused
// here, with its position, and not on a node's first boot.
func NewRenderer(dir string) (*Renderer, error) {
	r := &Renderer{}
	r.bufs.New = func() any { return new(bytes.Buffer) }
	var err error
	if r.ipxe, err = loadTemplate(dir, IPXETemplateName); err != nil {
		return nil, err
	}
	if r.pxelinux, err = loadTemplate(dir, PxelinuxTemplateName); err != nil {
		return nil, err
	}
	r.ipxeProg = compileTemplate(r.ipxe)
	r.pxelinuxProg = compileTemplate(r.pxelinux)
	if err := r.selfCheck(); err != nil {
		return nil, err
	}
	return r, nil
}

func loadTemplate(dir, name string) (*template.Template, error) {
	var text []byte
	var err error
	source := "embedded " + name
	if dir != "" {
		if st, serr := os.Stat(dir); serr != nil {
			return nil, fmt.Errorf("pxe: template directory: %w", serr)
		} else if !st.IsDir() {
			return nil, fmt.Errorf("pxe: template directory %s: not a directory", dir)
		}
		p := filepath.Join(dir, name)
		text, err = os.ReadFile(p)
		switch {
		case err == nil:
			source = p
		case errors.Is(err, fs.ErrNotExist):
			text = nil
		default:
			return nil, fmt.Errorf("pxe: template: %w", err)
		}
	}
	if text == nil {
		text, err = fs.ReadFile(assets.FS, "templates/"+name)
		if err != nil {
			return nil, fmt.Errorf("pxe: embedded template %s: %w", name, err)
		}
	}
	t, err := template.New(source).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("pxe: template %s: %w", source, err)
	}
	return t, nil
}

// sampleParams is a node used to check templates at start.
func sampleParams(gen string) BootParams {
	n := &inventory.Node{Name: "sample01", Arch: inventory.ArchBIOS, Loader: inventory.LoaderIPXE,
		NICs: []inventory.NIC{{MAC: []byte{0x52, 0x54, 0, 0x12, 0x34, 0x56}, Boot: true}}}
	base := "http://127.0.0.1:8080"
	q := "?node=sample01"
	return BootParams{
		Node: n, Image: "base", Generation: gen, BaseURL: base,
		KernelURL:  base + "/images/base/" + gen + "/vmlinuz" + q,
		InitrdURL:  base + "/images/base/" + gen + "/initrd" + q,
		RootfsURL:  base + "/images/base/" + gen + "/rootfs.squashfs" + q,
		KernelPath: "images/base/" + gen + "/vmlinuz", InitrdPath: "images/base/" + gen + "/initrd",
		CheckinURL: base + "/checkin", Token: "sampletoken", KernelArgs: "console=ttyS0 quiet",
	}
}

func (r *Renderer) selfCheck() error {
	for _, gen := range []string{"g0123456789ab", ""} {
		p := sampleParams(gen)
		out, err := r.IPXE(p)
		if err != nil {
			return err
		}
		if err := ValidateIPXE(out); err != nil {
			return fmt.Errorf("pxe: template %s renders an invalid script: %w", r.ipxe.Name(), err)
		}
		out, err = r.Pxelinux(p)
		if err != nil {
			return err
		}
		if err := validatePxelinux(out, gen != ""); err != nil {
			return fmt.Errorf("pxe: template %s renders an invalid config: %w", r.pxelinux.Name(), err)
		}
	}
	return nil
}

var defaultRenderer = sync.OnceValues(func() (*Renderer, error) { return NewRenderer("") })

// Render renders the node's entry in format "ipxe" or "pxelinux".
func (r *Renderer) Render(format string, p BootParams) (string, error) {
	switch format {
	case FormatIPXE:
		return r.IPXE(p)
	case FormatPxelinux:
		return r.Pxelinux(p)
	}
	return "", fmt.Errorf("pxe: unknown boot-entry format %q (want %q or %q)", format, FormatIPXE, FormatPxelinux)
}

// IPXE renders the node's iPXE script: its override if it has one, the
// template otherwise.
func (r *Renderer) IPXE(p BootParams) (string, error) {
	return r.render(FormatIPXE, p, r.ipxe, r.ipxeProg)
}

// Pxelinux renders the node's pxelinux config: its override if it has one,
// the template otherwise.
func (r *Renderer) Pxelinux(p BootParams) (string, error) {
	return r.render(FormatPxelinux, p, r.pxelinux, r.pxelinuxProg)
}

func (r *Renderer) render(format string, p BootParams, t *template.Template, prog program) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	if ov := overrideText(format, p.Node); ov != "" {
		ent := r.override(format, ov)
		// An override that needs the generation's files cannot boot without
		// a generation: the node gets the entry that says so and retries.
		if ent.err != nil || !ent.needsGen || p.Generation != "" {
			out, err := r.expandOverride(format, ent, p)
			if err != nil {
				return "", fmt.Errorf("pxe: node %s: %s override: %w", p.Node.Name, format, err)
			}
			return out, nil
		}
	}
	return r.execute(t, prog, newTemplateData(format, p))
}

// execute runs the compiled program when there is one, text/template
// otherwise.
func (r *Renderer) execute(t *template.Template, prog program, d *TemplateData) (string, error) {
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer r.bufs.Put(buf)
	if prog != nil {
		prog.run(buf, d)
	} else if err := t.Execute(buf, d); err != nil {
		return "", fmt.Errorf("pxe: node %s: template %s: %w", d.Name, t.Name(), err)
	}
	return buf.String(), nil
}

func overrideText(format string, n *inventory.Node) string {
	if format == FormatIPXE {
		return n.Override.IPXE
	}
	return n.Override.Pxelinux
}

// Preview validates an override and renders it for p without applying
// anything: the API calls it before writing an override into the inventory.
// An empty override previews what the node gets from the templates. Errors
// in the override are *ValidationError with the line:col inside override.
func (r *Renderer) Preview(format, override string, p BootParams) (string, error) {
	if format != FormatIPXE && format != FormatPxelinux {
		return "", fmt.Errorf("pxe: unknown boot-entry format %q (want %q or %q)", format, FormatIPXE, FormatPxelinux)
	}
	if err := p.Validate(); err != nil {
		return "", err
	}
	if override == "" {
		t, prog := r.ipxe, r.ipxeProg
		if format == FormatPxelinux {
			t, prog = r.pxelinux, r.pxelinuxProg
		}
		return r.execute(t, prog, newTemplateData(format, p))
	}
	return r.expandOverride(format, r.override(format, override), p)
}

// Preview is Renderer.Preview with the embedded templates.
func Preview(format, override string, p BootParams) (string, error) {
	r, err := defaultRenderer()
	if err != nil {
		return "", err
	}
	return r.Preview(format, override, p)
}

// ValidateOverride checks override text as it is written in the inventory,
// template actions included, without rendering it. Errors are
// *ValidationError with the line:col inside text.
func ValidateOverride(format, text string) error {
	_, err := parseOverride(format, text)
	return err
}

// override returns the parsed override text, from the cache when it can.
func (r *Renderer) override(format, text string) *overrideEntry {
	key := format + "\x00" + text
	if v, ok := r.overrides.Load(key); ok {
		return v.(*overrideEntry)
	}
	t, err := parseOverride(format, text)
	ent := &overrideEntry{text: text, tmpl: t, err: err}
	if err == nil {
		ent.prog = compileTemplate(t)
		ent.needsGen = needsGeneration(t)
	}
	if r.nOverrides.Load() < maxCachedOverrides {
		if _, loaded := r.overrides.LoadOrStore(key, ent); !loaded {
			r.nOverrides.Add(1)
		}
	}
	return ent
}

// expandOverride executes a parsed override for p and validates the result.
func (r *Renderer) expandOverride(format string, ent *overrideEntry, p BootParams) (out string, err error) {
	if ent.err != nil {
		return "", ent.err
	}
	d := newTemplateData(format, p)
	buf := r.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer r.bufs.Put(buf)
	if ent.prog != nil {
		ent.prog.run(buf, d)
	} else if err := ent.tmpl.Execute(buf, d); err != nil {
		return "", templateError(format, ent.text, err)
	}
	out = buf.String()
	// The source was valid; check what the template logic made of it too.
	if format == FormatIPXE {
		err = ValidateIPXE(out)
	} else {
		err = ValidatePxelinux(out)
	}
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			c := *ve
			c.Msg = "after template expansion: " + c.Msg
			return "", &c
		}
		return "", err
	}
	return out, nil
}

// parseOverride validates override source text (template actions masked)
// and parses it as a template.
func parseOverride(format, text string) (*template.Template, error) {
	switch format {
	case FormatIPXE, FormatPxelinux:
	default:
		return nil, fmt.Errorf("pxe: unknown boot-entry format %q (want %q or %q)", format, FormatIPXE, FormatPxelinux)
	}
	if err := checkText(format, text); err != nil {
		return nil, err
	}
	masked := maskActions(text)
	var err error
	if format == FormatIPXE {
		err = validateIPXE(masked)
	} else {
		err = validatePxelinuxText(masked, true)
	}
	if err != nil {
		return nil, err
	}
	t, err := template.New("override").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, templateError(format, text, err)
	}
	// A trial run catches fields TemplateData does not have ({{.KernelUrl}}).
	if err := t.Execute(io.Discard, &TemplateData{}); err != nil {
		return nil, templateError(format, text, err)
	}
	return t, nil
}

// templateError turns a text/template error ("template: override:3: ..."
// from the parser, "template: override:3:7: executing ..." from a run) into
// a ValidationError at that line and column.
func templateError(format, text string, err error) *ValidationError {
	msg := err.Error()
	line, col, haveCol := 1, 0, false
	rest := strings.TrimPrefix(msg, "template: override:")
	if rest != msg {
		num := func() (int, bool) {
			i := strings.IndexByte(rest, ':')
			if i <= 0 {
				return 0, false
			}
			n, cerr := strconv.Atoi(rest[:i])
			if cerr != nil {
				return 0, false
			}
			rest = rest[i+1:]
			return n, true
		}
		if n, ok := num(); ok {
			line = n
			col, haveCol = num()
		}
		msg = strings.TrimSpace(rest)
	}
	lines := strings.Split(text, "\n")
	if line < 1 || line > len(lines) {
		line = 1
	}
	l := lines[line-1]
	switch {
	case haveCol:
		col = runeCol(l, col) // text/template counts bytes from 0
	case strings.Contains(l, "{{"):
		col = runeCol(l, strings.Index(l, "{{"))
	default:
		col = 1
	}
	return &ValidationError{Format: format, Line: line, Col: col, Msg: "template: " + msg}
}

// maskSentinel replaces the bytes of template actions in override source so
// the validators see them as opaque words.
const maskSentinel = '\x01'

// maskActions replaces every {{...}} action in text with sentinel bytes
// (newlines kept), so positions stay those of the source.
func maskActions(text string) string {
	if !strings.Contains(text, "{{") {
		return text
	}
	b := []byte(text)
	for i := 0; i+1 < len(b); {
		if b[i] != '{' || b[i+1] != '{' {
			i++
			continue
		}
		end := strings.Index(text[i+2:], "}}")
		stop := len(b)
		if end >= 0 {
			stop = i + 2 + end + 2
		}
		for j := i; j < stop; j++ {
			if b[j] != '\n' {
				b[j] = maskSentinel
			}
		}
		i = stop
	}
	return string(b)
}

func newTemplateData(format string, p BootParams) *TemplateData {
	n := p.Node
	d := &TemplateData{
		Name: n.Name, Group: n.Group, Arch: string(n.Arch), Loader: string(n.Loader),
		Image: p.Image, Generation: p.Generation,
		BaseURL: p.BaseURL, KernelURL: p.KernelURL, InitrdURL: p.InitrdURL, RootfsURL: p.RootfsURL,
		KernelPath: p.KernelPath, InitrdPath: p.InitrdPath,
		CheckinURL: p.CheckinURL, Token: p.Token,
		KernelArgs: normArgs(p.KernelArgs),
		ScriptURL:  scriptURL(p), ConfigPath: configPath(p),
		RetrySeconds: RetrySeconds, WaitSeconds: WaitSeconds, WaitTenths: WaitSeconds * 10,
		FallbackChain: fallbackChain(p),
	}
	if d.Arch == "" {
		d.Arch = string(inventory.ArchBIOS)
	}
	if d.Loader == "" {
		d.Loader = string(inventory.LoaderIPXE)
	}
	if mac := n.BootMAC(); len(mac) > 0 {
		d.MAC = mac.String()
	}
	if format == FormatPxelinux {
		d.Cmdline = cmdline(p, "initrd="+p.InitrdPath)
	} else {
		d.Cmdline = cmdline(p, "initrd=initrd")
	}
	return d
}

func scriptURL(p BootParams) string {
	if p.ScriptURL != "" {
		return p.ScriptURL
	}
	mac := "${mac}" // iPXE expands it to the booting NIC's MAC
	if m := p.Node.BootMAC(); len(m) > 0 {
		mac = m.String()
	}
	return strings.TrimRight(p.BaseURL, "/") + "/boot/" + mac + ".ipxe"
}

// fallbackChain chains the node's script on each other head.
func fallbackChain(p BootParams) string {
	if len(p.FallbackBaseURLs) == 0 {
		return ""
	}
	own := scriptURL(p)
	suffix := own[len(strings.TrimRight(p.BaseURL, "/")):] // "/boot/MAC.ipxe"
	if p.ScriptURL != "" {
		suffix = "/boot/${mac}.ipxe"
		if m := p.Node.BootMAC(); len(m) > 0 {
			suffix = "/boot/" + m.String() + ".ipxe"
		}
	}
	var b strings.Builder
	for _, u := range p.FallbackBaseURLs {
		b.WriteString("chain --replace --autofree " + strings.TrimRight(u, "/") + suffix + " || ")
	}
	return b.String()
}

func configPath(p BootParams) string {
	if p.ConfigPath != "" {
		return p.ConfigPath
	}
	if m := p.Node.BootMAC(); len(m) > 0 {
		return "pxelinux.cfg/01-" + strings.ReplaceAll(m.String(), ":", "-")
	}
	return "pxelinux.cfg/default"
}

// KernelCmdline returns the kernel command line of p as iPXE boots it:
//
//	ROOTWORDS netbootui.url=BASE netbootui.node=NAME netbootui.group=GROUP
//	netbootui.token=TOKEN netbootui.gen=GEN netbootui.checkin=CHECKIN
//	[netbootui.heads=URL,URL] initrd=initrd KERNELARGS...
//
// (one line). ROOTWORDS are the transport's (http-live: root=live:ROOTFS);
// the netbootui.* keys are those of package roottransport, which the live
// init and the check-in agent read; netbootui.group= only when the node has
// a group, for the live init to stack the image's overlay.d/group-GROUP
// variant; netbootui.heads= only on several heads (FallbackBaseURLs), for the
// live init and the agent to try the other heads. initrd=initrd names the initrd iPXE loads, which EFI kernels
// need. The pxelinux entry carries the same line with initrd=INITRDPATH,
// because syslinux loads the first initrd= it finds. Call p.Validate first:
// KernelCmdline does not check its input.
func KernelCmdline(p BootParams) string { return cmdline(p, "initrd=initrd") }

// transportOf returns p's transport, the default when it names none.
func transportOf(p BootParams) roottransport.Transport {
	if p.Transport != nil {
		return p.Transport
	}
	return builtin.Registry().Default()
}

// rootArgs returns the root= words p's transport decides.
func rootArgs(p BootParams) ([]string, error) {
	b := roottransport.Boot{Image: p.Image, Generation: p.Generation, BaseURL: p.BaseURL, RootfsURL: p.RootfsURL, NFS: p.NFS, NBD: p.NBD}
	if p.Node != nil {
		b.Node, b.Group, b.Persist = p.Node.Name, p.Node.Group, p.Node.Persist
		if d := p.Node.PersistDisk; d != nil {
			b.Persist = nil
			b.PersistDisk = &roottransport.PersistDisk{Paths: p.Node.Persist, Label: d.Label, Missing: d.Missing, Format: d.Format, Wipe: p.PersistWipe}
		}
	}
	words, err := transportOf(p).KernelArgs(b)
	if err != nil || b.PersistDisk == nil {
		return words, err
	}
	disk, err := roottransport.PersistDiskArgs(*b.PersistDisk)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", b.Node, err)
	}
	return append(words, disk...), nil
}

func cmdline(p BootParams, initrd string) string {
	var b strings.Builder
	args := normArgs(p.KernelArgs)
	b.Grow(180 + len(p.RootfsURL) + len(p.BaseURL) + len(p.CheckinURL) + len(args))
	// Without a generation there is no root to name: such an entry does
	// not boot (it prints why and retries).
	root, _ := rootArgs(p)
	for _, w := range root {
		b.WriteString(w)
		b.WriteByte(' ')
	}
	b.WriteString(roottransport.KeyURL + "=")
	b.WriteString(p.BaseURL)
	b.WriteString(" " + roottransport.KeyNode + "=")
	if p.Node != nil {
		b.WriteString(p.Node.Name)
		if p.Node.Group != "" {
			b.WriteString(" " + roottransport.KeyGroup + "=")
			b.WriteString(p.Node.Group)
		}
	}
	b.WriteString(" " + roottransport.KeyToken + "=")
	b.WriteString(p.Token)
	b.WriteString(" " + roottransport.KeyGen + "=")
	b.WriteString(p.Generation)
	b.WriteString(" " + roottransport.KeyCheckin + "=")
	b.WriteString(p.CheckinURL)
	for i, u := range p.FallbackBaseURLs {
		if i == 0 {
			b.WriteString(" " + roottransport.KeyHeads + "=")
		} else {
			b.WriteByte(',')
		}
		b.WriteString(strings.TrimRight(u, "/"))
	}
	if p.AgentKey != "" {
		b.WriteString(" " + roottransport.KeyAgentKey + "=")
		b.WriteString(p.AgentKey)
	}
	if p.Node != nil && (p.Node.UserData != "" || p.Node.VendorData != "") {
		b.WriteString(" " + roottransport.KeyNoCloud + "=")
		b.WriteString(NoCloudURL(p.BaseURL, p.Node.Name, p.Token))
	}
	b.WriteByte(' ')
	b.WriteString(initrd)
	if args != "" {
		b.WriteByte(' ')
		b.WriteString(args)
	}
	return b.String()
}

// normArgs joins the words of args with single spaces.
func normArgs(args string) string {
	if !strings.ContainsAny(args, " \t") || (!strings.Contains(args, "  ") && !strings.HasPrefix(args, " ") && !strings.HasSuffix(args, " ")) {
		return args
	}
	return strings.Join(strings.Fields(args), " ")
}

// Validate checks that p can be rendered safely: every value is one word
// free of control characters and of what iPXE would read as syntax ("${",
// a leading "#", "||", "&&", ";", a trailing backslash), kernel arguments
// are such words, and what a generation needs to boot is there. The error
// names the node and the field.
func (p BootParams) Validate() error {
	if p.Node == nil {
		return errors.New("pxe: boot params have no node")
	}
	name := p.Node.Name
	if name == "" {
		return errors.New("pxe: boot params: node has no name")
	}
	if err := checkWord(name); err != nil {
		return fmt.Errorf("pxe: node %q: name: %w", name, err)
	}
	fail := func(field string, err error) error {
		return fmt.Errorf("pxe: node %s: %s: %w", name, field, err)
	}
	words := []struct {
		field, v string
		need     bool
	}{
		{"image", p.Image, false},
		{"generation", p.Generation, false},
		{"base URL", p.BaseURL, true},
		{"kernel URL", p.KernelURL, p.Generation != ""},
		{"initrd URL", p.InitrdURL, p.Generation != ""},
		{"rootfs URL", p.RootfsURL, p.Generation != ""},
		{"kernel path", p.KernelPath, false},
		{"initrd path", p.InitrdPath, false},
		{"check-in URL", p.CheckinURL, p.Generation != ""},
		{"token", p.Token, p.Generation != ""},
		{"script URL", p.ScriptURL, false},
		{"config path", p.ConfigPath, false},
		{"group", p.Node.Group, false},
	}
	for _, u := range p.FallbackBaseURLs {
		words = append(words, struct {
			field, v string
			need     bool
		}{"fallback head URL", u, true})
	}
	for _, w := range words {
		if w.v == "" {
			if w.need {
				return fail(w.field, errors.New("missing"))
			}
			continue
		}
		if err := checkWord(w.v); err != nil {
			return fail(w.field, err)
		}
	}
	if err := checkArgs(p.KernelArgs); err != nil {
		return fail("kernel args", err)
	}
	if err := checkArgs(p.Node.KernelArgs); err != nil {
		return fail("node kernel args", err)
	}
	if p.Generation != "" {
		// The longer of the two lines: initrd=initrd (iPXE) or
		// initrd=INITRDPATH (pxelinux).
		root, err := rootArgs(p)
		if err != nil {
			return fail("root transport", err)
		}
		for _, w := range root {
			if err := checkWord(w); err != nil {
				return fail("root transport "+transportOf(p).Name(), err)
			}
		}
		n := len(cmdline(p, ""))
		n += len("initrd=") + max(len("initrd"), len(p.InitrdPath))
		if n > MaxCmdline {
			return fail("kernel command line", fmt.Errorf("%d bytes, longer than the kernel's limit of %d", n, MaxCmdline))
		}
	}
	return nil
}

// checkWord accepts a value that must stay one word in every format.
func checkWord(v string) error {
	if err := checkChars(v); err != nil {
		return err
	}
	if i := strings.IndexByte(v, ' '); i >= 0 {
		return fmt.Errorf("contains a space at byte %d", i+1)
	}
	return checkToken(v)
}

// checkArgs accepts kernel arguments: words separated by spaces.
func checkArgs(args string) error {
	if err := checkChars(args); err != nil {
		return err
	}
	for rest := args; rest != ""; {
		rest = strings.TrimLeft(rest, " ")
		w := rest
		if i := strings.IndexByte(rest, ' '); i >= 0 {
			w, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		if w == "" {
			break
		}
		if err := checkToken(w); err != nil {
			return fmt.Errorf("argument %q: %w", w, err)
		}
		if strings.HasPrefix(w, "netbootui.") {
			return fmt.Errorf("argument %q: netbootui.* arguments are set by netbootui itself", w)
		}
	}
	return nil
}

// checkChars refuses control characters (newlines and tabs included) and
// invalid UTF-8.
func checkChars(v string) error {
	i := 0
	for i < len(v) && v[i] >= 0x20 && v[i] < 0x7f {
		i++ // ASCII fast path
	}
	for i < len(v) {
		c, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			return fmt.Errorf("invalid UTF-8 at byte %d", i+1)
		case isControl(c):
			return fmt.Errorf("control character %U at byte %d", c, i+1)
		}
		i += size
	}
	return nil
}

// isControl reports C0 and C1 control characters, DEL and the Unicode line
// and paragraph separators.
func isControl(c rune) bool {
	return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u2028' || c == '\u2029'
}

// checkToken refuses a word iPXE would read as syntax.
func checkToken(w string) error {
	switch {
	case w == "||" || w == "&&" || w == ";":
		return fmt.Errorf("%q is an iPXE command separator", w)
	case strings.HasPrefix(w, "#"):
		return errors.New("starts with '#', which starts an iPXE comment")
	case strings.Contains(w, "${"):
		return errors.New("contains \"${\", which iPXE expands")
	case strings.HasSuffix(w, `\`):
		return errors.New("ends with a backslash, which continues an iPXE line")
	}
	return nil
}

// BootloaderFor returns the file name of the network bootloader the node's
// firmware fetches: undionly.kpxe (BIOS, iPXE), pxelinux.0 (BIOS, pxelinux),
// ipxe.efi (UEFI, iPXE; BootloaderSnponlyEFI is the alternative for cards
// whose firmware driver iPXE should use), syslinux.efi (UEFI, pxelinux). An
// unset arch means BIOS, an unset loader iPXE.
func BootloaderFor(n *inventory.Node) string {
	uefi := n != nil && n.Arch == inventory.ArchUEFI
	pxelinux := n != nil && n.Loader == inventory.LoaderPxelinux
	switch {
	case uefi && pxelinux:
		return BootloaderSyslinuxEFI
	case uefi:
		return BootloaderIPXEEFI
	case pxelinux:
		return BootloaderPxelinux
	}
	return BootloaderUndionly
}

// FormatFor returns the boot-entry format the node's bootloader reads.
func FormatFor(n *inventory.Node) string {
	if n != nil && n.Loader == inventory.LoaderPxelinux {
		return FormatPxelinux
	}
	return FormatIPXE
}
