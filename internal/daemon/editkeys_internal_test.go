package daemon

import (
	"testing"

	"github.com/netbootui/netbootui/internal/power/backends"
)

// TestEditableBMCKeys: an edit may set a BMC's protocol and the keys of a
// registered protocol's own section, nothing else under bmc.
func TestEditableBMCKeys(t *testing.T) {
	d := &Daemon{cfg: Config{Backends: backends.Registry()}}
	for key, ok := range map[string]bool{
		"bmc.protocol": true, "bmc.ipmi.cipher_suites": true, "bmc.cipher_suites": true, "bmc.host": true,
		"bmc.ipmi.nosuch": false, "bmc.redfish.system": true, "bmc.redfish.insecure": true, "bmc.redfish.nosuch": false, "bmc.ipmi": false, "bmc": false, "bmc.": false,
	} {
		err := d.checkEdit("group g", Edit{Set: map[string]any{key: "x"}}, true)
		if (err == nil) != ok {
			t.Errorf("set %s: %v", key, err)
		}
		err = d.checkEdit("node n", Edit{Unset: []string{key}}, false)
		if (err == nil) != ok {
			t.Errorf("unset %s: %v", key, err)
		}
	}
}
