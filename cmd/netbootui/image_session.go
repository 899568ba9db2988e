package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// The image verbs of issue 20: provenance (`image show NAME GEN`), `image
// verify`, `image diff`, `image exec` and `image shell`. They are thin: the
// daemon rereads, diffs and runs the sessions; these print and ask.

// cmdImageGeneration is `image show NAME GEN`: one generation's manifest
// and provenance.
func cmdImageGeneration(ctx context.Context, c *apiclient.Client, name, gen, out string) error {
	list, err := c.Images(ctx)
	if err != nil {
		return err
	}
	for _, im := range list {
		if im.Name != name {
			continue
		}
		for _, m := range im.Generations {
			if m.ID == gen || (gen == "current" && m.ID == im.Current) {
				if out == "json" {
					return printJSON(m)
				}
				printManifest(stdout, m, m.ID == im.Current)
				return nil
			}
		}
		return fmt.Errorf("image %s has no generation %q", name, gen)
	}
	return fmt.Errorf("image %q: not found", name)
}

// printManifest prints a generation and where it came from.
func printManifest(w io.Writer, m *apitype.Manifest, current bool) {
	fmt.Fprintf(w, "image %s generation %s%s\n", m.Image, m.ID, map[bool]string{true: " (current)"}[current])
	fmt.Fprintf(w, "created   %s\n", m.Created.Local().Format("2006-01-02 15:04:05"))
	if m.Source != "" {
		fmt.Fprintf(w, "source    %s\n", m.Source)
	}
	for _, f := range m.Files {
		fmt.Fprintf(w, "file      %-16s %12d  sha256 %s\n", f.Name, f.Size, f.SHA256)
	}
	if m.SourceHash != "" {
		fmt.Fprintf(w, "inputs    %s\n", m.SourceHash)
	}
	p := m.Provenance
	if p == nil {
		fmt.Fprintln(w, "provenance: none recorded (an import, or built before provenance was kept)")
		return
	}
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-9s %s\n", k, v)
		}
	}
	row("recipe", p.RecipeHash)
	row("builder", p.Builder)
	row("oci", p.OCIDigest)
	if d := p.Debootstrap; d != nil {
		row("suite", fmt.Sprintf("%s from %s (variant %s)", d.Suite, d.Mirror, d.Variant))
	}
	row("parent", p.Parent)
	if ch := p.Change; ch != nil {
		row("change", ch.Command)
		row("by", ch.Who)
		row("diff", ch.Summary)
	}
	if len(p.Packages) > 0 {
		names := make([]string, 0, len(p.Packages))
		for n := range p.Packages {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(w, "packages  %d\n", len(names))
		for _, n := range names {
			fmt.Fprintf(w, "  %s %s\n", n, p.Packages[n])
		}
	}
}

// cmdImageVerify is `image verify NAME GEN`: the daemon rereads every
// file of the generation; the ones that differ from the manifest are
// named, and the exit status is 1.
func cmdImageVerify(ctx context.Context, c *apiclient.Client, name, gen, out string) error {
	v, err := c.VerifyImage(ctx, name, gen)
	if err != nil {
		return err
	}
	if out == "json" {
		if err := printJSON(v); err != nil {
			return err
		}
	} else {
		for _, f := range v.Files {
			switch {
			case f.OK:
				fmt.Fprintf(stdout, "ok       %-16s %12d  sha256 %s\n", f.Name, f.Size, f.SHA256)
			case f.Error != "":
				fmt.Fprintf(stdout, "UNREADABLE %s: %s\n", f.Name, f.Error)
			default:
				fmt.Fprintf(stdout, "DIFFERS  %-16s %12d  sha256 %s\n         manifest says %d  sha256 %s\n", f.Name, f.Size, f.SHA256, f.WantSize, f.WantSHA256)
			}
		}
	}
	if !v.OK {
		return fmt.Errorf("image %s generation %s: files differ from the manifest", name, gen)
	}
	fmt.Fprintf(os.Stderr, "image %s generation %s: every file matches its manifest\n", name, gen)
	return nil
}

