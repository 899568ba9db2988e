package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
)

var stdout io.Writer = os.Stdout

func clientFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	socket := fs.String("api-socket", defaultSocket(), "unix socket `path` of the daemon's API")
	return fs, socket
}

func printJSON(v any) error {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdValidate(args []string) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	failed := false
	for _, path := range pos {
		inv, err := inventory.Load(path)
		if err == nil {
			// What the boot servers would refuse when they render an entry.
			err = pxe.CheckInventory(inv)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
			continue
		}
		fmt.Fprintf(stdout, "%s: ok: %d nodes, %d groups, %d images\n", path, len(inv.Nodes), len(inv.Groups), len(inv.Images))
	}
	if failed {
		return exitError(1)
	}
	return nil
}

func cmdStatus(ctx context.Context, args []string) error {
	fs, socket := clientFlags("status")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	st, err := apiclient.New(*socket).Status(ctx)
	if err != nil {
		return err
	}
	return printJSON(st)
}

func cmdNode(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("node list|show|set")
	}
	switch args[0] {
	case "list", "ls":
		return cmdNodeList(ctx, args[1:])
	case "show":
		return cmdNodeShow(ctx, args[1:])
	case "set":
		return cmdSet(ctx, "node", args[1:])
	}
	return usageErr("node list|show|set")
}

func usageErr(what string) error {
	fmt.Fprintf(os.Stderr, "netbootui: usage: netbootui %s (see netbootui help)\n", what)
	return exitError(2)
}

func cmdNodeList(ctx context.Context, args []string) error {
	fs, socket := clientFlags("node list")
	out := fs.String("o", "", "output: json or wide")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	nodes, err := apiclient.New(*socket).Nodes(ctx)
	if err != nil {
		return err
	}
	switch *out {
	case "json":
		return printJSON(nodes)
	case "", "wide":
	default:
		return fmt.Errorf("-o %q: want json or wide", *out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	head := "NAME\tGROUP\tPOWER\tSTAGE\tASSIGNED\tRUNNING\tDIRTY\tCHECKIN"
	if *out == "wide" {
		head += "\tMAC\tIP\tBMC\tERROR"
	}
	fmt.Fprintln(tw, head)
	now := time.Now()
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", n.Name, dash(n.Group), dash(n.State.Power), stageText(n.State),
			dash(n.Assigned), dash(n.State.Generation), yesNo(n.Dirty), ago(now, n.State.LastCheckin))
		if *out == "wide" {
			errText := n.State.Error
			if errText == "" {
				errText = n.AssignError
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s", n.MAC, dash(n.IP), dash(n.BMC), dash(errText))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func stageText(s apitype.NodeState) string {
	if s.Stage == "" {
		return "-"
	}
	if s.Stage == apitype.StageRootfs && s.Total > 0 {
		return fmt.Sprintf("rootfs %d%%", s.Bytes*100/s.Total)
	}
	return string(s.Stage)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

func cmdNodeShow(ctx context.Context, args []string) error {
	fs, socket := clientFlags("node show")
	out := fs.String("o", "", "output: json")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	c := apiclient.New(*socket)
	n, err := c.Node(ctx, pos[0])
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(n)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Name", n.Name)
	row("Group", dash(n.Group))
	row("Defined", n.Defined)
	row("MAC", n.MAC)
	row("IP", dash(n.IP))
	row("Arch / loader", n.Arch+" / "+n.Loader)
	row("BMC", dash(n.BMC))
	row("Image", dash(n.Image))
	assigned := dash(n.Assigned)
	if n.Pinned {
		assigned += " (pinned)"
	}
	if n.AssignError != "" {
		assigned += " (" + n.AssignError + ")"
	}
	row("Assigned", assigned)
	row("Running", dash(n.State.Generation))
	row("Kernel args", dash(n.KernelArgs))
	if n.Override {
		row("Boot entry", "override")
	}
	row("Power", n.State.Power)
	row("Stage", stageText(n.State)+sinceText(n.State.StageSince))
	row("Dirty", yesNo(n.Dirty)+reasons(n.DirtyReasons))
	row("Last check-in", ago(time.Now(), n.State.LastCheckin))
	if n.State.Error != "" {
		row("Error", n.State.Error)
	}
	tw.Flush()
	if len(n.State.Timeline) > 0 {
		fmt.Fprintln(stdout, "\nBoot timeline:")
		t0 := n.State.Timeline[0].Time
		for _, m := range n.State.Timeline {
			fmt.Fprintf(stdout, "  %-12s %s  +%s\n", m.Stage, m.Time.Local().Format("15:04:05.000"), m.Time.Sub(t0).Round(time.Millisecond))
		}
	}
	fmt.Fprintln(stdout, "\nRecent events:")
	return c.Events(ctx, n.Name, 10, false, func(ev apitype.Event) error {
		fmt.Fprintln(stdout, "  "+eventLine(ev))
		return nil
	})
}

func sinceText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " (for " + time.Since(t).Round(time.Second).String() + ")"
}

func reasons(r []string) string {
	if len(r) == 0 {
		return ""
	}
	return " (" + strings.Join(r, "; ") + ")"
}

// eventLine renders one event for a terminal.
func eventLine(ev apitype.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.Local().Format("15:04:05.000"))
	b.WriteByte(' ')
	b.WriteString(dash(ev.Node))
	b.WriteByte(' ')
	b.WriteString(string(ev.Kind))
	for _, kv := range [][2]string{
		{"stage", string(ev.Stage)}, {"proto", ev.Proto}, {"path", ev.Path}, {"remote", ev.Remote}, {"mac", ev.MAC},
		{"generation", ev.Generation}, {"power", ev.Power}, {"error", ev.Error}, {"msg", ev.Message},
	} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], quoteIfSpace(kv[1]))
		}
	}
	switch {
	case ev.Kind == apitype.KindProgress:
		fmt.Fprintf(&b, " bytes=%d/%d", ev.Bytes, ev.Total)
	case ev.Total > 0:
		fmt.Fprintf(&b, " size=%d", ev.Total)
	}
	if ev.Kind == apitype.KindCheckin {
		fmt.Fprintf(&b, " uptime=%s overlay=%d", ev.Uptime, ev.OverlayBytes)
	}
	return b.String()
}

