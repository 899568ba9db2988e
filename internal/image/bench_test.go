package image

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// benchTree makes a tree of n files of 1-64 KiB (every fourth random, the
// others repetitive text) in 50 folders, about 32 KiB a file.
func benchTree(b *testing.B, n int) (string, int64) {
	b.Helper()
	root := b.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	var total int64
	for i := range n {
		d := filepath.Join(root, fmt.Sprintf("d%02d", i%50))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		data := make([]byte, 1024+r.IntN(63*1024))
		for j := range data {
			if i%4 == 0 {
				data[j] = byte(r.Uint32())
			} else {
				data[j] = "netbootui stateless nodes\n"[j%26]
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	return root, total
}

// BenchmarkHashTree measures the source hash of a directory root (what an
// unchanged rebuild costs): 3000 files, about 100 MB.
func BenchmarkHashTree(b *testing.B) {
	root, total := benchTree(b, 3000)
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		if err := hashTree(sha256.New(), root, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildDirRoot measures a full build (Force) of the same tree as
// a directory root with the built-in initramfs, zstd: the pipeline's own
// cost on top of mksquashfs is what bench/image/run.sh compares.
func BenchmarkBuildDirRoot(b *testing.B) {
	requireTool(b, "mksquashfs")
	root, total := benchTree(b, 3000)
	dir := b.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, make([]byte, 8<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	recipe := filepath.Join(dir, "recipe")
	os.Mkdir(recipe, 0o755)
	y := fmt.Sprintf("name: bench\nrootfs: {dir: %q}\nkernel: {file: %q}\ninitramfs: {builtin: {}}\n", root, kernel)
	if err := os.WriteFile(filepath.Join(recipe, RecipeFile), []byte(y), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		b.Fatal(err)
	}
	bl, err := NewBuilder(s)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		if _, err := bl.Build(context.Background(), recipe, BuildOptions{Force: true}); err != nil {
			b.Fatal(err)
		}
	}
}
