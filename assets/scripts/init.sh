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
#   /run/live/persist        the node's own NFS directory (netbootui.persist_nfs)
#                            or its local partition found by label
#                            (netbootui.persist_disk), its persisted paths
#                            bound over the overlay
#   /run/netbootui.env       NETBOOTUI_* parameters for the check-in agent
#   /run/netbootui/          resolv.conf and net.env from DHCP; netbootui-agent,
#                            the node agent, when the initramfs has one
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
root_check='' root_desc='' root='' node='' group='' token='' gen='' checkin='' base='' interval='' persist='' persist_nfs='' persist_disk='' persist_wipe='' persist_state='' nocloud='' heads=''
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
	netbootui.persist=*) persist=${arg#*=} ;;
	netbootui.persist_nfs=*) persist_nfs=${arg#*=} ;;
	netbootui.persist_disk=*) persist_disk=${arg#*=} ;;
	netbootui.persist_wipe=*) persist_wipe=${arg#*=} ;;
	netbootui.nocloud=*) nocloud=${arg#*=} ;;
	netbootui.heads=*) heads=${arg#*=} ;;
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

# fetch_any URL: fetch URL; when that fails and URL lies under this head's
# base URL (netbootui.url), the same path on each other live head
# (netbootui.heads=, several heads) in turn.
fetch_any() {
	fetch "$1" && return 0
	case $1 in "${base%/}"/* | "${base%/}"\?*) ;; *) return 1 ;; esac
	[ -n "$base" ] && [ -n "$heads" ] || return 1
	rest=${1#"${base%/}"} old_ifs=$IFS IFS=,
	set -f
	for h in $heads; do
		IFS=$old_ifs
		say "rootfs: trying head ${h%/}"
		if fetch "${h%/}$rest"; then
			set +f
			return 0
		fi
	done
	set +f
	IFS=$old_ifs
	return 1
}

# root_live URL: the http-live transport. The squashfs at URL is downloaded
# into RAM and mounted read-only at /run/live/ro; image=/run/rootfs.squashfs
# is what the variants below mount a second time.
root_live() {
	say "fetching rootfs $1"
	if ! retry 5 3 "fetching $1" fetch_any "$1"; then
		report_failure "rootfs: cannot download the squashfs from ${1%%\?*}"
		fail "cannot download $1"
	fi
	say "rootfs: $(stat -c %s /run/rootfs.squashfs) bytes, done"
	say "mounting rootfs"
	retry 3 1 "mounting the squashfs" \
		mount -t squashfs -o ro,loop /run/rootfs.squashfs /run/live/ro ||
		fail "cannot mount /run/rootfs.squashfs (not a squashfs, or squashfs/loop modules missing)"
	image=/run/rootfs.squashfs
}

# nfs_mount MODE SERVER:PATH[:OPTIONS] DIR: mount an NFSv4 export at DIR,
# MODE ro or rw; retried, since the network may still be settling.
nfs_mount() {
	nfs_server=${2%%:*} rest=${2#*:}
	nfs_path=${rest%%:*} opts=''
	[ "$rest" != "$nfs_path" ] && opts=${rest#*:}
	retry 5 3 "mounting $nfs_server:$nfs_path" \
		mount -t nfs4 -o "$1,addr=$nfs_server${opts:+,$opts}" "$nfs_server:$nfs_path" "$3"
}

# root_nfs SERVER:PATH[:OPTIONS]: the nfs transport. The generation's tree
# (unpacked once on the head, never rewritten) is mounted read-only over
# NFSv4 at /run/live/ro: nothing is downloaded, pages are read on demand.
# There is no squashfs, so $image stays empty (no variants: see below).
root_nfs() {
	say "mounting nfs root ${1%:*}"
	if ! nfs_mount ro "$1" /run/live/ro; then
		report_failure "rootfs: cannot mount the NFS root $nfs_server:$nfs_path (server down, export missing or nfsv4 module missing)"
		fail "cannot mount the NFS root $nfs_server:$nfs_path"
	fi
}

# root_nbd SERVER:PORT/EXPORT: the nbd transport. The generation's squashfs,
# served read-only by the site's NBD server, is attached as /dev/nbd0 with
# nbd-client (in the initramfs with its libraries: recipe programs) and
# mounted read-only at /run/live/ro: only the blocks read cross the network.
# A request the server leaves unanswered for 30 s fails with an I/O error
# instead of hanging the node.
root_nbd() {
	nbd_server=${1%%:*} rest=${1#*:}
	nbd_port=${rest%%/*} nbd_export=${rest#*/}
	say "attaching nbd root $nbd_server:$nbd_port/$nbd_export"
	if ! command -v nbd-client >/dev/null; then
		report_failure "rootfs: this initramfs has no nbd-client (add /usr/sbin/nbd-client to the recipe's programs)"
		fail "no nbd-client in the initramfs"
	fi
	if ! retry 5 3 "attaching $nbd_server:$nbd_port/$nbd_export" \
		nbd-client -N "$nbd_export" -readonly -timeout 30 "$nbd_server" "$nbd_port" /dev/nbd0; then
		report_failure "rootfs: cannot attach the NBD root $nbd_server:$nbd_port/$nbd_export (server down, export missing or nbd module missing)"
		fail "cannot attach the NBD root $nbd_server:$nbd_port/$nbd_export"
	fi
	if ! retry 3 1 "mounting /dev/nbd0" mount -t squashfs -o ro /dev/nbd0 /run/live/ro; then
		report_failure "rootfs: the NBD root $nbd_server:$nbd_port/$nbd_export does not mount as a squashfs"
		fail "cannot mount /dev/nbd0"
	fi
	# The running node's agent reads a block of the device at each check-in:
	# a server gone after boot shows as a failure at stage root.
	root_check=/dev/nbd0 root_desc="the NBD root $nbd_server:$nbd_port/$nbd_export"
}

