#!/bin/bash
# Benchmark netbootui's TFTP server (package internal/tftp, run by
# bench/tftp/ourserver) against tftpd-hpa (in.tftpd) on loopback, side by
# side in the same run, with the same file and the same clients (curl,
# tftp-hpa's tftp, atftp), in several rounds. Not run by the tests. See
# bench/tftp/README.md.
#
# Environment: ROUNDS (default 5), SEQ (single fetches per server, test and
# round, default 3), PAR (parallel clients, default 32), SIZE_MIB (test
# file size, default 8), WIN (atftp windowsize, default 8); RAW=1 prints
# every round's "seconds cpu_ns MiB failures" (tftpd-hpa's, then
# netbootui's) on stderr; SHARES=N runs each server and its clients in a
# cpu cgroup of weight N (the same for both); PIN=CPU runs the servers and
# the clients on that one CPU; OURFLAGS: flags for ourserver.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
SEQ=${SEQ:-3}
PAR=${PAR:-32}
SIZE_MIB=${SIZE_MIB:-8}
WIN=${WIN:-8}

for tool in in.tftpd curl tftp atftp go sha256sum xargs awk python3 timeout; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install tftpd-hpa tftp-hpa curl atftp)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (in.tftpd changes root into the served folder)" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/netbootui-tftp-bench.XXXXXX)
serve="$work/serve"
mkdir -p "$serve" "$work/out" "$work/res"
chmod 755 "$work" "$serve" # tftpd-hpa drops to an unprivileged user

pids=()
cgroups=()
cleanup() {
	echo $$ >/sys/fs/cgroup/cpu/cgroup.procs 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for g in "${cgroups[@]}"; do rmdir "$g" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=bench/tftp/common.sh
. "$repo/bench/tftp/common.sh"
prepare

PEER_PORT=$(free_port)
# PIN=CPU runs both servers and every client on that one CPU (taskset).
pin=()
if [ -n "${PIN:-}" ]; then pin=(taskset -c "$PIN"); fi
"${pin[@]}" in.tftpd --foreground --address "127.0.0.1:$PEER_PORT" --secure --user nobody --blocksize 65464 "$serve" &
pids+=($!)
OUR_PORT=$(free_port)
# shellcheck disable=SC2086 # OURFLAGS' words are meant to split
"${pin[@]}" "$work/ourserver" -addr "127.0.0.1:$OUR_PORT" -dir "$serve" ${OURFLAGS:-} ${CPUPROFILE:+-cpuprofile "$CPUPROFILE"} 2>"$work/ourserver.log" &
pids+=($!)
sleep 0.5
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "run.sh: a server did not start" >&2; cat "$work/ourserver.log" >&2; exit 1; }; done

# Server CPU time from a cgroup per server (tftpd-hpa's per-transfer
# children stay in their parent's cgroup; /proc would not count them once
# reaped). cgroup v1 cpuacct or v2; "-" when neither can be made.
declare -A cg=()
cg_make() { # cg_make WHO PID
	local g
	if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
		g=/sys/fs/cgroup/netbootui-bench-$$-$1
	elif [ -w /sys/fs/cgroup/cpuacct ]; then
		g=/sys/fs/cgroup/cpuacct/netbootui-bench-$$-$1
	else
		return 0
	fi
	mkdir "$g" 2>/dev/null || return 0
	cgroups+=("$g")
	echo "$2" >"$g/cgroup.procs" 2>/dev/null || return 0
	cg[$1]=$g
}
cpu_ns() { # cpu_ns WHO: CPU nanoseconds used by WHO's cgroup, or 0
	local g=${cg[$1]:-}
	if [ -z "$g" ]; then echo 0; return; fi
	if [ -f "$g/cpuacct.usage" ]; then
		cat "$g/cpuacct.usage"
	else
		awk '$1 == "usage_usec" { print $2 * 1000 }' "$g/cpu.stat"
	fi
}
cg_make peer "${pids[0]}"
cg_make ours "${pids[1]}"

