#!/bin/sh
# netbootui check-in agent (installed in images as /usr/sbin/netbootui-checkin).
#
# Reports to the daemon that this node runs, with which image generation and
# how much it has written to its overlay:
#   POST $NETBOOTUI_CHECKIN  (application/x-www-form-urlencoded)
#   node=&token=&generation=&uptime=&overlay_bytes=&boot_id=&seq=[&probe=][&persist=]
# at start, then every NETBOOTUI_CHECKIN_INTERVAL seconds (default 30). A failed
# post (network down, daemon away, 403 for a bad token) is logged and retried
# with a doubling delay; the agent never exits on a failed post.
#
# seq numbers this boot's check-ins: 1, 2, 3, ... one per attempt, kept in
# $NETBOOTUI_SEQ_FILE (default /run/netbootui/checkin.seq, so a restarted
# agent goes on counting). With boot_id it makes every check-in unique: the
# daemon refuses one whose (boot_id, seq) it has seen, or older (a replay).
#
# Several heads: when the post to $NETBOOTUI_CHECKIN fails and that URL lies
# under the head's base URL (NETBOOTUI_URL), the same path on each other live
# head (NETBOOTUI_HEADS, comma-separated, from netbootui.heads=) is tried in
# turn, with the same report (each attempt with its own seq).
#
# Parameters (NETBOOTUI_NODE, _TOKEN, _GEN, _CHECKIN, _URL, _HEADS,
# _CHECKIN_INTERVAL, _OVERLAY_DIR, _PROBE, _TEST_WRITE, _SEQ_FILE, _ROOT_CHECK,
# _ROOT_DESC, _PERSIST) come from the environment, then from /run/netbootui.env (written
# by the live init; $NETBOOTUI_ENV overrides the path), and those still empty
# from netbootui.* words on /proc/cmdline.
#
# Test hooks (kernel command line), used by the QEMU tests:
#   netbootui.probe=PATH[,PATH...]       each check-in carries probe=present|absent
#                                        for each PATH, comma-separated, in order
#   netbootui.test_write=PATH[,PATH...]  after the first check-in, write 64 KiB of
#                                        random data to each PATH and check in again
#
# NETBOOTUI_FAILED="STAGE: reason" (set by the live init when its boot cannot
# go on, with --once) adds failed= to the post: the daemon marks the node failed
# at that stage.
#
# NETBOOTUI_ROOT_CHECK=DEVICE (set by the live init for a network block device
# root, with NETBOOTUI_ROOT_DESC naming it): each post first reads one block of
# DEVICE past the page cache; when that fails (the NBD server went away) the
# post carries failed="root: ..." instead: the node shows failed at stage root
# while it runs on what it has cached. A later read that works (the server
# back, the device reconnected) checks in as usual again.
#
# NETBOOTUI_PERSIST (set by the live init when the node persists paths) says
# where they are kept this boot ("disk LABEL on DEVICE", "nfs SERVER:PATH",
# or "none: why" when a persist disk was missing and the group lets the node
# boot without it); each post carries it as persist=, shown in the node's
# timeline and by `netbootui persist show`.
#
# Unless --once, it first starts the node agent (netbootui-agent, in
# /run/netbootui or /usr/sbin) in the background when the image has one.
#
# Usage: netbootui-checkin [--once]   (--once: one post, exit status = result)

env_file=${NETBOOTUI_ENV:-/run/netbootui.env}

log() { echo "netbootui-checkin: $*" >&2; }

if [ -r "$env_file" ]; then
	# shellcheck disable=SC1090 # written by the live init
	. "$env_file"
