#!/usr/bin/env bash
# Benchmark of the desktop app and the headless agent, beside a bare Tauri hello-world window
# built and measured in the same run (scripts/bench/hello). Reports, never asserts:
#   - start to first paint (ms, median of RUNS) of the app and of the hello-world;
#   - idle memory after IDLE_SECONDS, RSS and PSS summed over each process and its children
#     (WebKitWebProcess, WebKitNetworkProcess): the app with its window open, the hello-world,
#     and the app started in the tray (`--tray`, no window, no web view);
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
cargo build --quiet --locked --profile "$PROFILE" -p keywarden-app -p keywarden-cli
say "building the bare Tauri hello-world ($PROFILE, same tauri as the app)"
HELLO_SRC="$(mktemp -d)"
WORK="$(mktemp -d)"
cleanup() {
  for g in ${GROUPS_TO_STOP:-}; do kill -s TERM -- "-$g" 2>/dev/null || true; done
  rm -rf "$HELLO_SRC" "$WORK"
}
trap cleanup EXIT
cp -r scripts/bench/hello/. "$HELLO_SRC/"
cp Cargo.lock "$HELLO_SRC/"
cp -r src-tauri/icons "$HELLO_SRC/icons"
(cd "$HELLO_SRC" && cargo build --quiet --offline --profile "$PROFILE")

APP="$OUT_DIR/keywarden-app"
AGENT="$OUT_DIR/keywarden"
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

say "idle for $IDLE_SECONDS s: app window, hello-world window, app in the tray, headless agent"
APP_PID=$(start "$APP")
HELLO_PID=$(start "$HELLO")
TRAY_PID=$(start "$APP" --tray)
AGENT_PID=$(start "$AGENT" run --poll-seconds 2)
GROUPS_TO_STOP="$APP_PID $HELLO_PID $TRAY_PID $AGENT_PID"
# CPU is counted from when the agent has started, over the idle period.
sleep 2
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
T0=$(ticks "$AGENT_PID"); S0=$(date +%s%3N)
sleep "$IDLE_SECONDS"
T1=$(ticks "$AGENT_PID"); S1=$(date +%s%3N)
read -r APP_RSS APP_PSS < <(mem "$APP_PID")
read -r HELLO_RSS HELLO_PSS < <(mem "$HELLO_PID")
read -r TRAY_RSS TRAY_PSS < <(mem "$TRAY_PID")
read -r AGENT_RSS AGENT_PSS < <(mem "$AGENT_PID")
TRAY_PROCS=$(tree "$TRAY_PID" | wc -w)
APP_PROCS=$(tree "$APP_PID" | wc -w)
HELLO_PROCS=$(tree "$HELLO_PID" | wc -w)
HZ=$(getconf CLK_TCK)
for p in $GROUPS_TO_STOP; do stop "$p"; done
GROUPS_TO_STOP=""

mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "NA"}'; }
CPU=$(awk -v t=$((T1 - T0)) -v hz="$HZ" -v ms=$((S1 - S0)) 'BEGIN {printf "%.3f", 100 * t / hz / (ms / 1000)}')

REPORT="$CARGO_TARGET_DIR/bench-app.txt"
{
  echo "Keywarden desktop app benchmark ($PROFILE build, $(date -u +%FT%TZ), idle ${IDLE_SECONDS} s)"
  echo
  printf '%-34s %10s %10s %8s\n' "" "RSS MB" "PSS MB" "procs"
  printf '%-34s %10s %10s %8s\n' "hello-world window (baseline)" "$(mb "$HELLO_RSS")" "$(mb "$HELLO_PSS")" "$HELLO_PROCS"
  printf '%-34s %10s %10s %8s\n' "app, window open" "$(mb "$APP_RSS")" "$(mb "$APP_PSS")" "$APP_PROCS"
  printf '%-34s %10s %10s %8s\n' "app in the tray, no window" "$(mb "$TRAY_RSS")" "$(mb "$TRAY_PSS")" "$TRAY_PROCS"
  printf '%-34s %10s %10s %8s\n' "headless agent (keywarden run)" "$(mb "$AGENT_RSS")" "$(mb "$AGENT_PSS")" 1
  echo
  echo "start to first paint (median of $RUNS): app ${APP_PAINT} ms, hello-world ${HELLO_PAINT} ms, ratio $(ratio "$APP_PAINT" "$HELLO_PAINT")x"
  echo "window open PSS vs hello-world: $(ratio "$APP_PSS" "$HELLO_PSS")x (target <= 1.20x)"
  echo "tray, no window, all processes: $(mb "$TRAY_RSS") MB RSS (target <= 40 MB: $(ratio "$TRAY_RSS" 40960)x of it)"
  echo "headless agent: $(mb "$AGENT_RSS") MB RSS (target <= 20 MB: $(ratio "$AGENT_RSS" 20480)x of it), CPU ${CPU} % (target < 0.1 %)"
  echo "(agent and apps unprovisioned: the idle cost is USB HID key polling every 2 s; check-ins are hourly)"
} | tee "$REPORT"
echo "saved to $REPORT"
