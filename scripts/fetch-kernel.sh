#!/bin/sh
# fetch-kernel.sh [DEST]
#
# Downloads Debian's current amd64 kernel package (the one linux-image-amd64
# depends on) with `apt-get download` and unpacks it with `dpkg-deb -x`. Nothing
# is installed on the host. Leaves:
#   DEST/vmlinuz   the kernel image
#   DEST/modules   the lib/modules/<version> directory (modules.dep included)
#   DEST/version   the kernel version string
# DEST defaults to ${NETBOOTUI_CACHE:-<repo>/.cache}/kernel. Running it again
# when DEST is complete downloads nothing.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-${NETBOOTUI_CACHE:-$repo/.cache}/kernel}

die() { echo "fetch-kernel: $*" >&2; exit 1; }

if [ -f "$dest/vmlinuz" ] && [ -f "$dest/modules/modules.dep" ] && [ -s "$dest/version" ]; then
	echo "fetch-kernel: $dest already holds kernel $(cat "$dest/version")"
	exit 0
fi

for tool in apt-cache apt-get dpkg-deb; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (this script needs Debian's apt and dpkg)"
done

# The meta package depends on exactly one versioned image package.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
	sed -n 's/^ *Depends: *\(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1)
[ -n "$pkg" ] || die "cannot resolve the package behind linux-image-amd64 (run apt-get update?)"

work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
chmod 777 "$work" # let apt's sandbox user (_apt) write the .deb here

echo "fetch-kernel: downloading $pkg"
(cd "$work" && apt-get download "$pkg") || die "apt-get download $pkg failed"
deb=
for f in "$work"/*.deb; do [ -f "$f" ] && deb=$f && break; done
[ -n "$deb" ] || die "apt-get download $pkg produced no .deb"

mkdir "$work/x"
dpkg-deb -x "$deb" "$work/x" || die "dpkg-deb -x $deb failed"

vmlinuz=
for f in "$work"/x/boot/vmlinuz-*; do [ -f "$f" ] && vmlinuz=$f && break; done
[ -n "$vmlinuz" ] || die "$pkg has no boot/vmlinuz-*"
ver=${vmlinuz##*/vmlinuz-}
moddir=
for d in "$work/x/lib/modules/$ver" "$work/x/usr/lib/modules/$ver"; do
	[ -d "$d" ] && moddir=$d && break
done
[ -n "$moddir" ] || die "$pkg has no lib/modules/$ver"
[ -f "$moddir/modules.dep" ] || {
	# Debian generates modules.dep at install time; build it without installing.
	command -v depmod >/dev/null 2>&1 || die "$pkg ships no modules.dep and depmod is missing"
	depmod -b "$work/x" "$ver" || die "depmod for $ver failed"
	[ -f "$moddir/modules.dep" ] || moddir="$work/x/lib/modules/$ver"
}
[ -f "$moddir/modules.dep" ] || die "no modules.dep for $ver"

# Assemble next to DEST and move into place so a half-done run leaves nothing.
mkdir -p "$(dirname "$dest")"
stage="$dest.new.$$"
rm -rf "$stage"
mkdir -p "$stage"
mv "$vmlinuz" "$stage/vmlinuz"
mv "$moddir" "$stage/modules"
echo "$ver" >"$stage/version.tmp" && mv "$stage/version.tmp" "$stage/version"
rm -rf "$dest"
mv "$stage" "$dest"
echo "fetch-kernel: kernel $ver in $dest ($(du -sh "$dest" | cut -f1))"
