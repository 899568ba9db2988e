// Package roottransport is the seam between a generation and the way a
// node's initramfs reaches its root filesystem.
//
// A Transport decides, from the generation, the node and its own settings,
// the root= words of the kernel command line; the initramfs (netbootui's
// built-in live init, or an image's own dracut) reads them and does the rest.
// Everything else a node reads from its command line (netbootui.node,
// netbootui.token, ...) is the same for every transport and is defined here
// too, once: the renderer writes these keys, the node-side scripts in
// assets/scripts read exactly these (a test checks both sides), and the
// simulated firmware parses a command line with Registry.Parse.
//
// Transports are registered in one place (package builtin); a new one is a
// package implementing Transport plus one line there.
package roottransport

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/netbootui/netbootui/internal/agentproto"
)

// Transport is one way a node's initramfs gets its root filesystem. An
// implementation holds no per-node state and is safe for concurrent use.
type Transport interface {
	// Name is the transport's name in the inventory ("http-live"): an
	// image's `root:` key names it.
	Name() string
	// Scheme is the prefix of the root= value the transport writes and the
	// initramfs dispatches on: "live" for root=live:URL. Schemes are unique
	// in a Registry.
	Scheme() string
	// KernelArgs returns the words that make the node's initramfs mount the
	// root of b: the first is root=SCHEME:..., any others are the
	// transport's own (rd.* options, say). Every word is one word with no
	// control characters; the caller checks them again.
	KernelArgs(b Boot) ([]string, error)
	// Locate reads back the root= value after "SCHEME:" as a node's
	// initramfs would: what it has to fetch or mount before it switches root.
	Locate(value string) (Root, error)
}

// Boot is what a transport decides the kernel arguments from: the node, the
// generation it boots and the head it boots from.
type Boot struct {
	Node  string // node name
	Group string // node's group, "" when none

	Image      string // image name
	Generation string // generation id
	// BaseURL is http://HEAD:PORT as the node reaches the daemon.
	BaseURL string
	// RootfsURL is the generation's squashfs over HTTP as this node fetches
	// it: the node's name and its proof are in the query.
	RootfsURL string
	// NFS is the site's NFS server, for a transport that mounts the
	// generation's tree over NFS (empty when the inventory names none).
	NFS NFSSite
	// NBD is the site's NBD server, for the nbd transport.
	NBD NBDSite
	// Persist are the paths the node keeps across reboots (its group's
	// persist:); a transport that cannot keep them ignores them. Empty
	// when PersistDisk keeps them.
	Persist []string
	// PersistDisk, when set, keeps the node's persisted paths on a local
	// partition instead (any RAM root): PersistDiskArgs writes its words,
	// the same for every transport.
	PersistDisk *PersistDisk
}

// PersistDisk is where a RAM-rooted node keeps its persisted paths: a
// partition of its own disk found by filesystem label (the inventory's
// persist_disk).
type PersistDisk struct {
	Paths   []string // the persisted paths (the group's persist:)
	Label   string   // the filesystem label
	Missing string   // "fail" or "boot": what the node does when no partition has the label
	Format  bool     // the node may make the filesystem on an empty disk
	// Wipe is the id of the newest wipe requested for the node ("" when
	// none): a node whose disk has not applied that id yet empties the
	// persisted paths at boot, before anything uses them.
	Wipe string
}

// CheckPersistPath accepts a persisted path the node-side scripts can take
// as it is: absolute, clean, not "/", none of the separators and quotes
// the command line and the init split on.
func CheckPersistPath(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" || strings.ContainsAny(p, ", \t\n:=\"'\\") {
		return fmt.Errorf("persist path %q: want an absolute, clean path", p)
	}
	return nil
}

