package apitype

import "time"

// Names of the files of a generation.
const (
	FileKernel = "vmlinuz"
	FileInitrd = "initrd"
	FileRootfs = "rootfs.squashfs"
)

// FileInfo is one file of a generation.
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Manifest describes a generation of an image (the wire form of
// image.Manifest).
type Manifest struct {
	Image   string     `json:"image"`
	ID      string     `json:"id"`
	Created time.Time  `json:"created"`
	Source  string     `json:"source,omitempty"` // where it came from: a recipe hash, "import", ...
	Files   []FileInfo `json:"files"`
	// SourceHash is the hash of a build's inputs.
	SourceHash string `json:"source_hash,omitempty"`
	// Log names the build log file kept in the generation.
	Log string `json:"log,omitempty"`
	// BuildSeconds is how long the build took.
	BuildSeconds float64 `json:"build_seconds,omitempty"`
	// Provenance says what the generation was made from (nil for imports
	// and generations older than it).
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Provenance is where a generation came from: the recipe file's sha256,
// the builder, the root's sources (OCI digest, debootstrap suite and
// mirror, the Debian packages installed), and for a generation made by an
// admin's session its parent and the change.
type Provenance struct {
	RecipeHash  string             `json:"recipe_hash,omitempty"`
	Builder     string             `json:"builder,omitempty"`
	OCIDigest   string             `json:"oci_digest,omitempty"`
	Debootstrap *DebootstrapSource `json:"debootstrap,omitempty"`
	// Packages maps each installed Debian package to its version.
	Packages map[string]string `json:"packages,omitempty"`
	Parent   string            `json:"parent,omitempty"`
	Change   *Change           `json:"change,omitempty"`
}

// DebootstrapSource is what a debootstrap root was made from.
type DebootstrapSource struct {
	Suite   string `json:"suite"`
	Mirror  string `json:"mirror"`
	Variant string `json:"variant,omitempty"`
}

// Change is what an admin's session did to the parent generation.
type Change struct {
	// Command is what ran ("interactive shell" for a shell), several
	// joined by "; ".
	Command string `json:"command"`
	Who     string `json:"who,omitempty"`
	// Summary is the diff's summary (ImageDiff.Summary).
	Summary string `json:"summary"`
}

// FileCheck is one file of a generation reread by the daemon
// (GET /v1/images/{name}/generations/{gen}/verify): what the manifest
// says and what the file holds now (Size -1 when it could not be read:
// Error says why).
type FileCheck struct {
	Name       string `json:"name"`
	OK         bool   `json:"ok"`
	Size       int64  `json:"size"`
	SHA256     string `json:"sha256,omitempty"`
	WantSize   int64  `json:"want_size"`
	WantSHA256 string `json:"want_sha256"`
	Error      string `json:"error,omitempty"`
}

// VerifyResult is the answer of a verify: every file of the generation.
type VerifyResult struct {
	Image      string      `json:"image"`
	Generation string      `json:"generation"`
	OK         bool        `json:"ok"`
	Files      []FileCheck `json:"files"`
}

// Kinds of ImageFileChange.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// TreeEntry is one path of a generation's root.
type TreeEntry struct {
	// Mode as ls shows it ("-rw-r--r--", "drwxr-xr-x", "Lrwxrwxrwx").
	Mode   string `json:"mode"`
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Link   string `json:"link,omitempty"`
}

// ImageFileChange is one path that differs between two generations.
type ImageFileChange struct {
	Path string `json:"path"`
	// Kind is ChangeAdded, ChangeRemoved or ChangeChanged.
	Kind string `json:"kind"`
	// What changed: "type", "mode", "owner", "size", "content", "link",
	// "device".
	What []string   `json:"what,omitempty"`
	Old  *TreeEntry `json:"old,omitempty"`
	New  *TreeEntry `json:"new,omitempty"`
}

// BootFileChange is a kernel or initramfs that differs.
type BootFileChange struct {
	Name string   `json:"name"`
	Old  FileInfo `json:"old"`
	New  FileInfo `json:"new"`
}

// PackageChange is a Debian package added (Old ""), removed (New "") or
// changed in version.
type PackageChange struct {
	Name string `json:"name"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

// ImageDiff is what differs between generation A (the old) and B
// (GET /v1/images/diff?a=IMAGE:GEN&b=IMAGE:GEN).
type ImageDiff struct {
	A       string            `json:"a"`
	B       string            `json:"b"`
	Summary string            `json:"summary"`
	Added   int               `json:"added"`
	Removed int               `json:"removed"`
	Changed int               `json:"changed"`
	Files   []ImageFileChange `json:"files,omitempty"`
	Boot    []BootFileChange  `json:"boot,omitempty"`
	// Packages is set when either root has a dpkg database.
	Packages []PackageChange `json:"packages,omitempty"`
	// InitrdFiles is what differs inside the initramfs, when it changed;
	// InitrdError why that could not be read.
	InitrdFiles []ImageFileChange `json:"initrd_files,omitempty"`
	InitrdError string            `json:"initrd_error,omitempty"`
}

// KernelChanged says whether the diff changes the kernel.
func (d *ImageDiff) KernelChanged() bool { return d.bootChanged(FileKernel) }

// InitrdChanged says whether the diff changes the initramfs.
func (d *ImageDiff) InitrdChanged() bool { return d.bootChanged(FileInitrd) }

func (d *ImageDiff) bootChanged(name string) bool {
	for _, b := range d.Boot {
		if b.Name == name {
			return true
		}
	}
	return false
}

// ExecRequest runs a command in a working copy of an image's current
// generation (POST /v1/images/{name}/exec). The answer is NDJSON
// ExecLines: the command's output, then the session with its diff. The
// session waits for a SessionDecision.
type ExecRequest struct {
	Command []string `json:"command"`
}

// ExecLine is one line of the answer to an exec: output (stdout and
// stderr as the command wrote them), then a last line with the session or
// the error.
type ExecLine struct {
	Output  string       `json:"output,omitempty"`
	Session *SessionView `json:"session,omitempty"`
	Error   string       `json:"error,omitempty"`
}

// SessionView is an admin's session on an image: a working copy of the
// Parent generation in which Commands ran, its diff against the parent,
// and the last command's exit status.
type SessionView struct {
	ID       string     `json:"id"`
	Image    string     `json:"image"`
	Parent   string     `json:"parent"`
	Commands []string   `json:"commands"`
	Exit     int        `json:"exit"`
	Diff     *ImageDiff `json:"diff,omitempty"`
	// Expires is when an undecided session is discarded.
	Expires time.Time `json:"expires"`
}

// Session decisions.
const (
	SessionPublish = "publish" // commit a new generation and make it current
	SessionCommit  = "commit"  // commit a new generation, not published
	SessionDiscard = "discard" // remove the working copy; nothing is kept
)

// SessionDecision ends a session
// (POST /v1/images/{name}/sessions/{id}).
type SessionDecision struct {
	Action string `json:"action"`
	// SaveToRecipe also writes what was added and changed into the
	// image's recipe overlay folder, so the next build keeps it.
	SaveToRecipe bool `json:"save_to_recipe,omitempty"`
}

// SessionResult is the answer to a decision.
type SessionResult struct {
	Manifest  *Manifest `json:"manifest,omitempty"`
	Published bool      `json:"published,omitempty"`
	// Saved counts the paths written to the recipe's overlay; NotSaved
	// lists what an overlay cannot say (removals, devices).
	Saved    int      `json:"saved,omitempty"`
	NotSaved []string `json:"not_saved,omitempty"`
	Overlay  string   `json:"overlay,omitempty"`
}

// ShellProtocol is the Upgrade protocol of an interactive shell in a
// session (POST /v1/images/{name}/shell): after 101 Switching Protocols
// the connection is the shell's terminal, raw, both ways. The session's id
// is in the answer's SessionHeader.
const ShellProtocol = "netbootui-shell"

// SessionHeader carries a session's id in the answer to a shell upgrade.
const SessionHeader = "Netbootui-Session"

// TermSize is the size of the terminal of a session's interactive shell
// (POST /v1/images/{name}/sessions/{id}/size): the caller's terminal was
// resized, and the shell's pty takes the new size (its programs get
// SIGWINCH). Both are from 1 to 1000.
type TermSize struct {
	Rows int `json:"rows"`
	Cols int `json:"cols"`
}

// File returns the manifest entry for name.
func (m *Manifest) File(name string) (FileInfo, bool) {
	for _, f := range m.Files {
		if f.Name == name {
			return f, true
		}
	}
	return FileInfo{}, false
}

// Size returns the total size of the generation's files.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// ImageInfo is an image with its generations, newest first (GET /v1/images).
type ImageInfo struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Current     string      `json:"current,omitempty"`
	Generations []*Manifest `json:"generations"`
}

// ImportRequest asks for a new generation of Image made of files the caller
// sends (POST /v1/images/import). The body is multipart/form-data: a part
// named ImportRequestPart holding this request as JSON, then one part per
// file, named FileKernel, FileInitrd and FileRootfs, holding its content.
// The daemon never opens a path a caller names: the caller reads its files
// with its own rights and sends what it read.
type ImportRequest struct {
	Image   string `json:"image"`
	Publish bool   `json:"publish"`
	Source  string `json:"source,omitempty"`
}

// ImportRequestPart is the name of the multipart part that carries the
// ImportRequest; it comes before the files.
const ImportRequestPart = "request"

// PublishRequest names the generation to make current
// (POST /v1/images/{name}/publish).
type PublishRequest struct {
	Generation string `json:"generation"`
}

// RollbackResult is the answer of POST /v1/images/{name}/rollback.
type RollbackResult struct {
	Current string `json:"current"`
}

// GCRequest says how many generations to keep (POST /v1/images/{name}/gc).
type GCRequest struct {
	Keep int `json:"keep"`
}

// GCResult lists the generations removed.
type GCResult struct {
	Removed []string `json:"removed"`
}

// BuildRequest asks for a build of one image (POST /v1/images/build).
type BuildRequest struct {
	// Image names an inventory image; its recipe is the inventory's
	// `recipe:` folder. Recipe, when set, is a recipe folder to build instead.
	Image   string `json:"image,omitempty"`
	Recipe  string `json:"recipe,omitempty"`
	Publish bool   `json:"publish,omitempty"`
	Force   bool   `json:"force,omitempty"`
	// Who is the caller, for the audit log (set by the API server, never
	// on the wire).
	Who string `json:"-"`
}

// Build steps, in order, as reported in BuildProgress.Step.
const (
	BuildStepHash      = "hash"
	BuildStepUnchanged = "unchanged" // the inputs hash as an existing generation's: nothing built
	BuildStepRootfs    = "rootfs"
	BuildStepOverlay   = "overlay"
	BuildStepAgent     = "agent"
	BuildStepKernel    = "kernel"
	BuildStepInitramfs = "initramfs"
	BuildStepSquashfs  = "squashfs"
	BuildStepChecksums = "checksums"
	BuildStepPublish   = "publish"
	BuildStepDone      = "done"
)

// BuildSteps lists every build step in order.
var BuildSteps = []string{BuildStepHash, BuildStepUnchanged, BuildStepRootfs, BuildStepOverlay, BuildStepAgent,
	BuildStepKernel, BuildStepInitramfs, BuildStepSquashfs, BuildStepChecksums, BuildStepPublish, BuildStepDone}

// BuildProgress is one build event: a step starting (Percent 0), a
// percentage of the step, or a log line (Line).
type BuildProgress struct {
	Image   string  `json:"image,omitempty"`
	Step    string  `json:"step,omitempty"`
	Percent float64 `json:"percent,omitempty"`
	Line    string  `json:"line,omitempty"`
}

// BuildLine is one line of the NDJSON answer to POST /v1/images/build: a
// progress step, then a last line with the generation or the error.
type BuildLine struct {
	Progress *BuildProgress `json:"progress,omitempty"`
	Manifest *Manifest      `json:"manifest,omitempty"`
	Error    string         `json:"error,omitempty"`
}
