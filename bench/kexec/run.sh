#!/bin/sh
# Benchmark reboot-clean by kexec against reboot-clean by power cycle on one
# TCG QEMU node behind an ipmi_sim BMC, with QEMU's firmware and with a
# simulated long POST. Not run by the tests. See bench/kexec/README.md.
# Environment: ROUNDS (per path and firmware, default 2), POST (the
# simulated POST, default 20s), LIMIT (bound on the run, default 40m).
set -eu
for tool in qemu-system-x86_64 ipmi_sim mksquashfs go; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install qemu-system-x86 openipmi squashfs-tools)" >&2; exit 1; }
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
[ -f .cache/kernel/vmlinuz ] || scripts/fetch-kernel.sh
exec go run ./bench/kexec -rounds "${ROUNDS:-2}" -post "${POST:-20s}" -limit "${LIMIT:-40m}"