func quoteIfSpace(s string) string {
	if strings.ContainsAny(s, " \t\"") {
		return strconv.Quote(s)
	}
	return s
}

// cmdSet edits a node's or group's inventory entry through the daemon.
func cmdSet(ctx context.Context, kind string, args []string) error {
	fs, socket := clientFlags(kind + " set")
	base := fs.String("base", "", "inventory `revision` the edit is based on (fails if the file changed since)")
	var unset stringList
	fs.Var(&unset, "unset", "`key` to remove (repeatable)")
	pos, err := parseArgs(fs, args, 1)
	if err != nil {
		return err
	}
	e := apitype.Edit{BaseRevision: *base, Set: map[string]any{}, Unset: unset}
	for _, kv := range pos[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want key=value", kv)
		}
		if strings.HasPrefix(v, "@") { // key=@file reads the value from a file
			b, err := os.ReadFile(v[1:])
			if err != nil {
				return err
			}
			e.Set[k] = string(b)
			continue
		}
		e.Set[k] = cliValue(v)
	}
	c := apiclient.New(*socket)
	var rev string
	if kind == "node" {
		rev, err = c.EditNode(ctx, pos[0], e)
	} else {
		rev, err = c.EditGroup(ctx, pos[0], e)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s updated: inventory revision %s\n", kind, pos[0], rev)
	return nil
}

