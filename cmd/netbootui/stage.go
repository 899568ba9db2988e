package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// stageActions are the verbs that act on a rollout, with their help.
var stageActions = []struct{ action, short string }{
	{"run", "start (or continue) the rollout's next wave"},
	{"halt", "stop after the wave in flight"},
	{"resume", "continue a halted rollout"},
	{"abort", "end the rollout; nodes keep what they were assigned"},
	{"promote", "make the staged generation the image's current one"},
	{"rollback", "assign the rollout's nodes their previous generations again"},
}

// stageCmd is `netbootui stage create|preview|run|halt|resume|abort|promote|rollback|show|list`.
func stageCmd() *cobra.Command {
	verbs := []*cobra.Command{}
	for _, sub := range []string{"create", "preview"} {
		short := "stage a generation on a selection in waves (run it with stage run)"
		if sub == "preview" {
			short = "show which nodes a stage create would change, by wave, without staging"
		}
		c := newVerb(sub+" SELECTION GENERATION", short, exactArgs(2), func(fs *pflag.FlagSet) runner { return stageCreateVerb(fs, sub) })
		c.ValidArgsFunction = completeSelectionThenGeneration
		verbs = append(verbs, c)
	}
	for _, a := range stageActions {
		c := newVerb(a.action+" [ID]", a.short+" (default: the newest rollout)", argsBetween(0, 1), func(fs *pflag.FlagSet) runner {
			socket := socketFlag(fs)
			out := outputFlag(fs, "", "json")
			return func(ctx context.Context, pos []string) error {
				r, err := apiclient.New(*socket).StageAction(ctx, firstOr(pos, ""), a.action)
				return showRollout(r, err, *out)
			}
		})
		c.ValidArgsFunction = completeRollout
		verbs = append(verbs, c)
	}
	show := newVerb("show [ID]", "a rollout's waves and nodes (default: the newest); -f follows it", argsBetween(0, 1), stageShowVerb)
	show.ValidArgsFunction = completeRollout
	list := newVerb("list", "every rollout", exactArgs(0), stageListVerb)
	list.Aliases = []string{"ls"}
	return newGroup("stage", "staged rollouts: a generation on a selection, wave by wave", append(verbs, show, list)...)
}

// firstOr is pos[0], or def when there is none.
func firstOr(pos []string, def string) string {
	if len(pos) == 0 {
		return def
	}
	return pos[0]
}

func showRollout(r *apitype.Rollout, err error, out string) error {
	if err != nil {
		return err
	}
	if out == "json" {
		return printJSON(r)
	}
	printRollout(stdout, r)
	return nil
}

func stageCreateVerb(fs *pflag.FlagSet, sub string) runner {
	socket := socketFlag(fs)
	wave := fs.String("wave", "1", "nodes per wave: a count N or a percentage N%")
	inFlight := fs.Int("max-in-flight", 0, "nodes of a wave rebooting at once (0: the whole wave)")
	maxFail := fs.Int("max-failures", 0, "failed nodes a wave tolerates before the rollout halts")
	timeout := fs.Duration("timeout", apitype.DefaultStageTimeout, "per node: from the power cycle to a check-in with the staged generation")
	via := fs.String("via", apitype.ViaAuto, "how waves reboot: auto (kexec where the node's agent polls, power otherwise or when the kexec fails), kexec, power")
	back := fs.Bool("reboot-back", false, "reboot failed nodes onto their previous generation")
	out := outputFlag(fs, "", "json")
	return func(ctx context.Context, pos []string) error {
		if *timeout <= 0 {
			return fmt.Errorf("stage %s: --timeout %v must be positive", sub, *timeout)
		}
		req := apitype.StageRequest{Selection: pos[0], Generation: pos[1], Wave: *wave, MaxInFlight: *inFlight,
			MaxFailures: *maxFail, Timeout: *timeout, RebootBack: *back, Via: *via}
		c := apiclient.New(*socket)
		if sub == "preview" {
			r, err := c.StagePreview(ctx, req)
			if err != nil || *out == "json" {
				return showRollout(r, err, *out)
			}
			printPreview(stdout, r)
			return nil
		}
		r, err := c.StageCreate(ctx, req)
		return showRollout(r, err, *out)
	}
}

