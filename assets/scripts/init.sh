#!/bin/sh
# netbootui live init: PID 1 of the initramfs built by internal/image/liveinit.
#
# It loads the kernel modules listed in /etc/netbootui/modules, configures the
# first ethernet interface with udhcpc, gets the root its root= names (the
# root transport, Go package internal/roottransport: root=live:URL, http-live,
# downloads that squashfs into /run), mounts it read-only with a tmpfs overlay
# on top at /newroot and hands over to the image's /sbin/init with
# switch_root.
#
# The kernel-argument keys read here are those of roottransport.Params (a Go
# test checks that this script reads exactly the ones marked ReadByInit, and
# that its root= dispatch below has a branch for every registered scheme).
#
# Layout left for the booted system (all under /run, which moves with it):
#   /run/rootfs.squashfs     the downloaded image
#   /run/live/ro             the squashfs, mounted read-only (overlay lower)
#   /run/live/variants       the squashfs again, on a second loop device, when
#                            the node has a variant (see below)
#   /run/live/ro/etc/netbootui/overlay.d/node-<node>, .../group-<group>
#                            the image's per-node and per-group variants: when
#                            they exist they are stacked above the squashfs as
#                            extra read-only overlay lowers (node above group),
#                            so they cost no tmpfs and leave the overlay clean
#   /run/live/rw             tmpfs holding the overlay upper/ and work/ dirs
#   /run/netbootui.env       NETBOOTUI_* parameters for the check-in agent
#   /run/netbootui/          resolv.conf and net.env from DHCP
#
# Every step prints "netbootui: <step>" on the console; a step that keeps
# failing prints "netbootui: FAILED: <reason>" and drops to a shell.

PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
umask 022

say() { echo "netbootui: $*"; }

# fail REASON: report, then give the console a shell forever (PID 1 must not exit).
fail() {
	say "FAILED: $*"
	say "dropping to a shell; the boot cannot continue"
	while :; do
		setsid cttyhack sh || sh
		sleep 1
	done
}

# retry TRIES DELAY STEP CMD...: run CMD until it succeeds, at most TRIES times.
retry() {
	tries=$1 delay=$2 step=$3
	shift 3
	n=1
	while :; do
		"$@" && return 0
		[ "$n" -ge "$tries" ] && return 1
		say "$step failed (attempt $n of $tries), retrying in ${delay}s"
		sleep "$delay"
		n=$((n + 1))
	done
}

say "mounting /proc /sys /dev /run"
mkdir -p /proc /sys /dev /run /tmp /newroot
mount -t proc proc /proc || fail "cannot mount /proc"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "cannot mount devtmpfs on /dev"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail "cannot mount tmpfs on /run"
mkdir -p /run/netbootui /run/live

# Parse the kernel command line. Words are split on blanks; no globbing.
set -f
root='' node='' group='' token='' gen='' checkin='' base='' interval=''
# shellcheck disable=SC2013 # words, not lines, are wanted here
for arg in $(cat /proc/cmdline); do
	case $arg in
	root=*) root=${arg#root=} ;;
	netbootui.url=*) base=${arg#*=} ;;
	netbootui.node=*) node=${arg#*=} ;;
	netbootui.group=*) group=${arg#*=} ;;
	netbootui.token=*) token=${arg#*=} ;;
	netbootui.gen=*) gen=${arg#*=} ;;
	netbootui.checkin=*) checkin=${arg#*=} ;;
	netbootui.checkin_interval=*) interval=${arg#*=} ;;
	esac
done
set +f
[ -n "$root" ] || fail "no root= on the kernel command line"
[ -n "$node" ] && hostname "$node"

say "loading kernel modules"
if [ -f /etc/netbootui/modules ]; then
	while read -r mod; do
		[ -n "$mod" ] || continue
		# "File exists" means built in or already loaded: not an error.
		insmod "$mod" 2>/tmp/insmod.err || grep -q 'File exists' /tmp/insmod.err ||
			say "warning: insmod $mod: $(cat /tmp/insmod.err)"
	done </etc/netbootui/modules
fi

# first_ether: the first non-loopback ethernet interface (ARPHRD_ETHER = 1).
first_ether() {
	for d in /sys/class/net/*; do
		[ "$(cat "$d/type" 2>/dev/null)" = 1 ] || continue
		[ "${d##*/}" = lo ] && continue
		echo "${d##*/}"
		return 0
	done
	return 1
}

has_ether() { first_ether >/dev/null; }

say "waiting for a network interface"
retry 20 1 "finding a network interface" has_ether ||
	fail "no ethernet interface appeared (missing NIC driver module?)"
iface=$(first_ether)

say "dhcp on $iface"
ip link set "$iface" up
retry 5 2 "dhcp on $iface" \
	udhcpc -i "$iface" -s /etc/netbootui/udhcpc.script -n -q -t 10 -T 2 ||
	fail "no DHCP lease on $iface"

# fetch URL: download URL into /run/rootfs.squashfs in the background,
# report progress every 2 s.
fetch() {
	rm -f /run/rootfs.squashfs
	wget -q -O /run/rootfs.squashfs "$1" &
	pid=$! ticks=0
	while kill -0 "$pid" 2>/dev/null; do
		usleep 100000
		ticks=$((ticks + 1))
		[ $((ticks % 20)) -eq 0 ] &&
			say "rootfs: $(stat -c %s /run/rootfs.squashfs 2>/dev/null || echo 0) bytes"
	done
	wait "$pid"
}

