package bootstate

// Persister keeps what a Tracker knows across restarts: every node's state,
// each node's bounded history, the newest events of unknown clients and the
// event counter. Store (bbolt, one head) implements it; a shared store for
// several heads implements the same two calls. The Tracker calls Load once,
// in New, and then Write from one goroutine at a time.
type Persister interface {
	// Load returns everything persisted, keeping the newest perNode events
	// of each node and the newest unknown events (the store's own bound,
	// 1000 for Store).
	Load(perNode int) (*Snapshot, error)
	// Write applies one batch atomically: all of it is durable when Write
	// returns nil, none of it otherwise (the Tracker retries the batch's
	// states and events with the next one).
	Write(b *Batch) error
}

// Snapshot is what a Persister holds.
type Snapshot struct {
	States  []NodeState
	History map[string][]Event // per node, oldest first
	Unknown []Event            // events with Node "", oldest first
	Seq     uint64             // the highest Seq written
}

// Batch is one write to a Persister, applied in this order: Forgets, Events,
// States, KeepFrom, Seq.
type Batch struct {
	// Forgets are nodes whose state and history are deleted.
	Forgets []string
	// Events are appended to their node's history (or the unknown clients'
	// history for Node ""), oldest first.
	Events []BatchEvent
	// States replace the nodes' persisted states.
	States []NodeState
	// KeepFrom[node] is the oldest Seq the node's history keeps; older
	// persisted events are deleted.
	KeepFrom map[string]uint64
	// Seq is the highest Seq handed out so far.
	Seq uint64
}

// BatchEvent is one event of a Batch.
type BatchEvent struct {
	Event Event
	// Replaces is the Seq of a coalesced Progress event of the same node to
	// delete (0: none).
	Replaces uint64
}
