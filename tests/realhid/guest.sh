#!/usr/bin/env bash
# A throwaway Linux guest with real uhid and hidraw, for tests of the real HID path.
#
#   guest.sh prepare          build the guest if it is not cached yet (prints its folder)
#   guest.sh run CMD [ARG]... boot it, run CMD inside as root, power off; exit status is CMD's
#
# The guest is Debian's own kernel package (it has uhid, hid-generic, usbhid and hidraw) and a
# busybox initramfs that loads those modules, mounts this machine's root folder read-only over
# virtio-9p, mounts a writable scratch folder at /tmp/realhid-share and a tmpfs at /tmp, and
# runs CMD chrooted into the host root, so host-built binaries run unchanged. It is cached
# outside the clone (KEYWARDEN_REALHID_CACHE, default ~/.cache/keywarden/realhid) and rebuilt
# only when missing. QEMU runs with software emulation on one CPU (nested KVM cannot boot a
# Linux guest on the machines this project is tested on). The guest console is printed when CMD
# fails or the guest does not finish.
set -euo pipefail

CACHE="${KEYWARDEN_REALHID_CACHE:-$HOME/.cache/keywarden/realhid}"
TIMEOUT="${KEYWARDEN_REALHID_TIMEOUT:-900}"
MODULES=(virtio_pci 9pnet_virtio 9p uhid hid_generic usbhid)

kernel_package() {
  # The versioned image package that linux-image-amd64 points at on this Debian release.
  apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1
}

apt_update() {
  echo "guest.sh: refreshing Debian's package lists" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
}

guest_dir() {
  local pkg
  pkg="$(kernel_package)"
  if [ -z "$pkg" ]; then apt_update; pkg="$(kernel_package)"; fi
  [ -n "$pkg" ] || { echo "guest.sh: cannot find Debian's linux-image-amd64 package (apt-get update?)" >&2; return 1; }
  echo "$CACHE/$pkg"
}

prepare() {
  local dir pkg work kver
  dir="$(guest_dir)"
  if [ -f "$dir/initrd.gz" ] && [ -f "$dir/vmlinuz" ]; then echo "$dir"; return 0; fi
  pkg="$(basename "$dir")"
  work="$(mktemp -d "$CACHE.build.XXXXXX" 2>/dev/null || { mkdir -p "$CACHE"; mktemp -d "$CACHE.build.XXXXXX"; })"
  trap 'rm -rf "$work"' RETURN
  chmod 755 "$work"
  # apt-get download fetches as the _apt user where that user may write.
  mkdir "$work/deb" && { chown _apt "$work/deb" 2>/dev/null || true; }
  echo "guest.sh: building the guest from $pkg (once; cached in $dir)" >&2
  (cd "$work/deb" && apt-get download -qq "$pkg" >/dev/null) || { apt_update; (cd "$work/deb" && apt-get download -qq "$pkg" >/dev/null); }
  dpkg-deb -x "$work/deb"/"$pkg"_*.deb "$work/kernel"
  kver="$(ls "$work/kernel/lib/modules")"
  depmod -b "$work/kernel" "$kver"
  mkdir -p "$work/initramfs"/{bin,dev,proc,sys,modules,host}
  cp /bin/busybox "$work/initramfs/bin/busybox"
  # modprobe lists each module after the ones it needs, as insmod lines.
  local m path
  : > "$work/initramfs/modules/order"
  for m in "${MODULES[@]}"; do
    modprobe -d "$work/kernel" -S "$kver" --show-depends "$m" | while read -r verb path _; do
      [ "$verb" = insmod ] || continue
      local name; name="$(basename "$path")"
      grep -qx "$name" "$work/initramfs/modules/order" && continue
      cp "$path" "$work/initramfs/modules/$name"
      echo "$name" >> "$work/initramfs/modules/order"
    done
  done
  cat > "$work/initramfs/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/modules/$m" || echo "guest: insmod $m failed"; done < /modules/order
ip link set lo up
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /host
for fs in proc sys dev; do mount -o bind "/$fs" "/host/$fs"; done
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mkdir -p /host/tmp/realhid-share
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share /host/tmp/realhid-share
echo "guest: up after $(cut -d' ' -f1 /proc/uptime) s"
chroot /host /bin/sh /tmp/realhid-share/run.sh
echo "$?" > /host/tmp/realhid-share/rc
sync
poweroff -f
INIT
  chmod 755 "$work/initramfs/init"
  mkdir -p "$dir.tmp"
  (cd "$work/initramfs" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$dir.tmp/initrd.gz")
  cp "$work/kernel/boot/vmlinuz-$kver" "$dir.tmp/vmlinuz"
  echo "$kver" > "$dir.tmp/kernel-version"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  echo "$dir"
}

run() {
  [ $# -ge 1 ] || { echo "usage: guest.sh run CMD [ARG]..." >&2; return 2; }
  local dir share rc
  dir="$(prepare)"
  share="$(mktemp -d)"
  trap 'rm -rf "$share"' RETURN
  {
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/home'
    echo 'mkdir -p "$HOME"; cd /tmp'
    printf 'exec'; printf ' %q' "$@"; echo
  } > "$share/run.sh"
  set +e
  timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg -smp 1 -m 1024 -nographic -no-reboot \
    -nic none -monitor none -serial "file:$share/console.log" \
    -kernel "$dir/vmlinuz" -initrd "$dir/initrd.gz" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap,id=hostroot \
    -virtfs "local,path=$share,mount_tag=share,security_model=none,id=share" \
    </dev/null >"$share/qemu.log" 2>&1
  local qemu_rc=$?
  set -e
  if [ -f "$share/rc" ]; then rc="$(cat "$share/rc")"; else rc=125; fi
  if [ "$rc" != 0 ]; then
    if [ ! -f "$share/rc" ]; then
      echo "guest.sh: the guest did not finish (qemu exit $qemu_rc, limit ${TIMEOUT}s)" >&2
      cat "$share/qemu.log" >&2
    fi
    echo "---- guest console ----" >&2
    cat "$share/console.log" >&2 || true
    echo "---- end of guest console (exit status $rc) ----" >&2
  else
    # What CMD printed: the console after the guest came up, without firmware and kernel lines.
    tr -d '\r' < "$share/console.log" | awk 'up && !/^\[ *[0-9.]+\] / { print } /guest: up after/ { up = 1 }'
    grep -o 'guest: up after [0-9.]* s' "$share/console.log" >&2 || true
  fi
  return "$rc"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: guest.sh prepare | guest.sh run CMD [ARG]..." >&2; exit 2 ;;
esac
