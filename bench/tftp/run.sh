#!/bin/bash
# Benchmark netbootui's TFTP server (package internal/tftp, run by
# bench/tftp/ourserver) against tftpd-hpa (in.tftpd) on loopback, side by
# side in the same run. Not run by the tests. See bench/tftp/README.md.
#
# Environment: N (sequential fetches per server and block size, default 8),
# PAR (parallel clients, default 32), SIZE_MIB (test file size, default 8),
# WIN (atftp windowsize, default 8).
set -euo pipefail

N=${N:-8}
PAR=${PAR:-32}
SIZE_MIB=${SIZE_MIB:-8}
WIN=${WIN:-8}

for tool in in.tftpd curl atftp go sha256sum xargs awk python3; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install tftpd-hpa curl atftp)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (in.tftpd changes root into the served folder)" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/netbootui-tftp-bench.XXXXXX)
serve="$work/serve"
mkdir -p "$serve" "$work/out"
chmod 755 "$work" "$serve" # tftpd-hpa drops to an unprivileged user

pids=()
cgroups=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for g in "${cgroups[@]}"; do rmdir "$g" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

head -c $((SIZE_MIB << 20)) /dev/urandom >"$serve/big.bin"
chmod 644 "$serve"/*
big_sum=$(sha256sum <"$serve/big.bin" | cut -d' ' -f1)

echo "building ourserver..." >&2
(cd "$repo" && go build -o "$work/ourserver" ./bench/tftp/ourserver)

# A free UDP port for each server (no fixed ports: other tests run here).
free_port() {
	python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PEER_PORT=$(free_port)
in.tftpd --foreground --address "127.0.0.1:$PEER_PORT" --secure --user nobody --blocksize 65464 "$serve" &
pids+=($!)
OUR_PORT=$(free_port)
"$work/ourserver" -addr "127.0.0.1:$OUR_PORT" -dir "$serve" ${CPUPROFILE:+-cpuprofile "$CPUPROFILE"} 2>"$work/ourserver.log" &
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
cpu_ns() { # cpu_ns WHO: CPU nanoseconds used by WHO's cgroup, or empty
	local g=${cg[$1]:-}
	[ -n "$g" ] || return 0
	if [ -f "$g/cpuacct.usage" ]; then
		cat "$g/cpuacct.usage"
	else
		awk '$1 == "usage_usec" { print $2 * 1000 }' "$g/cpu.stat"
	fi
}
cg_make peer "${pids[0]}"
cg_make ours "${pids[1]}"

now() { date +%s.%N; }
port_of() { if [ "$1" = peer ]; then echo "$PEER_PORT"; else echo "$OUR_PORT"; fi; }

# fetch PORT BLKSIZE OUT: one curl fetch, bounded in time.
fetch() {
	curl -sS --max-time 120 --tftp-blksize "$2" -o "$3" "tftp://127.0.0.1:$1/big.bin"
}
export -f fetch

# bad FILE...: how many files are not the served file.
bad() {
	local n=0 f
	for f in "$@"; do
		[ -f "$f" ] && [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$big_sum" ] || n=$((n + 1))
	done
	echo "$n"
}

declare -A secs mib cpu fails
reset() { secs=([peer]=0 [ours]=0); mib=([peer]=0 [ours]=0); cpu=([peer]=0 [ours]=0); fails=([peer]=0 [ours]=0); }

# timed WHO MIB CMD...: runs CMD; adds its wall time, WHO's CPU time and
# MIB; a failing CMD counts as a failure.
timed() {
	local who=$1 m=$2; shift 2
	local t0 t1 c0 c1
	c0=$(cpu_ns "$who")
	t0=$(now)
	"$@" || fails[$who]=$((fails[$who] + 1))
	t1=$(now)
	c1=$(cpu_ns "$who")
	secs[$who]=$(awk -v s="${secs[$who]}" -v a="$t0" -v b="$t1" 'BEGIN { print s + b - a }')
	mib[$who]=$((mib[$who] + m))
	[ -z "$c0" ] || cpu[$who]=$((cpu[$who] + c1 - c0))
}

rate() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.1f", m / s }'; }
cpu_per_mib() { # cpu_per_mib WHO: server CPU milliseconds per MiB sent
	if [ -z "${cg[$1]:-}" ]; then echo "-"; return; fi
	awk -v c="${cpu[$1]}" -v m="${mib[$1]}" 'BEGIN { printf "%.2f", c / 1e6 / m }'
}

status=0
# report LABEL: one line; FAIL instead of ratios when any fetch failed.
report() {
	local pr or pc oc
	pr=$(rate "${mib[peer]}" "${secs[peer]}")
	or=$(rate "${mib[ours]}" "${secs[ours]}")
	pc=$(cpu_per_mib peer)
	oc=$(cpu_per_mib ours)
	if [ "${fails[peer]}" != 0 ] || [ "${fails[ours]}" != 0 ]; then
		printf '%-26s FAIL: %s failed fetches from tftpd-hpa, %s from netbootui\n' "$1" "${fails[peer]}" "${fails[ours]}"
		status=1
		return
	fi
	printf '%-26s %10s %10s %8s %9s %9s %8s\n' "$1" "$pr" "$or" \
		"$(awk -v a="$or" -v b="$pr" 'BEGIN { printf "%.2fx", a / b }')" "$pc" "$oc" \
		"$(awk -v a="$oc" -v b="$pc" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }')"
}

echo "# TFTP on loopback, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# ${SIZE_MIB} MiB file, curl --tftp-blksize B; MiB/s = file bytes / wall time; CPU = server ms per MiB (cgroup)"
printf '%-26s %10s %10s %8s %9s %9s %8s\n' "test" "tftpd-hpa" "netbootui" "speed" "hpa CPU" "our CPU" "CPU"
printf '%-26s %10s %10s %8s %9s %9s %8s\n' "" "MiB/s" "MiB/s" "ours/hpa" "ms/MiB" "ms/MiB" "ours/hpa"

# Single stream: the two servers take turns, fetch by fetch, so that load
# from elsewhere on the machine hits both alike.
for bs in 512 1468; do
	reset
	rm -f "$work"/out/*
	for i in $(seq 1 "$N"); do
		for who in peer ours; do
			timed "$who" "$SIZE_MIB" fetch "$(port_of "$who")" "$bs" "$work/out/s-$who-$i"
		done
	done
	for who in peer ours; do
		fails[$who]=$((fails[$who] + $(bad $(seq -f "$work/out/s-$who-%g" 1 "$N"))))
	done
	report "1 stream, blksize $bs"
done

# Parallel: PAR clients at once, one fetch each; two rounds per server,
# alternating.
par_round() { # par_round PORT BLKSIZE TAG
	seq 1 "$PAR" | xargs -P "$PAR" -I{} bash -c "fetch $1 $2 $work/out/p-$3-{}"
}
for bs in 512 1468; do
	reset
	rm -f "$work"/out/*
	for round in 1 2; do
		for who in peer ours; do
			timed "$who" $((PAR * SIZE_MIB)) par_round "$(port_of "$who")" "$bs" "$who-$round"
		done
	done
	for who in peer ours; do
		fails[$who]=$((fails[$who] + $(bad "$work"/out/p-"$who"-*)))
	done
	report "$PAR parallel, blksize $bs"
done

# atftp against netbootui, windowsize WIN against none (tftpd-hpa does not
# negotiate windowsize), taking turns.
atftp_get() { # atftp_get OUT [WINDOW]
	local opts=(--option "blksize 1468")
	[ -z "${2:-}" ] || opts+=(--option "windowsize $2")
	atftp "${opts[@]}" -g -r big.bin -l "$1" 127.0.0.1 "$OUR_PORT" >/dev/null 2>&1
}
declare -A wsecs=([1]=0 [$WIN]=0) wcpu=([1]=0 [$WIN]=0)
wfail=0
rm -f "$work"/out/*
for i in $(seq 1 "$N"); do
	for w in 1 "$WIN"; do
		c0=$(cpu_ns ours)
		t0=$(now)
		if [ "$w" = 1 ]; then atftp_get "$work/out/w$w-$i" || wfail=$((wfail + 1)); else atftp_get "$work/out/w$w-$i" "$w" || wfail=$((wfail + 1)); fi
		t1=$(now)
		c1=$(cpu_ns ours)
		wsecs[$w]=$(awk -v s="${wsecs[$w]}" -v a="$t0" -v b="$t1" 'BEGIN { print s + b - a }')
		[ -z "$c0" ] || wcpu[$w]=$((wcpu[$w] + c1 - c0))
	done
done
wfail=$((wfail + $(bad "$work"/out/w*)))
if [ "$wfail" != 0 ]; then
	echo "atftp windowsize $WIN        FAIL: $wfail failed fetches"
	status=1
else
	m=$((N * SIZE_MIB))
	awk -v m="$m" -v a="${wsecs[1]}" -v b="${wsecs[$WIN]}" -v ca="${wcpu[1]}" -v cb="${wcpu[$WIN]}" -v w="$WIN" 'BEGIN {
		printf "atftp -> netbootui, blksize 1468: windowsize 1 %.1f MiB/s (%.2f ms/MiB), windowsize %d %.1f MiB/s (%.2f ms/MiB): %.2fx\n",
			m / a, ca / 1e6 / m, w, m / b, cb / 1e6 / m, a / b }'
fi
exit "$status"