// PersistDiskArgs returns the words that make a node keep d.Paths on its
// disk: netbootui.persist=/a,/b netbootui.persist_disk=LABEL:MISSING[:format]
// [netbootui.persist_wipe=ID].
func PersistDiskArgs(d PersistDisk) ([]string, error) {
	if len(d.Paths) == 0 {
		return nil, errors.New("persist_disk: no persisted paths")
	}
	for _, p := range d.Paths {
		if err := CheckPersistPath(p); err != nil {
			return nil, err
		}
	}
	if !validLabel(d.Label) {
		return nil, fmt.Errorf("persist_disk: label %q: want 1 to 16 letters, digits, '.', '_' or '-'", d.Label)
	}
	if d.Missing != PersistMissingFail && d.Missing != PersistMissingBoot {
		return nil, fmt.Errorf("persist_disk: missing %q: want %s or %s", d.Missing, PersistMissingFail, PersistMissingBoot)
	}
	v := d.Label + ":" + d.Missing
	if d.Format {
		v += ":format"
	}
	words := []string{KeyPersist + "=" + strings.Join(d.Paths, ","), KeyPersistDisk + "=" + v}
	if d.Wipe != "" {
		if !ValidWipeID(d.Wipe) {
			return nil, fmt.Errorf("persist_disk: wipe id %q: want %d lower-case hex digits", d.Wipe, WipeIDLen)
		}
		words = append(words, KeyPersistWipe+"="+d.Wipe)
	}
	return words, nil
}

// What a node does when no partition has its persist label.
const (
	PersistMissingFail = "fail" // the boot fails at stage persist
	PersistMissingBoot = "boot" // the boot goes on, the paths in RAM, said in its check-ins
)

// WipeIDLen is the length of a wipe request's id, in hex digits.
const WipeIDLen = 16

// ValidWipeID reports whether s is WipeIDLen lower-case hex digits.
func ValidWipeID(s string) bool {
	_, err := hex.DecodeString(s)
	return len(s) == WipeIDLen && err == nil && strings.ToLower(s) == s
}

// validLabel accepts an ext4 label the init can pass to findfs as it is:
// an inventory-like name of at most 16 bytes.
func validLabel(s string) bool { return len(s) <= 16 && agentproto.ValidName(s) }

// NFSSite is the site's NFS server as nodes reach it: the inventory's
// settings.nfs.
type NFSSite struct {
	// Server is the address nodes mount from (an IPv4 address: the
	// initramfs resolves no names).
	Server string
	// Port is the server's NFS port; 0 means 2049.
	Port int
	// Export is the path nodes mount under (the NFSv4 pseudo path of the
	// head's export directory), e.g. "/netbootui".
	Export string
	// Dir is the head's directory behind Export, where netbootui writes
	// the generations' trees and the nodes' persistent directories.
	Dir string
}

// NBDSite is the site's NBD server as nodes reach it: settings.nbd.
type NBDSite struct {
	Server string // IPv4 address
	Port   int    // 0 means 10809
}

// PortOrDefault returns Port, 10809 when unset.
func (s NBDSite) PortOrDefault() int {
	if s.Port == 0 {
		return 10809
	}
	return s.Port
}

// Configured reports whether the inventory names an NFS server.
func (s NFSSite) Configured() bool { return s.Server != "" && s.Export != "" && s.Dir != "" }

// PortOrDefault returns Port, 2049 when unset.
func (s NFSSite) PortOrDefault() int {
	if s.Port == 0 {
		return 2049
	}
	return s.Port
}

// Root is what an initramfs must do to get its root, read back from the
// command line by Transport.Locate.
type Root struct {
	// Transport is the transport's Name.
	Transport string
	// Fetch are the URLs the initramfs downloads before it mounts the root
	// (http-live: the squashfs). Empty for a transport that mounts over
	// the network instead.
	Fetch []string
	// Mount is what a transport that mounts over the network mounts
	// read-only ("10.0.2.2:/netbootui/images/live/GEN" for nfs), with
	// MountOptions its options; empty for http-live.
	Mount        string
	MountOptions string
}

// Kernel-argument keys of the boot contract. The renderer writes them (root=
// through the transport); assets/scripts/init.sh, assets/scripts/checkin.sh
// and the dracut module assets/dracut/90netbootui read them.
const (
	KeyRoot            = "root"                       // root=SCHEME:VALUE, from the transport
	KeyURL             = "netbootui.url"              // the daemon's base URL
	KeyNode            = "netbootui.node"             // node name
	KeyGroup           = "netbootui.group"            // node's group (only when it has one)
	KeyToken           = "netbootui.token"            // check-in token
	KeyGen             = "netbootui.gen"              // generation booted
	KeyCheckin         = "netbootui.checkin"          // check-in URL
	KeyCheckinInterval = "netbootui.checkin_interval" // seconds between check-ins
	KeyProbe           = "netbootui.probe"            // test hook of the agent
	KeyTestWrite       = "netbootui.test_write"       // test hook of the agent
	KeyPersist         = "netbootui.persist"          // paths kept across reboots
	KeyPersistNFS      = "netbootui.persist_nfs"      // the node's own NFS directory holding them
	KeyPersistDisk     = "netbootui.persist_disk"     // the local partition holding them (RAM roots)
	KeyPersistWipe     = "netbootui.persist_wipe"     // the newest wipe requested of that partition
	KeyNoCloud         = "netbootui.nocloud"          // the node's cloud-init NoCloud seed URL
	KeyHeads           = "netbootui.heads"            // the other live heads' base URLs (several heads)
	KeyAgentKey        = "netbootui.agent_key"        // the daemon's public key for the node agent's instructions
)