# root_live URL: the http-live transport. The squashfs at URL is downloaded
# into RAM and mounted read-only at /run/live/ro; image=/run/rootfs.squashfs
# is what the variants below mount a second time.
root_live() {
	say "fetching rootfs $1"
	retry 5 3 "fetching $1" fetch "$1" || fail "cannot download $1"
	say "rootfs: $(stat -c %s /run/rootfs.squashfs) bytes, done"
	say "mounting rootfs"
	retry 3 1 "mounting the squashfs" \
		mount -t squashfs -o ro,loop /run/rootfs.squashfs /run/live/ro ||
		fail "cannot mount /run/rootfs.squashfs (not a squashfs, or squashfs/loop modules missing)"
	image=/run/rootfs.squashfs
}

# The root transport: one branch per root= scheme of internal/roottransport.
# Each leaves the root read-only at /run/live/ro and names in $image the
# squashfs the variants mount again.
mkdir -p /run/live/ro /run/live/rw
image=''
case $root in
live:*) root_live "${root#live:}" ;;
*) fail "root=$root: this init reads no such root (it knows root=live:URL)" ;;
esac
mount -t tmpfs -o mode=0755 tmpfs /run/live/rw || fail "cannot mount the overlay tmpfs"
mkdir -p /run/live/rw/upper /run/live/rw/work

# variant KIND NAME: print the image's KIND-NAME variant directory when it
# exists. NAME must be an inventory name ([A-Za-z0-9][A-Za-z0-9._-]*): any
# other is refused with a warning, since it could name another directory or
# carry overlayfs option syntax (":" ",").
variant() {
	case $2 in
	'') return 1 ;;
	[!A-Za-z0-9]* | *[!A-Za-z0-9._-]*)
		say "warning: $1 name '$2' is not an inventory name; no $1 variant" >&2
		return 1
		;;
	esac
	d=/run/live/ro/etc/netbootui/overlay.d/$1-$2
	if [ -d "$d" ] && [ ! -L "$d" ]; then
		echo "$d"
		return 0
	fi
	return 1
}

# Lowers, highest priority first: node variant, group variant, squashfs.
# overlayfs refuses a lower inside another lower of the same filesystem
# ("overlapping lowerdir path"), so the variants are taken from a second,
# read-only mount of the same image on its own loop device: no copy, no tmpfs.
lower=/run/live/ro variants='' vdirs=''
if d=$(variant group "$group"); then
	vdirs=${d#/run/live/ro} variants="group-$group"
fi
if d=$(variant node "$node"); then
	vdirs="${d#/run/live/ro}${vdirs:+:$vdirs}" variants="node-$node${variants:+ $variants}"
fi
if [ -n "$vdirs" ]; then
	mkdir -p /run/live/variants
	if ! loopdev=$(losetup -f) || ! losetup -r "$loopdev" "$image" ||
		! mount -t squashfs -o ro "$loopdev" /run/live/variants; then
		fail "cannot mount a second copy of the image for variants $variants"
	fi
	lower=''
	old_ifs=$IFS IFS=:
	for v in $vdirs; do
		lower=$lower/run/live/variants$v:
	done
	IFS=$old_ifs
	lower=${lower}/run/live/ro
fi
say "variants ${variants:-none}"
mount -t overlay -o "lowerdir=$lower,upperdir=/run/live/rw/upper,workdir=/run/live/rw/work" \
	overlay /newroot || fail "cannot mount the overlay (overlay module missing?)"

if [ ! -L /newroot/sbin/init ] && [ ! -x /newroot/sbin/init ]; then
	fail "the rootfs from $root has no /sbin/init"
fi

# The agent ships in the initramfs; give it to images that lack it. This write
# lands in the overlay, so images should carry their own copy.
if [ ! -e /newroot/usr/sbin/netbootui-checkin ]; then
	mkdir -p /newroot/usr/sbin
	cp /etc/netbootui/checkin.sh /newroot/usr/sbin/netbootui-checkin
	chmod 0755 /newroot/usr/sbin/netbootui-checkin
fi

# q VALUE: VALUE quoted for sh (single quotes, embedded quotes escaped).
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
	echo "NETBOOTUI_ROOT=$(q "$root")"
	echo "NETBOOTUI_URL=$(q "$base")"
	echo "NETBOOTUI_NODE=$(q "$node")"
	echo "NETBOOTUI_GROUP=$(q "$group")"
	echo "NETBOOTUI_VARIANTS=$(q "$variants")"
	echo "NETBOOTUI_TOKEN=$(q "$token")"
	echo "NETBOOTUI_GEN=$(q "$gen")"
	echo "NETBOOTUI_CHECKIN=$(q "$checkin")"
	echo "NETBOOTUI_CHECKIN_INTERVAL=$(q "${interval:-30}")"
	echo "NETBOOTUI_OVERLAY_DIR=/run/live/rw"
	echo "NETBOOTUI_IFACE=$(q "$iface")"
} >/run/netbootui.env.tmp && mv /run/netbootui.env.tmp /run/netbootui.env
chmod 0600 /run/netbootui.env

say "switching to the rootfs"
mkdir -p /newroot/run /newroot/dev /newroot/proc /newroot/sys
mount --move /run /newroot/run || fail "cannot move /run into the new root"
mount --move /dev /newroot/dev
mount --move /sys /newroot/sys
mount --move /proc /newroot/proc
# shellcheck disable=SC2093 # exec fails only when switch_root cannot start
exec switch_root /newroot /sbin/init
# Only reached when switch_root itself cannot run.
fail "switch_root to /newroot failed"