// cliValue types a key=value value as YAML would: whole numbers, true/false
// and [JSON, lists]; anything else stays a string (quote it to force one:
// key='"123"').
func cliValue(v string) any {
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	switch v {
	case "true":
		return true
	case "false":
		return false
	}
	if strings.HasPrefix(v, "[") || strings.HasPrefix(v, `"`) {
		var x any
		if json.Unmarshal([]byte(v), &x) == nil {
			if f, ok := x.([]any); ok {
				for i, e := range f {
					if n, ok := e.(float64); ok && n == float64(int(n)) {
						f[i] = int(n)
					}
				}
			}
			return x
		}
	}
	return v
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdGroup(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "set" {
		return usageErr("group set GROUP key=value ...")
	}
	return cmdSet(ctx, "group", args[1:])
}

func cmdBoot(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("boot show|preview NODE")
	}
	fs, socket := clientFlags("boot " + args[0])
	format := fs.String("o", "", "format: ipxe or pxelinux (default: the node's loader)")
	file := fs.String("file", "", "override `file` to preview (boot preview)")
	pos, err := parseArgs(fs, args[1:], 1)
	if err != nil {
		return err
	}
	c := apiclient.New(*socket)
	var text string
	switch args[0] {
	case "show":
		text, err = c.BootEntry(ctx, pos[0], *format)
	case "preview":
		if *file == "" {
			return errors.New("boot preview: --file is required")
		}
		b, rerr := os.ReadFile(*file)
		if rerr != nil {
			return rerr
		}
		text, err = c.Preview(ctx, apitype.Preview{Node: pos[0], Format: *format, Override: string(b)})
	default:
		return usageErr("boot show|preview NODE")
	}
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, text)
	return err
}

func cmdEvents(ctx context.Context, args []string) error {
	fs, socket := clientFlags("events")
	follow := fs.Bool("f", false, "follow: print live events until interrupted")
	node := fs.String("node", "", "only this `node`")
	n := fs.Int("n", 50, "how many past events to print first")
	out := fs.String("o", "", "output: json (one event per line)")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	return apiclient.New(*socket).Events(ctx, *node, *n, *follow, func(ev apitype.Event) error {
		if *out == "json" {
			return enc.Encode(ev)
		}
		_, err := fmt.Fprintln(stdout, eventLine(ev))
		return err
	})
}

