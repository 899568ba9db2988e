#!/bin/bash
# Benchmark netbootui's embedded TFTP server against tftpd-hpa on loopback.
# Not run by the tests. See bench/tftp/README.md for what it prints.
#
# Environment: N (sequential fetches per server, default 10), PAR (parallel
# clients, default 32), CONC (concurrent ipxe.efi clients, default 200),
# SIZE_MIB (test file size, default 8), PEER_PORT / OUR_PORT (default
# 16969 / 16970), BLKSIZE (default 1468).
set -euo pipefail

N=${N:-10}
PAR=${PAR:-32}
CONC=${CONC:-200}
SIZE_MIB=${SIZE_MIB:-8}
PEER_PORT=${PEER_PORT:-16969}
OUR_PORT=${OUR_PORT:-16970}
BLKSIZE=${BLKSIZE:-1468}
IPXE_EFI=/usr/lib/ipxe/ipxe.efi

for tool in in.tftpd curl go sha256sum xargs awk; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install tftpd-hpa curl)" >&2; exit 1; }
done
[ -f "$IPXE_EFI" ] || { echo "run.sh: $IPXE_EFI is missing (apt-get install ipxe)" >&2; exit 1; }

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
cp "$IPXE_EFI" "$serve/ipxe.efi" # tftpd-hpa serves a copy; ours serves its own alias too
chmod 644 "$serve"/*
big_sum=$(sha256sum <"$serve/big.bin" | cut -d' ' -f1)
efi_sum=$(sha256sum <"$IPXE_EFI" | cut -d' ' -f1)

echo "building ourserver..." >&2
(cd "$repo" && go build -o "$work/ourserver" ./bench/tftp/ourserver)

in.tftpd --foreground --address "127.0.0.1:$PEER_PORT" --secure --user nobody --blocksize 65464 "$serve" &
pids+=($!)
"$work/ourserver" -addr "127.0.0.1:$OUR_PORT" -dir "$serve" ${CPUPROFILE:+-cpuprofile "$CPUPROFILE"} 2>"$work/ourserver.log" &
pids+=($!)
sleep 0.5

# Server CPU time, from a cgroup per server (tftpd-hpa's per-transfer
# children are reaped without accounting, so /proc cannot tell). Works with
# cgroup v1 cpuacct or a cgroup v2 hierarchy at /sys/fs/cgroup; skipped
# otherwise. The cgroups are removed on exit.
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

# fetch PORT NAME OUT: one curl fetch, bounded in time.
fetch() {
	curl -sS --max-time 120 --tftp-blksize "$BLKSIZE" -o "$3" "tftp://127.0.0.1:$1/$2"
}
export -f fetch
export BLKSIZE

# check WANT FILE... : prints how many files do not have sum WANT.
check_all() {
	local want=$1; shift
	local bad=0 f
	for f in "$@"; do
		[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$want" ] || bad=$((bad + 1))
	done
	echo "$bad"
}

declare -A secs=([peer]=0 [ours]=0) mib=([peer]=0 [ours]=0) cpu=([peer]=0 [ours]=0)
port_of() { if [ "$1" = peer ]; then echo "$PEER_PORT"; else echo "$OUR_PORT"; fi; }

# timed WHO CMD...: runs CMD and adds its wall time and WHO's CPU time.
timed() {
	local who=$1; shift
	local t0 t1 c0 c1
	c0=$(cpu_ns "$who")
	t0=$(now)
	"$@"
	t1=$(now)
	c1=$(cpu_ns "$who")
	secs[$who]=$(awk -v s="${secs[$who]}" -v a="$t0" -v b="$t1" 'BEGIN { print s + b - a }')
	[ -z "$c0" ] || cpu[$who]=$((cpu[$who] + c1 - c0))
}

rate() { awk -v m="$1" -v s="$2" 'BEGIN { printf "%.1f", m / s }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

cpu_per_mib() { # cpu_per_mib WHO: server CPU milliseconds per MiB sent
	if [ -z "${cg[$1]:-}" ]; then echo "-"; return; fi
	awk -v c="${cpu[$1]}" -v m="${mib[$1]}" 'BEGIN { printf "%.2f", c / 1e6 / m }'
}

report() { # report LABEL
	local pr or
	pr=$(rate "${mib[peer]}" "${secs[peer]}")
	or=$(rate "${mib[ours]}" "${secs[ours]}")
	printf '%-28s %9s MiB/s %9s MiB/s %9s %9s %9s\n' "$1" "$pr" "$or" "$(ratio "$or" "$pr")" \
		"$(cpu_per_mib peer)" "$(cpu_per_mib ours)"
	secs=([peer]=0 [ours]=0) mib=([peer]=0 [ours]=0) cpu=([peer]=0 [ours]=0)
}

echo "# TFTP on loopback: ${SIZE_MIB} MiB file, curl --tftp-blksize $BLKSIZE, $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
printf '%-28s %15s %15s %9s %19s\n' "" "" "" "" "server CPU ms/MiB"
printf '%-28s %15s %15s %9s %9s %9s\n' "test" "tftpd-hpa" "netbootui" "ours/peer" "tftpd-hpa" "netbootui"

# Sequential: the two servers take turns, so that load from elsewhere on the
# machine hits both alike.
rm -f "$work"/out/*
for i in $(seq 1 "$N"); do
	for who in peer ours; do
		timed "$who" fetch "$(port_of "$who")" big.bin "$work/out/s-$who-$i"
		mib[$who]=$((mib[$who] + SIZE_MIB))
	done
done
bad=$(check_all "$big_sum" "$work"/out/s-*)
[ "$bad" = 0 ] || { echo "run.sh: $bad corrupt sequential fetches" >&2; exit 1; }
report "sequential, $N fetches"

# Parallel: PAR clients at once, one fetch each; two rounds per server,
# alternating.
par_round() { seq 1 "$PAR" | xargs -P "$PAR" -I{} bash -c "fetch $1 big.bin $work/out/p-$2-{}"; }
rm -f "$work"/out/*
for round in 1 2; do
	for who in peer ours; do
		timed "$who" par_round "$(port_of "$who")" "$who-$round"
		mib[$who]=$((mib[$who] + PAR * SIZE_MIB))
	done
done
bad=$(check_all "$big_sum" "$work"/out/p-*)
[ "$bad" = 0 ] || { echo "run.sh: $bad corrupt parallel fetches" >&2; exit 1; }
report "parallel, $PAR clients x2"

# CONC clients at once fetch ipxe.efi from ours: all must succeed.
rm -f "$work"/out/*
t0=$(now)
seq 1 "$CONC" | xargs -P "$CONC" -I{} bash -c "fetch $OUR_PORT ipxe.efi $work/out/c{} 2>>$work/conc.err || true"
t1=$(now)
ok=0
for f in "$work"/out/c*; do
	[ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$efi_sum" ] && ok=$((ok + 1))
done
awk -v ok="$ok" -v n="$CONC" -v a="$t0" -v b="$t1" -v s="$(stat -L -c %s "$IPXE_EFI")" \
	'BEGIN { printf "%-28s %d/%d ok in %.1f s (%.1f MiB/s total)\n", n " clients, ipxe.efi, ours", ok, n, b - a, ok * s / (b - a) / 1048576 }'
if [ "$ok" != "$CONC" ]; then
	echo "run.sh: only $ok of $CONC concurrent fetches succeeded:" >&2
	sort "$work/conc.err" | uniq -c | head >&2
	exit 1
fi
