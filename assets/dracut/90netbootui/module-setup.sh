#!/bin/bash
# netbootui's dracut module: per-node and per-group variants for a
# dmsquash-live root mounted as overlayfs (rd.live.overlay.overlayfs=1).
# internal/image installs it into a root whose initramfs dracut makes and
# names it in dracut --add; it is never picked on its own.

# called by dracut
check() {
    return 255
}

# called by dracut
depends() {
    echo dmsquash-live
    return 0
}

# called by dracut (it sets moddir)
# shellcheck disable=SC2154
install() {
    inst_multiple losetup mount umount
    inst_hook pre-pivot 90 "$moddir/netbootui-variants.sh"
}
