#!/usr/bin/env bash
# Property-based contract test of the public API: schemathesis (pinned, in a virtualenv under the
# tools cache) against a real system (`h200 dev` on ephemeral ports, a temporary data folder),
# through the edge, over every operation of shared/openapi.json, once per role with that role's
# Bearer token. Checks: no 5xx, documented status codes and content types, every body and
# header conforms to its schema; a refusal's schema is problem+json whose `code` is one of the
# codes documented for that operation and status. Any finding fails the run; nothing is skipped.
#
# Rate limits: `h200 dev` runs with a copy of the route table whose rate classes are raised (the
# same classes and buckets are still checked), so a few thousand requests do not end in 429.
# Operations that end a session or the account (logout, account erasure), take the worker away
# (pause, drain) or administer other accounts (disable, reset, delete, end sessions) run after the
# others, and the login route last: its failed attempts block the address, as they should.
#
# Usage: tests/contract/schemathesis.sh   (SCHEMATHESIS_MAX_EXAMPLES, default 25 per operation)
set -euo pipefail
cd "$(dirname "$0")/../.."

VERSION=4.32.5
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
TOOLS="${H200_TOOLS_DIR:-$HOME/.cache/h200/tools}"
VENV="$TOOLS/schemathesis-$VERSION/venv"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/h200/target}"
PASSWORD='Contract-Mug-2026!'
ROLES=(viewer analyst manager admin readonly user service)

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "installing schemathesis $VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$VERSION"
fi

cargo build --locked -p h200
H200="$CARGO_TARGET_DIR/debug/h200"

WORK="$(mktemp -d)"
DEV_PID=""
cleanup() {
  status=$?
  if [ "$status" -ne 0 ] && [ -f "$WORK/dev.log" ]; then
    echo "--- the last lines of h200 dev's log"
    grep -v "h200::audit" "$WORK/dev.log" | tail -n 20
  fi
  if [ -n "$DEV_PID" ]; then kill "$DEV_PID" 2>/dev/null || true; wait "$DEV_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# The route table with every rate class raised a thousandfold.
sed -E 's/^(limit|burst) = ([0-9]+)$/\1 = \21000/' shared/src/route_policy.toml >"$WORK/routes.toml"

export H200_DATA_DIR="$WORK/data"
"$H200" dev --edge-addr 127.0.0.1:0 --backend-addr 127.0.0.1:0 \
  --route-policy "$WORK/routes.toml" >"$WORK/dev.log" 2>&1 &
DEV_PID=$!
EDGE=""
for _ in $(seq 1 120); do
  EDGE=$(sed -n 's/.*the API is served at \(http:\/\/[0-9.:]*\) (edge).*/\1/p' "$WORK/dev.log")
  [ -n "$EDGE" ] && break
  kill -0 "$DEV_PID" 2>/dev/null || { cat "$WORK/dev.log"; echo "FATAL: h200 dev exited" >&2; exit 1; }
  sleep 0.5
done
[ -n "$EDGE" ] || { cat "$WORK/dev.log"; echo "FATAL: h200 dev did not start" >&2; exit 1; }
echo "h200 dev: edge at $EDGE"

login() {
  curl -sf -X POST "$EDGE/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"$PASSWORD\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

for role in "${ROLES[@]}"; do
  echo "$PASSWORD" | "$H200" user add "st-$role" --role "$role" >/dev/null
done

# One schemathesis run; the remaining arguments select operations and add headers.
run() {
  "$VENV/bin/st" --config-file tests/contract/schemathesis.toml run "$EDGE/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$MAX_EXAMPLES" --seed 20261129 --workers 1 --request-timeout 30 \
    --phases examples,coverage,fuzzing --generation-database none --no-shrink \
    --warnings off "$@"
}

# An administrator's run may disable, reset, delete or end the sessions of any account it finds,
# the other roles' test accounts included: those operations run after every other login.
ADMIN_USER_OPERATIONS=(/api/v1/admin/users/{id} /api/v1/admin/users/{id}/password-reset
  /api/v1/admin/users/{id}/sessions)
LAST_OPERATIONS=(--exclude-path /auth/login --exclude-path /auth/logout --exclude-path /api/v1/me
  --exclude-path /api/v1/servers/{id}/pause --exclude-path /api/v1/servers/{id}/drain)
for path in "${ADMIN_USER_OPERATIONS[@]}"; do LAST_OPERATIONS+=(--exclude-path "$path"); done
for role in "${ROLES[@]}"; do
  echo "==> schemathesis as $role"
  token=$(login "st-$role")
  run -H "Authorization: Bearer $token" "${LAST_OPERATIONS[@]}"
done
# Pausing or draining a worker (schemathesis finds the dev worker's id) leaves no worker for
# queued work, logout ends the session, erasure the account: these run after everything else,
# each with a fresh token.
for role in "${ROLES[@]}"; do
  echo "==> schemathesis as $role: pause and drain workers, logout, account erasure"
  token=$(login "st-$role")
  run -H "Authorization: Bearer $token" \
    --include-path /api/v1/servers/{id}/pause --include-path /api/v1/servers/{id}/drain
  token=$(login "st-$role")
  run -H "Authorization: Bearer $token" --include-path /auth/logout
  token=$(login "st-$role")
  run -H "Authorization: Bearer $token" --include-path /api/v1/me
done
# The administration of other accounts, on fresh accounts (the runs above erased theirs), each
# role's token taken first and the administrator last: its run may disable, reset or delete any
# account it finds.
declare -A TOKENS
for role in "${ROLES[@]}"; do
  echo "$PASSWORD" | "$H200" user add "sa-$role" --role "$role" >/dev/null
  TOKENS[$role]=$(login "sa-$role")
done
included=()
for path in "${ADMIN_USER_OPERATIONS[@]}"; do included+=(--include-path "$path"); done
for role in viewer analyst manager readonly user service admin; do
  echo "==> schemathesis as $role: the administration of other accounts"
  run -H "Authorization: Bearer ${TOKENS[$role]}" "${included[@]}"
done
echo "==> schemathesis: login (anonymous)"
run --include-path /auth/login
echo "schemathesis: no findings"
