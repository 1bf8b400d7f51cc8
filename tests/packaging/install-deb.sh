#!/usr/bin/env bash
# Installs the desktop app's .deb on this Debian system, checks that every file lands where the
# system looks for it and that both binaries start, checks the .rpm carries the same files,
# then removes the package again. Prints a closing "N passed, N failed" line.
set -uo pipefail
DEB="$1"; RPM="$2"
pass=0; fail=0
check() { # check DESCRIPTION COMMAND...
  local what="$1"; shift
  if "$@" >/dev/null 2>&1; then pass=$((pass + 1)); echo "ok - $what"
  else fail=$((fail + 1)); echo "not ok - $what"; fi
}

PKG="$(dpkg-deb -f "$DEB" Package)"
check "package $PKG installs" env DEBIAN_FRONTEND=noninteractive dpkg -i "$DEB"
FILES=(
  /usr/bin/keywarden-app
  /usr/bin/keywarden-tray
  /usr/bin/keywarden
  /etc/xdg/autostart/keywarden-tray.desktop
  /usr/lib/udev/rules.d/70-keywarden-fido.rules
  /usr/lib/systemd/user/keywarden-agent.service
  /usr/share/keywarden/managed.json.example
  /usr/share/applications/Keywarden.desktop
)
for f in "${FILES[@]}"; do check "$f is installed" test -e "$f"; done
check "keywarden CLI starts" /usr/bin/keywarden --version
check "keywarden-tray starts" /usr/bin/keywarden-tray --version
check "keywarden-tray links no GTK, WebKit or appindicator" \
  test -z "$(ldd /usr/bin/keywarden-tray | grep -E 'libgtk|libgdk|libwebkit|appindicator')"
check "keywarden CLI answers status" env KEYWARDEN_HOME="$(mktemp -d)" /usr/bin/keywarden --no-hid status
app_out="$(env -u DISPLAY -u WAYLAND_DISPLAY /usr/bin/keywarden-app 2>&1)"; app_rc=$?
check "keywarden-app starts and, with no display, exits 2 with a clear message" \
  test "$app_rc" = 2 -a -n "$(grep -F 'no display found' <<<"$app_out")"
check "the udev rule tags FIDO hidraw devices for the active seat" grep -q 'ENV{ID_SECURITY_TOKEN}=="1", TAG+="uaccess"' /usr/lib/udev/rules.d/70-keywarden-fido.rules
check "the desktop entry opens keywarden:// enrolment links" grep -qx 'MimeType=x-scheme-handler/keywarden;' /usr/share/applications/Keywarden.desktop
check "the desktop entry passes the link to the app" grep -qx 'Exec=keywarden-app %u' /usr/share/applications/Keywarden.desktop
check "the managed-config template is one the agent accepts" env KEYWARDEN_HOME="$(mktemp -d)" KEYWARDEN_MANAGED_CONFIG=/usr/share/keywarden/managed.json.example /usr/bin/keywarden --no-hid status
check "the user unit runs the background check-in in the tray process" grep -qx 'ExecStart=/usr/bin/keywarden-tray' /usr/lib/systemd/user/keywarden-agent.service
check "login starts the tray process (autostart entry)" grep -qx 'Exec=keywarden-tray' /etc/xdg/autostart/keywarden-tray.desktop
check "the .deb depends on WebKitGTK" grep -q libwebkit2gtk-4.1-0 <(dpkg-deb -f "$DEB" Depends)
for f in "${FILES[@]}"; do check "the .rpm carries $f" grep -qx "$f" <(rpm -qlp "$RPM" 2>/dev/null); done
check "package $PKG removes cleanly" dpkg -r "$PKG"
check "binaries are gone after removal" test ! -e /usr/bin/keywarden-app -a ! -e /usr/bin/keywarden-tray

echo "packaging: $pass passed, $fail failed"
[ "$fail" = 0 ]
