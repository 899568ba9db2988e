package nfs

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/netbootui/netbootui/internal/roottransport"
)

// NodeDir is one node's persistent directory on the head: exported to that
// node's address alone, read-write.
type NodeDir struct {
	Node string
	// Client is the node's address as the NFS server sees it.
	Client string
}

// NodeDirPath is the head's directory of node's persistent paths.
func NodeDirPath(site roottransport.NFSSite, node string) string {
	return filepath.Join(site.Dir, "nodes", node)
}

// MakeNodeDir makes node's persistent directory with a directory for each
// persisted path (mode 0755, as the paths are in a root filesystem), keeping
// whatever is there. The parent "nodes" directory is 0700: only the NFS
// server (root) reads it on the head.
func MakeNodeDir(site roottransport.NFSSite, node string, persist []string) error {
	nodes := filepath.Join(site.Dir, "nodes")
	if err := os.MkdirAll(nodes, 0o700); err != nil {
		return err
	}
	if err := checkNodeName(node); err != nil {
		return err
	}
	for _, p := range persist {
		if err := checkPersistPath(p); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(NodeDirPath(site, node), filepath.FromSlash(p)), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// checkNodeName refuses a node name that is no single path element.
func checkNodeName(node string) error {
	if strings.ContainsAny(node, "/\\") || node == "" || node == "." || node == ".." {
		return fmt.Errorf("nfs: bad node name %q", node)
	}
	return nil
}

// checkPersistPath refuses a persisted path that is not absolute and clean
// (it could name something outside the node's directory).
func checkPersistPath(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("nfs: persist path %q: want an absolute, clean path", p)
	}
	return nil
}

// NodeExportPath is the path node mounts its persistent directory from.
func NodeExportPath(site roottransport.NFSSite, node string) string {
	return path.Join(site.Export, "nodes", node)
}

// NumericOwnersNote is the comment GaneshaExports begins with: the site's
// server must send file owners as numbers. A node whose root is on NFS
// cannot map owner names: the kernel's idmap upcall runs request-key, which
// lives on that same root, and the lookup of it needs the mapping in turn
// (a deadlock; seen with a Debian root under nfs-ganesha, whose default is
// names). Linux's nfsd sends numbers to sec=sys clients by default.
const NumericOwnersNote = "# The server's NFSV4 block needs Only_Numeric_Owners = true: a node whose root is\n" +
	"# on NFS cannot run the kernel's owner-name helper (request-key) from that root.\n"

// GaneshaExports returns the EXPORT blocks of an nfs-ganesha configuration
// for site: the trees, read-only to every client (export id 1), and one
// read-write export per node directory, restricted to the node's address
// (ids from 2, in the order given). Root is not squashed on the trees (their
// files belong to root) nor on a node's own directory.
func GaneshaExports(site roottransport.NFSSite, nodes []NodeDir) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# nfs-ganesha exports written by netbootui for %s\n", site.Export)
	b.WriteString(NumericOwnersNote)
	fmt.Fprintf(&b, "EXPORT {\n\tExport_Id = 1;\n\tPath = %q;\n\tPseudo = %q;\n", filepath.Join(site.Dir, "images"), path.Join(site.Export, "images"))
	b.WriteString("\tAccess_Type = RO;\n\tSquash = No_Root_Squash;\n\tProtocols = 4;\n\tTransports = TCP;\n\tSecType = sys;\n\tFSAL { Name = VFS; }\n}\n")
	for i, n := range nodes {
		fmt.Fprintf(&b, "EXPORT {\n\tExport_Id = %d;\n\tPath = %q;\n\tPseudo = %q;\n", i+2, NodeDirPath(site, n.Node), NodeExportPath(site, n.Node))
		b.WriteString("\tAccess_Type = None;\n\tSquash = No_Root_Squash;\n\tProtocols = 4;\n\tTransports = TCP;\n\tSecType = sys;\n")
		fmt.Fprintf(&b, "\tCLIENT { Clients = %s; Access_Type = RW; }\n", n.Client)
		b.WriteString("\tFSAL { Name = VFS; }\n}\n")
	}
	return b.String()
}