# report_failure REASON: tell the daemon this boot failed and why, through
# the check-in agent (one post, its failed= field), so the failure shows at
# its boot stage instead of as a node that never checks in.
report_failure() {
	[ -n "$checkin" ] || return 0
	NETBOOTUI_FAILED=$1 NETBOOTUI_CHECKIN=$checkin NETBOOTUI_URL=$base NETBOOTUI_HEADS=$heads NETBOOTUI_NODE=$node NETBOOTUI_TOKEN=$token \
		NETBOOTUI_GEN=$gen sh /etc/netbootui/checkin.sh --once ||
		say "warning: could not report the failure to $checkin"
}

# The root transport: one branch per root= scheme of internal/roottransport.
# Each leaves the root read-only at /run/live/ro and names in $image the
# squashfs the variants mount again.
mkdir -p /run/live/ro /run/live/rw
image=''
case $root in
live:*) root_live "${root#live:}" ;;
nfs:*) root_nfs "${root#nfs:}" ;;
nbd:*) root_nbd "${root#nbd:}" ;;
*) fail "root=$root: this init reads no such root (it knows root=live:URL, root=nfs:SERVER:PATH and root=nbd:SERVER:PORT/EXPORT)" ;;
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
if [ -n "$vdirs" ] && [ -z "$image" ]; then
	# A network root (nfs, nbd) has no squashfs file to mount a second
	# time, and overlayfs refuses a lower inside another lower: not stacked.
	say "warning: variants $variants are not stacked on a network root"
	vdirs='' variants=''
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

# Persistent paths (nfs): the node's own directory on the NFS server, made
# by the head before the boot and exported read-write to this node's address
# alone, is mounted at /run/live/persist.
persist_nfs_mount() {
	[ -n "$persist_nfs" ] || fail "netbootui.persist without netbootui.persist_nfs or netbootui.persist_disk"
	say "mounting persistent directory ${persist_nfs%:*}"
	if ! nfs_mount rw "$persist_nfs" /run/live/persist; then
		report_failure "persist: cannot mount the node's persistent directory $nfs_server:$nfs_path (not exported to this node?)"
		fail "cannot mount the persistent directory $nfs_server:$nfs_path"
	fi
	if ! touch /run/live/persist/.netbootui-rw 2>/dev/null; then
		report_failure "persist: the node's persistent directory $nfs_server:$nfs_path is not writable"
		fail "the persistent directory $nfs_server:$nfs_path is not writable"
	fi
	persist_where="$nfs_server:$nfs_path" persist_state="nfs $nfs_server:$nfs_path"
}

