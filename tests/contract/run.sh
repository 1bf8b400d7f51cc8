#!/usr/bin/env bash
# Contract tests: Schemathesis (pinned in requirements.txt, installed from PyPI into
# tests/contract/.venv) generates requests from the running service's own /openapi.json and
# checks every answer: no 5xx, the status documented for the operation, the documented content
# type, and the body matching the documented schema.
#
# A fresh keywarden-server on SQLite (a throwaway data folder, a free loopback port), with real
# tokens made the way an operator makes them: the first-start admin token, a SCIM token from
# `keywarden-server issue-token`, help-desk and auditor tokens issued over the API to people the
# HR feed (SCIM) and an admin created. Runs, one per credential:
#   admin     every admin route, and the open meta routes (health, the document, webhook key)
#   helpdesk  every admin route (the ones it may not use must refuse as documented)
#   auditor   likewise
#   scim      every SCIM route
#   pages     the self-service and console-setup routes as the pages' script calls them: from
#             the service's origin, with a real session (the cookie a person gets by redeeming an
#             enrolment ticket) and its CSRF token; the entry routes (ticket and link
#             redemption, sign-in, the console's first setup) are open and take the same run
#   nobody    every operation with no credential, or a made-up one (generated from the
#             document's security schemes): laptop provisioning in full, every other refusal
# Not covered with a real credential (listed in NO_REAL_CREDENTIAL below; the nobody run still
# checks how they refuse): the laptop's routes under /api/v1/agent/, each signed with the
# device's Ed25519 key over method, path, device, sequence, time and body, which Schemathesis
# cannot make (the service tests and the end-to-end tests with real agents cover them); and
# the console's session on the admin routes, which needs a passkey sign-in (the admin routes
# are covered with staff tokens, the same callers).
#
# The open routes are rate-limited per address (--open-requests-per-minute, default 60): this
# run raises the limit (0: none) so that the generated requests are answered, not refused with
# 429. Everything else is the service's default configuration.
#
# Usage: tests/contract/run.sh [SERVER_BINARY]   (default: $CARGO_TARGET_DIR/debug/keywarden-server)
# Environment: KEYWARDEN_CONTRACT_EXAMPLES (examples per operation and run, default 40),
# KEYWARDEN_CONTRACT_SEED (default fixed, so a run is repeatable; "random" for a new one).
# Last line: `contract: N passed, M failed`, one per operation and credential.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SERVER="${1:-${CARGO_TARGET_DIR:-$HOME/.cache/keywarden/target}/debug/keywarden-server}"
EXAMPLES="${KEYWARDEN_CONTRACT_EXAMPLES:-40}"
SEED="${KEYWARDEN_CONTRACT_SEED:-20261205}"
VENV="$HERE/.venv"

# Operations no real credential reaches here, and why (see the header); the nobody run covers
# their refusals.
NO_REAL_CREDENTIAL=(
  "/api/v1/agent/* but provision: signed with the laptop's device key (Ed25519 over the request)"
  "/api/v1/admin/* with the console's session cookie: a passkey sign-in (staff tokens are used instead)"
)

say() { printf '\n== %s\n' "$*"; }

# --- Schemathesis, pinned, in a virtualenv of its own (reinstalled when the pin changes) ---
if [ ! -x "$VENV/bin/schemathesis" ] || [ "$HERE/requirements.txt" -nt "$VENV/.installed" ]; then
  say "installing Schemathesis from PyPI into tests/contract/.venv"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  touch "$VENV/.installed"
fi

[ -x "$SERVER" ] || { echo "no service binary at $SERVER: build it first (cargo build --bins)" >&2; exit 1; }
echo "service: $SERVER"

# --- A fresh service ---------------------------------------------------------------------------
WORK="$(mktemp -d)"
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

: >"$WORK/stdout"
"$SERVER" --data-dir "$WORK/data" --listen 127.0.0.1:0 --admin-token-file "$WORK/admin-token" \
  --open-requests-per-minute 0 >"$WORK/stdout" 2>"$WORK/service.log" &
SERVER_PID=$!
for _ in $(seq 100); do
  URL="$(sed -n 's/^listening on //p' "$WORK/stdout")"
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/service.log" >&2; echo "the service did not start" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "the service printed no listening address" >&2; exit 1; }
ADMIN="$(cat "$WORK/admin-token")"