// diffArgs reads `image diff A B` (each IMAGE or IMAGE:GEN) or `image diff
// IMAGE GEN1 GEN2`.
func diffArgs(pos []string) (a, b string, err error) {
	switch len(pos) {
	case 2:
		return pos[0], pos[1], nil
	case 3:
		return pos[0] + ":" + pos[1], pos[0] + ":" + pos[2], nil
	}
	return "", "", usageErr("image diff IMAGE[:GEN] IMAGE[:GEN] | IMAGE GEN1 GEN2")
}

// printDiff prints a diff: its summary, then (full) every path, boot file
// and package that changed.
func printDiff(w io.Writer, d *apitype.ImageDiff, full bool) {
	fmt.Fprintf(w, "%s -> %s: %s\n", d.A, d.B, d.Summary)
	if !full {
		return
	}
	printFileChanges(w, "", d.Files)
	for _, b := range d.Boot {
		fmt.Fprintf(w, "~ %s: %d bytes sha256 %.12s -> %d bytes sha256 %.12s\n", b.Name, b.Old.Size, b.Old.SHA256, b.New.Size, b.New.SHA256)
	}
	printFileChanges(w, "initramfs ", d.InitrdFiles)
	if d.InitrdError != "" {
		fmt.Fprintf(w, "initramfs: not listed: %s\n", d.InitrdError)
	}
	for _, p := range d.Packages {
		switch {
		case p.Old == "":
			fmt.Fprintf(w, "+ package %s %s\n", p.Name, p.New)
		case p.New == "":
			fmt.Fprintf(w, "- package %s %s\n", p.Name, p.Old)
		default:
			fmt.Fprintf(w, "~ package %s %s -> %s\n", p.Name, p.Old, p.New)
		}
	}
}

// sessionFlags are the decision flags of `image exec` and `image shell`.
type sessionFlags struct {
	publish, commit, discard, save *bool
}

// addSessionFlags adds the decision flags to fs; publish is the verb's
// --publish, shared with import and build.
func addSessionFlags(fs *pflag.FlagSet, publish *bool) sessionFlags {
	return sessionFlags{
		publish: publish,
		commit:  fs.Bool("commit", false, "make the change a new generation, not published, without asking"),
		discard: fs.Bool("discard", false, "discard the change without asking"),
		save:    fs.Bool("save-to-recipe", false, "also write what was added and changed into the image's recipe overlay"),
	}
}

// decide shows a finished session's diff and publishes, commits or
// discards it: as the flags say, else as the admin answers (read from
// answers) when stdin is a terminal, else (no terminal, no flag) it
// discards.
func decide(ctx context.Context, c *apiclient.Client, v *apitype.SessionView, f sessionFlags, answers io.Reader) error {
	fmt.Fprintln(os.Stderr)
	printDiff(os.Stderr, v.Diff, true)
	if v.Exit != 0 {
		fmt.Fprintf(os.Stderr, "the command exited with status %d\n", v.Exit)
	}
	action := ""
	switch {
	case *f.publish:
		action = apitype.SessionPublish
	case *f.commit:
		action = apitype.SessionCommit
	case *f.discard:
		action = apitype.SessionDiscard
	}
	if action == "" {
		if !stdinTerminal() {
			fmt.Fprintln(os.Stderr, "no terminal to ask and no --publish, --commit or --discard: discarding")
			action = apitype.SessionDiscard
		} else {
			fmt.Fprintf(os.Stderr, "p: publish as a new generation, c: commit it unpublished, anything else: discard [p/c/N] ")
			line, _ := bufio.NewReader(answers).ReadString('\n')
			switch strings.ToLower(strings.TrimSpace(line)) {
			case "p", "publish":
				action = apitype.SessionPublish
			case "c", "commit":
				action = apitype.SessionCommit
			default:
				action = apitype.SessionDiscard
			}
		}
	}
	res, err := c.DecideSession(ctx, v.Image, v.ID, apitype.SessionDecision{Action: action, SaveToRecipe: *f.save})
	if err != nil {
		return err
	}
	if res.Overlay != "" {
		fmt.Fprintf(stdout, "saved %d path(s) to the recipe overlay %s\n", res.Saved, res.Overlay)
		for _, p := range res.NotSaved {
			fmt.Fprintf(stdout, "not saved (an overlay cannot remove or make it): %s\n", p)
		}
	}
	if res.Manifest == nil {
		fmt.Fprintf(stdout, "image %s: session discarded; generation %s unchanged\n", v.Image, v.Parent)
		return nil
	}
	fmt.Fprintf(stdout, "image %s generation %s (parent %s)%s\n", v.Image, res.Manifest.ID, v.Parent, map[bool]string{true: ", published"}[res.Published])
	return nil
}

