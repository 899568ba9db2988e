package redfish_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/lab"
	"github.com/netbootui/netbootui/internal/power"
	"github.com/netbootui/netbootui/internal/redfish"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim"
	"github.com/netbootui/netbootui/internal/redfish/redfishsim/simtest"
)

const testPassword = "Sup3r-s3cret-pw"

// startSim starts a simulated BMC (with the test password unless set)
// closed at the end of the test, with its CA written to a file.
func startSim(t *testing.T, o redfishsim.Options) (*redfishsim.Sim, string) {
	t.Helper()
	if o.Password == "" {
		o.Password = testPassword
	}
	return simtest.Start(t, o)
}

// target is the power target of sim's i-th system, trusting caFile.
func target(node string, s *redfishsim.Sim, i int, caFile string) power.Target {
	return power.Target{Node: node, Protocol: redfish.Name, Host: "127.0.0.1", Port: s.Port(), User: "root",
		Password: power.NewSecret(testPassword), Options: redfish.BMCOptions{System: s.SystemPath(i), CA: caFile}}
}

// seam is a power.Service over the Redfish backend (and whatever protocols
// extra adds), closed at the end of the test, logging at debug level into
// its Log.
type seam struct {
	*power.Service
	Log *lab.Buffer
}

func openSeam(t *testing.T, timeout time.Duration, extra ...power.Protocol) *seam {
	t.Helper()
	reg, err := power.NewRegistry(append([]power.Protocol{redfish.Protocol(redfish.Options{})}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	buf := &lab.Buffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := power.New(power.Config{CallTimeout: timeout, MinInterval: -1, Logger: log}, reg)
	t.Cleanup(func() { _ = s.Close() })
	return &seam{Service: s, Log: buf}
}
