#!/usr/bin/env bash
# Fuzzes the HTTP server against its own /openapi.json with Schemathesis: every response must
# be a documented status with a JSON body matching the documented schema, and no input may
# produce a 500. Not checked: that every schema-valid request is accepted (names, ranges and
# sizes are validated beyond what the schema states), and that a "created" resource is found
# again (Schemathesis guesses links between ids, e.g. an entity id from another namespace).
# Usage: bindings/http/scripts/schemathesis.sh [MAX_SECONDS]   (default 120)
set -euo pipefail
cd "$(dirname "$0")/../../.."
max_time="${1:-120}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==4.*"
fi
cargo build -p memsilo-http --bin memsilo
data="$(mktemp -d)"
log="$data/server.log"
key="schemathesis-admin-key-$RANDOM$RANDOM"
MEMSILO_ADMIN_KEY="$key" "$target/debug/memsilo" serve --data "$data/db" --listen 127.0.0.1:0 \
  --log-level warn 2>"$log" &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
url=""
for _ in $(seq 1 300); do
  url="$(sed -n 's/^memsilo listening on //p' "$log" | head -n1)"
  [ -n "$url" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "server did not start"; cat "$log"; exit 1; }
"$venv/bin/schemathesis" run "$url/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks all --exclude-checks positive_data_acceptance,ensure_resource_availability \
  --suppress-health-check filter_too_much,too_slow \
  --max-time "$max_time" --workers 2 --seed 20261123
