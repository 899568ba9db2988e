package nodeagent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/u-root/u-root/pkg/boot/kexec"
)

// KexecLoader kexecs with kexec-tools' kexec when the root has one (the
// Debian recipes install it), else with the kernel's kexec_file_load
// through u-root (the busybox image has no kexec program).
type KexecLoader struct {
	// Tools is the path of kexec-tools' kexec; "" looks it up in PATH.
	Tools string
}

func (l KexecLoader) tools() string {
	if l.Tools != "" {
		return l.Tools
	}
	p, err := exec.LookPath("kexec")
	if err != nil {
		return ""
	}
	return p
}

// String says which kexec the loader uses, for the agent's report of a
// load: "kexec-tools (PATH -s)" or "kexec_file_load (u-root)".
func (l KexecLoader) String() string {
	if t := l.tools(); t != "" {
		return "kexec-tools (" + t + " -s)"
	}
	return "kexec_file_load (u-root)"
}

// Load stages kernel and initrd with cmdline.
func (l KexecLoader) Load(kernel, initrd *os.File, cmdline string) error {
	if t := l.tools(); t != "" {
		// -s: kexec_file_load, the kernel checks the image as u-root's does.
		out, err := exec.Command(t, "-s", "-l", kernel.Name(), "--initrd="+initrd.Name(), "--command-line="+cmdline).CombinedOutput()
		if err != nil {
			// The command line carries the node's token: never in a message.
			msg := strings.ReplaceAll(strings.TrimSpace(string(out)), cmdline, "<command line>")
			return fmt.Errorf("%s -l: %v: %s", t, err, msg)
		}
		return nil
	}
	if err := kexec.FileLoad(kernel, initrd, cmdline); err != nil {
		// u-root's error quotes the command line, which carries the
		// node's token: keep only the kernel's answer.
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return fmt.Errorf("kexec_file_load: %w", errno)
		}
		return errors.New("kexec_file_load failed")
	}
	return nil
}

// Exec boots the staged kernel.
func (l KexecLoader) Exec() error {
	if t := l.tools(); t != "" {
		out, err := exec.Command(t, "-e").CombinedOutput()
		return fmt.Errorf("%s -e returned: %v: %s", t, err, strings.TrimSpace(string(out)))
	}
	return kexec.Reboot()
}

func syncDisks() { syscall.Sync() }