# api METHOD PATH TOKEN [JSON]: a call that must succeed (2xx); prints the answer's body.
api() {
  local body
  body="$(curl -sS --fail-with-body -X "$1" "$URL$2" -H "authorization: Bearer $3" \
    -H "content-type: ${CT:-application/json}" ${4:+--data "$4"})" \
    || { echo "set-up call $1 $2 failed: $body" >&2; exit 1; }
  printf '%s' "$body"
}

say "set-up: tokens and people, through the service's own CLI and API"
# The HR feed's token, as an operator issues it on the service's host.
SCIM="$("$SERVER" issue-token --data-dir "$WORK/data" --role scim --label "contract HR feed" | grep -o 'kwa_[A-Za-z0-9_-]*')"
for who in ann bob cy; do
  CT=application/scim+json api POST /scim/v2/Users "$SCIM" \
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"$who@example.com\",\"displayName\":\"$who\",\"active\":true}" \
    | jq -r .id >"$WORK/person-$who"
done
api POST /api/v1/admin/people "$ADMIN" '{"user_name":"dee@example.com","display_name":"Dee"}' >/dev/null
HELPDESK="$(api POST /api/v1/admin/tokens "$ADMIN" "{\"role\":\"helpdesk\",\"label\":\"contract desk\",\"person_id\":\"$(cat "$WORK/person-ann")\"}" | jq -r .token)"
AUDITOR="$(api POST /api/v1/admin/tokens "$ADMIN" "{\"role\":\"auditor\",\"label\":\"contract audit\",\"person_id\":\"$(cat "$WORK/person-bob")\"}" | jq -r .token)"
# A self-service session, as a person's browser gets one: redeem an enrolment ticket from the
# pages' origin; the cookie and the CSRF token it answers with.
ORIGIN=https://keywarden.localhost
TICKET="$(api POST /api/v1/admin/enrolment-tickets "$ADMIN" "{\"person_id\":\"$(cat "$WORK/person-cy")\"}" | jq -r .secret)"
CSRF="$(curl -sS --fail-with-body -c "$WORK/cookies" -X POST "$URL/api/v1/me/session/ticket" \
  -H "origin: $ORIGIN" -H "content-type: application/json" --data "{\"ticket\":\"$TICKET\"}" | jq -r .csrf)"
SESSION="$(awk '$6 == "kw_session" { print $7 }' "$WORK/cookies")"
# Things for the generated requests to find, so that they get past "not found" to the
# handlers' work (given as the ids of path parameters and of person_id in bodies, beside generated
# ones, in a configuration written below): eve and fay, two people nobody's credential belongs
# to, so a run may change or remove them; a group, a population, an exception, a spare token.
for who in eve fay; do
  CT=application/scim+json api POST /scim/v2/Users "$SCIM" \
    "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"$who@example.com\",\"displayName\":\"$who\",\"active\":true,\"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\":{\"department\":\"Eng\"}}" \
    | jq -r .id >"$WORK/person-$who"
done
EVE="$(cat "$WORK/person-eve")" FAY="$(cat "$WORK/person-fay")"
GROUP="$(CT=application/scim+json api POST /scim/v2/Groups "$SCIM" \
  "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:Group\"],\"displayName\":\"Contractors\",\"members\":[{\"value\":\"$EVE\"}]}" | jq -r .id)"
api PUT /api/v1/admin/populations/contractors "$ADMIN" \
  '{"priority":1,"selector":{"kind":"group","value":"contractors"},"policy":{"min_authenticators":2}}' >/dev/null
EXCEPTION="$(api POST /api/v1/admin/exceptions "$ADMIN" "{\"person_id\":\"$FAY\",\"owner\":\"it-lead\",\"reason\":\"key on order\",\"days\":7}" | jq -r .id)"
SPARE_TOKEN="$(api POST /api/v1/admin/tokens "$ADMIN" "{\"role\":\"auditor\",\"label\":\"contract spare\",\"person_id\":\"$EVE\"}" | jq -r .id)"
for v in "$EVE" "$FAY" "$GROUP" "$EXCEPTION" "$SPARE_TOKEN"; do [[ "$v" =~ ^[0-9a-f-]{36}$ ]] || { echo "set-up: no id ($v)" >&2; exit 1; }; done
# The checks and per-operation settings, plus where each known id goes (half the time).
CONFIG="$WORK/schemathesis.toml"
cp "$HERE/schemathesis.toml" "$CONFIG"
cat >>"$CONFIG" <<TOML

