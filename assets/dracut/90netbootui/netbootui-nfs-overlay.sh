#!/bin/sh
# netbootui's tmpfs overlay over an NFS root (dracut pre-pivot hook, after
# dracut's nfs module mounted root=nfs:SERVER:PATH:OPTIONS read-only at
# $NEWROOT).
#
# The NFS mount is bound at /run/live/ro and unmounted from $NEWROOT (systemd
# makes / a shared mount, and the kernel refuses to move a mount that lies
# under one), a tmpfs of its own is mounted at
# /run/live/rw (upper/ and work/), and $NEWROOT becomes an overlayfs of the
# two: the node writes into its RAM, never to the shared tree, and a reboot
# starts clean. It is the layout of netbootui's built-in live init, so the
# check-in agent measures the overlay (the tmpfs at /run/live/rw) the same
# way; /run and what is mounted below it move into the root at switch_root.
# The console shows "netbootui: nfs root SERVER:PATH read-only, tmpfs
# overlay" or dracut's FATAL line naming what failed.

# shellcheck source=/dev/null # installed by module-setup.sh
. /lib/netbootui-lib.sh

nbu_nfs_overlay() {
    case $(getarg root=) in
        nfs:* | nfs4:*) ;;
        *) return 0 ;;
    esac
    # shellcheck disable=SC2046 # three words, split on purpose
    set -- $(nbu_mount "$NEWROOT")
    case $2 in
        nfs | nfs4) ;;
        overlay) return 0 ;; # done already (the hook ran before)
        *)
            die "netbootui: FAILED: no NFS root is mounted at $NEWROOT (found '${2:-nothing}')"
            return 1
            ;;
    esac
    _src=$1
    mkdir -p /run/live/ro /run/live/rw
    if ! mount --bind "$NEWROOT" /run/live/ro || ! umount "$NEWROOT"; then
        die "netbootui: FAILED: cannot move the NFS root $_src from $NEWROOT to /run/live/ro"
        return 1
    fi
    if ! mount -t tmpfs -o mode=0755 tmpfs /run/live/rw ||
        ! mkdir -p /run/live/rw/upper /run/live/rw/work ||
        ! mount -t overlay overlay -o lowerdir=/run/live/ro,upperdir=/run/live/rw/upper,workdir=/run/live/rw/work "$NEWROOT"; then
        die "netbootui: FAILED: cannot lay the tmpfs overlay over the NFS root $_src (overlay module missing?)"
        return 1
    fi
    nbu_say "nfs root $_src read-only, tmpfs overlay"
}

nbu_nfs_overlay
