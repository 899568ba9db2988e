// Command pipeline builds one directory tree into a generation with
// netbootui's image pipeline (internal/image.Builder), as bench/image/run.sh
// uses it: a build (Force; in a fresh store, every file is hashed), the same
// build again, which must be a no-op, and a forced rebuild (the store's
// cache of file sums is warm: no file is hashed again). It prints one line
// per build:
//
//	build <seconds> <step>=<seconds>,...
//	noop <seconds> <unchanged|BUILT>
//	rebuild <seconds> <step>=<seconds>,...
//
// and the squashfs's path on the last line ("rootfs <path>").
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/netbootui/netbootui/internal/image"
)

func main() {
	tree := flag.String("tree", "", "directory tree to build (the image's root)")
	store := flag.String("store", "", "image store directory")
	kernel := flag.String("kernel", "", "kernel file the generation carries")
	comp := flag.String("comp", "zstd", "mksquashfs compressor")
	flag.Parse()
	if *tree == "" || *store == "" || *kernel == "" {
		fmt.Fprintln(os.Stderr, "usage: pipeline -tree DIR -store DIR -kernel FILE [-comp zstd]")
		os.Exit(2)
	}
	if err := run(*tree, *store, *kernel, *comp); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

func run(tree, storeDir, kernel, comp string) error {
	recipe, err := os.MkdirTemp("", "netbootui-bench-recipe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(recipe)
	tree, _ = filepath.Abs(tree)
	kernel, _ = filepath.Abs(kernel)
	y := fmt.Sprintf("name: bench\nrootfs: {dir: %q}\nkernel: {file: %q}\ninitramfs: {builtin: {}}\ncompression: %s\n", tree, kernel, comp)
	if err := os.WriteFile(filepath.Join(recipe, image.RecipeFile), []byte(y), 0o644); err != nil {
		return err
	}
	st, err := image.OpenStore(storeDir)
	if err != nil {
		return err
	}
	b, err := image.NewBuilder(st)
	if err != nil {
		return err
	}
	var steps []string
	var last string
	var lastAt time.Time
	reset := func() { steps, last, lastAt = nil, "", time.Now() }
	progress := func(p image.Progress) {
		if p.Step == last || p.Step == "" {
			return
		}
		now := time.Now()
		if last != "" {
			steps = append(steps, fmt.Sprintf("%s=%.2f", last, now.Sub(lastAt).Seconds()))
		}
		last, lastAt = p.Step, now
	}
	reset()
	start := time.Now()
	m, err := b.Build(context.Background(), recipe, image.BuildOptions{Force: true, Publish: true, Progress: progress})
	if err != nil {
		return err
	}
	fmt.Printf("build %.3f %s\n", time.Since(start).Seconds(), strings.Join(steps, ","))

	unchanged := "BUILT"
	start = time.Now()
	m2, err := b.Build(context.Background(), recipe, image.BuildOptions{Publish: true, Progress: func(p image.Progress) {
		if p.Step == image.StepUnchanged {
			unchanged = "unchanged"
		}
	}})
	if err != nil {
		return err
	}
	fmt.Printf("noop %.3f %s\n", time.Since(start).Seconds(), unchanged)
	if m2.ID != m.ID {
		return fmt.Errorf("the no-op rebuild made generation %s, not %s", m2.ID, m.ID)
	}
	reset()
	start = time.Now()
	if _, err := b.Build(context.Background(), recipe, image.BuildOptions{Force: true, Publish: true, Progress: progress}); err != nil {
		return err
	}
	fmt.Printf("rebuild %.3f %s\n", time.Since(start).Seconds(), strings.Join(steps, ","))
	p, err := st.Path(m.Image, m.ID, image.FileRootfs)
	if err != nil {
		return err
	}
	fmt.Printf("rootfs %s\n", p)
	return nil
}
