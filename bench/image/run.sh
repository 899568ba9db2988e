#!/usr/bin/env bash
# Image pipeline vs mksquashfs by hand, same tree, same machine, same run.
# Not run by the tests. Prints, for one directory tree:
#   - mksquashfs -comp zstd by hand and a full pipeline build of the same tree
#     (hash, hard-linked copy, agent, kernel, built-in initramfs, mksquashfs
#     -comp zstd, checksums, commit), best of ROUNDS, and the overhead in
#     percent: in a fresh store (every file of the tree is hashed) and forced
#     again in the same store (file sums from the store's cache);
#   - the pipeline's time per step;
#   - the no-op rebuild (unchanged inputs) time;
#   - the squashfs size (and mksquashfs time) with zstd, gzip and xz.
# Environment: TREE (a directory to use, e.g. a debootstrap root; default: a
# generated tree), TREE_MB (size of the generated tree, default 200), ROUNDS
# (default 2). The generated tree is real data: files copied from /usr (ELF
# binaries and libraries, text, locale data; many small files) plus 10%
# random bytes. Everything stays in a temporary folder, removed at exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
TREE_MB=${TREE_MB:-200}
ROUNDS=${ROUNDS:-2}
for tool in mksquashfs go tar awk; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (apt-get install squashfs-tools)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/netbootui-image-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

go build -o "$work/pipeline" ./bench/image/pipeline

tree=${TREE:-}
if [ -z "$tree" ]; then
	tree="$work/tree"
	mkdir -p "$tree/data"
	# Files from /usr: 30% binaries (/usr/bin), 40% libraries and modules
	# (/usr/lib), 30% data, docs and locales (/usr/share, many small files).
	: >"$work/list"
	for part in bin:30 lib:40 share:30; do
		find "/usr/${part%%:*}" -xdev -type f -size -8M -printf '%s\t%p\n' 2>/dev/null |
			grep -v '[[:space:]].*[[:space:]]' | sort -k2 |
			awk -F'\t' -v max=$((TREE_MB * 1048576 * 9 * ${part##*:} / 1000)) \
				'{ t += $1; if (t <= max) print $2 }' >>"$work/list"
	done
	tar -cf - -T "$work/list" 2>/dev/null | tar -xf - -C "$tree"
	for i in $(seq 1 $((TREE_MB / 10))); do head -c 1M /dev/urandom >"$tree/data/random-$i.bin"; done
fi
kernel=.cache/kernel/vmlinuz
if [ ! -f "$kernel" ]; then
	kernel="$work/vmlinuz"
	head -c 8M /dev/urandom >"$kernel"
fi
files=$(find "$tree" -xdev | wc -l)
echo "tree: $tree, $(du -sm "$tree" | cut -f1) MiB, $files entries; $(nproc) cores; best of $ROUNDS rounds"

now() { date +%s.%N; }
best_hand=0 best_pipe=0 best_noop=0 best_warm=0 steps="" wsteps="" noop_state=""
for r in $(seq "$ROUNDS"); do
	sync
	t0=$(now)
	mksquashfs "$tree" "$work/hand.sqfs" -noappend -comp zstd -quiet -no-progress >/dev/null
	hand=$(echo "$(now) $t0" | awk '{printf "%.2f", $1 - $2}')
	rm -rf "$work/store"
	sync
	out=$("$work/pipeline" -tree "$tree" -store "$work/store" -kernel "$kernel" -comp zstd)
	pipe=$(echo "$out" | awk '$1 == "build" {printf "%.2f", $2}')
	noop=$(echo "$out" | awk '$1 == "noop" {printf "%.3f", $2}')
	warm=$(echo "$out" | awk '$1 == "rebuild" {printf "%.2f", $2}')
	echo "  round $r: by hand $hand s, pipeline $pipe s (fresh store), $warm s (forced, same store), no-op rebuild $noop s"
	if [ "$best_warm" = 0 ] || awk -v a="$warm" -v b="$best_warm" 'BEGIN { exit !(a < b) }'; then
		best_warm=$warm
		wsteps=$(echo "$out" | awk '$1 == "rebuild" {print $3}')
	fi
	if [ "$best_hand" = 0 ] || awk -v a="$hand" -v b="$best_hand" 'BEGIN { exit !(a < b) }'; then best_hand=$hand; fi
	if [ "$best_pipe" = 0 ] || awk -v a="$pipe" -v b="$best_pipe" 'BEGIN { exit !(a < b) }'; then
		best_pipe=$pipe
		steps=$(echo "$out" | awk '$1 == "build" {print $3}')
	fi
	if [ "$best_noop" = 0 ] || awk -v a="$noop" -v b="$best_noop" 'BEGIN { exit !(a < b) }'; then best_noop=$noop; fi
	noop_state=$(echo "$out" | awk '$1 == "noop" {print $3}')
	ours=$(echo "$out" | awk '$1 == "rootfs" {print $2}')
done
echo "mksquashfs -comp zstd by hand: $best_hand s"
echo "pipeline, fresh store:         $best_pipe s, overhead $(echo "$best_pipe $best_hand" | awk '{printf "%.1f", ($1 - $2) * 100 / $2}')%"
echo "  steps (s): $steps"
echo "pipeline, forced, same store:   $best_warm s, overhead $(echo "$best_warm $best_hand" | awk '{printf "%.1f", ($1 - $2) * 100 / $2}')%"
echo "  steps (s): $wsteps"
echo "no-op rebuild: $best_noop s ($noop_state)"
echo "squashfs sizes (mksquashfs by hand, default levels):"
printf '  %-5s %8s MiB  %6s s\n' zstd "$(stat -c %s "$work/hand.sqfs" | awk '{printf "%.1f", $1 / 1048576}')" "$best_hand"
echo "  (pipeline's zstd image: $(stat -c %s "$ours" | awk '{printf "%.1f", $1 / 1048576}') MiB)"
for comp in gzip xz; do
	t0=$(now)
	mksquashfs "$tree" "$work/$comp.sqfs" -noappend -comp "$comp" -quiet -no-progress >/dev/null
	t=$(echo "$(now) $t0" | awk '{printf "%.2f", $1 - $2}')
	printf '  %-5s %8s MiB  %6s s\n' "$comp" "$(stat -c %s "$work/$comp.sqfs" | awk '{printf "%.1f", $1 / 1048576}')" "$t"
	rm -f "$work/$comp.sqfs"
done
