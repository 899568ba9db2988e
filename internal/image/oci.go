package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// openOCI opens the image at p: an OCI image layout directory (its index's
// first image), an OCI layout packed in a tar (oci-archive, unpacked below
// scratch), or a `docker save` tarball. No registry, no daemon.
func openOCI(ctx context.Context, p, scratch string) (v1.Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		if img, err := tarball.ImageFromPath(p, nil); err == nil {
			return img, nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		dir := filepath.Join(scratch, "oci-layout")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := extractTar(ctx, f, dir); err != nil {
			return nil, fmt.Errorf("%s is neither a docker-save tarball nor an OCI archive: %w", p, err)
		}
		p = dir
	}
	lp, err := layout.FromPath(p)
	if err != nil {
		return nil, fmt.Errorf("%s: not an OCI image layout: %w", p, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return firstImage(idx, p)
}

// firstImage returns the first image of an index, descending into nested
// indexes.
func firstImage(idx v1.ImageIndex, where string) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsImage() {
			return idx.Image(d.Digest)
		}
		if d.MediaType.IsIndex() {
			sub, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			return firstImage(sub, where)
		}
	}
	return nil, fmt.Errorf("%s: the index holds no image", where)
}

// extractOCI flattens the image's layers (applying whiteouts) into dst and
// returns the image's digest (its manifest's sha256).
func extractOCI(ctx context.Context, p, dst, scratch string) (string, error) {
	img, err := openOCI(ctx, p, scratch)
	if err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := extractTar(ctx, rc, dst); err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	return digest.String(), nil
}
