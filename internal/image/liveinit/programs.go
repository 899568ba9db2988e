package liveinit

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// addPrograms copies each program of the build host into t at its own path,
// with the shared libraries and the dynamic loader ldd names for it (at the
// paths ldd prints, contents of the files behind them). A program the
// busybox applets do not cover (nbd-client for an nbd root) goes in this
// way.
func addPrograms(t tree, programs []string) error {
	for _, p := range programs {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p {
			return fmt.Errorf("liveinit: program %q: want an absolute, clean path", p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("liveinit: program: %w", err)
		}
		t.file(strings.TrimPrefix(p, "/"), 0o755, data)
		libs, err := sharedLibs(p)
		if err != nil {
			return err
		}
		for _, lib := range libs {
			data, err := os.ReadFile(lib) // follows the symlink ldd names
			if err != nil {
				return fmt.Errorf("liveinit: %s needs %s: %w", p, lib, err)
			}
			t.file(strings.TrimPrefix(path.Clean(filepath.ToSlash(lib)), "/"), 0o755, data)
		}
	}
	return nil
}

// sharedLibs runs ldd on program and returns the absolute paths of the
// libraries and loader it lists ("not a dynamic executable": none).
func sharedLibs(program string) ([]string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("ldd", program)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if strings.Contains(out.String()+errb.String(), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("liveinit: ldd %s: %v: %s", program, err, strings.TrimSpace(errb.String()))
	}
	return parseLdd(out.String())
}

// parseLdd reads ldd's output: "name => /path (0x...)", "/path (0x...)",
// "linux-vdso.so.1 (0x...)" (no file: skipped). A library ldd cannot find
// is an error.
func parseLdd(text string) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.Contains(line, "=> not found") {
			return nil, fmt.Errorf("liveinit: ldd: %s", line)
		}
		if _, after, ok := strings.Cut(line, "=> "); ok {
			line = after
		}
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "/") {
			continue
		}
		libs = append(libs, f[0])
	}
	return libs, sc.Err()
}
