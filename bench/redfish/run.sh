#!/bin/sh
# Benchmark netbootui's Redfish fan-out against DMTF's redfishtool on
# loopback simulated Redfish BMCs. Not run by the tests. See
# bench/redfish/README.md.
# Environment: N (BMCs, default 200), CONC (concurrency, default 64),
# TIMEOUT (per-call deadline, default 5s).
set -eu
for tool in redfishtool xargs go; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install redfishtool)" >&2; exit 1; }
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
exec timeout 900 go run ./bench/redfish -n "${N:-200}" -conc "${CONC:-64}" -timeout "${TIMEOUT:-5s}"
