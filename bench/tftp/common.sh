# shellcheck shell=bash disable=SC2154,SC2034 # repo, work, serve and SIZE_MIB are the caller's; big_sum and commit are its results
# Shared by run.sh and contention.sh (sourced, not run): the test file,
# ourserver, free ports and the clients. Expects repo, work, serve and
# SIZE_MIB to be set.

# prepare: writes the SIZE_MIB random test file big.bin into $serve, sets
# big_sum (its sha256) and commit, and builds ourserver into $work.
prepare() {
	head -c $((SIZE_MIB << 20)) /dev/urandom >"$serve/big.bin"
	chmod 644 "$serve/big.bin"
	big_sum=$(sha256sum <"$serve/big.bin" | cut -d' ' -f1)
	echo "building ourserver..." >&2
	(cd "$repo" && go build -o "$work/ourserver" ./bench/tftp/ourserver)
	commit=$(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
}

# free_port: a UDP port free on 127.0.0.1 now (no fixed ports: other tests
# run here).
free_port() {
	python3 -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# get CLIENT PORT OUT: one fetch of big.bin, bounded in time. CLIENT is
# curl512, curl1468, tftp (tftp-hpa's client: RFC 1350, 512-byte blocks,
# no options), atftp1468, or atftpwN (atftp, blksize 1468, windowsize N).
get() {
	case $1 in
	curl*) timeout 120 curl -sS --max-time 120 --tftp-blksize "${1#curl}" -o "$3" "tftp://127.0.0.1:$2/big.bin" ;;
	tftp) timeout 120 tftp 127.0.0.1 "$2" -m binary -c get big.bin "$3" >/dev/null ;;
	atftp1468) timeout 120 atftp --option "blksize 1468" -g -r big.bin -l "$3" 127.0.0.1 "$2" >/dev/null 2>&1 ;;
	atftpw*) timeout 120 atftp --option "blksize 1468" --option "windowsize ${1#atftpw}" -g -r big.bin -l "$3" 127.0.0.1 "$2" >/dev/null 2>&1 ;;
	*) return 1 ;;
	esac
}
export -f get
