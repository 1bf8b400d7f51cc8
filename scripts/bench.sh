#!/usr/bin/env bash
# Service benchmarks on SQLite and on a throwaway PostgreSQL (fsync on). Prints rates, latencies
# and ratios against a same-run baseline; asserts nothing about time. KEYWARDEN_BENCH_SCALE=0.1
# for a quick run.
#   service      signed report ingest vs a bare batch insert, sustained signed check-ins over
#                loopback with p50/p99, the coverage report over 100,000 and 1,000,000 people x 3
#                credentials against a recompute, the console overview over 100,000 people
#   offboarding  time-to-revoke: 1,000 offboardings over SCIM with a real IdP webhook receiver on
#                loopback, p50/p99 to committed and to acknowledged; then as many again under a
#                flood of guessed provisioning tokens from 64 loopback addresses
#   load         2,000 simulated laptops against the service as its own process over loopback:
#                check-ins on a schedule, then catching up after an outage (all at once, and
#                spread as the agent's jitter spreads them): p50/p99, refusals, the service's
#                memory, reports sent against stored
# Usage: scripts/bench.sh [service] [offboarding] [load]   (no name: all three)
source "$(dirname "$0")/lib.sh"
benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(service offboarding load)
for b in "${benches[@]}"; do
  case "$b" in
    service|offboarding|load) ;;
    *) echo "unknown benchmark '$b': choose service, offboarding or load" >&2; exit 2 ;;
  esac
done
ensure_apt "${BUILD_PKGS[@]}"
ensure_rust
source "$ROOT/scripts/postgres.sh"
trap stop_test_postgres EXIT
start_test_postgres
export KEYWARDEN_BENCH_POSTGRES_URL="${KEYWARDEN_TEST_POSTGRES_URL:-}"
[ -n "$KEYWARDEN_BENCH_POSTGRES_URL" ] || unset KEYWARDEN_BENCH_POSTGRES_URL
for b in "${benches[@]}"; do
  cargo bench --locked -p keywarden-server --bench "$b"
done
