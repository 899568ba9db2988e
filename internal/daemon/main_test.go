package daemon_test

import (
	"os"
	"testing"

	"github.com/netbootui/netbootui/internal/lab/labbuild"
)

// TestMain removes the binary and image labbuild made for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	labbuild.Cleanup()
	os.Exit(code)
}
