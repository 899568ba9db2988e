#!/bin/sh
# netbootui variants (dracut pre-pivot hook, after dmsquash-live mounted the
# root as an overlayfs at $NEWROOT: lower /run/rootfsbase, the squashfs;
# upper /run/overlayfs and work /run/ovlwork on the initramfs' tmpfs).
#
# It reads netbootui.node= and netbootui.group= from the kernel command line
# and, when the image carries /etc/netbootui/overlay.d/node-<node> or
# .../group-<group>, mounts the root again with them as extra read-only
# lowers above the squashfs (node over group over image), keeping
# dmsquash-live's upper and work dirs. overlayfs refuses a lower inside
# another lower of the same file system, so the variants come from a second
# read-only mount of the squashfs, on a loop device of its own, at
# /run/netbootui/variants: nothing is copied into the tmpfs, so a variant
# never makes a node dirty. The console shows
# "netbootui: variants node-<n> group-<g>" (or "none").

# shellcheck source=/dev/null # installed by module-setup.sh
. /lib/netbootui-lib.sh

# nbu_variant KIND NAME: print the image's KIND-NAME variant directory,
# relative to the image's root ($_base), when it exists. NAME must be an inventory
# name ([A-Za-z0-9][A-Za-z0-9._-]*): any other could name another directory
# or carry overlayfs option syntax (":" ",").
nbu_variant() {
    case $2 in
        '') return 1 ;;
        [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*)
            nbu_say "warning: $1 name '$2' is not an inventory name; no $1 variant"
            return 1
            ;;
    esac
    _d=/etc/netbootui/overlay.d/$1-$2
    if [ -d "$_base$_d" ] && [ ! -L "$_base$_d" ]; then
        echo "$_d"
        return 0
    fi
    return 1
}

nbu_variants() {
    # The image's root: dmsquash-live's squashfs, or the NFS tree under
    # netbootui's overlay (netbootui-nfs-overlay.sh).
    _base=/run/rootfsbase _nfs=''
    case $(getarg root=) in
        nfs:* | nfs4:*) _base=/run/live/ro _nfs=1 ;;
    esac
    _node=$(getarg netbootui.node=)
    _group=$(getarg netbootui.group=)
    _vdirs='' _names=''
    if _d=$(nbu_variant group "$_group"); then
        _vdirs=$_d _names="group-$_group"
    fi
    if _d=$(nbu_variant node "$_node"); then
        _vdirs="$_d${_vdirs:+:$_vdirs}" _names="node-$_node${_names:+ $_names}"
    fi
    if [ -z "$_vdirs" ]; then
        nbu_say "variants none"
        return 0
    fi
    if [ -n "$_nfs" ]; then
        # An NFS tree has no image file to mount a second time, and
        # overlayfs refuses a lower inside another lower: as with the
        # built-in init, no variants on a network root.
        nbu_say "warning: variants $_names are not stacked on a network root"
        nbu_say "variants none"
        return 0
    fi

    # The root must be dmsquash-live's overlayfs over /run/rootfsbase.
    # shellcheck disable=SC2046 # three words, split on purpose
    set -- $(nbu_mount "$NEWROOT")
    _type=$2 _opts=$3
    _lower=$(nbu_opt lowerdir "$_opts")
    _upper=$(nbu_opt upperdir "$_opts")
    _work=$(nbu_opt workdir "$_opts")
    if [ "$_type" != overlay ] || [ -z "$_upper" ] || [ -z "$_work" ]; then
        die "netbootui: FAILED: the root at $NEWROOT is not an overlayfs (add rd.live.overlay.overlayfs=1): cannot apply variants $_names"
        return 1
    fi
    case ":$_lower:" in
        *:/run/rootfsbase:*) ;;
        *)
            die "netbootui: FAILED: the root's overlay has no /run/rootfsbase lower ($_lower): cannot apply variants $_names"
            return 1
            ;;
    esac

    # The squashfs behind /run/rootfsbase, on a second loop device.
    # shellcheck disable=SC2046 # three words, split on purpose
    set -- $(nbu_mount /run/rootfsbase)
    _file=''
    case $1 in
        /dev/loop*) _file=$(cat "/sys/block/${1#/dev/}/loop/backing_file" 2>/dev/null) ;;
    esac
    if [ -z "$_file" ] || [ ! -f "$_file" ]; then
        die "netbootui: FAILED: /run/rootfsbase is not a loop-mounted image file ($1): cannot apply variants $_names"
        return 1
    fi
    mkdir -p /run/netbootui/variants
    if ! _loop=$(losetup -r -f --show "$_file") ||
        ! mount -t squashfs -o ro "$_loop" /run/netbootui/variants; then
        die "netbootui: FAILED: cannot mount a second copy of $_file for variants $_names"
        return 1
    fi
    _new=''
    _old_ifs=$IFS
    IFS=:
    for _v in $_vdirs; do
        _new=$_new/run/netbootui/variants$_v:
    done
    IFS=$_old_ifs

    # Mount the root again with the variants as its top lowers. The upper
    # keeps what was written so far; only one overlay uses it at a time.
    if ! umount "$NEWROOT"; then
        die "netbootui: FAILED: cannot unmount $NEWROOT to apply variants $_names"
        return 1
    fi
    if ! mount -t overlay LiveOS_rootfs -o "lowerdir=$_new$_lower,upperdir=$_upper,workdir=$_work" "$NEWROOT"; then
        mount -t overlay LiveOS_rootfs -o "lowerdir=$_lower,upperdir=$_upper,workdir=$_work" "$NEWROOT"
        die "netbootui: FAILED: cannot mount the root with variants $_names"
        return 1
    fi
    nbu_say "variants $_names"
}

nbu_variants