// imageSessionCmds are `image verify`, `diff`, `exec` and `shell`.
func imageSessionCmds() []*cobra.Command {
	verify := newVerb("verify NAME GENERATION", "reread every file of a generation against its manifest", exactArgs(2), func(fs *pflag.FlagSet) runner {
		socket := socketFlag(fs)
		out := outputFlag(fs, "", "json")
		return func(ctx context.Context, pos []string) error {
			return cmdImageVerify(ctx, apiclient.New(*socket), pos[0], pos[1], *out)
		}
	})
	verify.ValidArgsFunction = completeImageThenGeneration
	diff := newVerb("diff IMAGE[:GEN] IMAGE[:GEN] | IMAGE GEN1 GEN2", "what differs between two generations: files, kernel, initramfs, packages",
		argsBetween(2, 3), func(fs *pflag.FlagSet) runner {
			socket := socketFlag(fs)
			out := outputFlag(fs, "", "json")
			return func(ctx context.Context, pos []string) error {
				a, b, err := diffArgs(pos)
				if err != nil {
					return err
				}
				d, err := apiclient.New(*socket).DiffImages(ctx, a, b)
				if err != nil {
					return err
				}
				if *out == "json" {
					return printJSON(d)
				}
				printDiff(stdout, d, true)
				return nil
			}
		})
	diff.ValidArgsFunction = func(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(pos) == 0 {
			return completeImage(c, pos, toComplete)
		}
		return completeImageThenGeneration(c, pos[:1], toComplete)
	}
	session := func(fs *pflag.FlagSet) (*string, sessionFlags) {
		socket := socketFlag(fs)
		publish := fs.Bool("publish", false, "publish the change as a new generation without asking")
		return socket, addSessionFlags(fs, publish)
	}
	exec := newVerb("exec NAME [--publish|--commit|--discard] [--save-to-recipe] -- CMD [ARG...]",
		"run a command in a working copy of the image's current generation, then keep or discard the change", argsBetween(2, -1),
		func(fs *pflag.FlagSet) runner {
			socket, sf := session(fs)
			return func(ctx context.Context, pos []string) error {
				return cmdImageExec(ctx, apiclient.New(*socket), pos[0], pos[1:], sf)
			}
		})
	shell := newVerb("shell NAME [--publish|--commit|--discard] [--save-to-recipe]",
		"an interactive shell in a working copy of the image's current generation; the change is shown when it exits", exactArgs(1),
		func(fs *pflag.FlagSet) runner {
			socket, sf := session(fs)
			return func(ctx context.Context, pos []string) error {
				return cmdImageShell(ctx, apiclient.New(*socket), pos[0], sf)
			}
		})
	for _, c := range []*cobra.Command{exec, shell} {
		c.ValidArgsFunction = completeImage
	}
	return []*cobra.Command{verify, diff, exec, shell}
}

// cmdImageExec is `image exec NAME [flags] -- CMD...`.
func cmdImageExec(ctx context.Context, c *apiclient.Client, name string, command []string, f sessionFlags) error {
	if len(command) == 0 {
		return usageErr("image exec NAME [--publish|--commit|--discard] [--save-to-recipe] -- CMD [ARG...]")
	}
	v, err := c.ExecImage(ctx, name, command, stdout)
	if err != nil {
		return err
	}
	return decide(ctx, c, v, f, stdin)
}

