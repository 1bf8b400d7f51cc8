#!/usr/bin/env bash
# Type-checks the agent's crates for the laptops' other systems: Windows (x86_64-pc-windows-gnu)
# and macOS (aarch64-apple-darwin), with `cargo check --target`, warnings denied. Only crates
# whose build needs no C toolchain for that target are checked; each skip is printed with its
# reason and counted, and a target that cannot be installed (offline, no rustup) is skipped,
# never failed. Ends with one line: "cross-check: N passed, M failed, K skipped".
#
#   keywarden-protocol, keywarden-posture      both targets (pure Rust)
#   keywarden-keys (no backends)               both targets; its `hid` and `soft` backends need
#                                              OpenSSL built for the target, so they are gated off
#   keywarden-agent (no key backends)          Windows, when MinGW's gcc is here (rustls's ring
#                                              compiles C); macOS is skipped: Debian has no C
#                                              toolchain for it
#
# The desktop app (Tauri) is not checked here: its web view needs each system's SDK.
source "$(dirname "$0")/lib.sh"

WINDOWS=x86_64-pc-windows-gnu
MACOS=aarch64-apple-darwin
passed=0 failed=0 skipped=0
skip() { echo "cross-check: SKIPPED $1 for $2: $3"; skipped=$((skipped + 1)); }

# check TARGET CRATE [cargo args...]: one `cargo check`, counted.
check() {
  local target=$1 crate=$2
  shift 2
  if RUSTFLAGS="-D warnings" cargo check --quiet --locked --target "$target" -p "$crate" "$@"; then
    echo "cross-check: ok $crate for $target"
    passed=$((passed + 1))
  else
    echo "cross-check: FAILED $crate for $target" >&2
    failed=$((failed + 1))
  fi
}

have_target() {
  command -v rustup >/dev/null || return 1
  rustup target list --installed 2>/dev/null | grep -qx "$1" && return 0
  rustup target add "$1" >/dev/null 2>&1
}

# MinGW's gcc compiles ring's C for Windows; install it where this script may (root or sudo).
if ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  (ensure_apt "${CROSS_PKGS[@]}") >/dev/null 2>&1 || true
fi

START=$(date +%s)
for target in "$WINDOWS" "$MACOS"; do
  if ! have_target "$target"; then
    why="the Rust standard library for $target could not be installed (no rustup, or offline)"
    for crate in keywarden-protocol keywarden-posture keywarden-keys keywarden-agent; do
      skip "$crate" "$target" "$why"
    done
    continue
  fi
  check "$target" keywarden-protocol
  check "$target" keywarden-posture
  check "$target" keywarden-keys --no-default-features
  if [ "$target" = "$MACOS" ]; then
    skip keywarden-agent "$target" "rustls's crypto (ring) compiles C, and Debian has no C toolchain for macOS"
  elif command -v x86_64-w64-mingw32-gcc >/dev/null; then
    check "$target" keywarden-agent --no-default-features
  else
    skip keywarden-agent "$target" "rustls's crypto (ring) compiles C: install gcc-mingw-w64-x86-64"
  fi
done
echo "cross-check took $(($(date +%s) - START)) s"
echo "cross-check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
