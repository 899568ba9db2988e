package demo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/lab"
)

// TestLabConfigErrors: --lab refuses what it cannot do before it starts
// anything: too many VMs, the tiny image, a missing kernel.
func TestLabConfigErrors(t *testing.T) {
	noKernel := t.TempDir()
	tests := []struct {
		name   string
		cfg    Config
		errHas string
	}{
		{"too many", Config{Lab: MaxLab + 1}, "--lab 17: want 1..16"},
		{"negative", Config{Lab: -1}, "--lab -1"},
		{"tiny image", Config{Lab: 1, Image: ImageTiny}, "--image tiny cannot boot"},
		{"no kernel", Config{Lab: 1, KernelDir: noKernel}, "no kernel"},
	}
	for _, tool := range LabTools {
		if _, err := exec.LookPath(tool); err != nil {
			// The tools are checked before the kernel.
			tests[3].errHas = "apt-get install"
		}
	}
	for _, tc := range tests {
		data := filepath.Join(t.TempDir(), "data")
		tc.cfg.DataDir = data
		_, err := Start(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.errHas) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.errHas)
		}
		if _, serr := os.Stat(data); !os.IsNotExist(serr) {
			t.Errorf("%s: the data folder was made before the error: %v", tc.name, serr)
		}
	}
}

func TestLabMACIsLabMAC(t *testing.T) {
	for _, i := range []int{0, 1, 15, 255, 256, 4095} {
		if got, want := labMAC(i), lab.MAC(i); got != want {
			t.Errorf("labMAC(%d) = %s, lab.MAC = %s", i, got, want)
		}
	}
}

func TestWriteLabInventory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nodes.yaml")
	if err := writeLabInventory(p, "", []string{"lab01", "lab02"}, []string{"52:54:00:6e:00:00", "52:54:00:6e:00:01"}, map[string]int{"lab02": 40001}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	s := string(b)
	for _, want := range []string{"cipher_suites: [3]", "loader: ipxe", "name: lab01", "mac: \"52:54:00:6e:00:01\"", "bmc: {host: 127.0.0.1, port: 40001}"} {
		if !strings.Contains(s, want) {
			t.Errorf("inventory lacks %q:\n%s", want, s)
		}
	}
	if strings.Count(s, "port:") != 1 {
		t.Errorf("lab01 has no BMC port yet:\n%s", s)
	}
}
