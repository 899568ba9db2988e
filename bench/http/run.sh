#!/usr/bin/env bash
# HTTP boot-file serving: netbootui vs nginx, same file, same machine, same run.
# Serves one SIZE_MB file (default 256) from both and fetches it with 1 and 64
# concurrent clients (bench/http/load), then prints MiB/s and the ratio ours/nginx.
# Everything listens on 127.0.0.1, on ports free at the start (no fixed ports:
# other tests run on this machine), and stops by itself. Needs nginx
# (nginx-light) and python3 (to find free ports).
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MB=${SIZE_MB:-256}
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
chmod 755 "$work"  # nginx workers run as another user
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# free_port prints a TCP port free on 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PEER_PORT=$(free_port)
OUR_PORT=$(free_port)

go build -o "$work/netbootui" ./cmd/netbootui
go build -o "$work/load" ./bench/http/load

mkdir -p "$work/files"
head -c $((SIZE_MB << 20)) /dev/urandom > "$work/files/rootfs.squashfs"
head -c 1M /dev/urandom > "$work/files/vmlinuz"
head -c 1M /dev/urandom > "$work/files/initrd"

# nginx with a config of its own, as tuned as a boot server would be.
mkdir -p "$work/nginx"
cat > "$work/nginx/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx;
  scgi_temp_path $work/nginx;
  server { listen 127.0.0.1:$PEER_PORT; root $work/files; }
}
CONF
nginx -c "$work/nginx/nginx.conf" &
pids+=($!)

cat > "$work/nodes.yaml" <<INV
images:
  bench: {}
groups:
  bench: {image: bench}
nodes:
  - name: b1
    group: bench
    nics: [{mac: "52:54:00:bb:00:01"}]
INV
"$work/netbootui" serve --inventory "$work/nodes.yaml" --data "$work/data" --http-listen 127.0.0.1:$OUR_PORT \
  --tftp-listen "" --api-socket "$work/api.sock" --log-level warn &
pids+=($!)
for _ in $(seq 50); do [ -S "$work/api.sock" ] && break; sleep 0.1; done
gen=$("$work/netbootui" image import bench --api-socket "$work/api.sock" --publish -o json \
  --kernel "$work/files/vmlinuz" --initrd "$work/files/initrd" --rootfs "$work/files/rootfs.squashfs" |
  sed -n 's/^  "id": "\(.*\)",$/\1/p')
# b1's own rootfs URL, from its boot entry: ?node=b1&auth=KEY proves the node,
# so progress events are made as in a real boot.
ours=$(curl -sf "http://127.0.0.1:$OUR_PORT/boot/52:54:00:bb:00:01.ipxe" | grep -o 'root=live:[^ ]*' | head -1 | cut -d: -f2-)
case $ours in "http://127.0.0.1:$OUR_PORT/images/bench/$gen/rootfs.squashfs?node=b1&auth="*) ;;
*) echo "no rootfs URL for b1 in its boot entry: $ours" >&2; exit 1 ;; esac
peer="http://127.0.0.1:$PEER_PORT/rootfs.squashfs"
curl -sf -o /dev/null "$peer" && curl -sf -o /dev/null "$ours"

echo "file: ${SIZE_MB} MiB, $(nproc) cores, best of $ROUNDS rounds"
for c in 1 64; do
  n=$(( c == 1 ? 8 : 128 ))
  best_peer=0; best_ours=0
  for _ in $(seq "$ROUNDS"); do
    p=$("$work/load" -url "$peer" -c $c -n $n -label nginx); echo "  $p"
    o=$("$work/load" -url "$ours" -c $c -n $n -label ours); echo "  $o"
    pv=$(echo "$p" | awk '{print $4}'); ov=$(echo "$o" | awk '{print $4}')
    best_peer=$(echo "$pv $best_peer" | awk '{print ($1>$2)?$1:$2}')
    best_ours=$(echo "$ov $best_ours" | awk '{print ($1>$2)?$1:$2}')
  done
  echo "c=$c: nginx $best_peer MiB/s, netbootui $best_ours MiB/s, ratio ours/nginx $(echo "$best_ours $best_peer" | awk '{printf "%.2f", $1/$2}')"
done
