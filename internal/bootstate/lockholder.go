package bootstate

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockEntry is one line of /proc/locks.
type lockEntry struct {
	Class  string // FLOCK, POSIX, OFDLCK, LEASE
	PID    int    // -1 for an OFDLCK, which no process owns
	Major  uint64
	Minor  uint64
	Inode  uint64
	Waiter bool // a process blocked on the lock ("->"), not a holder
}

// parseProcLocks parses the Linux /proc/locks format, e.g.
//
//	1: FLOCK  ADVISORY  WRITE 4242 08:01:1179651 0 EOF
//	1: -> FLOCK  ADVISORY  WRITE 4343 08:01:1179651 0 EOF
//
// where the device numbers are hexadecimal and the inode decimal. An
// open-file-description lock (OFDLCK, taken by QEMU on its disk images)
// belongs to no process and shows pid -1. The error names the line.
func parseProcLocks(r io.Reader) ([]lockEntry, error) {
	var out []lockEntry
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var e lockEntry
		if len(f) > 1 && f[1] == "->" {
			e.Waiter = true
			f = append(f[:1:1], f[2:]...)
		}
		if len(f) < 6 || !strings.HasSuffix(f[0], ":") {
			return nil, fmt.Errorf("/proc/locks:%d: want \"N: CLASS MODE ACCESS PID MAJ:MIN:INODE ...\", got %q", line, sc.Text())
		}
		e.Class = f[1]
		pid, err := strconv.Atoi(f[4])
		if err != nil || pid < -1 {
			return nil, fmt.Errorf("/proc/locks:%d: bad pid %q", line, f[4])
		}
		e.PID = pid
		dev := strings.Split(f[5], ":")
		if len(dev) != 3 {
			return nil, fmt.Errorf("/proc/locks:%d: bad device:inode %q", line, f[5])
		}
		if e.Major, err = strconv.ParseUint(dev[0], 16, 32); err != nil {
			return nil, fmt.Errorf("/proc/locks:%d: bad major %q", line, dev[0])
		}
		if e.Minor, err = strconv.ParseUint(dev[1], 16, 32); err != nil {
			return nil, fmt.Errorf("/proc/locks:%d: bad minor %q", line, dev[1])
		}
		if e.Inode, err = strconv.ParseUint(dev[2], 10, 64); err != nil {
			return nil, fmt.Errorf("/proc/locks:%d: bad inode %q", line, dev[2])
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("/proc/locks:%d: %w", line+1, err)
	}
	return out, nil
}

// lockHolder returns the pid of the process holding a flock on path, or 0
// when it cannot tell (no /proc, another pid namespace).
func lockHolder(path string) int {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	f, err := os.Open("/proc/locks")
	if err != nil {
		return 0
	}
	defer f.Close()
	locks, err := parseProcLocks(f)
	if err != nil {
		return 0
	}
	dev := uint64(st.Dev)
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	for _, l := range locks {
		if !l.Waiter && l.Class == "FLOCK" && l.Inode == uint64(st.Ino) && l.Major == major && l.Minor == minor {
			return l.PID
		}
	}
	return 0
}
