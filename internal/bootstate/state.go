package bootstate

import (
	"fmt"
	"strconv"
	"time"
)

// Power states reported in NodeState.Power.
const (
	PowerOn      = "on"
	PowerOff     = "off"
	PowerUnknown = "unknown"
)

// Power actions, carried in Event.Message of a KindPower event sent by the
// power service after it issued the command to the BMC.
const (
	ActionOn    = "on"    // chassis power on
	ActionOff   = "off"   // chassis power off (hard)
	ActionCycle = "cycle" // chassis power cycle
	ActionReset = "reset" // chassis hard reset
	ActionSoft  = "soft"  // ACPI soft shutdown request
)

// maxTimeline bounds NodeState.Timeline: a boot that keeps failing and
// retrying within one timeline keeps only its newest marks.
const maxTimeline = 64

// StageMark records when a node entered a stage during its current boot,
// or, Unproven, when a request that only claimed the node (a KindClaim or
// KindDHCP event) asked for what that stage fetches: seen, but the node's
// stage did not move.
type StageMark struct {
	Stage    Stage     `json:"stage"`
	Time     time.Time `json:"time"`
	Unproven bool      `json:"unproven,omitempty"`
}

// NodeState is what the Tracker knows about one node. It is a value: the
// Tracker hands out copies, and Timeline is never modified in place after
// it was handed out, so a copy may be read without locks.
type NodeState struct {
	Node         string    `json:"node"`
	Stage        Stage     `json:"stage"`
	StageSince   time.Time `json:"stage_since,omitzero"`
	LastProgress time.Time `json:"last_progress,omitzero"` // last fetch, progress or stage change of a boot in progress
	// Timeline lists the stages of the current boot, oldest first. It is
	// reset when a new boot starts (see the package README).
	Timeline     []StageMark   `json:"timeline,omitempty"`
	Path         string        `json:"path,omitempty"`  // file of the last fetch or progress
	Bytes        int64         `json:"bytes,omitempty"` // bytes of Path sent so far
	Total        int64         `json:"total,omitempty"` // size of Path, 0 if unknown
	Generation   string        `json:"generation,omitempty"`
	Uptime       time.Duration `json:"uptime,omitempty"`
	OverlayBytes int64         `json:"overlay_bytes,omitempty"`
	LastCheckin  time.Time     `json:"last_checkin,omitzero"`
	Power        string        `json:"power"` // PowerOn, PowerOff or PowerUnknown
	PowerError   string        `json:"power_error,omitempty"`
	// Error says why the node is failed or stalled; it is empty in any
	// other stage.
	Error       string    `json:"error,omitempty"`
	Remote      string    `json:"remote,omitempty"` // last client address
	MAC         string    `json:"mac,omitempty"`    // last MAC seen in an event
	MarkedDirty bool      `json:"marked_dirty,omitempty"`
	DirtyReason string    `json:"dirty_reason,omitempty"`
	LastSeen    time.Time `json:"last_seen,omitzero"` // time of the last event about the node
	// Seq is the sequence number of the last event recorded for the node;
	// a client that takes a snapshot and then follows a Subscription may
	// skip events with a Seq not above it.
	Seq uint64 `json:"seq,omitempty"`
}

// Dirty reports whether the node no longer runs a clean copy of what it is
// assigned, with one human-readable reason per cause:
//   - the node is booted and its check-in reported a generation other than
//     assignedGeneration (not checked when assignedGeneration is "");
//   - the node is booted and its check-in reported more than
//     overlayThreshold bytes written to its overlay: 0 (the inventory's
//     overlay_dirty_bytes left out or 0) means any write, and a negative
//     threshold counts as 0;
//   - an admin marked it (see KindMark).
//
// A node that is off or in the middle of a boot is not dirty by generation
// or overlay: whatever it ran is gone, and the boot under way fetches the
// assigned generation.
func (s NodeState) Dirty(assignedGeneration string, overlayThreshold int64) (bool, []string) {
	var reasons []string
	if s.Stage == StageBooted {
		if assignedGeneration != "" && s.Generation != assignedGeneration {
			if s.Generation == "" {
				reasons = append(reasons, "running generation not reported, assigned "+assignedGeneration)
			} else {
				reasons = append(reasons, "running generation "+s.Generation+", assigned "+assignedGeneration)
			}
		}
		overlayThreshold = max(overlayThreshold, 0)
		if s.OverlayBytes > overlayThreshold {
			reasons = append(reasons, fmt.Sprintf("overlay writes %s above threshold %s",
				formatBytes(s.OverlayBytes), formatBytes(overlayThreshold)))
		}
	}
	if s.MarkedDirty {
		if s.DirtyReason != "" {
			reasons = append(reasons, "marked by admin: "+s.DirtyReason)
		} else {
			reasons = append(reasons, "marked by admin")
		}
	}
	return len(reasons) > 0, reasons
}

