package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/netbootui/netbootui/internal/lab"
)

// TestSystemdUnit checks dist/systemd/netbootui.service with systemd's own
// checker (unknown keys, bad values and a missing ExecStart binary are all
// reported) and that every serve flag the unit and its environment file name
// exists.
func TestSystemdUnit(t *testing.T) {
	lab.RequireTools(t, "systemd-analyze")
	unit, err := os.ReadFile("../../dist/systemd/netbootui.service")
	if err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile("../../dist/systemd/netbootui.env")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("/usr/local/bin/netbootui serve")) {
		t.Fatal("the unit's ExecStart does not run /usr/local/bin/netbootui serve")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "netbootui.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/netbootui"), []byte(binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	// The checker itself must catch what this test relies on it for.
	bad := bytes.Replace(unit, []byte("NoNewPrivileges=yes"), []byte("NoNewPrivileges=yes\nNoSuchKey=1"), 1)
	bad = bytes.ReplaceAll(bad, []byte("/usr/local/bin/netbootui"), []byte(binary))
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command("systemd-analyze", "verify", "--man=no", path).CombinedOutput(); !bytes.Contains(out, []byte("NoSuchKey")) {
		t.Fatalf("systemd-analyze verify did not report an unknown key:\n%s", out)
	}

	// Every --flag named in ExecStart and in the environment file's comments
	// and values is one that `serve` knows.
	help, _ := exec.Command(binary, "serve", "-h").CombinedOutput()
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-{1,2}([a-z0-9-]+)`).FindAllSubmatch(help, -1) {
		known[string(m[1])] = true
	}
	if len(known) < 10 {
		t.Fatalf("serve -h lists %d flags:\n%s", len(known), help)
	}
	flagRE := regexp.MustCompile(`(?:^|\s)--([a-z0-9-]+)`)
	check := func(where string, text []byte) {
		sc := bufio.NewScanner(bytes.NewReader(text))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if strings.Contains(line, "netbootui reload") || strings.HasPrefix(line, "ExecReload") {
				continue
			}
			for _, m := range flagRE.FindAllStringSubmatch(line, -1) {
				if !known[m[1]] {
					t.Errorf("%s:%d: --%s is not a serve flag", where, n, m[1])
				}
			}
		}
	}
	check("netbootui.service", unit)
	check("netbootui.env", env)

	// Every variable the unit uses is set by the environment file.
	for _, m := range regexp.MustCompile(`\$\{?(NETBOOTUI_[A-Z_]+)`).FindAllSubmatch(unit, -1) {
		if !regexp.MustCompile(`(?m)^` + string(m[1]) + `=`).Match(env) {
			t.Errorf("the unit uses $%s, which netbootui.env does not set", m[1])
		}
	}
}
