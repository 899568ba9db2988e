package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

// cmdStage is `netbootui stage create|preview|run|halt|resume|abort|promote|rollback|show|list`.
func cmdStage(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErr("stage create|preview|run|halt|resume|abort|promote|rollback|show|list")
	}
	switch sub := args[0]; sub {
	case "create", "preview":
		return cmdStageCreate(ctx, sub, args[1:])
	case "run", "halt", "resume", "abort", "promote", "rollback":
		return cmdStageAction(ctx, sub, args[1:])
	case "show":
		return cmdStageShow(ctx, args[1:])
	case "list", "ls":
		return cmdStageList(ctx, args[1:])
	default:
		return usageErr("stage create|preview|run|halt|resume|abort|promote|rollback|show|list")
	}
}

func cmdStageCreate(ctx context.Context, sub string, args []string) error {
	fs, socket := clientFlags("stage " + sub)
	wave := fs.String("wave", "1", "nodes per wave: a count N or a percentage N%")
	inFlight := fs.Int("max-in-flight", 0, "nodes of a wave rebooting at once (0: the whole wave)")
	maxFail := fs.Int("max-failures", 0, "failed nodes a wave tolerates before the rollout halts")
	timeout := fs.Duration("timeout", apitype.DefaultStageTimeout, "per node: from the power cycle to a check-in with the staged generation")
	via := fs.String("via", apitype.ViaAuto, "how waves reboot: auto (kexec where the node's agent polls, power otherwise or when the kexec fails), kexec, power")
	back := fs.Bool("reboot-back", false, "reboot failed nodes onto their previous generation")
	out := fs.String("o", "", "output: json")
	pos, err := parseArgs(fs, args, 2)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageErr("stage " + sub + " SELECTION GENERATION [--wave N|N%] [--max-in-flight N] [--max-failures N] [--timeout D] [--reboot-back]")
	}
	if *timeout <= 0 {
		return fmt.Errorf("stage %s: --timeout %v must be positive", sub, *timeout)
	}
	req := apitype.StageRequest{Selection: pos[0], Generation: pos[1], Wave: *wave, MaxInFlight: *inFlight,
		MaxFailures: *maxFail, Timeout: *timeout, RebootBack: *back, Via: *via}
	c := apiclient.New(*socket)
	var r *apitype.Rollout
	if sub == "preview" {
		r, err = c.StagePreview(ctx, req)
	} else {
		r, err = c.StageCreate(ctx, req)
	}
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(r)
	}
	if sub == "preview" {
		printPreview(stdout, r)
		return nil
	}
	printRollout(stdout, r)
	return nil
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

func cmdStageAction(ctx context.Context, action string, args []string) error {
	fs, socket := clientFlags("stage " + action)
	out := fs.String("o", "", "output: json")
	pos, err := parseArgs(fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageErr("stage " + action + " [ID]")
	}
	id := ""
	if len(pos) == 1 {
		id = pos[0]
	}
	r, err := apiclient.New(*socket).StageAction(ctx, id, action)
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(r)
	}
	printRollout(stdout, r)
	return nil
}

// cmdStageShow is `netbootui stage show [ID] [-f]`: with -f it follows the
// rollout's stream and prints it again each time it changes, until no wave
// is in flight (exit 0 when completed or promoted, 1 when halted, aborted
// or rolled back).
func cmdStageShow(ctx context.Context, args []string) error {
	fs, socket := clientFlags("stage show")
	follow := fs.Bool("f", false, "follow: print each change until no wave is in flight")
	fs.Duration("interval", 0, "ignored: -f follows the daemon's stream (kept for old scripts)")
	out := fs.String("o", "", "output: json")
	pos, err := parseArgs(fs, args, 0)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageErr("stage show [ID] [-f]")
	}
	id := ""
	if len(pos) == 1 {
		id = pos[0]
	}
	c := apiclient.New(*socket)
	if !*follow {
		r, err := c.Stage(ctx, id)
		if err != nil {
			return err
		}
		if *out == "json" {
			return printJSON(r)
		}
		printRollout(stdout, r)
		return nil
	}
	last := ""
	var end error
	err = c.FollowStage(ctx, id, func(r *apitype.Rollout) error {
		if key := progressKey(r); key != last {
			if *out == "json" {
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

func cmdStageList(ctx context.Context, args []string) error {
	fs, socket := clientFlags("stage list")
	out := fs.String("o", "", "output: json")
	if _, err := parseArgs(fs, args, 0); err != nil {
		return err
	}
	list, err := apiclient.New(*socket).Stages(ctx)
	if err != nil {
		return err
	}
	if *out == "json" {
		return printJSON(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tGENERATION\tSELECTION\tNODES\tCREATED")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s@%s\t%s\t%d\t%s\n", r.ID, r.State, r.Image, shortGen(r.Generation), r.Selection,
			len(r.Nodes), r.Created.Local().Format(time.DateTime))
	}
	return tw.Flush()
}
