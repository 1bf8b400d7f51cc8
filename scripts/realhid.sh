#!/usr/bin/env bash
# The real-HID tests alone: builds the agent CLI, the service, the virtual key tool and the test
# program, then runs the test program inside a throwaway guest that has uhid and hidraw
# (tests/realhid/guest.sh; the guest is built once and cached in ~/.cache/keywarden/realhid).
# Exit status is the tests'; the guest console is printed when they fail.
#   scripts/realhid.sh            build, then run
#   scripts/realhid.sh --no-build run with the binaries already built (scripts/test.sh)
source "$(dirname "$0")/lib.sh"

ensure_apt "${BUILD_PKGS[@]}" "${REALHID_PKGS[@]}"
ensure_rust
if [ "${1:-}" != --no-build ]; then
  say "building the binaries the real-HID tests run"
  cargo build --quiet --locked -p keywarden-cli -p keywarden-server -p keywarden-softkey -p keywarden-realhid
fi
BIN="$(cd "$CARGO_TARGET_DIR/debug" && pwd)"
# The guest mounts a fresh tmpfs over /tmp, so binaries built under /tmp are staged elsewhere.
case "$BIN/" in
  /tmp/*)
    STAGE="$HOME/.cache/keywarden/realhid/bin"
    mkdir -p "$STAGE"
    for b in keywarden keywarden-server keywarden-softkey keywarden-realhid; do cp -f "$BIN/$b" "$STAGE/$b"; done
    BIN="$STAGE"
    ;;
esac
SECONDS=0
say "real-HID tests in a guest"
"$ROOT/tests/realhid/guest.sh" run "$BIN/keywarden-realhid" --bin-dir "$BIN"
echo "real-HID guest run took ${SECONDS} s"