// formatBytes renders n in binary units with one decimal ("12.0 MiB").
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// fetchRank orders the stages a Fetch can report; 0 for any other stage.
func fetchRank(s Stage) int {
	switch s {
	case StageDHCP:
		return 1
	case StageNBP:
		return 2
	case StageConfig:
		return 3
	case StageKernel:
		return 4
	case StageInitrd:
		return 5
	case StageRootfs:
		return 6
	}
	return 0
}

// lastFetchStage is the furthest fetch stage the current boot reached
// ("" if none); unproven marks are not reached stages.
func (s *NodeState) lastFetchStage() Stage {
	for i := len(s.Timeline) - 1; i >= 0; i-- {
		if m := s.Timeline[i]; !m.Unproven && fetchRank(m.Stage) > 0 {
			return m.Stage
		}
	}
	return ""
}

// bootUnderWay reports whether the timeline holds a (proven) boot step at
// all.
func (s *NodeState) bootUnderWay() bool {
	for i := range s.Timeline {
		if m := s.Timeline[i]; !m.Unproven && m.Stage.InProgress() {
			return true
		}
	}
	return false
}

// claimed returns the unproven marks after the timeline's last proven one,
// oldest first.
func (s *NodeState) claimed() []StageMark {
	i := len(s.Timeline)
	for i > 0 && s.Timeline[i-1].Unproven {
		i--
	}
	return s.Timeline[i:]
}

// claim applies a claim of stage at t: an unproven mark, unless the stage is
// not a fetch stage or the claims since the last proven mark have one of it
// already (so a flood of claims adds at most one mark per stage).
func (s *NodeState) claim(stage Stage, t time.Time) {
	if fetchRank(stage) == 0 {
		return
	}
	for _, m := range s.claimed() {
		if m.Stage == stage {
			return
		}
	}
	s.mark(StageMark{Stage: stage, Time: t, Unproven: true})
}

// startBootClaimed begins a new timeline (startBoot) that keeps the
// unproven marks the old one ended with and that come before rank: the
// claims of the boot that now proved itself.
func (s *NodeState) startBootClaimed(rank int) {
	var keep []StageMark
	for _, m := range s.claimed() {
		if fetchRank(m.Stage) < rank {
			keep = append(keep, m)
		}
	}
	s.startBoot()
	s.Timeline = keep
}

// startBoot begins a new timeline: what belonged to the previous boot
// (file progress, overlay, the admin's mark, the error) is gone with it.
func (s *NodeState) startBoot() {
	s.Timeline = nil // never reuse the array: copies handed out may alias it
	s.Path, s.Bytes, s.Total = "", 0, 0
	s.Uptime, s.OverlayBytes = 0, 0
	s.MarkedDirty, s.DirtyReason = false, ""
	s.Error = ""
}

// setStage moves the node to stage at t, appending a timeline mark.
func (s *NodeState) setStage(stage Stage, t time.Time) {
	if stage != StageFailed && stage != StageStalled {
		s.Error = ""
	}
	if stage.InProgress() {
		s.LastProgress = t
	}
	if s.Stage == stage {
		return
	}
	s.Stage = stage
	s.StageSince = t
	s.mark(StageMark{Stage: stage, Time: t})
}

// mark appends m to the timeline, keeping the newest maxTimeline marks.
func (s *NodeState) mark(m StageMark) {
	if len(s.Timeline) >= maxTimeline {
		keep := make([]StageMark, maxTimeline-1, maxTimeline+8)
		copy(keep, s.Timeline[len(s.Timeline)-(maxTimeline-1):])
		s.Timeline = keep
	}
	s.Timeline = append(s.Timeline, m)
}