[dictionaries.person_ids]
values = ["$EVE", "$FAY"]
[parameters]
"body.person_id" = { dictionary = "person_ids", probability = 0.5 }
TOML
# known NAME PATH-REGEX PARAMETER VALUE...: the path parameter of the operations matched takes
# one of the values half the time.
known() {
  local name="$1" re="$2" param="$3" values
  shift 3
  values="$(printf '"%s", ' "$@")"
  cat >>"$CONFIG" <<TOML

[dictionaries.$name]
values = [${values%, }]
[[operations]]
include-path-regex = '$re'
parameters = { "path.$param" = { dictionary = "$name", probability = 0.5 } }
TOML
}
known people '^/api/v1/admin/(people|staff)/\{id\}' id "$EVE" "$FAY"
known scim_users '^/scim/v2/Users/\{id\}$' id "$EVE" "$FAY"
known scim_groups '^/scim/v2/Groups/\{id\}$' id "$GROUP"
known populations '^/api/v1/admin/populations/\{name\}' name contractors
known exceptions '^/api/v1/admin/exceptions/\{id\}$' id "$EXCEPTION"
known tokens '^/api/v1/admin/tokens/\{id\}$' id "$SPARE_TOKEN"
for t in "$SCIM" "$HELPDESK" "$AUDITOR"; do [[ "$t" == kwa_* ]] || { echo "set-up: no token" >&2; exit 1; }; done
[[ "$SESSION" == kws_* && "$CSRF" =~ ^[0-9a-f]{64}$ ]] || { echo "set-up: no self-service session" >&2; exit 1; }

# --- The runs ----------------------------------------------------------------------------------
SEED_ARGS=()
[ "$SEED" = random ] || SEED_ARGS=(--seed "$SEED")
echo "not run with a real credential (no signature or browser session can be made here):"
printf '  %s\n' "${NO_REAL_CREDENTIAL[@]}"

failed_runs=0
# st NAME ARGS...: one Schemathesis run, its JUnit report kept for the count.
st() {
  local name="$1"
  shift
  say "schemathesis: $name"
  # From the throwaway folder: Schemathesis keeps a cache of failures to replay in the current
  # folder, and each run here starts from nothing.
  if ! (cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$CONFIG" run "$URL/openapi.json" --no-color \
    --phases examples,coverage,fuzzing --max-examples "$EXAMPLES" "${SEED_ARGS[@]}" \
    --generation-database none --workers 2 \
    --report junit --report-junit-path "$WORK/junit-$name.xml" "$@"); then
    failed_runs=$((failed_runs + 1))
  fi
}

bearer() { printf 'Authorization: Bearer %s' "$1"; }
st admin -H "$(bearer "$ADMIN")" --generation-with-security-parameters false \
  --include-path-regex '^/api/v1/admin/|^/healthz$|^/openapi\.json$|^/api/v1/webhook-key$'
st helpdesk -H "$(bearer "$HELPDESK")" --generation-with-security-parameters false \
  --include-path-regex '^/api/v1/admin/'
st auditor -H "$(bearer "$AUDITOR")" --generation-with-security-parameters false \
  --include-path-regex '^/api/v1/admin/'
st scim -H "$(bearer "$SCIM")" --generation-with-security-parameters false \
  --include-path-regex '^/scim/v2/'
st pages -H "origin: $ORIGIN" -H "cookie: kw_session=$SESSION" -H "x-keywarden-csrf: $CSRF" \
  --generation-with-security-parameters false --include-path-regex '^/api/v1/(me|console/setup)(/|$)'
st nobody

if [ "$failed_runs" -gt 0 ]; then
  say "the service's log: panics and errors (first 40 lines)"
  grep -aE 'panicked|ERROR' "$WORK/service.log" | head -40 || true
fi

# One line for the closing total: each operation of each run passed or failed.
shopt -s nullglob
read -r passed failed < <("$VENV/bin/python" - "$WORK"/junit-*.xml <<'EOF'
import sys
import xml.etree.ElementTree as ET
passed = failed = 0
for path in sys.argv[1:]:
    for case in ET.parse(path).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is None:
            passed += 1
print(passed, failed)
EOF
)
# A run that failed without a failing operation (it could not start, say) still fails.
if [ "$failed_runs" -gt 0 ] && [ "$failed" = 0 ]; then failed=$failed_runs; fi
echo "contract: $passed passed, $failed failed"
[ "$failed" = 0 ]
