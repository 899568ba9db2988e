package ui

import tea "charm.land/bubbletea/v2"

// streamItem is what a long call running in a command (a build, a
// reboot-clean) hands the command that waits on it: one progress value, or
// the result.
type streamItem[P, D any] struct {
	p    P
	done *D
}

// streamMsg carries a batch of a long call's progress, and its result on the
// last message. id tells stale calls from the current one.
type streamMsg[P, D any] struct {
	id       int
	progress []P
	done     *D
}

// waitStream returns the next batch of progress from ch: it blocks for one
// item, then takes whatever else is queued (at most max), stopping at the
// result. A channel closed without a result gives lost().
func waitStream[P, D any](id int, ch chan streamItem[P, D], max int, lost func() *D) tea.Cmd {
	return func() tea.Msg {
		msg := streamMsg[P, D]{id: id}
		it, ok := <-ch
		for {
			if !ok {
				if msg.done == nil && len(msg.progress) == 0 {
					msg.done = lost()
				}
				return msg
			}
			if it.done != nil {
				msg.done = it.done
				return msg
			}
			msg.progress = append(msg.progress, it.p)
			if len(msg.progress) >= max {
				return msg
			}
			select {
			case it, ok = <-ch:
				continue
			default:
			}
			return msg
		}
	}
}
