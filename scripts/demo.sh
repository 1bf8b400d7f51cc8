#!/usr/bin/env bash
# The demo: a Keywarden service on embedded SQLite in a fresh data folder, a small sample
# organisation from the HR feed (SCIM), a laptop provisioned, a sample person enrolling a primary
# and a backup key, the agent reporting, and what an admin then sees. No security key is plugged
# in here, so two software keys (test/demo) stand in, and everything says so. A newcomer's
# enrolment link to the self-service pages, where laptop and phone passkeys are added in the
# browser. Last, the web console is served at a printed address with the first admin's one-time
# setup link, until Ctrl-C; `scripts/demo.sh --no-serve` stops at the end instead (for scripts).
source "$(dirname "$0")/lib.sh"

ensure_apt "${BUILD_PKGS[@]}"
ensure_rust
say "building keywarden-server and keywarden (the agent CLI)"
cargo build --quiet --locked -p keywarden-server -p keywarden-cli
BIN="$CARGO_TARGET_DIR/debug"

WORK="$(mktemp -d -t keywarden-demo.XXXXXX)"
SERVER_LOG="$WORK/server.log"
cleanup() { [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# Browsers allow passkeys on plain HTTP only for localhost, and the page's origin must be the
# relying party's: the service is the relying party `localhost` on a free local port.
PORT=""
for p in $(seq 18443 18543); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT="$p"; break; fi
done
[ -n "$PORT" ] || { echo "no free local port in 18443-18543" >&2; exit 1; }
say "starting keywarden-server on SQLite in $WORK/service"
"$BIN/keywarden-server" --data-dir "$WORK/service" --listen "127.0.0.1:$PORT" \
  --rp-id localhost --origin "http://localhost:$PORT" \
  --admin-token-file "$WORK/admin-token" >"$WORK/server.out" 2>"$SERVER_LOG" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  URL="$(sed -n 's/^listening on //p' "$WORK/server.out" 2>/dev/null | head -1)"
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$SERVER_LOG" >&2; exit 1; }
  sleep 0.1
done
[ -n "$URL" ] || { echo "service did not start" >&2; cat "$SERVER_LOG" >&2; exit 1; }
echo "service at $URL (first-start admin token in $WORK/admin-token, mode 0600, shown nowhere else)"
TOKEN="$(cat "$WORK/admin-token")"
api() { curl -fsS -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }

say "HR feed (SCIM): a small sample organisation"
SCIM_TOKEN="$(api -X POST "$URL/api/v1/admin/tokens" -d '{"role":"scim","label":"demo HR feed"}' | jq -r .token)"
ENTERPRISE="urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
hr_person() { # user name, display name, department -> id
  curl -fsS -H "Authorization: Bearer $SCIM_TOKEN" -H 'content-type: application/scim+json' \
    -X POST "$URL/scim/v2/Users" \
    -d "$(jq -n --arg u "$1" --arg d "$2" --arg dep "$3" --arg ext "$ENTERPRISE" \
      '{schemas: ["urn:ietf:params:scim:schemas:core:2.0:User", $ext], userName: $u, displayName: $d, active: true} + {($ext): {department: $dep}}')" |
    jq -r .id
}
PERSON_ID="$(hr_person ada.lovelace@example.com "Ada Lovelace" Engineering)"
for who in "linus.t@example.com|Linus Torvalds|Engineering" "margaret.h@example.com|Margaret Hamilton|Engineering" \
  "alan.t@example.com|Alan Turing|Operations" "barbara.l@example.com|Barbara Liskov|Finance" \
  "katherine.j@example.com|Katherine Johnson|Finance"; do
  IFS='|' read -r u d dep <<<"$who"
  echo "person $(hr_person "$u" "$d" "$dep"): $d <$u> ($dep)"
done
echo "person $PERSON_ID: Ada Lovelace <ada.lovelace@example.com> (Engineering)"
say "admin: Engineering needs keys on two kinds of device (a security key and a laptop or phone passkey)"
api -X PUT "$URL/api/v1/admin/populations/engineering" -d '{"priority": 10,
  "selector": {"kind": "attribute", "key": "department", "value": "Engineering"},
  "policy": {"min_authenticators": 2, "min_device_classes": 2, "attestation_optional_for": ["platform", "phone"]}}' |
  jq -r '"population \(.name): \(.policy.min_authenticators) authenticators on \(.policy.min_device_classes) kinds of device"'

say "IT: issue a one-time provisioning token and provision this laptop"
PROV="$(api -X POST "$URL/api/v1/admin/provisioning-tokens" -d '{}' | jq -r .secret)"
export KEYWARDEN_HOME="$WORK/laptop"
SOFT=(--no-hid --soft-key "$WORK/keys/primary.json" --soft-key "$WORK/keys/backup.json")
"$BIN/keywarden" provision --server "$URL" --token "$PROV"

say "agent: keys this laptop sees"
"$BIN/keywarden" "${SOFT[@]}" keys
PRIMARY="$("$BIN/keywarden" "${SOFT[@]}" --json keys 2>/dev/null | jq -r '.[0].id')"
BACKUP="$("$BIN/keywarden" "${SOFT[@]}" --json keys 2>/dev/null | jq -r '.[1].id')"

say "admin: trust the software keys' attestation roots (demo only: real keys chain to their vendor's root from the FIDO metadata, keywarden-server load-mds)"
for k in primary backup; do
  jq -r .attestation.ca_cert_pem "$WORK/keys/$k.json" >"$WORK/keys/$k-root.pem"
  api -X POST "$URL/api/v1/admin/trust-anchors" \
    -d "$(jq -n --rawfile pem "$WORK/keys/$k-root.pem" --arg name "software key (test/demo) root: $k" '{pem: $pem, label: $name}')" |
    jq -r '"trusted root \(.fingerprint[0:16])…  \(.label)  [\(.subject)]"'
done

say "agent: first report (posture + key inventory)"
"$BIN/keywarden" "${SOFT[@]}" report

say "IT: issue a one-time enrolment ticket for Ada (expires in 10 minutes)"
TICKET="$(api -X POST "$URL/api/v1/admin/enrolment-tickets" -d "{\"person_id\":\"$PERSON_ID\"}" | jq -r .secret)"

say "Ada: enrol a primary and a backup key (the keys have no PIN yet; the demo sets 2468-1357)"
echo "2468-1357" | "$BIN/keywarden" "${SOFT[@]}" enrol --ticket "$TICKET" --key "$PRIMARY" --key "$BACKUP" --pin-stdin

say "agent: report again"
"$BIN/keywarden" "${SOFT[@]}" report

say "what an admin sees"
echo "-- people"
api "$URL/api/v1/admin/people" | jq -r '.[] | "\(.display_name) <\(.user_name)>  active=\(.active)  authenticators=\(.active_authenticators)"'
echo "-- credentials"
api "$URL/api/v1/admin/credentials" | jq -r '.[] | "\(.id[0:16])…  aaguid \(.aaguid)  model \(.model // "unknown")  attestation \(.attestation_format)/\(.attestation_type)  \(if .software_key then "SOFTWARE KEY (test/demo)" else "hardware" end)  status \(.status)"'
echo "-- devices"
api "$URL/api/v1/admin/devices" | jq -r '.[] | "\(.hostname) (\(.id)): \(.report_count) report(s), \(.keys | length) key(s) seen"'
echo "-- posture of the laptop (latest report)"
api "$URL/api/v1/admin/devices" | jq -r '.[0].posture | to_entries[] | select(.value | type == "object" and has("state")) |
  if .value.state == "known" then "  \(.key): \(.value.value | if type == "array" then "\(length) item(s)" else tostring end)\(if .value.detail then "  (\(.value.detail))" else "" end)"
  else "  \(.key): UNKNOWN — \(.value.reason)" end'
echo "-- trust anchors (roots attestation chains must lead to) and FIDO metadata freshness"
api "$URL/api/v1/admin/trust-anchors" | jq -r '(.mds // {} | if .blob_no then "FIDO metadata blob \(.blob_no), next update \(.next_update)\(if .stale then "  STALE: load the current blob" else "" end)" else "FIDO metadata: none loaded" end),
  (.anchors[] | "\(.fingerprint[0:16])…  \(.source)  \(.label)")'
echo "-- enrolment evidence kept for auditors (first credential)"
CRED="$(api "$URL/api/v1/admin/credentials" | jq -r '.[0].id')"
api "$URL/api/v1/admin/credentials/$CRED/evidence" | jq '{challenge, rp_id, origin, verification, attestation_object_bytes: (.attestation_object | length), client_data_json_bytes: (.client_data_json | length)}'

say "a newcomer: Grace gets an enrolment link to the self-service pages (laptop and phone passkeys)"
GRACE_ID="$(hr_person grace.hopper@example.com "Grace Hopper" Engineering)"
LINK="$(api -X POST "$URL/api/v1/admin/enrolment-tickets" -d "{\"person_id\":\"$GRACE_ID\"}" | jq -r .web_link)"
curl -fsS -o /dev/null "http://localhost:$PORT/me" && echo "self-service pages: http://localhost:$PORT/me"
echo "Grace's one-time enrolment link (valid 10 minutes; open it in a browser on this machine):"
echo "  $LINK"
echo
echo "Keywarden console (admins, help desk, auditors): http://localhost:$PORT/console"
echo "The first admin's one-time setup link (from the service's data folder, mode 0600; works once, for 24 hours;"
echo "open it in a browser on this machine and create a passkey there):"
echo "  $(cat "$WORK/service/console-setup-link")"
if [ "${1:-}" = "--no-serve" ]; then
  say "demo done (data in $WORK; the service stops now)"
else
  say "serving at http://localhost:$PORT until Ctrl-C (data in $WORK; scripts/demo.sh --no-serve stops here instead)"
  wait "$SERVER_PID"
fi
