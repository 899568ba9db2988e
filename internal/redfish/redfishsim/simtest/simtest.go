// Package simtest starts simulated Redfish BMCs for tests.
package simtest

import (
	"path/filepath"
	"testing"

	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
)

// Start starts a simulated BMC that the test closes at its end, and writes
// its CA to a file of the test's temporary folder (a bmc.redfish.ca file),
// returned.
func Start(tb testing.TB, o redfishsim.Options) (*redfishsim.Sim, string) {
	tb.Helper()
	s, err := redfishsim.Start(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	ca := filepath.Join(tb.TempDir(), "ca.pem")
	if err := s.CA().WriteFile(ca); err != nil {
		tb.Fatal(err)
	}
	return s, ca
}
