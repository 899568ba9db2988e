package statetest_test

import (
	"testing"

	"github.com/netbootui/netbootui/internal/state/statetest"
)

// TestMemoryConformance: the in-memory store passes the conformance test
// the local one does.
func TestMemoryConformance(t *testing.T) {
	statetest.Run(t, statetest.MemoryOpener())
}