# empty_disk: print the first whole disk (vd*, sd*, xvd*, nvme*n*) that is
# writable, has no partitions and holds only zeros in its first MiB (no
# partition table, no filesystem signature): the only kind of disk the
# init ever formats, and only with persist_disk's format: true.
empty_disk() {
	for d in /sys/block/*; do
		name=${d##*/}
		case $name in vd* | sd* | xvd* | nvme*n*) ;; *) continue ;; esac
		[ "$(cat "$d/ro" 2>/dev/null)" = 0 ] || continue
		[ -b "/dev/$name" ] || continue
		for part in "$d/$name"*; do
			[ -e "$part" ] && continue 2
		done
		[ "$(dd if="/dev/$name" bs=65536 count=16 2>/dev/null | wc -c)" = 1048576 ] || continue
		[ "$(dd if="/dev/$name" bs=65536 count=16 2>/dev/null | tr -d '\000' | wc -c)" = 0 ] || continue
		echo "/dev/$name"
		return 0
	done
	return 1
}

# find_label LABEL: the device whose filesystem is labelled LABEL, waiting
# up to 10 s for the disk's driver to bring it up.
find_label() {
	n=0
	while :; do
		findfs "LABEL=$1" 2>/dev/null && return 0
		n=$((n + 1))
		[ "$n" -ge 10 ] && return 1
		sleep 1
	done
}

# persist_disk_mount: persist_disk (LABEL:MISSING[:format]), a RAM root
# keeping its persisted paths on a local partition found by its filesystem
# label, mounted read-write at /run/live/persist. Without a usable one the
# node does what MISSING says: fail (the default) reports the failure at
# stage persist and stops; boot goes on with the paths in the RAM overlay,
# says so on the console and in every check-in, and returns 1.
persist_disk_mount() {
	label=${persist_disk%%:*} rest=${persist_disk#*:}
	missing=${rest%%:*} format=''
	[ "$rest" != "$missing" ] && format=${rest#*:}
	say "persist: looking for the partition labelled $label"
	why='' formatted=''
	if ! dev=$(find_label "$label"); then
		dev='' why="no partition labelled $label (disk absent, or its driver or ext4 not in the initramfs)"
		if [ "$format" = format ] && disk=$(empty_disk); then
			say "persist: formatting the empty disk $disk as $label"
			if command -v mkfs.ext4 >/dev/null; then
				mkfs.ext4 -q -L "$label" "$disk" >/tmp/mkfs.log 2>&1
			else
				mke2fs -L "$label" "$disk" >/tmp/mkfs.log 2>&1
			fi || say "warning: persist: formatting $disk failed: $(tail -n 1 /tmp/mkfs.log)"
			if dev=$(find_label "$label"); then
				why='' formatted=' (formatted at this boot)'
			else
				dev='' why="no partition labelled $label, and formatting the empty disk $disk failed"
			fi
		fi
	fi
	if [ -n "$dev" ]; then
		if ! retry 3 1 "mounting $dev" mount -t ext4 -o rw,noatime "$dev" /run/live/persist; then
			why="the partition labelled $label ($dev) does not mount as ext4"
		elif ! touch /run/live/persist/.netbootui-rw 2>/dev/null; then
			why="the partition labelled $label ($dev) is not writable"
			umount /run/live/persist
		fi
	fi
	if [ -n "$why" ]; then
		if [ "$missing" = boot ]; then
			say "warning: persist: $why; booting without persistence (missing: boot): the persisted paths are in RAM this boot"
			persist_state="none: $why; booted without persistence (missing: boot), the persisted paths are in RAM"
			return 1
		fi
		report_failure "persist: $why"
		fail "persist: $why"
	fi
	persist_where="$dev ($label)" persist_state="disk $label on $dev$formatted"
	# A wipe the daemon recorded (netbootui.persist_wipe=ID) and this disk
	# has not applied yet: the persisted paths are emptied before anything
	# uses them, then ID is written beside them so it applies once.
	if [ -n "$persist_wipe" ] && [ "$(cat /run/live/persist/.netbootui-wipe 2>/dev/null)" != "$persist_wipe" ]; then
		old_ifs=$IFS IFS=,
		set -f
		for p in $persist; do
			case $p in /?*) rm -rf "/run/live/persist$p" ;; esac
		done
		set +f
		IFS=$old_ifs
		if ! echo "$persist_wipe" >/run/live/persist/.netbootui-wipe.tmp ||
			! mv /run/live/persist/.netbootui-wipe.tmp /run/live/persist/.netbootui-wipe; then
			report_failure "persist: cannot record wipe $persist_wipe on $dev"
			fail "persist: cannot record wipe $persist_wipe on $dev"
		fi
		sync
		say "persist: wiped the persisted paths (request $persist_wipe)"
	fi
	# The newest wipe this disk applied, in every check-in: the daemon shows
	# a requested one as pending until the node says it is applied.
	applied=$(cat /run/live/persist/.netbootui-wipe 2>/dev/null)
	case $applied in
	'' | *[!0-9a-f]*) ;;
	*) persist_state="$persist_state, wipe $applied applied" ;;
	esac
	return 0
}