func stdinTerminal() bool {
	in, ok := stdin.(*os.File)
	return ok && term.IsTerminal(int(in.Fd()))
}

// cmdImageShell is `image shell NAME`: an interactive shell in a working
// copy of the image's current generation, run by the daemon; the change
// is shown when it exits.
func cmdImageShell(ctx context.Context, c *apiclient.Client, name string, f sessionFlags) error {
	rows, cols := 0, 0
	out, outTerminal := stdout.(*os.File)
	if outTerminal {
		if w, h, err := term.GetSize(int(out.Fd())); err == nil {
			rows, cols = h, w
		} else {
			outTerminal = false
		}
	}
	conn, id, err := c.ShellImage(ctx, name, os.Getenv("TERM"), rows, cols)
	if err != nil {
		return err
	}
	defer conn.Close()
	stopResize := func() {}
	if outTerminal {
		stopResize = followResize(ctx, int(out.Fd()), func(rows, cols int) {
			c.ResizeSession(ctx, name, id, rows, cols) // the shell may have just exited: nothing to tell
		})
		defer stopResize()
	}
	nl := "\n"
	restore := func() {}
	if stdinTerminal() {
		fd := int(stdin.(*os.File).Fd())
		old, err := term.MakeRaw(fd)
		if err != nil {
			return fmt.Errorf("image shell: raw terminal: %w", err)
		}
		restore = func() { term.Restore(fd, old) }
		nl = "\r\n"
	}
	defer restore()
	fmt.Fprintf(os.Stderr, "netbootui: shell in a working copy of image %s (session %s); exit the shell to see the change%s", name, id, nl)
	// One reader of stdin: to the shell while it runs, then to the
	// question that follows it.
	answers, rest := io.Pipe()
	var shellDone atomic.Bool
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				if shellDone.Load() {
					rest.Write(buf[:n])
				} else if _, werr := conn.Write(buf[:n]); werr != nil {
					rest.Write(buf[:n])
				}
			}
			if err != nil {
				conn.CloseWrite()
				rest.CloseWithError(err)
				return
			}
		}
	}()
	_, err = io.Copy(stdout, conn)
	stopResize()
	shellDone.Store(true)
	restore()
	if err != nil && !strings.Contains(err.Error(), "use of closed network connection") {
		return fmt.Errorf("image shell %s: %w", name, err)
	}
	v, err := c.Session(ctx, name, id)
	if err != nil {
		return fmt.Errorf("image shell %s: the session: %w", name, err)
	}
	return decide(ctx, c, v, f, answers)
}

// followResize calls resize with the new size of terminal fd each time it
// changes (SIGWINCH) until stop is called (once or more).
func followResize(ctx context.Context, fd int, resize func(rows, cols int)) (stop func()) {
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-winch:
				if w, h, err := term.GetSize(fd); err == nil {
					resize(h, w)
				}
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			signal.Stop(winch)
			close(done)
			<-finished
		})
	}
}

// printFileChanges prints one line per path added (+), removed (-) or
// changed (~, with what changed), each after prefix.
func printFileChanges(w io.Writer, prefix string, files []apitype.ImageFileChange) {
	for _, f := range files {
		switch f.Kind {
		case apitype.ChangeAdded:
			fmt.Fprintf(w, "+ %s%s\n", prefix, f.Path)
		case apitype.ChangeRemoved:
			fmt.Fprintf(w, "- %s%s\n", prefix, f.Path)
		default:
			var what []string
			for _, x := range f.What {
				switch x {
				case "mode":
					x = "mode " + f.Old.Mode + " -> " + f.New.Mode
				case "owner":
					x = fmt.Sprintf("owner %d:%d -> %d:%d", f.Old.UID, f.Old.GID, f.New.UID, f.New.GID)
				case "size":
					x = fmt.Sprintf("size %d -> %d", f.Old.Size, f.New.Size)
				case "link":
					x = "link " + f.Old.Link + " -> " + f.New.Link
				}
				what = append(what, x)
			}
			fmt.Fprintf(w, "~ %s%s (%s)\n", prefix, f.Path, strings.Join(what, ", "))
		}
	}
}
