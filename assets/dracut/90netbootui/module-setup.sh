#!/bin/bash
# netbootui's dracut module: a tmpfs overlay over an NFS root (root=nfs:...,
# dracut's nfs module), and per-node and per-group variants for a
# dmsquash-live root mounted as overlayfs (rd.live.overlay.overlayfs=1).
# internal/image installs it into a root whose initramfs dracut makes and
# names it in dracut --add; it is never picked on its own.

# called by dracut
check() {
    return 255
}

# called by dracut (it sets dracutbasedir): dmsquash-live when the root's
# dracut has it (the variants work on its overlayfs); an NFS-only image
# (dracut-network, no dracut-live) needs nothing more.
# shellcheck disable=SC2154
depends() {
    if [ -d "$dracutbasedir/modules.d/90dmsquash-live" ]; then
        echo dmsquash-live
    fi
    return 0
}

# called by dracut: the overlay module (dmsquash-live installs it too; an
# NFS-only image has it from here)
installkernel() {
    instmods overlay
}

# called by dracut (it sets moddir)
# shellcheck disable=SC2154
install() {
    inst_multiple losetup mount umount mkdir
    inst_simple "$moddir/netbootui-lib.sh" /lib/netbootui-lib.sh
    # The NFS overlay comes first: the variants hook and dracut's cleanup
    # hooks (nfsroot-cleanup writes below $NEWROOT) see the overlay.
    inst_hook pre-pivot 10 "$moddir/netbootui-nfs-overlay.sh"
    inst_hook pre-pivot 90 "$moddir/netbootui-variants.sh"
}
