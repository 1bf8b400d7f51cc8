#!/usr/bin/env bash
# Every test: formatting and lints, generated TypeScript bindings current, UI unit tests, the
# Rust unit and integration tests, and the end-to-end tests that run the real service binary,
# the real agent binary, and the real desktop app in a real window (Xvfb + WebDriver).
#
# The service tests run on SQLite and on PostgreSQL (a throwaway cluster this script starts).
# Without PostgreSQL they fail. KEYWARDEN_TEST_SKIP_POSTGRES=1 skips the PostgreSQL half on
# purpose: each skipped test says so on the terminal, and the closing line counts it as skipped.
source "$(dirname "$0")/lib.sh"
START=$(date +%s)

ensure_apt "${BUILD_PKGS[@]}" "${GUI_PKGS[@]}" "${ADMIN_UI_PKGS[@]}" "${PDF_PKGS[@]}" "${PACKAGING_PKGS[@]}" "${REALHID_PKGS[@]}"
ensure_rust
if ! command -v tauri-driver >/dev/null; then
  say "installing tauri-driver (WebDriver bridge for the desktop app)"
  cargo install --quiet --locked tauri-driver --version '^2'
fi
export PATH="$HOME/.cargo/bin:$PATH"

build_ui
# Playwright and axe-core for the self-service page tests (Debian's chromium is the browser).
ensure_npm_deps tests/browser
# The OpenAPI contract check (validator, openapi-typescript, tsc), run by the e2e tests.
ensure_npm_deps tests/openapi
say "UI unit tests"
# Counted from Vitest's JSON report, not its coloured summary line (which escapes a pattern in
# some terminals): the closing line's numbers are the same everywhere.
UI_JSON="$(mktemp)"
(cd ui && npm test --silent -- --reporter=default --reporter=json --outputFile.json="$UI_JSON")
UI_LOG="$(mktemp)"
jq -r '"vitest: \(.numPassedTests) passed, \(.numFailedTests) failed, \(.numPendingTests + .numTodoTests) skipped"' "$UI_JSON" | tee "$UI_LOG"
rm -f "$UI_JSON"

say "generated TypeScript bindings are current"
cargo test --quiet --locked -p keywarden-protocol --features ts >/dev/null
if git rev-parse --git-dir >/dev/null 2>&1; then
  if [ -n "$(git status --porcelain -- ui/src/bindings)" ]; then
    git status --short -- ui/src/bindings
    echo "ui/src/bindings is stale: commit the regenerated files" >&2
    exit 1
  fi
fi

say "the console's script is built from its TypeScript"
(cd ui && npm run --silent build:console)
if git rev-parse --git-dir >/dev/null 2>&1; then
  if [ -n "$(git status --porcelain -- crates/server/src/console/assets)" ]; then
    git status --short -- crates/server/src/console/assets
    echo "crates/server/src/console/assets/console.js is stale: commit the rebuilt file (cd ui && npm run build:console)" >&2
    exit 1
  fi
fi

say "format and lints"
cargo fmt --all -- --check
cargo clippy --quiet --locked --workspace --all-targets -- -D warnings

say "building every binary"
cargo build --quiet --locked --workspace --bins

# --- PostgreSQL (service tests) ----------------------------------------------------------
# The service test suite runs on SQLite and on PostgreSQL: a throwaway cluster of our own (temp
# data folder, own port, fsync off), installed from Debian's packages when absent, exported as
# KEYWARDEN_TEST_POSTGRES_URL and stopped when this script exits. Each test creates its own
# database in it. Without it they fail, unless KEYWARDEN_TEST_SKIP_POSTGRES=1 skips them on
# purpose; each skipped test appends its name to $KEYWARDEN_TEST_SKIP_LOG, counted at the end.
export KEYWARDEN_TEST_SKIP_LOG="$(mktemp)"
if [ "${KEYWARDEN_TEST_SKIP_POSTGRES:-}" = 1 ]; then
  unset KEYWARDEN_TEST_POSTGRES_URL
  say "PostgreSQL SKIPPED on purpose (KEYWARDEN_TEST_SKIP_POSTGRES=1): the service tests run on SQLite only"
else
  source "$ROOT/scripts/postgres.sh"
  trap stop_test_postgres EXIT
  start_test_postgres fast
  if [ -z "${KEYWARDEN_TEST_POSTGRES_URL:-}" ]; then
    echo "no PostgreSQL for the service tests; set KEYWARDEN_TEST_SKIP_POSTGRES=1 to skip them on purpose" >&2
    exit 1
  fi
fi
# -------------------------------------------------------------------------------------------

say "Rust tests (end-to-end tests use a virtual display)"
# The service processes the end-to-end tests and the service's own tests start (replicas, TLS,
# signing keys) log at debug level into this folder, which is searched for secrets afterwards.
export KEYWARDEN_TEST_LOG_DIR="$(mktemp -d)"
RUST_LOG_FILE="$(mktemp)"
xvfb-run -a -s "-screen 0 1280x900x24" cargo test --locked --workspace 2>&1 | tee "$RUST_LOG_FILE"

