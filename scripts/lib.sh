# Shared set-up for scripts/demo.sh and scripts/test.sh: installs what this machine lacks and
# nothing more, so a re-run is quick. Sourced, not run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Compiled crates live outside the clone so fresh clones on the same machine reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keywarden/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say() { printf '\n== %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to run: $*" >&2; return 1; fi
}

# ensure_apt PKG...: install the Debian packages that are not installed yet.
ensure_apt() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# Packages to build the service and the CLI agent (hidapi needs libudev; webauthn-rs needs openssl).
BUILD_PKGS=(build-essential pkg-config libudev-dev libssl-dev ca-certificates curl jq)
# Packages to build the Tauri desktop app and drive it in a real window; dbus-daemon, gdbus and
# haskell-status-notifier-item-utils (a StatusNotifierWatcher) give the tray tests and the
# benchmark a session bus with a desktop's tray on it.
GUI_PKGS=(libwebkit2gtk-4.1-dev libxdo-dev librsvg2-dev file xvfb xauth webkit2gtk-driver
  dbus-daemon haskell-status-notifier-item-utils libglib2.0-bin)
# A real browser for the admin pages' tests (headless screenshots).
ADMIN_UI_PKGS=(chromium)
# poppler's pdftotext and pdftoppm: the issuing tests read and render the handover and PIN sheets.
PDF_PKGS=(poppler-utils)
# Packages to check the .deb/.rpm the Tauri bundler makes (rpm lists the .rpm's files).
PACKAGING_PKGS=(rpm)
# Packages for the real-HID tests in a throwaway guest (tests/realhid): QEMU, busybox for its
# initramfs, kmod to resolve kernel module dependencies, fido2-tools as an independent client.
REALHID_PKGS=(qemu-system-x86 busybox-static kmod fido2-tools)
# MinGW's C compiler, so the type check for Windows (scripts/cross-check.sh) can build rustls's
# crypto (ring) for that target.
CROSS_PKGS=(gcc-mingw-w64-x86-64)
# PostgreSQL for the service tests and benchmarks, on a throwaway cluster (scripts/postgres.sh).
PG_PKGS=(postgresql)

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    echo "cargo is not installed. Install the Rust toolchain (https://rustup.rs), then re-run." >&2
    exit 1
  fi
}

ensure_node() {
  if ! command -v npm >/dev/null; then
    ensure_apt nodejs npm
  fi
}

# npm packages of a folder, only when its lock file changed since the last install.
ensure_npm_deps() {
  ensure_node
  if [ ! -f "$1/node_modules/.package-lock.json" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    say "installing npm packages in $1 (npm ci)"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

ensure_ui_deps() {
  ensure_npm_deps ui
}

build_ui() {
  ensure_ui_deps
  say "building the UI"
  (cd ui && npm run --silent build >/dev/null)
}