# Persistent paths: the node's NFS directory or local partition at
# /run/live/persist; each persisted path is bound from there over the
# overlay, so writes under it survive a reboot and the rest does not.
if [ -n "$persist" ]; then
	mkdir -p /run/live/persist
	if [ -n "$persist_disk" ]; then
		persist_disk_mount || persist=''
	else
		persist_nfs_mount
	fi
fi
if [ -n "$persist" ]; then
	old_ifs=$IFS IFS=,
	set -f
	for p in $persist; do
		case $p in
		/?*) ;;
		*) say "warning: persist path '$p' is not absolute: skipped" && continue ;;
		esac
		# A partition of the node's own makes its directories; the head
		# makes them in an NFS directory, so one missing there is an error.
		[ -n "$persist_disk" ] && mkdir -p "/run/live/persist$p"
		if [ ! -d "/run/live/persist$p" ]; then
			report_failure "persist: $p is missing from $persist_where (the head makes it)"
			fail "persist: $p is missing from the persistent directory"
		fi
		mkdir -p "/newroot$p"
		mount --bind "/run/live/persist$p" "/newroot$p" || fail "cannot bind the persisted $p"
		say "persist $p"
	done
	set +f
	IFS=$old_ifs
fi

# cloud-init NoCloud seed: meta-data, user-data and vendor-data from the
# daemon (the URL carries the node's token) into /run/netbootui/nocloud,
# bound at the image's /var/lib/cloud/seed/nocloud when it has cloud-init.
# A seed that cannot be had is a warning: the image boots without it.
if [ -n "$nocloud" ]; then
	mkdir -p /run/netbootui/nocloud
	seeded=1
	for f in meta-data user-data vendor-data; do
		if ! retry 3 2 "fetching cloud-init $f" \
			timeout 20 wget -q -O "/run/netbootui/nocloud/$f" "$nocloud$f"; then
			say "warning: no cloud-init $f from the daemon"
			seeded=''
		fi
	done
	if [ -n "$seeded" ] && [ -e /newroot/usr/bin/cloud-init ]; then
		mkdir -p /newroot/var/lib/cloud/seed/nocloud
		mount --bind /run/netbootui/nocloud /newroot/var/lib/cloud/seed/nocloud &&
			say "cloud-init seed in place"
	fi
fi

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

# The node agent (reboot-clean by kexec) ships in the initramfs when the
# image was built with it: hand it over in /run, which moves with the root
# (no write to the overlay); the check-in agent starts it.
if [ -x /usr/sbin/netbootui-agent ]; then
	cp /usr/sbin/netbootui-agent /run/netbootui/netbootui-agent &&
		chmod 0755 /run/netbootui/netbootui-agent
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
	echo "NETBOOTUI_HEADS=$(q "$heads")"
	echo "NETBOOTUI_CHECKIN_INTERVAL=$(q "${interval:-30}")"
	echo "NETBOOTUI_OVERLAY_DIR=/run/live/rw"
	echo "NETBOOTUI_IFACE=$(q "$iface")"
	echo "NETBOOTUI_ROOT_CHECK=$(q "$root_check")"
	echo "NETBOOTUI_ROOT_DESC=$(q "$root_desc")"
	echo "NETBOOTUI_PERSIST=$(q "$persist_state")"
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