// Reader is a bit set of the node-side programs that read a key.
type Reader uint8

// Node-side readers of the command line.
const (
	// ReadByInit: assets/scripts/init.sh, the built-in live init.
	ReadByInit Reader = 1 << iota
	// ReadByAgent: assets/scripts/checkin.sh, the check-in agent.
	ReadByAgent
	// ReadByDracut: assets/dracut/90netbootui, the dracut module.
	ReadByDracut
	// ReadByNodeAgent: cmd/netbootui-agent, the static node agent that
	// long-polls for instructions (reboot-clean by kexec).
	ReadByNodeAgent
)

// Param is one key of the boot contract.
type Param struct {
	Key     string
	Readers Reader
	// Rendered: the renderer writes it into every entry that boots a
	// generation (the others are set by an admin's kernel_args).
	Rendered bool
	Doc      string
}

// Params returns every key of the boot contract, root= first.
func Params() []Param {
	return []Param{
		{KeyRoot, ReadByInit, true, "the root, as the transport writes it (http-live: live:URL of the squashfs)"},
		{KeyURL, ReadByInit | ReadByAgent | ReadByNodeAgent, true, "daemon base URL"},
		{KeyNode, ReadByInit | ReadByAgent | ReadByDracut | ReadByNodeAgent, true, "node name"},
		{KeyGroup, ReadByInit | ReadByDracut, true, "node's group, only when it has one (for the overlay.d/group-GROUP variant)"},
		{KeyToken, ReadByInit | ReadByAgent | ReadByNodeAgent, true, "check-in token"},
		{KeyGen, ReadByInit | ReadByAgent | ReadByNodeAgent, true, "generation booted"},
		{KeyCheckin, ReadByInit | ReadByAgent, true, "check-in URL"},
		{KeyCheckinInterval, ReadByInit | ReadByAgent, false, "seconds between check-ins (default 30)"},
		{KeyProbe, ReadByAgent, false, "test hook: check-ins carry probe=present|absent for PATH"},
		{KeyTestWrite, ReadByAgent, false, "test hook: after the first check-in write 64 KiB to each PATH of a comma-separated list, check in again at once"},
		{KeyPersist, ReadByInit, true, "when the node's group persists paths: the paths, comma-separated, bound from the node's own NFS directory (nfs) or from its local partition (persist_disk)"},
		{KeyPersistDisk, ReadByInit, true, "persist_disk, with netbootui.persist: LABEL:MISSING[:format], the partition holding the paths found by its label; MISSING fail or boot says what a node without it does; format lets it make the filesystem on an empty disk"},
		{KeyPersistWipe, ReadByInit, true, "persist_disk, once a wipe was requested: the newest wipe's id; a disk that has not applied it empties the persisted paths at boot"},
		{KeyNoCloud, ReadByInit, true, "when the node has user_data or vendor_data: its NoCloud seed URL (with its token), fetched by the init for cloud-init"},
		{KeyAgentKey, ReadByNodeAgent, false, "the daemon's ed25519 public key (base64url) the node agent checks instructions with; rendered by the daemon, absent from previews"},
		{KeyPersistNFS, ReadByInit, true, "nfs, with netbootui.persist: SERVER:PATH:OPTIONS of the node's own read-write directory, made by the head"},
		{KeyHeads, ReadByInit | ReadByAgent | ReadByNodeAgent, true, "several heads: the other live heads' base URLs, comma-separated; the init fetches the root, the check-in agent checks in and the node agent polls at the same path on each in turn when netbootui.url's head fails"},
	}
}

