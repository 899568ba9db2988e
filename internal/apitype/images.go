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
