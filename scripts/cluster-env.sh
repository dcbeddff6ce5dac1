#!/usr/bin/env bash
# Runs a command against a throwaway cluster environment on loopback: a 3-member etcd cluster
# (Debian's etcd-server) and an S3 endpoint (the moto server from PyPI, pinned), each on free
# ports, all stopped when the command ends (or fails, or is interrupted).
#
#   scripts/cluster-env.sh [--venv DIR] -- COMMAND [ARGS...]
#
# The command sees:
#   MEMSILO_TEST_ETCD       client URLs of the three members, comma-separated
#   MEMSILO_TEST_ETCD_PIDS  their process ids, in the same order (to kill a leader)
#   MEMSILO_TEST_S3         http://127.0.0.1:PORT/BUCKET (an empty bucket)
# Against a real S3 or a self-hosted one (e.g. SeaweedFS), skip this script and set
# MEMSILO_TEST_S3=https://HOST/BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and
# AWS_REGION) yourself, with MEMSILO_TEST_ETCD pointing at your etcd.
set -euo pipefail

VENV=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --venv) VENV="$2"; shift 2 ;;
        --) shift; break ;;
        *) echo "usage: $0 [--venv DIR] -- COMMAND [ARGS...]" >&2; exit 2 ;;
    esac
done
[[ $# -gt 0 ]] || { echo "usage: $0 [--venv DIR] -- COMMAND [ARGS...]" >&2; exit 2; }

command -v etcd >/dev/null || { echo "cluster-env: etcd not found (apt-get install etcd-server)" >&2; exit 1; }
MOTO=moto_server
if [[ -n "$VENV" ]]; then MOTO="$VENV/bin/moto_server"; fi
command -v "$MOTO" >/dev/null || { echo "cluster-env: $MOTO not found (pip install 'moto[server]')" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/memsilo-cluster-env.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    # etcd can hang on SIGTERM while it is the leader: give everyone 3 s, then SIGKILL.
    for _ in $(seq 30); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports, chosen by the kernel. Another process can take one between our choice and
# etcd's bind; that shows as a failed start, never as a wrong result, and the start is retried
# with new ports and new data directories.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Waits up to $1 seconds for "${@:2}" to succeed, giving up early if process $PID_WATCH exits.
ready() {
    local limit=$1; shift
    local deadline=$((SECONDS + limit))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        if [[ -n "${PID_WATCH:-}" ]] && ! kill -0 "$PID_WATCH" 2>/dev/null; then return 1; fi
        sleep 0.2
    done
    return 1
}

ETCD_PIDS=()
CLIENTS=""
# Starts a 3-member etcd cluster on new ports (attempt $1); returns 1 if a member is not healthy.
start_etcd() {
    local attempt=$1 i j state client peer cluster="" ports
    read -r -a ports <<<"$(free_ports 6)"
    ETCD_PIDS=()
    CLIENTS=""
    for i in 0 1 2; do cluster+="${cluster:+,}m$i=http://127.0.0.1:${ports[$((3 + i))]}"; done
    for i in 0 1 2; do
        client="http://127.0.0.1:${ports[$i]}"
        peer="http://127.0.0.1:${ports[$((3 + i))]}"
        etcd --name "m$i" --data-dir "$WORK/a$attempt/etcd-m$i" \
            --listen-client-urls "$client" --advertise-client-urls "$client" \
            --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token "memsilo-test-$$-$attempt" \
            --heartbeat-interval 50 --election-timeout 500 \
            >"$WORK/a$attempt/etcd-m$i.log" 2>&1 &
        ETCD_PIDS+=($!)
        PIDS+=($!)
        CLIENTS+="${CLIENTS:+,}$client"
    done
    for i in 0 1 2; do
        # A loaded machine (CI runs this after everything else) can be slow to elect a leader.
        if ! PID_WATCH=${ETCD_PIDS[$i]} ready 60 curl -sf "http://127.0.0.1:${ports[$i]}/health"; then
            echo "cluster-env: etcd member m$i (attempt $attempt) did not become healthy" >&2
            for j in 0 1 2; do
                if kill -0 "${ETCD_PIDS[$j]}" 2>/dev/null; then state=running; else state=exited; fi
                echo "--- etcd m$j ($state), last lines of its log:" >&2
                tail -15 "$WORK/a$attempt/etcd-m$j.log" >&2
            done
            for j in 0 1 2; do kill -KILL "${ETCD_PIDS[$j]}" 2>/dev/null || true; done
            return 1
        fi
    done
}

started=0
for attempt in 1 2 3; do
    mkdir -p "$WORK/a$attempt"
    if start_etcd "$attempt"; then started=1; break; fi
done
[[ $started == 1 ]] || { echo "cluster-env: etcd did not start in 3 attempts" >&2; exit 1; }

S3_PORT=$(free_ports 1)
"$MOTO" -H 127.0.0.1 -p "$S3_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
if ! PID_WATCH=$! ready 60 curl -sf "http://127.0.0.1:$S3_PORT/moto-api/"; then
    echo "cluster-env: moto did not start; its log:" >&2
    tail -20 "$WORK/moto.log" >&2
    exit 1
fi
BUCKET=memsilo-test
curl -sf -X PUT "http://127.0.0.1:$S3_PORT/$BUCKET" >/dev/null

export MEMSILO_TEST_ETCD="$CLIENTS"
export MEMSILO_TEST_ETCD_PIDS="${ETCD_PIDS[0]},${ETCD_PIDS[1]},${ETCD_PIDS[2]}"
export MEMSILO_TEST_S3="http://127.0.0.1:$S3_PORT/$BUCKET"
# moto accepts any credentials; object_store wants some.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
echo "cluster-env: etcd $MEMSILO_TEST_ETCD, s3 $MEMSILO_TEST_S3" >&2
set +e
"$@"
status=$?
set -e
exit $status
