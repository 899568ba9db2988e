package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootui/netbootui/internal/bootstate"
	"github.com/netbootui/netbootui/internal/lab"
)

// fetchTFTP runs an independent TFTP client and returns the file it got.
func fetchTFTP(t *testing.T, client, addr, name string) ([]byte, string, error) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out := filepath.Join(t.TempDir(), "got")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cmd *exec.Cmd
	switch client {
	case "tftp-hpa":
		cmd = exec.CommandContext(ctx, "tftp", "-m", "binary", host, port, "-c", "get", name, out)
	case "curl-512", "curl-1468":
		cmd = exec.CommandContext(ctx, "curl", "-sS", "--fail", "--tftp-blksize", strings.TrimPrefix(client, "curl-"),
			"-o", out, fmt.Sprintf("tftp://%s/%s", addr, name))
	case "atftp":
		cmd = exec.CommandContext(ctx, "atftp", "--trace", "--option", "tsize 0", "--option", "blksize 1468",
			"-g", "-r", name, "-l", out, host, port)
	default:
		t.Fatalf("unknown client %s", client)
	}
	msg, err := cmd.CombinedOutput()
	if err != nil {
		return nil, string(msg), err
	}
	b, rerr := os.ReadFile(out)
	if rerr != nil {
		return nil, string(msg), rerr
	}
	return b, string(msg), nil
}

func TestTFTPWithIndependentClients(t *testing.T) {
	lab.RequireTools(t, "tftp", "curl", "atftp")
	e := startDaemon(t)
	addr := e.d.TFTPAddr().String()
	loader := e.d.Loaders().Aliases["undionly.kpxe"]
	if loader == "" {
		lab.RequireTools(t, "undionly.kpxe (package ipxe)")
	}
	want, err := os.ReadFile(loader)
	if err != nil {
		t.Fatal(err)
	}
	wantCfg, err := e.d.BootEntry("px1", "pxelinux")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"KERNEL images/compute/" + e.gen + "/vmlinuz", "netbootui.node=px1", "root=live:" + e.base} {
		if !strings.Contains(wantCfg, w) {
			t.Fatalf("pxelinux entry lacks %q:\n%s", w, wantCfg)
		}
	}
	for _, client := range []string{"tftp-hpa", "curl-512", "curl-1468", "atftp"} {
		got, msg, err := fetchTFTP(t, client, addr, "undionly.kpxe")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s undionly.kpxe: %v (%d bytes, want %d)\n%s", client, err, len(got), len(want), msg)
		}
		if client == "atftp" && !strings.Contains(msg, fmt.Sprintf("received OACK <tsize: %d,", len(want))) {
			t.Errorf("atftp: tsize not negotiated:\n%s", msg)
		}
		got, msg, err = fetchTFTP(t, client, addr, "pxelinux.cfg/01-52-54-00-00-01-01")
		if err != nil || string(got) != wantCfg {
			t.Fatalf("%s pxelinux config: %v\n%s\ngot:\n%s", client, err, msg, got)
		}
		if client == "atftp" && !strings.Contains(msg, fmt.Sprintf("received OACK <tsize: %d,", len(wantCfg))) {
			t.Errorf("atftp: tsize of rendered config not negotiated:\n%s", msg)
		}
	}
	// The client IP learned from pxelinux.cfg/01-<mac> names the node for the
	// kernel it fetches next over TFTP: served, and a claim of px1's kernel
	// stage (nothing proves the node: px1 has no fixed IP), as the bootloader
	// and config fetches were.
	kernel, _, err := fetchTFTP(t, "curl-1468", addr, "images/compute/"+e.gen+"/vmlinuz")
	if err != nil || len(kernel) == 0 {
		t.Fatalf("kernel over tftp: %v", err)
	}
	st := e.state("px1")
	var marks []string
	for _, m := range st.Timeline {
		marks = append(marks, fmt.Sprintf("%s/%v", m.Stage, m.Unproven))
	}
	if st.Stage != bootstate.StageUnknown || strings.Join(marks, " ") != "nbp/true config/true kernel/true" {
		t.Fatalf("px1 after kernel fetch: stage %q, timeline %v", st.Stage, marks)
	}
	// Writes are refused.
	src := filepath.Join(t.TempDir(), "up")
	os.WriteFile(src, []byte("x"), 0o644)
	host, port, _ := net.SplitHostPort(addr)
	out, _ := exec.Command("tftp", "-m", "binary", host, port, "-c", "put", src, "up").CombinedOutput()
	if !strings.Contains(strings.ToLower(string(out)), "error") {
		t.Fatalf("tftp put was not refused: %s", out)
	}
}

func TestHostileTFTPNames(t *testing.T) {
	lab.RequireTools(t, "curl")
	e := startDaemon(t)
	plantSecrets(t, e)
	addr := e.d.TFTPAddr().String()
	for _, name := range hostileNames {
		got, _, err := fetchTFTP(t, "curl-512", addr, strings.ReplaceAll(name, "\x00", "%00"))
		if err == nil && (bytes.Contains(got, []byte(secretMarker)) || bytes.Contains(got, []byte("root:x:0"))) {
			t.Errorf("tftp %q served a file outside the root", name)
		}
	}
}
