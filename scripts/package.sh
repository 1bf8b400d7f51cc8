#!/usr/bin/env bash
# Build the desktop app's .deb and .rpm packages with the Tauri bundler (offline). They carry
# the app (the window), `keywarden-tray` (background check-in and tray icon, no GTK or web
# view), the headless `keywarden` CLI, the udev rule for FIDO keys, the systemd user unit and an
# autostart entry that start the tray at login, a desktop entry that opens keywarden://enrol
# links, and the managed-configuration template.
#   scripts/package.sh           release packages
#   scripts/package.sh --debug   debug-profile packages (what the test command installs)
source "$(dirname "$0")/lib.sh"

PROFILE=release
TAURI_FLAGS=()
CARGO_FLAGS=(--release)
if [ "${1:-}" = "--debug" ]; then
  PROFILE=debug
  TAURI_FLAGS=(--debug)
  CARGO_FLAGS=()
fi

ensure_apt "${BUILD_PKGS[@]}" "${GUI_PKGS[@]}"
ensure_rust
build_ui
say "building the keywarden CLI and keywarden-tray ($PROFILE)"
cargo build --quiet --locked "${CARGO_FLAGS[@]}" -p keywarden-cli -p keywarden-tray
CLI="$CARGO_TARGET_DIR/$PROFILE/keywarden"
TRAY="$CARGO_TARGET_DIR/$PROFILE/keywarden-tray"

OVERLAY="$(mktemp)"
trap 'rm -f "$OVERLAY"' EXIT
jq -n --arg cli "$CLI" --arg tray "$TRAY" --arg inst "$ROOT/installer" '
  def files: {
    "/usr/bin/keywarden": $cli,
    "/usr/bin/keywarden-tray": $tray,
    "/etc/xdg/autostart/keywarden-tray.desktop": ($inst + "/linux/keywarden-tray.desktop"),
    "/usr/lib/udev/rules.d/70-keywarden-fido.rules": ($inst + "/linux/70-keywarden-fido.rules"),
    "/usr/lib/systemd/user/keywarden-agent.service": ($inst + "/linux/keywarden-agent.service"),
    "/usr/share/keywarden/managed.json.example": ($inst + "/managed-config/managed.json")
  };
  def desktop: ($inst + "/linux/keywarden.desktop");
  {bundle: {linux: {deb: {files: files, desktopTemplate: desktop}, rpm: {files: files, desktopTemplate: desktop}}}}' >"$OVERLAY"

say "bundling .deb and .rpm ($PROFILE)"
ui/node_modules/.bin/tauri build --ci --no-sign "${TAURI_FLAGS[@]}" --bundles deb,rpm --config "$OVERLAY" >/dev/null
ls -1 "$CARGO_TARGET_DIR/$PROFILE/bundle/deb/"*.deb "$CARGO_TARGET_DIR/$PROFILE/bundle/rpm/"*.rpm