// step applies ev to the state and reports whether the event is to be
// recorded (history, subscribers, persistence). Only a Progress event
// within progressInterval of the last recorded one is not: it still
// updates Bytes and LastProgress.
func (s *NodeState) step(ev *Event, lastRecorded *time.Time, progressInterval time.Duration) bool {
	switch ev.Kind {
	case KindClaim, KindDHCP:
		// Anyone can name a node by its MAC: nothing of its state moves,
		// not even its address or when it was last seen.
		s.claim(ev.Stage, ev.Time)
		return true
	case KindUnknown, KindDenied, KindInfo:
		// History only: a refused or unproven request (a wrong token, a
		// missing file asked for by a claim) is not the node being seen.
		return true
	}
	if ev.Remote != "" {
		s.Remote = ev.Remote
	}
	if ev.MAC != "" {
		s.MAC = ev.MAC
	}
	s.LastSeen = ev.Time
	switch ev.Kind {
	case KindFetch:
		r := fetchRank(ev.Stage)
		if r == 0 {
			return true // some other file: history only
		}
		newBoot := false
		switch s.Stage {
		case StageUnknown, StageOff, StageBooted:
			newBoot = true
		case StagePoweringOn:
		default: // a boot stage, stalled or failed
			newBoot = !s.bootUnderWay() || r < fetchRank(s.lastFetchStage())
		}
		if newBoot {
			s.startBootClaimed(r)
		}
		s.Power = PowerOn
		s.Path, s.Bytes, s.Total = ev.Path, ev.Bytes, ev.Total
		s.setStage(ev.Stage, ev.Time)
		*lastRecorded = ev.Time
		return true

	case KindProgress:
		if ev.Path != "" {
			s.Path = ev.Path
		}
		s.Bytes = ev.Bytes
		if ev.Total > 0 {
			s.Total = ev.Total
		}
		s.Power = PowerOn
		s.LastProgress = ev.Time
		resumed := false
		if s.Stage == StageStalled {
			st := ev.Stage
			if fetchRank(st) == 0 {
				st = s.lastFetchStage()
			}
			if st != "" {
				s.setStage(st, ev.Time)
				resumed = true
			}
		}
		if resumed || progressInterval <= 0 || ev.Time.Sub(*lastRecorded) >= progressInterval ||
			(s.Total > 0 && s.Bytes >= s.Total) {
			*lastRecorded = ev.Time
			return true
		}
		return false

	case KindCheckin:
		if s.Stage == StageUnknown || s.Stage == StageOff {
			s.startBootClaimed(fetchRank(StageRootfs) + 1) // a boot we did not see (but for its claims)
		}
		if ev.Generation != "" {
			s.Generation = ev.Generation
		}
		s.Uptime = ev.Uptime
		s.OverlayBytes = ev.OverlayBytes
		s.LastCheckin = ev.Time
		s.Power = PowerOn
		s.setStage(StageBooted, ev.Time)
		return true

	case KindPower:
		s.stepPower(ev)
		return true

	case KindFail:
		s.setStage(StageFailed, ev.Time)
		switch {
		case ev.Error != "":
			s.Error = ev.Error
		case ev.Message != "":
			s.Error = ev.Message
		default:
			s.Error = "failed"
		}
		return true

	case KindStall:
		if !s.Stage.InProgress() {
			return true // nothing under way can stall: history only
		}
		from, since := s.Stage, s.LastProgress
		s.setStage(StageStalled, ev.Time)
		if ev.Error != "" {
			s.Error = ev.Error
		} else {
			s.Error = stallText(from, ev.Time.Sub(since))
		}
		return true

	case KindKexec:
		s.Power = PowerOn
		s.startBoot()
		s.Stage = StageUnknown // so that setStage marks kexec even when already there
		s.setStage(StageKexec, ev.Time)
		return true

	case KindMark:
		s.MarkedDirty = ev.Message != ""
		s.DirtyReason = ev.Message
		return true
	}
	return true // unknown, denied, info and anything new: history only
}

// stepPower applies a KindPower event (see the README's table).
func (s *NodeState) stepPower(ev *Event) {
	action := ""
	switch ev.Message {
	case ActionOn, ActionOff, ActionCycle, ActionReset, ActionSoft:
		action = ev.Message
	}
	if ev.Error != "" {
		s.PowerError = ev.Error
		s.Power = normPower(ev.Power)
		if action != "" {
			s.setStage(StageFailed, ev.Time)
			s.Error = "power " + action + ": " + ev.Error
		}
		return
	}
	s.PowerError = ""
	switch action {
	case ActionOn:
		if s.Power == PowerOn && s.Stage != StageOff {
			return // power on of a running node changes nothing at the BMC
		}
		fallthrough
	case ActionCycle, ActionReset:
		s.Power = PowerOn
		s.startBoot()
		s.Stage = StageUnknown // so that setStage marks powering-on even when already there
		s.setStage(StagePoweringOn, ev.Time)
	case ActionOff:
		s.Power = PowerOff
		s.setStage(StageOff, ev.Time)
	case ActionSoft:
		// The OS shuts down on its own time; a later observation says off.
	default: // an observation
		s.Power = normPower(ev.Power)
		switch s.Power {
		case PowerOff:
			s.setStage(StageOff, ev.Time)
		case PowerOn:
			if s.Stage == StageOff { // switched on behind our back: a boot follows
				s.startBoot()
				s.setStage(StagePoweringOn, ev.Time)
			}
		}
	}
}

func normPower(p string) string {
	switch p {
	case PowerOn, PowerOff:
		return p
	}
	return PowerUnknown
}

// stallText is the Error of a node that stalled in stage after d without
// progress.
func stallText(stage Stage, d time.Duration) string {
	if d >= time.Second {
		d = d.Round(time.Second)
	} else {
		d = d.Round(time.Millisecond)
	}
	return "no progress in stage " + string(stage) + " for " + d.String()
}
