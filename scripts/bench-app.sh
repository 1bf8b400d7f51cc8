#!/usr/bin/env bash
# Benchmark of the desktop app and the headless agent, beside a bare Tauri hello-world window
# built and measured in the same run (scripts/bench/hello). Reports, never asserts:
#   - start to first paint (ms, median of RUNS) of the app and of the hello-world;
#   - idle memory after IDLE_SECONDS, RSS and PSS summed over each process and its children
#     (WebKitWebProcess, WebKitNetworkProcess): the app with its window open, the hello-world,
#     and the tray (`keywarden-tray`, what login starts: background check-in and a tray icon,
#     no GTK, no web view) with its icon registered on a private session bus with a
#     StatusNotifierWatcher, as in a desktop session; each measured alone;
#   - the headless agent (`keywarden run`): RSS and CPU over the idle period.
# Targets (from the issue): agent <= 20 MB RSS and < 0.1 % CPU; tray <= 40 MB in all; window
# open <= 1.2x the hello-world's PSS.
#
# Usage: scripts/bench-app.sh            (IDLE_SECONDS=60 RUNS=3 PROFILE=release by default)
# The page cache is warm after the build, so "start" is a warm start.
source "$(dirname "$0")/lib.sh"

IDLE_SECONDS="${IDLE_SECONDS:-60}"
RUNS="${RUNS:-3}"
PROFILE="${PROFILE:-release}"
case "$PROFILE" in dev) OUT_DIR="$CARGO_TARGET_DIR/debug" ;; *) OUT_DIR="$CARGO_TARGET_DIR/$PROFILE" ;; esac

if [ -z "${DISPLAY:-}" ]; then
  ensure_apt "${BUILD_PKGS[@]}" "${GUI_PKGS[@]}"
  exec xvfb-run -a -s "-screen 0 1280x900x24" "$0" "$@"
fi
ensure_rust

build_ui
say "building the app and the agent ($PROFILE)"
cargo build --quiet --locked --profile "$PROFILE" -p keywarden-app -p keywarden-cli -p keywarden-tray
say "building the bare Tauri hello-world ($PROFILE, same tauri as the app)"
HELLO_SRC="$(mktemp -d)"
WORK="$(mktemp -d)"
cleanup() {
  for g in ${GROUPS_TO_STOP:-} ${BUS_GROUPS:-}; do kill -s TERM -- "-$g" 2>/dev/null || true; done
  rm -rf "$HELLO_SRC" "$WORK"
}
trap cleanup EXIT
cp -r scripts/bench/hello/. "$HELLO_SRC/"
cp Cargo.lock "$HELLO_SRC/"
cp -r src-tauri/icons "$HELLO_SRC/icons"
(cd "$HELLO_SRC" && cargo build --quiet --offline --profile "$PROFILE")

APP="$OUT_DIR/keywarden-app"
AGENT="$OUT_DIR/keywarden"
TRAY="$OUT_DIR/keywarden-tray"
HELLO="$OUT_DIR/bench-hello"
export KEYWARDEN_MANAGED_CONFIG="$WORK/no-managed.json"

