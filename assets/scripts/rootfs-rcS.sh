#!/bin/sh
# /etc/init.d/rcS of the minimal test root filesystem that
# internal/image/liveinit.BuildRootfs lays out. busybox init runs it once at
# boot (sysinit), before it starts the check-in agent and the console shell.
# It mounts what the live init did not hand over, names the host after the
# node and prints the image's name and the RAM in use so a serial log shows
# the root came up and what it costs.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH

# mounted DIR: DIR is a mount point (busybox here has no mountpoint applet).
mounted() { grep -q "^[^ ]* $1 " /proc/mounts 2>/dev/null; }

mounted /proc || mount -t proc proc /proc
mounted /sys || mount -t sysfs sysfs /sys
mounted /dev || mount -t devtmpfs devtmpfs /dev
mounted /run || mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/pts /run/netbootui
mounted /dev/pts || mount -t devpts devpts /dev/pts
mounted /tmp || mount -t tmpfs -o mode=1777 tmpfs /tmp

if [ -r /run/netbootui.env ]; then
	# shellcheck disable=SC1091 # written by the live init
	. /run/netbootui.env
	[ -n "$NETBOOTUI_NODE" ] && hostname "$NETBOOTUI_NODE"
fi

name=$(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release 2>/dev/null)
echo "netbootui: rootfs up: ${name:-unknown} on $(hostname), kernel $(uname -r)"
# RAM in use once the root is up (MemTotal - MemAvailable, in KiB): a root
# held in RAM (http-live's squashfs in /run) counts, page cache does not.
awk '/^MemTotal:/ { t = $2 } /^MemAvailable:/ { a = $2 }
	END { printf "netbootui: memory: total_kb=%d available_kb=%d used_kb=%d\n", t, a, t - a }' /proc/meminfo
# A block-device root (nbd): how much of it was read so far.
[ -r /sys/block/nbd0/stat ] && [ "$(cat /sys/block/nbd0/size 2>/dev/null || echo 0)" != 0 ] &&
	awk -v size="$(cat /sys/block/nbd0/size)" '{ printf "netbootui: nbd0: read_kb=%d size_kb=%d\n", $3 / 2, size / 2 }' /sys/block/nbd0/stat
