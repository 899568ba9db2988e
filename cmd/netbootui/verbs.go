package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
	"github.com/netbootui/netbootui/internal/inventory"
	"github.com/netbootui/netbootui/internal/pxe"
)

var stdout io.Writer = os.Stdout

func printJSON(v any) error {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func validateCmd() *cobra.Command {
	c := newVerb("validate FILE...", "check inventory files; errors as FILE:LINE:COL: message", argsBetween(1, -1),
		func(fs *pflag.FlagSet) runner {
			return func(_ context.Context, pos []string) error { return validate(pos) }
		})
	c.ValidArgsFunction = yamlFiles
	return c
}

func validate(pos []string) error {
	failed := false
	for _, path := range pos {
		inv, err := inventory.Load(path)
		if err == nil {
			// What the boot servers would refuse when they render an entry.
			err = pxe.CheckInventory(inv)
		}
		if err == nil && inv.Settings.Secrets != "" {
			// The daemon loads passwords only when it needs one: a secrets
			// file it would refuse (mode, syntax) or cannot find fails
			// every power call, so it fails validation.
			if _, serr := inventory.LoadSecrets(inv.SecretsPath()); serr != nil {
				err = fmt.Errorf("%s: settings.secrets: %w", path, serr)
			}
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

func statusCmd() *cobra.Command {
	return newVerb("status", "the daemon's status: inventory revision, counts, servers", exactArgs(0), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		return func(ctx context.Context, _ []string) error {
			st, err := apiclient.New(*socket).Status(ctx)
			if err != nil {
				return err
			}
			return printJSON(st)
		}
	})
}

func nodeCmd() *cobra.Command {
	list := newVerb("list [SELECTION]", "list nodes (all, or a selection), ordered by name", argsBetween(0, 1), nodeListVerb)
	list.Aliases = []string{"ls"}
	list.ValidArgsFunction = completeSelection
	show := newVerb("show NODE", "a node's inventory entry, state, boot timeline and recent events", exactArgs(1), nodeShowVerb)
	show.ValidArgsFunction = completeNode
	set := newVerb("set NODE key=value...", "edit a node's inventory entry through the daemon (comments kept)", argsBetween(1, -1),
		func(fs *pflag.FlagSet) runner { return setVerb(fs, "node") })
	set.ValidArgsFunction = completeNode
	return newGroup("node", "list, show, add, edit, rename and remove nodes", list, show, set, nodeAddCmd(), nodeRemoveCmd(), nodeRenameCmd(),
		nodeUnknownCmd(), nodeAdoptCmd())
}

func nodeListVerb(fs *pflag.FlagSet) runner {
	socket := socketFlag(fs)
	out := outputFlag(fs, "", "json", "wide")
	dirty := fs.Bool("dirty", false, "only nodes that are dirty (running something else than assigned, or written to)")
	stage := fs.String("stage", "", "only nodes at this boot `stage` (off, dhcp, kernel, booted, stalled, failed, ...)")
	flagWords(fs, "stage", stageNames()...)
	return func(ctx context.Context, pos []string) error {
		switch *out {
		case "", "json", "wide":
		default:
			return fmt.Errorf("-o %q: want json or wide", *out)
		}
		if *stage != "" && !knownStage(*stage) {
			return fmt.Errorf("--stage %q: want one of %s", *stage, strings.Join(stageNames(), ", "))
		}
		c := apiclient.New(*socket)
		nodes, err := c.Nodes(ctx)
		if err != nil {
			return err
		}
		var only map[string]bool
		if len(pos) == 1 {
			names, err := c.Select(ctx, pos[0])
			if err != nil {
				return err
			}
			only = map[string]bool{}
			for _, n := range names {
				only[n] = true
			}
		}
		kept := nodes[:0]
		for _, n := range nodes {
			if (only == nil || only[n.Name]) && (!*dirty || n.Dirty) && (*stage == "" || string(n.State.Stage) == *stage) {
				kept = append(kept, n)
			}
		}
		nodes = kept
		slices.SortFunc(nodes, func(a, b apitype.NodeView) int { return hostlist.Compare(a.Name, b.Name) })
		if *out == "json" {
			return printJSON(nodes)
		}
		printNodes(nodes, *out == "wide")
		return nil
	}
}

// stageNames are the boot stages --stage takes.
func stageNames() []string {
	var names []string
	for _, s := range apitype.Stages {
		if s != apitype.StageUnknown {
			names = append(names, string(s))
		}
	}
	return names
}

func knownStage(s string) bool { return slices.Contains(stageNames(), s) }

// printNodes is node list's table.
func printNodes(nodes []apitype.NodeView, wide bool) {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	head := "NAME\tGROUP\tPOWER\tSTAGE\tASSIGNED\tRUNNING\tDIRTY\tCHECKIN"
	if wide {
		head += "\tMAC\tIP\tBMC\tERROR"
	}
	fmt.Fprintln(tw, head)
	now := time.Now()
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", n.Name, dash(n.Group), dash(n.State.Power), stageText(n.State),
			dash(n.Assigned), dash(n.State.Generation), yesNo(n.Dirty), ago(now, n.State.LastCheckin))
		if wide {
			errText := n.State.Error
			if errText == "" {
				errText = n.AssignError
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s", n.MAC, dash(n.IP), dash(n.BMC), dash(errText))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
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

func nodeShowVerb(fs *pflag.FlagSet) runner {
	socket := socketFlag(fs)
	out := outputFlag(fs, "", "json")
	return func(ctx context.Context, pos []string) error {
		return nodeShow(ctx, apiclient.New(*socket), pos[0], *out)
	}
}

func nodeShow(ctx context.Context, c *apiclient.Client, name, out string) error {
	n, err := c.Node(ctx, name)
	if err != nil {
		return err
	}
	if out == "json" {
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

// setVerb edits a node's or group's inventory entry through the daemon.
func setVerb(fs *pflag.FlagSet, kind string) runner {
	socket := socketFlag(fs)
	base := fs.String("base", "", "inventory `revision` the edit is based on (fails if the file changed since)")
	unset := fs.StringArray("unset", nil, "`key` to remove (repeatable)")
	return func(ctx context.Context, pos []string) error {
		return set(ctx, apiclient.New(*socket), kind, pos, *base, *unset)
	}
}

func set(ctx context.Context, c *apiclient.Client, kind string, pos []string, base string, unset []string) error {
	fields, err := keyValues(pos[1:])
	if err != nil {
		return err
	}
	e := apitype.Edit{BaseRevision: base, Set: fields, Unset: unset}
	var rev string
	if kind == "node" {
		rev, err = c.EditNode(ctx, pos[0], e)
	} else {
		rev, err = c.EditGroup(ctx, pos[0], e)
	}
	return revisionLine(kind+" "+pos[0]+" updated", rev, err)
}

// keyValues reads key=value arguments; key=@file reads the value from a
// file.
func keyValues(args []string) (map[string]any, error) {
	set := map[string]any{}
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		if strings.HasPrefix(v, "@") {
			b, err := os.ReadFile(v[1:])
			if err != nil {
				return nil, err
			}
			set[k] = string(b)
			continue
		}
		set[k] = cliValue(v)
	}
	return set, nil
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

func groupCmd() *cobra.Command {
	set := newVerb("set GROUP key=value...", "edit a group's inventory entry through the daemon (comments kept)", argsBetween(1, -1),
		func(fs *pflag.FlagSet) runner { return setVerb(fs, "group") })
	set.ValidArgsFunction = completeGroup
	return newGroup("group", "edit groups", set)
}

func bootCmd() *cobra.Command {
	show := newVerb("show NODE", "the boot entry the daemon serves the node", exactArgs(1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		format := fs.StringP("output", "o", "", "format: ipxe or pxelinux (default: the node's loader)")
		return func(ctx context.Context, pos []string) error {
			text, err := apiclient.New(*socket).BootEntry(ctx, pos[0], *format)
			return writeText(text, err)
		}
	})
	preview := newVerb("preview NODE --file FILE", "render an override boot entry for the node without saving it", exactArgs(1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		format := fs.StringP("output", "o", "", "format: ipxe or pxelinux (default: the node's loader)")
		file := fs.String("file", "", "override `file` to preview")
		return func(ctx context.Context, pos []string) error {
			if *file == "" {
				return errors.New("boot preview: --file is required")
			}
			b, err := os.ReadFile(*file)
			if err != nil {
				return err
			}
			text, err := apiclient.New(*socket).Preview(ctx, apitype.Preview{Node: pos[0], Format: *format, Override: string(b)})
			return writeText(text, err)
		}
	})
	for _, c := range []*cobra.Command{show, preview} {
		c.ValidArgsFunction = completeNode
		c.RegisterFlagCompletionFunc("output", fixedWords("ipxe", "pxelinux"))
	}
	return newGroup("boot", "show and preview boot entries", show, preview)
}

func writeText(text string, err error) error {
	if err != nil {
		return err
	}
	_, err = io.WriteString(stdout, text)
	return err
}

func eventsCmd() *cobra.Command {
	c := newVerb("events", "print the daemon's events (boot stages, power, edits, ...)", exactArgs(0), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		follow := fs.BoolP("follow", "f", false, "follow: print live events until interrupted")
		node := fs.String("node", "", "only this `node`")
		n := fs.IntP("lines", "n", 50, "how many past events to print first")
		out := outputFlag(fs, " (one event per line)", "json")
		return func(ctx context.Context, _ []string) error {
			enc := json.NewEncoder(stdout)
			return apiclient.New(*socket).Events(ctx, *node, *n, *follow, func(ev apitype.Event) error {
				if *out == "json" {
					return enc.Encode(ev)
				}
				_, err := fmt.Fprintln(stdout, eventLine(ev))
				return err
			})
		}
	})
	c.RegisterFlagCompletionFunc("node", completeNode)
	return c
}

func imageCmd() *cobra.Command {
	list := newVerb("list", "every image and its generations", exactArgs(0), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		out := outputFlag(fs, "", "json")
		return func(ctx context.Context, _ []string) error { return imageList(ctx, apiclient.New(*socket), *out) }
	})
	list.Aliases = []string{"ls"}
	show := newVerb("show NAME [GENERATION|current]", "an image's generations (JSON), or one generation's manifest and provenance", argsBetween(1, 2), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		out := outputFlag(fs, " (with GENERATION)", "json")
		return func(ctx context.Context, pos []string) error {
			if len(pos) > 1 {
				return cmdImageGeneration(ctx, apiclient.New(*socket), pos[0], pos[1], *out)
			}
			list, err := apiclient.New(*socket).Images(ctx)
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
	})
	show.ValidArgsFunction = completeImageThenGeneration
	importCmd := newVerb("import NAME --kernel FILE --initrd FILE --rootfs FILE", "import a generation from files (read by this command, with your rights, and sent)",
		exactArgs(1), imageImportVerb)
	importCmd.ValidArgsFunction = completeImage
	publish := newVerb("publish NAME GENERATION", "make a generation the image's current one", exactArgs(2), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		return func(ctx context.Context, pos []string) error {
			if err := apiclient.New(*socket).Publish(ctx, pos[0], pos[1]); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "image %s: current generation %s\n", pos[0], pos[1])
			return nil
		}
	})
	publish.ValidArgsFunction = completeImageThenGeneration
	build := newVerb("build NAME | --recipe DIR", "build a generation from the image's recipe (published only with --publish)", func(c *cobra.Command, pos []string) error {
		if recipe, _ := c.Flags().GetString("recipe"); len(pos) == 0 && recipe == "" {
			return usageError{cmd: c, msg: "want NAME or --recipe DIR"}
		}
		return argsBetween(0, 1)(c, pos)
	}, imageBuildVerb)
	build.ValidArgsFunction = completeImage
	rollback := newVerb("rollback NAME", "make the generation before the current one current again", exactArgs(1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		return func(ctx context.Context, pos []string) error {
			gen, err := apiclient.New(*socket).Rollback(ctx, pos[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "image %s: current generation %s\n", pos[0], gen)
			return nil
		}
	})
	rollback.ValidArgsFunction = completeImage
	gc := newVerb("gc NAME", "remove old generations no node is assigned or running", exactArgs(1), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		keep := fs.Int("keep", 3, "how many of the newest generations to keep")
		return func(ctx context.Context, pos []string) error {
			removed, err := apiclient.New(*socket).GC(ctx, pos[0], *keep)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "image %s: removed %d generation(s) %s\n", pos[0], len(removed), strings.Join(removed, " "))
			return nil
		}
	})
	gc.ValidArgsFunction = completeImage
	return newGroup("image", "list, build, import, publish, roll back, collect, verify, diff and change image generations",
		append([]*cobra.Command{list, show, build, importCmd, publish, rollback, gc}, imageSessionCmds()...)...)
}

func imageList(ctx context.Context, c *apiclient.Client, out string) error {
	list, err := c.Images(ctx)
	if err != nil {
		return err
	}
	if out == "json" {
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
}

func imageImportVerb(fs *pflag.FlagSet) runner {
	socket := socketFlag(fs)
	var req apitype.ImportRequest
	var files apiclient.ImportFiles
	fs.StringVar(&files.Kernel, "kernel", "", "kernel `file` (read by this command, with your rights, and sent)")
	fs.StringVar(&files.Initrd, "initrd", "", "initramfs `file`")
	fs.StringVar(&files.Rootfs, "rootfs", "", "squashfs root `file`")
	fs.BoolVar(&req.Publish, "publish", false, "make the new generation current")
	out := outputFlag(fs, "", "json")
	return func(ctx context.Context, pos []string) error {
		req.Image = pos[0]
		if files.Kernel == "" || files.Initrd == "" || files.Rootfs == "" {
			return errors.New("image import: --kernel, --initrd and --rootfs are required")
		}
		m, err := apiclient.New(*socket).Import(ctx, req, files)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(m)
		}
		fmt.Fprintf(stdout, "image %s generation %s (%d bytes)%s\n", m.Image, m.ID, m.Size(), map[bool]string{true: ", published"}[req.Publish])
		return nil
	}
}

func imageBuildVerb(fs *pflag.FlagSet) runner {
	socket := socketFlag(fs)
	publish := fs.Bool("publish", false, "make the new generation current")
	recipe := fs.String("recipe", "", "build this recipe `dir` instead of the inventory image's")
	force := fs.Bool("force", false, "build even when the inputs are unchanged")
	out := outputFlag(fs, "", "json")
	return func(ctx context.Context, pos []string) error {
		br := apitype.BuildRequest{Publish: *publish, Force: *force}
		if len(pos) > 0 {
			br.Image = pos[0]
		}
		if *recipe != "" {
			var err error
			if br.Recipe, err = absPath(*recipe); err != nil {
				return err
			}
		}
		last := ""
		m, err := apiclient.New(*socket).Build(ctx, br, func(p apitype.BuildProgress) {
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
	}
}

func reloadCmd() *cobra.Command {
	return newVerb("reload", "make the daemon read the inventory file now", exactArgs(0), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		return func(ctx context.Context, _ []string) error {
			st, err := apiclient.New(*socket).Reload(ctx)
			if err != nil {
				return err
			}
			return printJSON(st)
		}
	})
}

// absPath makes p absolute: the daemon resolves paths from its own folder.
func absPath(p string) (string, error) {
	return filepath.Abs(p)
}
