#!/bin/sh
# Helpers of netbootui's dracut hooks (installed as /lib/netbootui-lib.sh).

# shellcheck source=/dev/null # dracut-lib.sh is in the initramfs
type getarg >/dev/null 2>&1 || . /lib/dracut-lib.sh

# stderr: the console in both dracut inits (dracut-pre-pivot.service sends
# only stderr there).
nbu_say() { echo "netbootui: $*" >&2; }

# nbu_mount DIR: print "SOURCE TYPE OPTIONS" of the file system mounted at
# DIR (the last one mounted there).
nbu_mount() {
    _found=''
    while read -r _src _mnt _type _opts _rest; do
        [ "$_mnt" = "$1" ] && _found="$_src $_type $_opts"
    done </proc/mounts
    [ -n "$_found" ] && echo "$_found"
}

# nbu_opt NAME OPTIONS: print the value of NAME= in a comma separated list.
nbu_opt() {
    _old_ifs=$IFS
    IFS=,
    for _o in $2; do
        case $_o in
            "$1"=*)
                IFS=$_old_ifs
                echo "${_o#*=}"
                return 0
                ;;
        esac
    done
    IFS=$_old_ifs
    return 1
}