# Fuzz smoke pass: every cargo-fuzz target (fuzz/, nightly, installed when missing) for a few
# seconds from its committed seeds; scripts/fuzz.sh runs them longer. Each target counts as one
# test in the closing line; a crash is counted as failed and fails the run at the end.
FUZZ_LOG="$(mktemp)"
if ! "$ROOT/scripts/fuzz.sh" "${KEYWARDEN_FUZZ_SMOKE_SECONDS:-3}" 2>&1 | tee "$FUZZ_LOG"; then
  grep -q '^fuzz: [0-9]* passed, [0-9]* failed$' "$FUZZ_LOG" || { echo "the fuzz smoke pass did not run" >&2; exit 1; }
fi

# Type check for Windows and macOS (scripts/cross-check.sh): the protocol, posture, keys and
# agent crates with `cargo check --target`; what cannot be checked here is skipped, said and
# counted, never failed. Each check counts as one test in the closing line.
say "type check for Windows and macOS"
CROSS_LOG="$(mktemp)"
if ! "$ROOT/scripts/cross-check.sh" 2>&1 | tee "$CROSS_LOG"; then
  grep -q '^cross-check: [0-9]* passed, [0-9]* failed, [0-9]* skipped$' "$CROSS_LOG" || { echo "the cross-target check did not run" >&2; exit 1; }
fi

# Contract tests: Schemathesis (from PyPI, into tests/contract/.venv) over the served OpenAPI
# document against a fresh service with real tokens; see tests/contract/run.sh.
python3 -c 'import venv, ensurepip' 2>/dev/null || ensure_apt python3 python3-venv
say "contract tests: Schemathesis over the served OpenAPI document"
CONTRACT_LOG="$(mktemp)"
"$ROOT/tests/contract/run.sh" 2>&1 | tee "$CONTRACT_LOG"

# Real-HID tests in a guest: the agent's hid backend and CLI against virtual USB FIDO keys
# (keywarden-softkey over /dev/uhid) inside a throwaway QEMU guest, since this kernel has no
# uhid/hidraw. Alone: scripts/realhid.sh. The guest is built once into ~/.cache/keywarden/realhid.
REALHID_LOG="$(mktemp)"
"$ROOT/scripts/realhid.sh" --no-build 2>&1 | tee "$REALHID_LOG"

say "packaging: build the .deb and .rpm, install the .deb here, check it, remove it"
PKG_LOG="$(mktemp)"
"$ROOT/scripts/package.sh" --debug >/dev/null
BUNDLE="$CARGO_TARGET_DIR/debug/bundle"
"$ROOT/tests/packaging/install-deb.sh" "$BUNDLE"/deb/*.deb "$BUNDLE"/rpm/*.rpm | tee "$PKG_LOG"

say "no secret in what the service printed or logged"
SECRETS_LOG="$(mktemp)"
"$ROOT/tests/secrets/scan.sh" "$KEYWARDEN_TEST_LOG_DIR" | tee "$SECRETS_LOG"
rm -rf "$KEYWARDEN_TEST_LOG_DIR"

# One closing line over every runner: cargo's per-binary summaries (ignored tests count as
# skipped), Vitest's, packaging's, the contract runs', the real-HID guest's, the fuzz smoke
# pass's, the cross-target check's and the secrets search's.
read -r passed failed skipped < <(awk '
  /^test result: / { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
  /^vitest: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$/ { p += $2; f += $4; s += $6 }
  /^packaging: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
  /^contract: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
  /^realhid: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
  /^secrets: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
  /^fuzz: [0-9]+ passed, [0-9]+ failed$/ { p += $2; f += $4 }
  /^cross-check: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$/ { p += $2; f += $4; s += $6 }
  END { print p + 0, f + 0, s + 0 }' "$RUST_LOG_FILE" "$UI_LOG" "$PKG_LOG" "$CONTRACT_LOG" "$REALHID_LOG" "$SECRETS_LOG" "$FUZZ_LOG" "$CROSS_LOG")
# A test skipped on purpose (PostgreSQL) returns early, so cargo counted it as passed: it is
# moved from "passed" to "skipped".
pg_skipped=$(wc -l <"$KEYWARDEN_TEST_SKIP_LOG")
passed=$(( passed - pg_skipped ))
skipped=$(( skipped + pg_skipped ))
rm -f "$RUST_LOG_FILE" "$UI_LOG" "$PKG_LOG" "$CONTRACT_LOG" "$REALHID_LOG" "$SECRETS_LOG" "$FUZZ_LOG" "$CROSS_LOG" "$KEYWARDEN_TEST_SKIP_LOG"
if [ "$failed" -gt 0 ]; then
  say "tests FAILED after $(( $(date +%s) - START )) s"
  echo "total: $passed passed, $failed failed, $skipped skipped"
  exit 1
fi
say "all tests passed in $(( $(date +%s) - START )) s"
echo "total: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
