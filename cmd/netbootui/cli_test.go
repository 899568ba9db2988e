package main

import (
	"bytes"
	"context"
	"flag"
	goldenfile "github.com/netbootui/netbootui/internal/golden"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/netbootui/netbootui/internal/apiclient"
	"github.com/netbootui/netbootui/internal/apitype"
)

var updateCLI = flag.Bool("update-cli", false, "rewrite the golden files of cmd/netbootui/testdata/cli")

// runCLIEnv runs the binary with the environment the golden files assume:
// no NETBOOTUI_* variables.
func runCLIEnv(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NETBOOTUI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// golden compares got with testdata/cli/NAME.golden (rewritten with
// -update-cli).
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("testdata", "cli", name+".golden"), got, *updateCLI, "go test ./cmd/netbootui -update-cli")
}

// TestHelpGolden: help per verb exits 0 and says what the golden file
// says; `help VERB` is `VERB --help`; a bare group lists every verb.
func TestHelpGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"root", []string{"--help"}},
		{"image", []string{"image", "--help"}},
		{"power", []string{"power", "--help"}},
		{"power-on", []string{"power", "on", "--help"}},
		{"node", []string{"node", "--help"}},
		{"node-list", []string{"node", "list", "--help"}},
		{"node-set", []string{"node", "set", "--help"}},
		{"stage", []string{"stage", "--help"}},
		{"stage-create", []string{"stage", "create", "--help"}},
		{"events", []string{"events", "--help"}},
		{"serve", []string{"serve", "--help"}},
		{"dhcp-config", []string{"dhcp-config", "--help"}},
		{"console", []string{"console", "--help"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCLIEnv(t, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("%v: code %d, stderr %q", tc.args, code, errOut)
			}
			golden(t, "help-"+tc.name, out)
		})
	}
	// `help power`, `power --help` and bare `power` say the same; bare
	// `image` lists all seven verbs.
	power, _, _ := runCLIEnv(t, "power", "--help")
	for _, args := range [][]string{{"help", "power"}, {"power"}} {
		if out, _, code := runCLIEnv(t, args...); code != 0 || out != power {
			t.Errorf("%v: code %d, output differs from power --help:\n%s", args, code, out)
		}
	}
	for _, op := range []string{"on", "off", "soft", "cycle", "reset", "status", "bootdev-pxe", "bootflags", "deviceid"} {
		if !strings.Contains(power, "\n  "+op+" ") {
			t.Errorf("power --help does not list %s:\n%s", op, power)
		}
	}
	image, _, code := runCLIEnv(t, "image")
	for _, v := range []string{"list", "show", "build", "import", "publish", "rollback", "gc"} {
		if code != 0 || !strings.Contains(image, "\n  "+v+" ") {
			t.Errorf("bare image (code %d) does not list %s:\n%s", code, v, image)
		}
	}
}

// TestEveryVerbHelp asks every command of the tree for its help in process:
// none fails, each shows its usage line.
func TestEveryVerbHelp(t *testing.T) {
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, s := range c.Commands() {
			walk(s, append(slices.Clone(path), s.Name()))
		}
	}
	walk(newRoot(), nil)
	if len(paths) < 40 {
		t.Fatalf("only %d commands in the tree", len(paths))
	}
	for _, p := range paths {
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(slices.Clone(p), "--help"))
		if err := root.Execute(); err != nil {
			t.Errorf("%v --help: %v", p, err)
		}
		if !strings.Contains(out.String(), "Usage:\n  "+strings.Join(append([]string{"netbootui"}, p...), " ")) {
			t.Errorf("%v --help:\n%s", p, out.String())
		}
	}
}

