#!/usr/bin/env bash
# Service benchmarks on SQLite and on a throwaway PostgreSQL (fsync on): signed report ingest
# vs a bare batch insert, sustained signed check-ins over loopback with p50/p99, and the
# coverage report over 100,000 people x 3 credentials. Prints rates and ratios; asserts
# nothing about time. KEYWARDEN_BENCH_SCALE=0.1 for a quick run.
source "$(dirname "$0")/lib.sh"
ensure_apt "${BUILD_PKGS[@]}"
ensure_rust
source "$ROOT/scripts/postgres.sh"
trap stop_test_postgres EXIT
start_test_postgres
export KEYWARDEN_BENCH_POSTGRES_URL="${KEYWARDEN_TEST_POSTGRES_URL:-}"
[ -n "$KEYWARDEN_BENCH_POSTGRES_URL" ] || unset KEYWARDEN_BENCH_POSTGRES_URL
cargo bench --locked -p keywarden-server --bench service