# With SHARES=N each server and the clients fetching from it run in a cpu
# cgroup (v1) of weight N, the same for both: the rest of the machine then
# takes the same share from each side, whatever its number of threads.
declare -A cpug=()
if [ -n "${SHARES:-}" ]; then
	[ -d /sys/fs/cgroup/cpu ] || { echo "run.sh: SHARES needs cgroup v1 cpu" >&2; exit 1; }
	for who in peer ours; do
		g=/sys/fs/cgroup/cpu/netbootui-bench-$$-$who
		mkdir "$g"
		cgroups+=("$g")
		echo "$SHARES" >"$g/cpu.shares"
		[ "$who" = peer ] && echo "${pids[0]}" >"$g/cgroup.procs" || echo "${pids[1]}" >"$g/cgroup.procs"
		cpug[$who]=$g
	done
fi

now() { date +%s.%N; }
port_of() { if [ "$1" = peer ]; then echo "$PEER_PORT"; else echo "$OUR_PORT"; fi; }

# bad FILE...: how many files are not the served file.
bad() {
	local n=0 f
	for f in "$@"; do
		[ -f "$f" ] && [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$big_sum" ] || n=$((n + 1))
	done
	echo "$n"
}

# run_one TEST WHO CLIENT COUNT PAR: COUNT fetches (PAR at a time) of
# big.bin from WHO with CLIENT; appends "seconds cpu_ns mib failures" to
# the TEST's results for WHO.
run_one() {
	local test=$1 who=$2 client=$3 count=$4 par=$5 port t0 t1 c0 c1 f
	port=$(port_of "$who")
	rm -f "$work"/out/*
	c0=$(cpu_ns "$who")
	t0=$(now)
	f=0
	(
		if [ -n "${cpug[$who]:-}" ]; then echo "$BASHPID" >"${cpug[$who]}/cgroup.procs"; fi
		seq 1 "$count" | "${pin[@]}" xargs -P "$par" -I{} bash -c "get $client $port $work/out/f{}"
	) || f=1
	t1=$(now)
	c1=$(cpu_ns "$who")
	f=$((f + $(bad $(seq -f "$work/out/f%g" 1 "$count"))))
	echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $((c1 - c0)) $((count * SIZE_MIB)) $f" >>"$work/res/$test.$who"
}

# The tests: name|client|fetches|parallel.
tests=(
	"1 x curl, blksize 512|curl512|$SEQ|1"
	"1 x curl, blksize 1468|curl1468|$SEQ|1"
	"1 x tftp-hpa tftp (512)|tftp|$SEQ|1"
	"1 x atftp, blksize 1468|atftp1468|$SEQ|1"
	"$PAR x curl, blksize 512|curl512|$PAR|$PAR"
	"$PAR x curl, blksize 1468|curl1468|$PAR|$PAR"
	"$PAR x tftp-hpa tftp (512)|tftp|$PAR|$PAR"
	"$PAR x atftp, blksize 1468|atftp1468|$PAR|$PAR"
)

load0=$(cut -d' ' -f1-3 /proc/loadavg)
start=$(date -u '+%Y-%m-%d %H:%M UTC')
# Rounds: every test once per server, the server that goes first
# alternating from round to round, so that load from elsewhere on the
# machine hits both alike.
for round in $(seq 1 "$ROUNDS"); do
	order="peer ours"
	[ $((round % 2)) = 0 ] && order="ours peer"
	echo "round $round of $ROUNDS (load $(cut -d' ' -f1 /proc/loadavg))" >&2
	for i in "${!tests[@]}"; do
		IFS='|' read -r _ client count par <<<"${tests[$i]}"
		for who in $order; do
			run_one "t$i" "$who" "$client" "$count" "$par"
		done
	done
	# atftp against netbootui, windowsize WIN against none (tftpd-hpa does
	# not negotiate windowsize), taking turns.
	for client in atftp1468 "atftpw$WIN"; do
		run_one "w-$client" ours "$client" "$SEQ" 1
	done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

echo "# TFTP on loopback, $start, $(nproc) CPUs, load $load0 at the start, $load1 at the end; commit $commit${SHARES:+; each server and its clients in a cpu cgroup of weight $SHARES}${PIN:+; servers and clients on CPU $PIN}"
echo "# ${SIZE_MIB} MiB file; $ROUNDS rounds, each running every test against both servers (which goes first alternates);"
echo "# MiB/s = file bytes / wall time, CPU = server ms per MiB (cgroup); medians over the rounds, [min - max] of the per-round ratio"
printf '%-28s %9s %9s %22s %8s %8s %8s\n' "test" "tftpd-hpa" "netbootui" "speed ours/hpa" "hpa CPU" "our CPU" "CPU"
printf '%-28s %9s %9s %22s %8s %8s %8s\n' "" "MiB/s" "MiB/s" "median [min - max]" "ms/MiB" "ms/MiB" "ours/hpa"
status=0
for i in "${!tests[@]}"; do
	IFS='|' read -r name _ _ _ <<<"${tests[$i]}"
	fp=$(awk '{ s += $4 } END { print s + 0 }' "$work/res/t$i.peer")
	fo=$(awk '{ s += $4 } END { print s + 0 }' "$work/res/t$i.ours")
	if [ "$fp" != 0 ] || [ "$fo" != 0 ]; then
		printf '%-28s FAIL: %s failed fetches from tftpd-hpa, %s from netbootui\n' "$name" "$fp" "$fo"
		status=1
		continue
	fi
	# One line per round: peer and ours side by side.
	if [ -n "${RAW:-}" ]; then
		paste -d' ' "$work/res/t$i.peer" "$work/res/t$i.ours" | sed "s/^/# raw $name: /" >&2
	fi
	paste -d' ' "$work/res/t$i.peer" "$work/res/t$i.ours" | awk -v name="$name" -v havecpu="${cg[ours]:+1}" '
		function median(a, n,   i, j, t) {
			for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		{
			n++
			pr[n] = $3 / $1; or[n] = $7 / $5; r[n] = or[n] / pr[n]
			pc[n] = $2 / 1e6 / $3; oc[n] = $6 / 1e6 / $7; cr[n] = pc[n] > 0 ? oc[n] / pc[n] : 0
			lo = n == 1 || r[n] < lo ? r[n] : lo; hi = n == 1 || r[n] > hi ? r[n] : hi
		}
		END {
			if (havecpu)
				printf "%-28s %9.1f %9.1f %7.2fx [%.2f - %.2f] %8.2f %8.2f %7.2fx\n", name, median(pr, n), median(or, n), median(r, n), lo, hi, median(pc, n), median(oc, n), median(cr, n)
			else
				printf "%-28s %9.1f %9.1f %7.2fx [%.2f - %.2f] %8s %8s %8s\n", name, median(pr, n), median(or, n), median(r, n), lo, hi, "-", "-", "-"
		}'
done
fw=$(cat "$work/res/w-atftp1468.ours" "$work/res/w-atftpw$WIN.ours" | awk '{ s += $4 } END { print s + 0 }')
if [ "$fw" != 0 ]; then
	echo "atftp windowsize $WIN: FAIL: $fw failed fetches"
	status=1
else
	paste -d' ' "$work/res/w-atftp1468.ours" "$work/res/w-atftpw$WIN.ours" | awk -v w="$WIN" '
		function median(a, n,   i, j, t) {
			for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
			return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
		}
		{ n++; a[n] = $3 / $1; b[n] = $7 / $5; r[n] = b[n] / a[n]; lo = n == 1 || r[n] < lo ? r[n] : lo; hi = n == 1 || r[n] > hi ? r[n] : hi }
		END { printf "atftp -> netbootui, blksize 1468: windowsize 1 %.1f MiB/s, windowsize %d %.1f MiB/s: %.2fx [%.2f - %.2f]\n", median(a, n), w, median(b, n), median(r, n), lo, hi }'
fi
exit "$status"