// printPreview lists exactly the nodes that change, from and to, by wave,
// then the nodes that already have the generation.
func printPreview(w io.Writer, r *apitype.Rollout) {
	fmt.Fprintf(w, "%s@%s on %s: %d nodes change, %d already have it, %d waves of %s\n",
		r.Image, r.Generation, r.Selection, len(r.Nodes), len(r.Unchanged), len(r.Waves), r.Wave)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tNODE\tFROM\tTO")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", n.Wave+1, n.Name, dash(shortGen(n.Previous)), shortGen(r.Generation))
	}
	tw.Flush()
	if len(r.Unchanged) > 0 {
		fmt.Fprintf(w, "unchanged (already assigned %s): %s\n", shortGen(r.Generation), strings.Join(r.Unchanged, ","))
	}
}

func shortGen(g string) string {
	if len(g) > 12 {
		return g[:12]
	}
	return g
}

// printRollout shows a rollout: its state, each wave and each node.
func printRollout(w io.Writer, r *apitype.Rollout) {
	fmt.Fprintf(w, "rollout %s: %s@%s on %s: %s", r.ID, r.Image, shortGen(r.Generation), r.Selection, r.State)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	if r.Promoted != "" {
		fmt.Fprintf(w, "promoted: %s\n", r.Promoted)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WAVE\tSTATE\tOK\tFAILED\tNODES")
	for _, wv := range r.Waves {
		fmt.Fprintf(tw, "%d/%d\t%s\t%d\t%d\t%s\n", wv.Index+1, len(r.Waves), wv.State, wv.OK, wv.Failed, strings.Join(wv.Nodes, ","))
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tWAVE\tSTATUS\tPREVIOUS\tERROR")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", n.Name, n.Wave+1, n.Status, dash(shortGen(n.Previous)), dash(n.Error))
	}
	tw.Flush()
}

// stageShowVerb is `netbootui stage show [ID] [-f]`: with -f it follows
// the rollout's stream and prints it again each time it changes, until no
// wave is in flight (exit 0 when completed or promoted, 1 when halted,
// aborted or rolled back).
func stageShowVerb(fs *pflag.FlagSet) runner {
	socket := socketFlag(fs)
	follow := fs.BoolP("follow", "f", false, "follow: print each change until no wave is in flight")
	fs.Duration("interval", 0, "ignored: -f follows the daemon's stream (kept for old scripts)")
	out := outputFlag(fs, "", "json")
	return func(ctx context.Context, pos []string) error {
		return followRollout(ctx, apiclient.New(*socket), firstOr(pos, ""), *follow, *out)
	}
}

func followRollout(ctx context.Context, c *apiclient.Client, id string, follow bool, out string) error {
	if !follow {
		r, err := c.Stage(ctx, id)
		return showRollout(r, err, out)
	}
	last := ""
	var end error
	err := c.FollowStage(ctx, id, func(r *apitype.Rollout) error {
		if key := progressKey(r); key != last {
			if out == "json" {
				printJSON(r)
			} else {
				fmt.Fprintf(stdout, "--- %s\n", time.Now().Format(time.TimeOnly))
				printRollout(stdout, r)
			}
			last = key
		}
		switch r.State {
		case apitype.RolloutRunning:
			return nil
		case apitype.RolloutCompleted, apitype.RolloutPromoted, apitype.RolloutStaged:
			end = errFollowDone
		default:
			end = exitError(1)
		}
		return end
	})
	switch {
	case end != nil && err == end:
		if end == errFollowDone {
			return nil
		}
		return end
	case err == nil:
		return ctx.Err() // interrupted
	}
	return err
}

// errFollowDone ends a follow whose rollout has no wave in flight.
var errFollowDone = errors.New("no wave in flight")

// progressKey changes whenever the rollout, a wave or a node changes.
func progressKey(r *apitype.Rollout) string {
	var b strings.Builder
	b.WriteString(string(r.State) + r.Reason)
	for _, w := range r.Waves {
		fmt.Fprintf(&b, "|%s%d%d", w.State, w.OK, w.Failed)
	}
	for _, n := range r.Nodes {
		b.WriteString("|" + string(n.Status))
	}
	return b.String()
}

func stageListVerb(fs *pflag.FlagSet) runner {
	socket := socketFlag(fs)
	out := outputFlag(fs, "", "json")
	return func(ctx context.Context, _ []string) error {
		list, err := apiclient.New(*socket).Stages(ctx)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(list)
		}
		printRollouts(list)
		return nil
	}
}

func printRollouts(list []*apitype.Rollout) {
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tGENERATION\tSELECTION\tNODES\tCREATED")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%s\t%d\t%s\n", r.ID, r.State, r.Image, shortGen(r.Generation), r.Selection,
			len(r.Nodes), r.Created.Local().Format(time.DateTime))
	}
	tw.Flush()
}
