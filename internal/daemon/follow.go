package daemon

import "github.com/netbootui/netbootui/internal/audit"

// AuditFollow returns the newest n audit entries and a subscription to
// every entry recorded after them (see audit.Log.Follow: a slow subscriber
// loses entries, it never holds an action up).
func (d *Daemon) AuditFollow(n, buffer int) ([]audit.Entry, *audit.Subscription) {
	return d.audit.Follow(n, buffer)
}

// StageWatch signals after every change of a rollout, coalescing the
// changes a slow watcher has not read yet (see rollout.Manager.Watch); stop
// ends the watch.
func (d *Daemon) StageWatch() (changed <-chan struct{}, stop func()) {
	return d.rollouts.Watch()
}
