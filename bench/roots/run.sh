#!/bin/sh
# Boot one Debian recipe image (internal/daemon/testdata/debian-roots) on TCG
# QEMU nodes over each root transport and print the RAM each uses, measured
# inside the guest: NFS with dracut, NFS with the built-in live init, NBD and
# http-live. It runs TestQEMUDebianRoots (CI runs it with the dracut NFS
# node and the NBD node only) with all four nodes ROUNDS times and prints the
# table of each round. Needs root (debootstrap, chroot), the
# Debian mirror (the first build; later ones take the root from
# .cache/debootstrap) and the packages of .ci/run. See bench/roots/README.md.
# Environment: ROUNDS (default 1), LIMIT (go test -timeout, default 60m).
set -eu
for tool in qemu-system-x86_64 debootstrap ganesha.nfsd nbd-server nbd-client mksquashfs unsquashfs go; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (see .ci/run's apt-get line)" >&2; exit 1; }
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
[ -f .cache/kernel/vmlinuz ] || scripts/fetch-kernel.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
NETBOOTUI_REQUIRE_TOOLS=1 NETBOOTUI_ROOTS_BENCH=1 go test -count="${ROUNDS:-1}" -timeout "${LIMIT:-60m}" -run 'TestQEMUDebianRoots$' -v ./internal/daemon >"$log" 2>&1 || status=$?
# The build, each node's check-in and the table of every round.
grep -E 'built debian-roots|checked in with|RAM used once|^ +(nfs|nbd|http-live),|--- (PASS|FAIL)' "$log" | sed 's/^ *debianroots_qemu_test.go:[0-9]*: //'
if [ "$status" != 0 ]; then
	tail -n 60 "$log" >&2
fi
exit "$status"
