package daemon_test

import (
	"testing"

	"github.com/netbootui/netbootui/internal/lab/labbuild"
)

// TestMain removes the binary and image labbuild made for the tests.
func TestMain(m *testing.M) { labbuild.Main(m) }
