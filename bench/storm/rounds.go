package storm

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"
)

// Summary is what several rounds of the same storm measured: each round's
// times and ratio, and the median and spread of the ratios.
type Summary struct {
	Rounds []Round `json:"rounds"`
	// Failed counts the rounds in which either run had a failed node;
	// with any, there is no median.
	Failed int `json:"failed_rounds"`
	// Median, Min and Max are over the rounds' ratios (the peers' time
	// over netbootui's; above 1: netbootui was faster); set only when
	// every round had both runs and no failure.
	Median float64 `json:"median_ratio,omitempty"`
	Min    float64 `json:"min_ratio,omitempty"`
	Max    float64 `json:"max_ratio,omitempty"`
}

// Round is one storm of a Summary.
type Round struct {
	Ours  time.Duration `json:"netbootui"`
	Peers time.Duration `json:"peers,omitempty"`
	Ratio float64       `json:"ratio,omitempty"`
	// Failed counts the failed nodes of both runs.
	Failed int `json:"failed"`
}

// Summarize sums up reports of the same storm.
func Summarize(reps []Report) Summary {
	var s Summary
	var ratios []float64
	for _, r := range reps {
		rd := Round{Ours: r.AllDone, Failed: r.Failed}
		if r.Peer != nil {
			rd.Peers = r.Peer.AllDone
			rd.Failed += r.Peer.Failed
		}
		if rd.Failed > 0 {
			s.Failed++
		} else if r.Peer != nil && r.AllDone > 0 {
			rd.Ratio = float64(r.Peer.AllDone) / float64(r.AllDone)
			ratios = append(ratios, rd.Ratio)
		}
		s.Rounds = append(s.Rounds, rd)
	}
	if s.Failed == 0 && len(ratios) == len(reps) && len(ratios) > 0 {
		slices.Sort(ratios)
		s.Min, s.Max = ratios[0], ratios[len(ratios)-1]
		if n := len(ratios); n%2 == 1 {
			s.Median = ratios[n/2]
		} else {
			s.Median = (ratios[n/2-1] + ratios[n/2]) / 2
		}
	}
	return s
}

// WriteText prints the summary for a person: one line per round, then
// the median and spread of the ratios, or FAIL.
func (s Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%d rounds:\n", len(s.Rounds))
	for i, r := range s.Rounds {
		peers, ratio := "-", "-"
		if r.Peers > 0 {
			peers = r.Peers.Round(time.Millisecond).String()
		}
		if r.Ratio > 0 {
			ratio = strconv.FormatFloat(r.Ratio, 'f', 2, 64)
		}
		fmt.Fprintf(w, "  round %d: netbootui %s, tftpd-hpa + nginx %s, ratio %s, failed nodes %d\n",
			i+1, r.Ours.Round(time.Millisecond), peers, ratio, r.Failed)
	}
	switch {
	case s.Failed > 0:
		fmt.Fprintf(w, "FAIL: %d of %d rounds had failed nodes; no ratio\n", s.Failed, len(s.Rounds))
	case s.Median > 0:
		fmt.Fprintf(w, "ratio median %.2f [min %.2f - max %.2f] over %d rounds (above 1: netbootui was faster)\n",
			s.Median, s.Min, s.Max, len(s.Rounds))
	}
}
