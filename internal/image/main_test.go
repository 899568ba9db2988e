package image_test

import (
	"testing"

	"github.com/netbootui/netbootui/internal/lab/labbuild"
)

// TestMain removes the node agent labbuild built for the Debian tests.
func TestMain(m *testing.M) { labbuild.Main(m) }
