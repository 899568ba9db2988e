#!/bin/bash
# Where the time goes with many clients at once: PAR parallel fetches of
# one file from tftpd-hpa and from netbootui's server in one or more
# configurations, side by side, in ROUNDS rounds (the order rotates from
# round to round). Per fetch batch it prints the wall time, the server's
# CPU time and the clients' CPU time (each from a cpuacct cgroup made for
# the run). With SHARES=N every server and its clients run in a cpu cgroup
# of their own with weight N, the same for all, so that the machine's other
# work takes the same share from each and the count of threads on either
# side does not decide how much CPU it gets. Not run by the tests; see
# bench/tftp/README.md.
#
# Usage: contention.sh [NAME=ENV;ARGS ...]   (default: one netbootui
# configuration, "netbootui=;"). Each argument is a netbootui
# configuration: NAME, environment words before ";" (such as GOMAXPROCS=4),
# ourserver flags after it (such as -loops 2).
# Environment: ROUNDS (3), PAR (32), CLIENT (curl512, curl1468, tftp or
# atftp1468), SIZE_MIB (8), SHARES (unset: no cpu cgroups).
set -euo pipefail

ROUNDS=${ROUNDS:-3}
PAR=${PAR:-32}
CLIENT=${CLIENT:-curl512}
SIZE_MIB=${SIZE_MIB:-8}
[ $# -gt 0 ] || set -- "netbootui=;"

for tool in in.tftpd curl tftp atftp go sha256sum xargs awk python3 timeout; do
	command -v "$tool" >/dev/null || { echo "contention.sh: $tool is missing (apt-get install tftpd-hpa tftp-hpa curl atftp)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "contention.sh: run as root (in.tftpd changes root; cgroups)" >&2; exit 1; }
[ -d /sys/fs/cgroup/cpuacct ] || { echo "contention.sh: needs cgroup v1 cpuacct (and cpu for SHARES)" >&2; exit 1; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/netbootui-tftp-contention.XXXXXX)
serve="$work/serve"
mkdir -p "$serve" "$work/out"
chmod 755 "$work" "$serve"
acct=/sys/fs/cgroup/cpuacct/netbootui-contention-$$
cpu=/sys/fs/cgroup/cpu/netbootui-contention-$$

pids=()
names=()
cleanup() {
	echo $$ >/sys/fs/cgroup/cpuacct/cgroup.procs 2>/dev/null || true
	echo $$ >/sys/fs/cgroup/cpu/cgroup.procs 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	for n in "${names[@]}" clients; do rmdir "$acct-$n" "$cpu-$n" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

# shellcheck source=bench/tftp/common.sh
. "$repo/bench/tftp/common.sh"
prepare

declare -A port=()
start() { # start NAME SPEC
	local name=$1 spec=$2 p
	p=$(free_port)
	port[$name]=$p
	if [ "$name" = tftpd-hpa ]; then
		in.tftpd --foreground --address "127.0.0.1:$p" --secure --user nobody --blocksize 65464 "$serve" &
	else
		# shellcheck disable=SC2086 # the words of the spec are meant to split
		env ${spec%%;*} "$work/ourserver" -addr "127.0.0.1:$p" -dir "$serve" ${spec#*;} 2>"$work/log.$name" &
	fi
	pids+=($!)
	names+=("$name")
	mkdir "$acct-$name"
	echo "$!" >"$acct-$name/cgroup.procs"
	if [ -n "${SHARES:-}" ]; then
		mkdir "$cpu-$name"
		echo "$SHARES" >"$cpu-$name/cpu.shares"
		echo "$!" >"$cpu-$name/cgroup.procs"
	fi
}
start tftpd-hpa ""
for v in "$@"; do
	case $v in *=*) ;; *) echo "contention.sh: $v: want NAME=ENV;ARGS" >&2; exit 2 ;; esac
	case ${v#*=} in *\;*) ;; *) echo "contention.sh: $v: want NAME=ENV;ARGS" >&2; exit 2 ;; esac
	start "${v%%=*}" "${v#*=}"
done
mkdir "$acct-clients"
echo $$ >"$acct-clients/cgroup.procs"
sleep 0.5
for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "contention.sh: a server did not start" >&2; exit 1; }; done

usage() { cat "$1/cpuacct.usage"; }
# one NAME: PAR fetches at once from NAME; appends "wall server clients failures".
one() {
	local name=$1 t0 t1 s0 s1 c0 c1 f=0 i
	rm -f "$work"/out/*
	s0=$(usage "$acct-$name")
	c0=$(usage "$acct-clients")
	t0=$(date +%s.%N)
	(
		if [ -n "${SHARES:-}" ]; then echo "$BASHPID" >"$cpu-$name/cgroup.procs"; fi
		seq 1 "$PAR" | xargs -P "$PAR" -I{} bash -c "get $CLIENT ${port[$name]} $work/out/f{}"
	) || f=1
	t1=$(date +%s.%N)
	s1=$(usage "$acct-$name")
	c1=$(usage "$acct-clients")
	for i in $(seq 1 "$PAR"); do
		[ -f "$work/out/f$i" ] && [ "$(sha256sum <"$work/out/f$i" | cut -d' ' -f1)" = "$big_sum" ] || f=$((f + 1))
	done
	echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $(((s1 - s0) / 1000000)) $(((c1 - c0) / 1000000)) $f" >>"$work/res.$name"
	echo "# $name: $(tail -n 1 "$work/res.$name") (wall s, server ms, clients ms, failures; load $(cut -d' ' -f1 /proc/loadavg))" >&2
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
start_time=$(date -u '+%Y-%m-%d %H:%M UTC')
n=${#names[@]}
for r in $(seq 1 "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do one "${names[$(((i + r) % n))]}"; done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

echo "# $PAR x $CLIENT at once, ${SIZE_MIB} MiB each, $ROUNDS rounds; $start_time, $(nproc) CPUs, load $load0 at the start, $load1 at the end; commit $commit${SHARES:+; every server and its clients in a cpu cgroup of weight $SHARES}"
echo "# medians over the rounds; speed = tftpd-hpa's wall time / this one's (above 1.00x: faster than tftpd-hpa)"
printf '%-12s %8s %10s %10s %8s\n' "server" "wall s" "server s" "clients s" "speed"
status=0
peer=$(sort -n "$work/res.tftpd-hpa" | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
for name in "${names[@]}"; do
	fails=$(awk '{ s += $4 } END { print s + 0 }' "$work/res.$name")
	if [ "$fails" != 0 ]; then
		printf '%-12s FAIL: %s failed fetches\n' "$name" "$fails"
		status=1
		continue
	fi
	med() { sort -n | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
	w=$(awk '{ print $1 }' "$work/res.$name" | med)
	s=$(awk '{ print $2 / 1000 }' "$work/res.$name" | med)
	c=$(awk '{ print $3 / 1000 }' "$work/res.$name" | med)
	awk -v n="$name" -v w="$w" -v s="$s" -v c="$c" -v p="$peer" 'BEGIN { printf "%-12s %8.2f %10.2f %10.2f %7.2fx\n", n, w, s, c, p / w }'
done
exit "$status"
