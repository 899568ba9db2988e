package daemon_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/backup"
	. "github.com/netbootui/netbootui/internal/daemon"
	"github.com/netbootui/netbootui/internal/daemontest"
)

// TestQEMUBootFromRestoredBackup backs up a daemon holding the default
// recipe's generation, restores the file into an empty folder, and boots a
// real (TCG) machine from a daemon started there: the kernel, initramfs and
// squashfs root it fetches came out of the backup.
func TestQEMUBootFromRestoredBackup(t *testing.T) {
	t.Parallel()
	d, gen, _ := startLabDaemon(t, "")
	file := filepath.Join(t.TempDir(), "lab.backup")
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Backup(f); err != nil {
		t.Fatal(err)
	}
	f.Close()

	dir := t.TempDir()
	if _, err := backup.Restore(file, filepath.Join(dir, "data"), filepath.Join(dir, "nodes.yaml")); err != nil {
		t.Fatal(err)
	}
	var port string
	d2 := daemontest.Start(t, daemontest.Options{Dir: dir, Config: Config{StallTimeout: 2 * time.Minute, Logger: testLogger(t)},
		Before: func(d *Daemon) error {
			_, port, _ = net.SplitHostPort(d.HTTPAddr().String())
			d.SetAdvertiseURL("http://10.0.2.2:" + port)
			return nil
		}}).D
	if cur, err := d2.Images().Current("live"); err != nil || cur != gen {
		t.Fatalf("restored current generation %q (%v), want %s", cur, err, gen)
	}
	bootIPXENode(t, d2, port, gen)
}
