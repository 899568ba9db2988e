#!/bin/sh
# Benchmark netbootui's IPMI fan-out against ipmitool on loopback ipmi_sim
# BMCs. Not run by the tests. See bench/ipmi/README.md.
# Environment: N (BMCs, default 200), SINKS (silent BMCs, default 100),
# CONC (concurrency, default 64), TIMEOUT (per-call deadline, default 5s).
set -eu
for tool in ipmi_sim ipmitool xargs go; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install openipmi ipmitool)" >&2; exit 1; }
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
exec timeout 600 go run ./bench/ipmi -n "${N:-200}" -sinks "${SINKS:-100}" -conc "${CONC:-64}" -timeout "${TIMEOUT:-5s}"