// Registry holds the transports a daemon knows, by name and by scheme. It is
// immutable once made.
type Registry struct {
	byName   map[string]Transport
	byScheme map[string]Transport
	def      Transport
}

// NewRegistry returns a registry of ts; the first is the default, used for an
// image that names none. Names and schemes must be unique and non-empty.
func NewRegistry(ts ...Transport) (*Registry, error) {
	if len(ts) == 0 {
		return nil, errors.New("roottransport: a registry needs at least one transport")
	}
	r := &Registry{byName: map[string]Transport{}, byScheme: map[string]Transport{}, def: ts[0]}
	for _, t := range ts {
		name, scheme := t.Name(), t.Scheme()
		if name == "" || scheme == "" || strings.ContainsAny(scheme, ": ") {
			return nil, fmt.Errorf("roottransport: transport %q: bad name or scheme %q", name, scheme)
		}
		if r.byName[name] != nil {
			return nil, fmt.Errorf("roottransport: transport %q registered twice", name)
		}
		if o := r.byScheme[scheme]; o != nil {
			return nil, fmt.Errorf("roottransport: transports %q and %q share scheme %q", o.Name(), name, scheme)
		}
		r.byName[name], r.byScheme[scheme] = t, t
	}
	return r, nil
}

// Default returns the transport of an image that names none.
func (r *Registry) Default() Transport { return r.def }

// Names returns the registered names, sorted.
func (r *Registry) Names() []string { return sortedKeys(r.byName) }

// Schemes returns the registered root= schemes, sorted.
func (r *Registry) Schemes() []string { return sortedKeys(r.byScheme) }

func sortedKeys(m map[string]Transport) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the transport called name; "" is the default. The error
// lists the known names.
func (r *Registry) Lookup(name string) (Transport, error) {
	if name == "" {
		return r.def, nil
	}
	if t := r.byName[name]; t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("unknown root transport %q (known: %s)", name, strings.Join(r.Names(), ", "))
}

// Cmdline is a kernel command line read as a node reads it.
type Cmdline struct {
	Root            Root
	URL             string
	Node, Group     string
	Token           string
	Gen             string
	Checkin         string
	CheckinInterval int // 0 when not given
	// Heads are the other live heads' base URLs (several heads), tried in
	// order when URL's head fails.
	Heads []string
}

// OnHeads returns u, then u on each of c.Heads when u lies under c.URL:
// the same path on every other live head, in order.
func (c Cmdline) OnHeads(u string) []string {
	out := []string{u}
	base := strings.TrimRight(c.URL, "/")
	rest, ok := strings.CutPrefix(u, base)
	if base == "" || !ok || (rest != "" && rest[0] != '/' && rest[0] != '?') {
		return out
	}
	for _, h := range c.Heads {
		out = append(out, strings.TrimRight(h, "/")+rest)
	}
	return out
}

// Parse reads a kernel command line (key -> value; words without "=" map to
// "") the way the node-side scripts do: the root through the transport whose
// scheme root= names, the netbootui.* keys as they are.
func (r *Registry) Parse(args map[string]string) (Cmdline, error) {
	c := Cmdline{
		URL: args[KeyURL], Node: args[KeyNode], Group: args[KeyGroup], Token: args[KeyToken],
		Gen: args[KeyGen], Checkin: args[KeyCheckin],
	}
	for h := range strings.SplitSeq(args[KeyHeads], ",") {
		if h != "" {
			c.Heads = append(c.Heads, h)
		}
	}
	if v := args[KeyCheckinInterval]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("%s=%q: want a positive number of seconds", KeyCheckinInterval, v)
		}
		c.CheckinInterval = n
	}
	root, ok := args[KeyRoot]
	if !ok || root == "" {
		return c, errors.New("the kernel command line names no root=")
	}
	scheme, value, found := strings.Cut(root, ":")
	t := r.byScheme[scheme]
	if !found || t == nil {
		return c, fmt.Errorf("root=%s: no transport reads it (schemes: %s)", root, strings.Join(r.Schemes(), ", "))
	}
	rt, err := t.Locate(value)
	if err != nil {
		return c, fmt.Errorf("root=%s: %w", root, err)
	}
	rt.Transport = t.Name()
	c.Root = rt
	return c, nil
}