func cmdImage(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("image list|show|build|import|publish|rollback|gc|verify|diff|exec|shell")
	}
	fs, socket := clientFlags("image " + args[0])
	var req apitype.ImportRequest
	var files apiclient.ImportFiles
	fs.StringVar(&files.Kernel, "kernel", "", "kernel `file` (read by this command, with your rights, and sent)")
	fs.StringVar(&files.Initrd, "initrd", "", "initramfs `file`")
	fs.StringVar(&files.Rootfs, "rootfs", "", "squashfs root `file`")
	fs.BoolVar(&req.Publish, "publish", false, "make the new generation current")
	recipe := fs.String("recipe", "", "build this recipe `dir` instead of the inventory image's")
	force := fs.Bool("force", false, "build even when the inputs are unchanged")
	keep := fs.Int("keep", 3, "image gc: how many of the newest generations to keep")
	out := fs.String("o", "", "output: json")
	sf := addSessionFlags(fs, &req.Publish)
	client := func() *apiclient.Client { return apiclient.New(*socket) }
	switch args[0] {
	case "verify":
		pos, err := parseArgs(fs, args[1:], 2)
		if err != nil {
			return err
		}
		return cmdImageVerify(ctx, client(), pos[0], pos[1], *out)
	case "diff":
		pos, err := parseArgs(fs, args[1:], 2)
		if err != nil {
			return err
		}
		a, b, err := diffArgs(pos)
		if err != nil {
			return err
		}
		d, err := client().DiffImages(ctx, a, b)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(d)
		}
		printDiff(stdout, d, true)
		return nil
	case "exec":
		pos, err := parseArgs(fs, args[1:], 2)
		if err != nil {
			return err
		}
		return cmdImageExec(ctx, client(), pos[0], pos[1:], sf)
	case "shell":
		pos, err := parseArgs(fs, args[1:], 1)
		if err != nil {
			return err
		}
		return cmdImageShell(ctx, client(), pos[0], sf)
	case "list", "ls":
		if _, err := parseArgs(fs, args[1:], 0); err != nil {
			return err
		}
		list, err := client().Images(ctx)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(list)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "IMAGE\tGENERATION\tCURRENT\tSIZE\tCREATED")
		for _, im := range list {
			if len(im.Generations) == 0 {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t-\n", im.Name)
			}
			for _, g := range im.Generations {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", im.Name, g.ID, yesNo(g.ID == im.Current), g.Size(), g.Created.Local().Format(time.DateTime))
			}
		}
		return tw.Flush()
	case "import":
		pos, err := parseArgs(fs, args[1:], 1)
		if err != nil {
			return err
		}
		req.Image = pos[0]
		if files.Kernel == "" || files.Initrd == "" || files.Rootfs == "" {
			return errors.New("image import: --kernel, --initrd and --rootfs are required")
		}
		m, err := client().Import(ctx, req, files)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(m)
		}
		fmt.Fprintf(stdout, "image %s generation %s (%d bytes)%s\n", m.Image, m.ID, m.Size(), map[bool]string{true: ", published"}[req.Publish])
		return nil
	case "publish":
		pos, err := parseArgs(fs, args[1:], 2)
		if err != nil {
			return err
		}
		if err := client().Publish(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "image %s: current generation %s\n", pos[0], pos[1])
		return nil
	case "build":
		pos, err := parseArgs(fs, args[1:], 0)
		if err != nil {
			return err
		}
		br := apitype.BuildRequest{Publish: req.Publish, Force: *force}
		if len(pos) > 0 {
			br.Image = pos[0]
		}
		if *recipe != "" {
			if br.Recipe, err = absPath(*recipe); err != nil {
				return err
			}
		}
		if br.Image == "" && br.Recipe == "" {
			return usageErr("image build NAME | --recipe DIR [--publish] [--force]")
		}
		last := ""
		m, err := client().Build(ctx, br, func(p apitype.BuildProgress) {
			line := p.Step
			if p.Percent > 0 {
				line = fmt.Sprintf("%s %3.0f%%", p.Step, p.Percent)
			}
			if line != last && (p.Percent == 0 || int(p.Percent)%10 == 0 || p.Percent >= 100) {
				fmt.Fprintf(os.Stderr, "%s: %s\n", p.Image, line)
				last = line
			}
		})
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(m)
		}
		fmt.Fprintf(stdout, "image %s generation %s (%d bytes)\n", m.Image, m.ID, m.Size())
		return nil
	case "rollback":
		pos, err := parseArgs(fs, args[1:], 1)
		if err != nil {
			return err
		}
		gen, err := client().Rollback(ctx, pos[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "image %s: current generation %s\n", pos[0], gen)
		return nil
	case "gc":
		pos, err := parseArgs(fs, args[1:], 1)
		if err != nil {
			return err
		}
		removed, err := client().GC(ctx, pos[0], *keep)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "image %s: removed %d generation(s) %s\n", pos[0], len(removed), strings.Join(removed, " "))
		return nil
	case "show":
		pos, err := parseArgs(fs, args[1:], 1)
		if err != nil {
			return err
		}
		if len(pos) > 1 {
			return cmdImageGeneration(ctx, client(), pos[0], pos[1], *out)
		}
		list, err := client().Images(ctx)
		if err != nil {
			return err
		}
		for _, im := range list {
			if im.Name == pos[0] {
				return printJSON(im)
			}
		}
		return fmt.Errorf("image %q: not found", pos[0])
	}
	return usageErr("image list|show|build|import|publish|rollback|gc|verify|diff|exec|shell")
}

func cmdReload(ctx context.Context, args []string) error {
	fs, socket := clientFlags("reload")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	st, err := apiclient.New(*socket).Reload(ctx)
	if err != nil {
		return err
	}
	return printJSON(st)
}

// absPath makes p absolute: the daemon resolves paths from its own folder.
func absPath(p string) (string, error) {
	return filepath.Abs(p)
}
