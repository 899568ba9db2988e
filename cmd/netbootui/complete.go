package main

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
	"github.com/netbootui/netbootui/internal/hostlist"
)

// Shell completion (`netbootui completion bash|zsh|fish`, cobra's) asks
// the program itself through its hidden __complete verb; the functions here
// answer with names from the daemon at the verb's --api-socket. When the
// daemon cannot be reached they suggest nothing and say nothing: a shell
// prompt is no place for errors.

// completeTimeout bounds the API calls of one completion.
const completeTimeout = 2 * time.Second

type completeFunc = func(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective)

// fromDaemon calls fn with a client of the verb's daemon and keeps the
// words that start with toComplete; an error means no suggestions.
func fromDaemon(c *cobra.Command, toComplete string, fn func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	socket, err := c.Flags().GetString("api-socket")
	if err != nil || socket == "" {
		socket = defaultSocket()
	}
	ctx, cancel := context.WithTimeout(c.Context(), completeTimeout)
	defer cancel()
	cl := apiclient.New(socket)
	defer cl.CloseIdleConnections()
	words, err := fn(ctx, cl)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, w := range words {
		if strings.HasPrefix(w, toComplete) {
			out = append(out, w)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// nodeWords are the daemon's nodes as completions, ordered by name, each
// described by its group and stage.
func nodeWords(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, []apitype.NodeView, error) {
	nodes, err := cl.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	slices.SortFunc(nodes, func(a, b apitype.NodeView) int { return hostlist.Compare(a.Name, b.Name) })
	var out []cobra.Completion
	for _, n := range nodes {
		var desc []string
		if n.Group != "" {
			desc = append(desc, "group "+n.Group)
		}
		if n.State.Stage != apitype.StageUnknown {
			desc = append(desc, stageText(n.State))
		}
		out = append(out, withDesc(n.Name, strings.Join(desc, ", ")))
	}
	return out, nodes, nil
}

// withDesc is a completion with its description, when there is one.
func withDesc(word, desc string) cobra.Completion {
	if desc == "" {
		return word
	}
	return cobra.CompletionWithDesc(word, desc)
}

// completeNode completes one node name (the first argument only).
func completeNode(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(pos) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return fromDaemon(c, toComplete, func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error) {
		words, _, err := nodeWords(ctx, cl)
		return words, err
	})
}

// completeGroup completes one group name (groups that have nodes).
func completeGroup(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(pos) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return fromDaemon(c, toComplete, func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error) {
		_, nodes, err := nodeWords(ctx, cl)
		return groupWords(nodes, ""), err
	})
}

// groupWords are the groups of nodes, sorted, each with prefix and its
// node count.
func groupWords(nodes []apitype.NodeView, prefix string) []cobra.Completion {
	count := map[string]int{}
	for _, n := range nodes {
		if n.Group != "" {
			count[n.Group]++
		}
	}
	var names []string
	for g := range count {
		names = append(names, g)
	}
	slices.Sort(names)
	var out []cobra.Completion
	for _, g := range names {
		out = append(out, withDesc(prefix+g, plural(count[g], "node")))
	}
	return out
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// completeSelection completes a SELECTION (the first argument): node names
// and @groups; after a comma, another item of the list.
func completeSelection(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(pos) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return selectionWords(c, toComplete)
}

func selectionWords(c *cobra.Command, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	prefix := ""
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		prefix = toComplete[:i+1]
	}
	words, dir := fromDaemon(c, toComplete, func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error) {
		words, nodes, err := nodeWords(ctx, cl)
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, w := range words {
			out = append(out, prefix+w)
		}
		return append(out, groupWords(nodes, prefix+"@")...), nil
	})
	if prefix != "" {
		dir |= cobra.ShellCompDirectiveNoSpace
	}
	return words, dir
}

// completeImage completes one image name.
func completeImage(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(pos) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return fromDaemon(c, toComplete, func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error) {
		images, err := cl.Images(ctx)
		var out []cobra.Completion
		for _, im := range images {
			out = append(out, withDesc(im.Name, plural(len(im.Generations), "generation")))
		}
		return out, err
	})
}

