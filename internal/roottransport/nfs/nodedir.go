package nfs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/netbootui/netbootui/internal/roottransport"
)

// PathUsage is what a node keeps under one of its persisted paths in its
// directory on the head.
type PathUsage struct {
	// Path is the persisted path as the node sees it ("/var/log").
	Path string
	// Bytes and Files count the regular files below it (symbolic links
	// are counted as files, never followed).
	Bytes int64
	Files int
	// Missing: the head has no directory for the path yet (made at the
	// next inventory load).
	Missing bool
}

// NodeDirUsage reads, for each of persist, what node keeps under it.
func NodeDirUsage(site roottransport.NFSSite, node string, persist []string) ([]PathUsage, error) {
	if err := checkNodeName(node); err != nil {
		return nil, err
	}
	out := make([]PathUsage, 0, len(persist))
	for _, p := range persist {
		if err := checkPersistPath(p); err != nil {
			return nil, err
		}
		u := PathUsage{Path: p}
		dir := filepath.Join(NodeDirPath(site, node), filepath.FromSlash(p))
		err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			u.Files++
			if e.Type().IsRegular() {
				if fi, err := e.Info(); err == nil {
					u.Bytes += fi.Size()
				}
			}
			return nil
		})
		if os.IsNotExist(err) {
			u.Missing, err = true, nil
		}
		if err != nil {
			return nil, fmt.Errorf("nfs: %s of node %s: %w", p, node, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// WipeNodeDir empties each of node's persisted directories, keeping the
// directories themselves (the node's next mount finds them, empty). It
// removes entries in place, never following a symbolic link a node left.
// It returns how many entries (files and directories, counted at the top of
// each persisted path) it removed.
func WipeNodeDir(site roottransport.NFSSite, node string, persist []string) (int, error) {
	if err := checkNodeName(node); err != nil {
		return 0, err
	}
	removed := 0
	for _, p := range persist {
		if err := checkPersistPath(p); err != nil {
			return removed, err
		}
		dir := filepath.Join(NodeDirPath(site, node), filepath.FromSlash(p))
		ents, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("nfs: wipe %s of node %s: %w", p, node, err)
		}
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return removed, fmt.Errorf("nfs: wipe %s of node %s: %w", p, node, err)
			}
			removed++
		}
	}
	return removed, nil
}
