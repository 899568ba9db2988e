// Package assets embeds the files netbootui ships inside its binary: the boot
// entry templates (templates/), the node-side scripts (scripts/: the live init
// and the check-in agent), the dracut module that applies variants in a
// dracut initramfs (dracut/) and, later, default image recipes.
package assets

import "embed"

// FS holds every embedded asset, by its path below assets/.
//
//go:embed templates scripts dracut
var FS embed.FS