// generationWords are the generations of image (every image's, as
// image@generation, when image is ""), newest first, the current one
// marked.
func generationWords(ctx context.Context, cl *apiclient.Client, image string) ([]cobra.Completion, error) {
	images, err := cl.Images(ctx)
	if err != nil {
		return nil, err
	}
	var out []cobra.Completion
	for _, im := range images {
		if image != "" && im.Name != image {
			continue
		}
		gens := slices.Clone(im.Generations)
		slices.SortStableFunc(gens, func(a, b *apitype.Manifest) int { return b.Created.Compare(a.Created) })
		for _, g := range gens {
			word := g.ID
			if image == "" {
				word = im.Name + "@" + g.ID
			}
			desc := g.Created.UTC().Format(time.DateTime)
			if g.ID == im.Current {
				desc += ", current"
			}
			out = append(out, withDesc(word, desc))
		}
	}
	return out, nil
}

// completeImageThenGeneration completes NAME GENERATION.
func completeImageThenGeneration(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch len(pos) {
	case 0:
		return completeImage(c, pos, toComplete)
	case 1:
		return fromDaemon(c, toComplete, func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error) {
			return generationWords(ctx, cl, pos[0])
		})
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeSelectionThenGeneration completes SELECTION GENERATION, the
// generation as image@generation.
func completeSelectionThenGeneration(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	switch len(pos) {
	case 0:
		return selectionWords(c, toComplete)
	case 1:
		return fromDaemon(c, toComplete, func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error) {
			return generationWords(ctx, cl, "")
		})
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeRollout completes a rollout ID.
func completeRollout(c *cobra.Command, pos []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(pos) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return fromDaemon(c, toComplete, func(ctx context.Context, cl *apiclient.Client) ([]cobra.Completion, error) {
		list, err := cl.Stages(ctx)
		var out []cobra.Completion
		for _, r := range list {
			out = append(out, withDesc(r.ID, fmt.Sprintf("%s@%s on %s, %s", r.Image, shortGen(r.Generation), r.Selection, r.State)))
		}
		return out, err
	})
}

// fixedWords completes a flag's value from a fixed list.
func fixedWords(words ...string) completeFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return words, cobra.ShellCompDirectiveNoFileComp
	}
}

// yamlFiles completes inventory files.
func yamlFiles(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}

// wordsAnnotation holds the fixed values of a flag (flagWords) that its
// completion suggests.
const wordsAnnotation = "netbootui_words"

// flagWords declares the values flag name takes, for its completion.
func flagWords(fs *pflag.FlagSet, name string, words ...string) {
	fs.SetAnnotation(name, wordsAnnotation, words)
}

// registerFlagWords completes every flag that has flagWords with them.
func registerFlagWords(c *cobra.Command) {
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if words, ok := f.Annotations[wordsAnnotation]; ok {
			c.RegisterFlagCompletionFunc(f.Name, fixedWords(words...))
		}
	})
	for _, s := range c.Commands() {
		registerFlagWords(s)
	}
}

// versionCmd prints the module version and the VCS revision the binary was
// built from.
func versionCmd() *cobra.Command {
	return newVerb("version", "the module version and the VCS revision this binary was built from", exactArgs(0), func(fs *pflag.FlagSet) runner {
		return func(context.Context, []string) error {
			fmt.Fprintln(stdout, versionText())
			return nil
		}
	})
}

// versionText is "netbootui VERSION (revision R[, modified], TIME, goX)".
func versionText() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "netbootui (no build information)"
	}
	s := "netbootui " + bi.Main.Version
	var rev, at string
	modified := false
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value
		case "vcs.time":
			at = kv.Value
		case "vcs.modified":
			modified = kv.Value == "true"
		}
	}
	var parts []string
	if rev != "" {
		r := "revision " + rev
		if modified {
			r += " (modified)"
		}
		parts = append(parts, r)
	}
	if at != "" {
		parts = append(parts, at)
	}
	parts = append(parts, bi.GoVersion)
	return s + " (" + strings.Join(parts, ", ") + ")"
}
