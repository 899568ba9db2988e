package apitype_test

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are the packages a client of the API must not link: the daemon
// and its domain packages, and the heavy dependencies that come with them.
var forbidden = []string{
	"go.etcd.io/bbolt",
	"github.com/bougou/go-ipmi",
	"github.com/pin/tftp",
	"github.com/insomniacslk/dhcp",
	"github.com/prometheus/",
	"github.com/netbootui/netbootui/internal/api",
	"github.com/netbootui/netbootui/internal/daemon",
	"github.com/netbootui/netbootui/internal/pxe",
	"github.com/netbootui/netbootui/internal/tftp", // the TFTP server (pin/tftp is only a test client now)
	"github.com/netbootui/netbootui/internal/ipmi",
	"github.com/netbootui/netbootui/internal/power",
	"github.com/netbootui/netbootui/internal/consolehub",
	"github.com/netbootui/netbootui/internal/image",
	"github.com/netbootui/netbootui/internal/rollout",
	"github.com/netbootui/netbootui/internal/workflow",
	"github.com/netbootui/netbootui/internal/bootstate",
	"github.com/netbootui/netbootui/internal/inventory",
	"github.com/netbootui/netbootui/internal/audit",
}

// allowed are project packages a forbidden prefix would catch wrongly.
var allowed = map[string]bool{
	"github.com/netbootui/netbootui/internal/apitype":   true,
	"github.com/netbootui/netbootui/internal/apiclient": true,
}

// TestClientDependencies keeps the console, the SSH console, the API client
// and the contract itself free of the daemon: `go list -deps` of each lists
// none of the forbidden packages. The contract links the standard library
// alone.
func TestClientDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	for _, pkg := range []string{"internal/ui", "internal/sshconsole", "internal/apiclient", "internal/apitype"} {
		t.Run(pkg, func(t *testing.T) {
			deps := goListDeps(t, "github.com/netbootui/netbootui/"+pkg)
			if len(deps) < 2 {
				t.Fatalf("go list -deps %s listed %d packages", pkg, len(deps))
			}
			for _, d := range deps {
				if allowed[d] {
					continue
				}
				for _, f := range forbidden {
					if d == f || strings.HasPrefix(d, strings.TrimSuffix(f, "/")+"/") || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) {
						t.Errorf("%s depends on %s", pkg, d)
					}
				}
			}
		})
	}
	t.Run("apitype is stdlib only", func(t *testing.T) {
		for _, d := range goListDeps(t, "github.com/netbootui/netbootui/internal/apitype") {
			if d != "github.com/netbootui/netbootui/internal/apitype" && strings.Contains(strings.Split(d, "/")[0], ".") {
				t.Errorf("apitype depends on %s", d)
			}
		}
	})
}

func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}