fi
set -f
# shellcheck disable=SC2013 # words, not lines, are wanted here
for arg in $(cat /proc/cmdline 2>/dev/null); do
	case $arg in
	netbootui.node=*) [ -n "$NETBOOTUI_NODE" ] || NETBOOTUI_NODE=${arg#*=} ;;
	netbootui.token=*) [ -n "$NETBOOTUI_TOKEN" ] || NETBOOTUI_TOKEN=${arg#*=} ;;
	netbootui.gen=*) [ -n "$NETBOOTUI_GEN" ] || NETBOOTUI_GEN=${arg#*=} ;;
	netbootui.checkin=*) [ -n "$NETBOOTUI_CHECKIN" ] || NETBOOTUI_CHECKIN=${arg#*=} ;;
	netbootui.url=*) [ -n "$NETBOOTUI_URL" ] || NETBOOTUI_URL=${arg#*=} ;;
	netbootui.heads=*) [ -n "$NETBOOTUI_HEADS" ] || NETBOOTUI_HEADS=${arg#*=} ;;
	netbootui.checkin_interval=*)
		[ -n "$NETBOOTUI_CHECKIN_INTERVAL" ] || NETBOOTUI_CHECKIN_INTERVAL=${arg#*=} ;;
	netbootui.probe=*) [ -n "$NETBOOTUI_PROBE" ] || NETBOOTUI_PROBE=${arg#*=} ;;
	netbootui.test_write=*) [ -n "$NETBOOTUI_TEST_WRITE" ] || NETBOOTUI_TEST_WRITE=${arg#*=} ;;
	esac
done
set +f

interval=${NETBOOTUI_CHECKIN_INTERVAL:-30}
case $interval in '' | *[!0-9]*) interval=30 ;; esac
[ "$interval" -ge 1 ] || interval=1
# The overlay's upper layer: the built-in live init's tmpfs, else dracut's
# dmsquash-live overlayfs (rd.live.overlay.overlayfs) under /run.
overlay=$NETBOOTUI_OVERLAY_DIR
if [ -z "$overlay" ]; then
	overlay=/run/live/rw
	[ ! -d "$overlay" ] && [ -d /run/overlayfs ] && overlay=/run/overlayfs
fi
if [ -z "$NETBOOTUI_CHECKIN" ] || [ -z "$NETBOOTUI_NODE" ]; then
	log "no netbootui.checkin URL or netbootui.node: nothing to report to"
	exit 2
fi
boot_id=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)
[ -n "$boot_id" ] || boot_id=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
seq_file=${NETBOOTUI_SEQ_FILE:-/run/netbootui/checkin.seq}
seq=0

# next_seq: raise the check-in counter (the file's and this process's, the
# larger wins, so neither a restart nor an unwritable file repeats a number).
next_seq() {
	saved=$(cat "$seq_file" 2>/dev/null)
	case $saved in '' | *[!0-9]*) saved=0 ;; esac
	[ "$saved" -gt "$seq" ] && seq=$saved
	seq=$((seq + 1))
	mkdir -p "${seq_file%/*}" 2>/dev/null
	echo "$seq" >"$seq_file.tmp" 2>/dev/null && mv -f "$seq_file.tmp" "$seq_file" 2>/dev/null
	return 0
}

# urlenc STRING: STRING percent-encoded for a form body.
urlenc() {
	printf '%s' "$1" | od -An -v -tx1 | awk '
	BEGIN { for (n = 32; n < 127; n++) chr[sprintf("%02x", n)] = sprintf("%c", n) }
	{
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^(3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|2e|5f|7e)$/) out = out chr[$i]
			else out = out "%" toupper($i)
		}
	}
	END { printf "%s", out }'
}

