package daemon

import "github.com/netbootui/netbootui/internal/audit"

// AuditReady returns nil when an audit entry recorded now will be durable,
// and otherwise why not. The API server asks it before every mutation and
// refuses the action when it fails: nothing runs unaudited.
func (d *Daemon) AuditReady() error { return d.audit.Ready() }

// AuditRecord appends an entry for an action the API server audits itself
// (image import and publish, inventory reload, refusals).
func (d *Daemon) AuditRecord(e audit.Entry) error {
	if e.Who == "" {
		e.Who = "daemon"
	}
	return d.audit.Record(e)
}
