#!/usr/bin/env bash
# Fuzzing: builds the cargo-fuzz targets in fuzz/ (nightly Rust) and runs each for a while.
#   scripts/fuzz.sh                          every target, 60 s each
#   scripts/fuzz.sh 600                      every target, 10 minutes each
#   scripts/fuzz.sh 30 scim_patch mds_blob   only these
#   scripts/fuzz.sh --list                   the targets
# Installs the nightly toolchain and cargo-fuzz when missing. Each run starts from a copy of the
# committed seeds (fuzz/corpus/<target>) in a temporary folder, so the committed corpus never
# changes; a crashing input is kept and its path printed. FUZZ_KEEP=<dir> keeps every run's
# corpus and artifacts under <dir>/<target> instead of deleting them. Ends with one line,
# `fuzz: N passed, M failed`, and fails when any target crashed. docs/FUZZING.md has the rest.
source "$(dirname "$0")/lib.sh"

TOOLCHAIN="${KEYWARDEN_FUZZ_TOOLCHAIN:-nightly}"
# The fuzz build has its own folder: another toolchain and other flags than the stable builds.
FUZZ_TARGET_DIR="${KEYWARDEN_FUZZ_TARGET_DIR:-$CARGO_TARGET_DIR/fuzz}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
BIN_DIR="$FUZZ_TARGET_DIR/$TRIPLE/release"

targets_all() { sed -n 's/^name = "\(.*\)"$/\1/p' "$ROOT/fuzz/Cargo.toml" | grep -v '^keywarden-fuzz$'; }

if [ "${1:-}" = --list ]; then
  targets_all
  exit 0
fi
SECONDS_PER_TARGET=60
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  SECONDS_PER_TARGET=$1
  shift
fi
if [ $# -gt 0 ]; then TARGETS=("$@"); else mapfile -t TARGETS < <(targets_all); fi
for t in "${TARGETS[@]}"; do
  [ -f "$ROOT/fuzz/fuzz_targets/$t.rs" ] || { echo "no fuzz target $t (scripts/fuzz.sh --list)" >&2; exit 2; }
done

ensure_apt "${BUILD_PKGS[@]}"
ensure_rust
export PATH="$HOME/.cargo/bin:$PATH"
if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
  say "installing the $TOOLCHAIN Rust toolchain (cargo-fuzz needs it)"
  rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null; then
  say "installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
say "building the fuzz targets ($TOOLCHAIN, cargo-fuzz)"
# No sanitizer: the project's crates forbid unsafe code, so AddressSanitizer would only watch
# dependencies, at the cost of a slower build and slower runs. Panics, overflow checks and
# debug assertions are what the targets catch. 16 codegen units build faster on few cores.
SECONDS=0
if ! cargo "+$TOOLCHAIN" fuzz build --sanitizer none --codegen-units 16 \
  --target-dir "$FUZZ_TARGET_DIR" >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log"
  echo "the fuzz targets do not build" >&2
  exit 1
fi
echo "fuzz build took ${SECONDS} s"

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  dir="${FUZZ_KEEP:+$FUZZ_KEEP/$t}"
  dir="${dir:-$WORK/$t}"
  mkdir -p "$dir/corpus" "$dir/artifacts" "$dir/tmp"
  cp -r "$ROOT/fuzz/corpus/$t/." "$dir/corpus/"
  say "fuzzing $t for ${SECONDS_PER_TARGET} s"
  log="$dir/log"
  # A dictionary (fuzz/dict/<target>.dict) gives the fuzzer the words its input format uses.
  dict=()
  [ -f "$ROOT/fuzz/dict/$t.dict" ] && dict=("-dict=$ROOT/fuzz/dict/$t.dict")
  # An input that takes over 20 s counts as a hang; the soft key's state files go to tmp/.
  if TMPDIR="$dir/tmp" "$BIN_DIR/$t" -max_total_time="$SECONDS_PER_TARGET" -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" "${dict[@]}" "$dir/corpus" \
    >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz $t: ok, ${runs:-?} inputs in ${SECONDS_PER_TARGET} s, ${cov:-cov: ?}, corpus $(ls "$dir/corpus" | wc -l) inputs"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    grep -m1 -A12 "panicked at\|ERROR: libFuzzer" "$log" || tail -20 "$log"
    keep="$dir/artifacts"
    if [ -z "${FUZZ_KEEP:-}" ]; then
      keep="$ROOT/fuzz/artifacts/$t"
      mkdir -p "$keep"
      cp "$dir"/artifacts/* "$keep/" 2>/dev/null || true
    fi
    crash="$keep/$(ls "$dir/artifacts" | head -1)"
    echo "fuzz $t: FAILED; input kept in $crash (not committed); replay: $BIN_DIR/$t $crash"
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