# Every descendant of a pid, the pid first.
tree() {
  local all=("$1") i=0
  while [ $i -lt ${#all[@]} ]; do
    local kids
    kids=$(ps -o pid= --ppid "${all[$i]}" 2>/dev/null || true)
    for k in $kids; do all+=("$k"); done
    i=$((i + 1))
  done
  echo "${all[@]}"
}

# "RSS_kB PSS_kB" summed over a process tree.
mem() {
  local rss=0 pss=0
  for p in $(tree "$1"); do
    if [ -r "/proc/$p/smaps_rollup" ]; then
      read -r r s < <(awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} END {print r+0, p+0}' "/proc/$p/smaps_rollup")
      rss=$((rss + r)); pss=$((pss + s))
    fi
  done
  echo "$rss $pss"
}

# Start "$@" in its own process group with its own agent home; prints its pid.
start() {
  local home="$WORK/home-$RANDOM$RANDOM"
  mkdir -p "$home"
  KEYWARDEN_HOME="$home" KEYWARDEN_BENCH_PAINT=1 setsid "$@" >/dev/null 2>"$home.err" &
  echo "$!"
}

stop() { kill -s TERM -- "-$1" 2>/dev/null || true; sleep 0.3; kill -s KILL -- "-$1" 2>/dev/null || true; }

# Milliseconds from spawn to the page's first painted frame.
paint_ms() {
  local home="$WORK/paint-$RANDOM$RANDOM" t0 pid line
  mkdir -p "$home"
  t0=$(date +%s%3N)
  KEYWARDEN_HOME="$home" KEYWARDEN_BENCH_PAINT=1 setsid "$@" >/dev/null 2>"$home.err" &
  pid=$!
  for _ in $(seq 1 300); do
    line=$(grep -o 'first-paint-unix-ms [0-9]*' "$home.err" 2>/dev/null || true)
    [ -n "$line" ] && break
    sleep 0.1
  done
  stop "$pid"
  wait "$pid" 2>/dev/null || true
  if [ -z "$line" ]; then echo "NA"; else echo $(( ${line##* } - t0 )); fi
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : "NA")}'; }

say "start to first paint, $RUNS runs each"
app_runs="" hello_runs=""
for _ in $(seq 1 "$RUNS"); do
  app_runs+=" $(paint_ms "$APP")"
  hello_runs+=" $(paint_ms "$HELLO")"
done
APP_PAINT=$(echo "$app_runs" | median)
HELLO_PAINT=$(echo "$hello_runs" | median)
echo "app:   $app_runs ms"
echo "hello: $hello_runs ms"

# Each subject idles alone: measured side by side, processes that map the same WebKit and GTK
# libraries split those pages between them, and each one's PSS would look smaller than it is.
# idle_alone NAME CMD...: start, idle IDLE_SECONDS, then set NAME_RSS, NAME_PSS, NAME_PROCS
# (and NAME_CPU, the process's CPU share over the idle period), then stop it.
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
idle_alone() {
  local name="$1"; shift
  local pid t0 t1 s0 s1 rss pss
  pid=$(start "$@")
  GROUPS_TO_STOP="$pid"
  # CPU is counted from when it has started, over the idle period.
  sleep 2
  t0=$(ticks "$pid"); s0=$(date +%s%3N)
  sleep "$IDLE_SECONDS"
  t1=$(ticks "$pid"); s1=$(date +%s%3N)
  read -r rss pss < <(mem "$pid")
  printf -v "${name}_RSS" '%s' "$rss"
  printf -v "${name}_PSS" '%s' "$pss"
  printf -v "${name}_PROCS" '%s' "$(tree "$pid" | wc -w)"
  printf -v "${name}_CPU" '%s' "$(awk -v t=$((t1 - t0)) -v hz="$HZ" -v ms=$((s1 - s0)) 'BEGIN {printf "%.3f", 100 * t / hz / (ms / 1000)}')"
  stop "$pid"
  GROUPS_TO_STOP=""
}

# The tray as in a desktop session: a session bus with a StatusNotifierWatcher (the desktop's
# tray) on it, so its icon and menu are registered while it is measured. The bus and the
# watcher are not counted: the desktop runs them anyway.
start_bus() {
  setsid dbus-daemon --session --nofork --print-address=1 >"$WORK/bus.addr" 2>/dev/null &
  BUS_GROUPS="$!"
  for _ in $(seq 1 100); do [ -s "$WORK/bus.addr" ] && break; sleep 0.05; done
  export DBUS_SESSION_BUS_ADDRESS="$(head -n1 "$WORK/bus.addr")"
  setsid status-notifier-watcher >/dev/null 2>&1 &
  BUS_GROUPS+=" $!"
  sleep 0.5
}
tray_registered() {
  gdbus call --session -d org.kde.StatusNotifierWatcher -o /StatusNotifierWatcher \
    -m org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierWatcher RegisteredStatusNotifierItems 2>/dev/null |
    grep -q StatusNotifierItem && echo yes || echo no
}

say "idle for $IDLE_SECONDS s each, one at a time: app window, hello-world window, tray, headless agent"
idle_alone APP "$APP"
idle_alone HELLO "$HELLO"
start_bus
TRAY_ICON=no
# idle_alone stops the tray when it is done: check the icon while it idles.
( sleep 3; tray_registered >"$WORK/tray.icon" ) &
idle_alone TRAY "$TRAY"
TRAY_ICON="$(cat "$WORK/tray.icon" 2>/dev/null || echo no)"
unset DBUS_SESSION_BUS_ADDRESS
idle_alone AGENT "$AGENT" run --poll-seconds 2
CPU="$AGENT_CPU"

mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "NA"}'; }

REPORT="$CARGO_TARGET_DIR/bench-app.txt"
{
  echo "Keywarden desktop app benchmark ($PROFILE build, $(date -u +%FT%TZ), idle ${IDLE_SECONDS} s)"
  echo
  printf '%-34s %10s %10s %8s\n' "" "RSS MB" "PSS MB" "procs"
  printf '%-34s %10s %10s %8s\n' "hello-world window (baseline)" "$(mb "$HELLO_RSS")" "$(mb "$HELLO_PSS")" "$HELLO_PROCS"
  printf '%-34s %10s %10s %8s\n' "app, window open" "$(mb "$APP_RSS")" "$(mb "$APP_PSS")" "$APP_PROCS"
  printf '%-34s %10s %10s %8s\n' "tray (keywarden-tray), no window" "$(mb "$TRAY_RSS")" "$(mb "$TRAY_PSS")" "$TRAY_PROCS"
  printf '%-34s %10s %10s %8s\n' "headless agent (keywarden run)" "$(mb "$AGENT_RSS")" "$(mb "$AGENT_PSS")" 1
  echo
  echo "start to first paint (median of $RUNS): app ${APP_PAINT} ms, hello-world ${HELLO_PAINT} ms, ratio $(ratio "$APP_PAINT" "$HELLO_PAINT")x"
  echo "window open PSS vs hello-world: $(ratio "$APP_PSS" "$HELLO_PSS")x (target <= 1.20x; the app's processes include the tray the window starts)"
  echo "tray, no window, all processes (icon registered with the watcher: $TRAY_ICON): $(mb "$TRAY_RSS") MB RSS, $(mb "$TRAY_PSS") MB PSS (target <= 40 MB: RSS $(ratio "$TRAY_RSS" 40960)x, PSS $(ratio "$TRAY_PSS" 40960)x of it)"
  echo "headless agent: $(mb "$AGENT_RSS") MB RSS (target <= 20 MB: $(ratio "$AGENT_RSS" 20480)x of it), CPU ${CPU} % (target < 0.1 %)"
  echo "(agent and apps unprovisioned: the idle cost is USB HID key polling every 2 s; check-ins are hourly)"
} | tee "$REPORT"
echo "saved to $REPORT"