# overlay_bytes: bytes used in the overlay: the whole tmpfs when the overlay
# directory is a mount point of its own (upper + work), else what is below it.
overlay_bytes() {
	if [ "$(stat -c %d "$overlay" 2>/dev/null)" != "$(stat -c %d "$overlay/.." 2>/dev/null)" ]; then
		# shellcheck disable=SC2046 # split the three numbers
		set -- $(stat -f -c '%b %f %S' "$overlay" 2>/dev/null)
		if [ $# -eq 3 ]; then
			echo $((($1 - $2) * $3))
			return
		fi
	fi
	kb=$(du -sk "$overlay" 2>/dev/null | cut -f1)
	echo $((${kb:-0} * 1024))
}

# root_answers: one 4 KiB block of $NETBOOTUI_ROOT_CHECK read with O_DIRECT
# (past the page cache, so from the server), bounded in time: a device the
# kernel cleared reads short, one whose server is gone fails or times out.
root_answers() {
	n=$(timeout 45 dd if="$NETBOOTUI_ROOT_CHECK" bs=4096 count=1 iflag=direct 2>/dev/null | wc -c)
	[ "$n" -eq 4096 ] 2>/dev/null
}

# post: one check-in; prints the daemon's answer on success. With the
# persisted paths on a local disk, what they hold is first flushed to it
# (sync): a reboot-clean by power cycle then loses at most what was
# written since the last check-in.
post() {
	case $NETBOOTUI_PERSIST in disk\ *) sync ;; esac
	uptime=$(cut -d' ' -f1 /proc/uptime)
	body="node=$(urlenc "$NETBOOTUI_NODE")&token=$(urlenc "$NETBOOTUI_TOKEN")"
	body="$body&generation=$(urlenc "$NETBOOTUI_GEN")&uptime=$uptime"
	body="$body&overlay_bytes=$(overlay_bytes)&boot_id=$boot_id"
	failed=$NETBOOTUI_FAILED
	if [ -z "$failed" ] && [ -n "$NETBOOTUI_ROOT_CHECK" ] && ! root_answers; then
		failed="root: ${NETBOOTUI_ROOT_DESC:-the root device} no longer answers (a read of $NETBOOTUI_ROOT_CHECK failed: server gone?); reboot the node once it is back"
		log "$failed"
	fi
	[ -n "$failed" ] && body="$body&failed=$(urlenc "$failed")"
	[ -n "$NETBOOTUI_PERSIST" ] && body="$body&persist=$(urlenc "$NETBOOTUI_PERSIST")"
	if [ -n "$NETBOOTUI_PROBE" ]; then
		# one answer per path of the comma-separated list, in its order
		answers='' old_ifs=$IFS IFS=,
		set -f
		for f in $NETBOOTUI_PROBE; do
			if [ -e "$f" ]; then a=present; else a=absent; fi
			answers=${answers:+$answers,}$a
		done
		set +f
		IFS=$old_ifs
		body="$body&probe=$answers"
	fi
	send "$NETBOOTUI_CHECKIN" && return 0
	base=${NETBOOTUI_URL%/}
	case $NETBOOTUI_CHECKIN in "$base"/*) ;; *) return 1 ;; esac
	[ -n "$base" ] && [ -n "$NETBOOTUI_HEADS" ] || return 1
	rest=${NETBOOTUI_CHECKIN#"$base"} old_ifs=$IFS IFS=,
	set -f
	for h in $NETBOOTUI_HEADS; do
		IFS=$old_ifs
		if send "${h%/}$rest"; then
			set +f
			return 0
		fi
	done
	set +f
	IFS=$old_ifs
	return 1
}

# send URL: one post of $body to URL, with the next sequence number (each
# attempt has its own: one that reached a head dying under it may have
# been recorded there, and the same number again would be a replay).
send() {
	next_seq
	if command -v wget >/dev/null 2>&1; then
		# (busybox wget -T crashes in Debian 12's build: bound it with timeout)
		timeout 20 wget -q -O - --header 'Content-Type: application/x-www-form-urlencoded' \
			--post-data "$body&seq=$seq" "$1" && echo
	else
		# a Debian root without wget (dracut livenet needs curl anyway)
		curl -fsS -m 20 -H 'Content-Type: application/x-www-form-urlencoded' \
			--data-binary "$body&seq=$seq" "$1" && echo
	fi
}

if [ "$1" = --once ]; then
	post >/dev/null
	exit
fi

# The node agent (reboot-clean by kexec, cmd/netbootui-agent): started once
# beside the check-ins when the image has it (the live init's copy in /run,
# else the root's); it holds a lock, so a second copy exits at once.
for a in /run/netbootui/netbootui-agent /usr/sbin/netbootui-agent; do
	if [ -x "$a" ]; then
		"$a" </dev/null &
		break
	fi
done

first=1 delay=2
while :; do
	if post >/dev/null; then
		log "checked in to $NETBOOTUI_CHECKIN as $NETBOOTUI_NODE (generation $NETBOOTUI_GEN)"
		delay=2
		wait_s=$interval
		if [ "$first" = 1 ] && [ -n "$NETBOOTUI_TEST_WRITE" ]; then
			old_ifs=$IFS IFS=,
			set -f
			for f in $NETBOOTUI_TEST_WRITE; do
				dd if=/dev/urandom of="$f" bs=1024 count=64 2>/dev/null &&
					log "test hook: wrote $f" && wait_s=0
			done
			set +f
			IFS=$old_ifs
		fi
		first=0
	else
		log "check-in to $NETBOOTUI_CHECKIN failed; retrying in ${delay}s"
		wait_s=$delay
		delay=$((delay * 2))
		[ "$delay" -le 300 ] || delay=300
	fi
	[ "$wait_s" -gt 0 ] && sleep "$wait_s"
done
