#!/usr/bin/env bash
# Time-to-revoke benchmark: 1,000 offboardings over SCIM on SQLite and on a throwaway
# PostgreSQL (fsync on), with a real IdP webhook receiver on loopback. Prints p50/p99 to
# committed and to acknowledged against the targets and a same-run baseline; asserts nothing
# about time. KEYWARDEN_BENCH_SCALE=0.1 for a quick run.
source "$(dirname "$0")/lib.sh"
ensure_apt "${BUILD_PKGS[@]}"
ensure_rust
source "$ROOT/scripts/postgres.sh"
trap stop_test_postgres EXIT
start_test_postgres
export KEYWARDEN_BENCH_POSTGRES_URL="${KEYWARDEN_TEST_POSTGRES_URL:-}"
[ -n "$KEYWARDEN_BENCH_POSTGRES_URL" ] || unset KEYWARDEN_BENCH_POSTGRES_URL
cargo bench --locked -p keywarden-server --bench offboarding
