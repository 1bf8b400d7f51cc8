# A throwaway PostgreSQL cluster for the service tests and benchmarks: its own temp data folder,
# its own port on 127.0.0.1 and unix socket folder, trust auth, stopped by stop_test_postgres
# (callers set a trap). Sourced after scripts/lib.sh. PostgreSQL refuses to run as root, so as
# root the cluster runs as the `postgres` user that Debian's package creates.
# start_test_postgres [fast]: "fast" turns fsync off (tests only, never for benchmarks).
# Exports KEYWARDEN_TEST_POSTGRES_URL, or leaves it unset and says why when PostgreSQL cannot be had.

start_test_postgres() {
  local mode="${1:-}"
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    ensure_apt "${PG_PKGS[@]}" || true
  fi
  local bin
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "PostgreSQL could not be installed (no initdb)" >&2
    return 0
  fi
  PG_TMP="$(mktemp -d /tmp/keywarden-pg.XXXXXX)"
  local run=()
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/false postgres
    chown postgres "$PG_TMP"
    run=(runuser -u postgres --)
  fi
  PG_RUN=("${run[@]}")
  PG_BIN="$bin"
  "${run[@]}" "$bin/initdb" -D "$PG_TMP/data" -U postgres --auth=trust -E UTF8 --no-sync >"$PG_TMP/initdb.log" 2>&1 \
    || { cat "$PG_TMP/initdb.log" >&2; return 1; }
  local port opts
  for _ in 1 2 3 4 5; do
    port=$(( 20000 + RANDOM % 20000 ))
    opts="-p $port -k $PG_TMP -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB"
    [ "$mode" = fast ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    if "${run[@]}" "$bin/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -o "$opts" -w -t 30 start >/dev/null 2>&1; then
      export KEYWARDEN_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
      say "throwaway PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $PG_TMP)"
      return 0
    fi
  done
  cat "$PG_TMP/server.log" >&2 || true
  echo "could not start the throwaway PostgreSQL" >&2
  return 1
}

stop_test_postgres() {
  if [ -n "${PG_TMP:-}" ] && [ -d "$PG_TMP/data" ]; then
    "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_TMP"
  fi
  PG_TMP=""
}