// TestUsageErrors: unknown verbs and wrong argument counts exit 2 with the
// verb's usage; old single-dash long flags still work.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args   []string
		errHas []string
	}{
		{[]string{"fly"}, []string{`netbootui: unknown verb "fly"`, "usage: netbootui VERB"}},
		{[]string{"image", "fly"}, []string{`netbootui image: unknown verb "fly"`, "Run 'netbootui image --help'"}},
		{[]string{"power", "on"}, []string{"needs 1 argument(s), got 0", "usage: netbootui power on SELECTION"}},
		{[]string{"power", "on", "a", "b"}, []string{"takes at most 1 argument(s), got 2"}},
		{[]string{"node", "list", "--nosuch"}, []string{"unknown flag: --nosuch"}},
		{[]string{"validate"}, []string{"usage: netbootui validate FILE..."}},
	}
	for _, tc := range tests {
		_, errOut, code := runCLIEnv(t, tc.args...)
		if code != 2 {
			t.Errorf("%v: code %d, want 2 (%s)", tc.args, code, errOut)
		}
		for _, s := range tc.errHas {
			if !strings.Contains(errOut, s) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, s, errOut)
			}
		}
	}
	// -api-socket=PATH (Go flag style) is --api-socket: the error names the path.
	_, errOut, code := runCLIEnv(t, "status", "-api-socket=/nonexistent/x.sock")
	if code != 1 || !strings.Contains(errOut, "/nonexistent/x.sock") {
		t.Errorf("single-dash long flag: code %d, %s", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	out, errOut, code := runCLIEnv(t, "version")
	if code != 0 || !strings.HasPrefix(out, "netbootui ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: code %d %q %q", code, out, errOut)
	}
	// The revision the toolchain stamped, when it did, is printed.
	meta, err := exec.Command("go", "version", "-m", binary).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(meta), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision=") {
			if rev := strings.TrimPrefix(f[1], "vcs.revision="); !strings.Contains(out, "revision "+rev) {
				t.Errorf("version %q lacks the stamped revision %s", out, rev)
			}
		}
	}
}

// TestCompletion runs the shell scripts' __complete verb against a daemon:
// verbs, flags, node names, @groups, images and generations, and nothing
// (no error either) when no daemon answers.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, _, code := runCLIEnv(t, "completion", sh)
		if code != 0 || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s: code %d", sh, code)
		}
	}
	inv := copyExample(t)
	dir := t.TempDir()
	p := startServe(t, inv, filepath.Join(dir, "data"))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			p.stop(t)
		}
	})
	sock := "--api-socket=" + p.socket

	// One generation of compute, to complete.
	var files apiclient.ImportFiles
	files.Kernel, files.Initrd, files.Rootfs = filepath.Join(dir, "k"), filepath.Join(dir, "i"), filepath.Join(dir, "r")
	for _, f := range []string{files.Kernel, files.Initrd, files.Rootfs} {
		os.WriteFile(f, []byte("content of "+filepath.Base(f)), 0o644)
	}
	m, err := apiclient.New(p.socket).Import(context.Background(), apitype.ImportRequest{Image: "compute", Publish: true}, files)
	if err != nil {
		t.Fatal(err)
	}

	complete := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLIEnv(t, append([]string{"__complete"}, args...)...)
		if code != 0 || strings.Contains(errOut, "rror") {
			t.Fatalf("__complete %v: code %d, stderr %q", args, code, errOut)
		}
		return out
	}
	tests := []struct {
		name string
		args []string
	}{
		{"verbs", []string{""}},
		{"node-verbs", []string{"node", ""}},
		{"node-list-flags", []string{"node", "list", "--"}},
		{"node-show", []string{"node", "show", sock, ""}},
		{"node-show-prefix", []string{"node", "show", sock, "n0"}},
		{"power-on-selection", []string{"power", "on", sock, ""}},
		{"power-on-group", []string{"power", "on", sock, "@"}},
		{"power-on-list", []string{"power", "on", sock, "n01,g"}},
		{"group-set", []string{"group", "set", sock, ""}},
		{"image-show", []string{"image", "show", sock, ""}},
		{"node-list-stage", []string{"node", "list", "--stage", ""}},
		{"node-list-output", []string{"node", "list", "-o", ""}},
		{"events-node", []string{"events", sock, "--node", "gpu"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			golden(t, "complete-"+tc.name, complete(tc.args...))
		})
	}
	// Generations: an image's, and every image's as image@generation.
	gen := complete("image", "publish", sock, "compute", "")
	if !strings.HasPrefix(gen, m.ID+"\t") || !strings.Contains(gen, ", current\n") {
		t.Errorf("image publish compute <tab>:\n%s", gen)
	}
	gen = complete("stage", "create", sock, "@compute", "")
	if !strings.HasPrefix(gen, "compute@"+m.ID+"\t") {
		t.Errorf("stage create @compute <tab>:\n%s", gen)
	}
	// No daemon: no suggestions, no error.
	p.stop(t)
	stopped = true
	if out := complete("node", "show", sock, ""); out != ":4\n" {
		t.Errorf("without a daemon: %q", out)
	}
}
