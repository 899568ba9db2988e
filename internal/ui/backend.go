// Package ui is the netbootui console: a Bubble Tea program that shows every
// node of the cluster live and edits boot entries, as a client of the
// daemon's API (see Backend). It never does I/O in Update: every call to the
// daemon is a tea.Cmd, and an error turns into a "disconnected, retrying"
// status that recovers by itself.
package ui

import (
	"context"

	"github.com/netbootui/netbootui/internal/apitype"
)

// Backend is what the console needs from the daemon. *apiclient.Client implements
// it; tests use an in-memory fake.
type Backend interface {
	// Status reports the daemon's status, including the inventory revision
	// edits are based on.
	Status(ctx context.Context) (apitype.Status, error)
	// Nodes lists every node with its state.
	Nodes(ctx context.Context) ([]apitype.NodeView, error)
	// Node returns one node.
	Node(ctx context.Context, name string) (apitype.NodeView, error)
	// BootEntry renders a node's boot entry ("" format: the node's loader).
	BootEntry(ctx context.Context, name, format string) (string, error)
	// EditNode applies an edit to a node and returns the new revision.
	EditNode(ctx context.Context, name string, e apitype.Edit) (string, error)
	// EditGroup applies an edit to a group and returns the new revision.
	EditGroup(ctx context.Context, name string, e apitype.Edit) (string, error)
	// Group returns a group's own settings and its nodes.
	Group(ctx context.Context, name string) (apitype.GroupView, error)
	// PreviewEdit validates a proposed node or group edit against a copy of
	// the inventory and renders the node's entry from it, changing nothing.
	PreviewEdit(ctx context.Context, p apitype.EditPreview) (string, error)
	// NodeBMC reads a node's BMC device ID and power state (never
	// credentials).
	NodeBMC(ctx context.Context, name string) (apitype.BMCFacts, error)
	// Persist reads a node's persisted paths and what each holds.
	Persist(ctx context.Context, name string) (apitype.PersistView, error)
	// WipePersist empties a node's persisted paths (admin; audited).
	WipePersist(ctx context.Context, name string) (apitype.PersistView, error)
	// Events calls fn for the newest n events of node ("" all), then, with
	// follow, for live events until ctx ends or fn returns an error.
	Events(ctx context.Context, node string, n int, follow bool, fn func(apitype.Event) error) error
	// EventsBacklog is Events whose backlog of all nodes also holds the
	// newest notable events that are not routine (check-ins, progress).
	EventsBacklog(ctx context.Context, node string, n, notable int, follow bool, fn func(apitype.Event) error) error
	// Images lists images and their generations.
	Images(ctx context.Context) ([]apitype.ImageInfo, error)
	// Power runs a power operation (on, off, soft, cycle, reset, status,
	// bootdev-pxe) on a selection and returns one result per node.
	Power(ctx context.Context, op, selection string) ([]apitype.PowerResult, error)
	// RebootCleanRequest reboots a selection to a clean state by the
	// request's path (Via), calling fn with each progress line.
	RebootCleanRequest(ctx context.Context, req apitype.RebootRequest, fn func(apitype.RebootProgress) error) ([]apitype.RebootResult, error)
	// Audit returns the newest n audit entries.
	Audit(ctx context.Context, n int) ([]apitype.AuditEntry, error)
	// FollowAudit calls fn with the newest n audit entries, then with each
	// entry as the daemon records it, until ctx ends (nil), fn fails, or the
	// daemon closes the stream (an error: it stopped or restarted).
	FollowAudit(ctx context.Context, n int, fn func(apitype.AuditEntry) error) error
	// SOLLog returns the last n lines the daemon captured from a node's
	// serial console.
	SOLLog(ctx context.Context, node string, n int) (apitype.SOLLog, error)
	// Build builds an image from its recipe (Publish: and makes it
	// current; the console never sets it, it asks first and calls Publish),
	// calling fn with each progress line, and returns the new generation.
	Build(ctx context.Context, req apitype.BuildRequest, fn func(apitype.BuildProgress)) (*apitype.Manifest, error)
	// Publish makes generation gen of image img its current one.
	Publish(ctx context.Context, img, gen string) error
	// Rollback makes an image's previous generation current again and
	// returns it.
	Rollback(ctx context.Context, image string) (string, error)
	// DiffImages says what generation b changes from a (each "IMAGE:GEN"
	// or "IMAGE", its current generation).
	DiffImages(ctx context.Context, a, b string) (*apitype.ImageDiff, error)
	// StagePreview returns what staging req would change, changing nothing.
	StagePreview(ctx context.Context, req apitype.StageRequest) (*apitype.Rollout, error)
	// StageCreate stages a generation on a selection.
	StageCreate(ctx context.Context, req apitype.StageRequest) (*apitype.Rollout, error)
	// Stage returns rollout id ("" the newest active one).
	Stage(ctx context.Context, id string) (*apitype.Rollout, error)
	// FollowStage calls fn with rollout id ("" the newest active one), then
	// with its state after every change (changes coalesce into the latest
	// state), until ctx ends (nil), fn fails, or the daemon closes the
	// stream (an error).
	FollowStage(ctx context.Context, id string, fn func(*apitype.Rollout) error) error
	// StageAction applies run, resume, halt, abort, promote or rollback to
	// rollout id and returns the rollout after it.
	StageAction(ctx context.Context, id, action string) (*apitype.Rollout, error)
	// Unknown lists the PXE clients not in the inventory that asked for a
	// boot, in the order they first asked.
	Unknown(ctx context.Context) ([]apitype.UnknownNode, error)
	// Adopt names unknown clients as nodes of a group, in the order they
	// first asked.
	Adopt(ctx context.Context, r apitype.AdoptRequest) (apitype.AdoptResult, error)
}
