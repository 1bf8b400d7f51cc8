//! Is the root filesystem on dm-crypt?
//!
//! Finds the device mounted at `/` in the mount table, then walks its device stack in sysfs
//! (`/sys/class/block/<dev>/slaves/…`), so LVM, RAID or dm-integrity on top of LUKS are seen
//! through. The answer is "encrypted" only when every path down the stack passes a dm-crypt
//! layer: an LVM volume spread over one LUKS disk and one plain disk is not encrypted.

use super::{describe, Root};
use keywarden_protocol::Observed;

/// Deeper than any real stack (LVM on LUKS on RAID on partitions is four); guards link loops.
const MAX_DEPTH: usize = 16;

pub(crate) fn probe(root: &Root) -> Observed<bool> {
    let mount = match root_mount(root) {
        Ok(m) => m,
        Err(reason) => return Observed::unknown(reason),
    };
    if let Some(reason) = no_local_disk(&mount.fs_type) {
        return Observed::unknown(reason);
    }
    let device = match root_device(root, &mount) {
        Ok(d) => d,
        Err(reason) => return Observed::unknown(reason),
    };
    let source = if mount.source.starts_with("/dev/") {
        mount.source.clone()
    } else {
        format!("/dev/{device}")
    };
    match walk(root, &device, 0) {
        Ok(Layer::Crypt { device: via, kind }) if via == device => Observed::known_because(
            true,
            format!("root filesystem on dm-crypt ({kind}) via {via}"),
        ),
        Ok(Layer::Crypt { device: via, kind }) => Observed::known_because(
            true,
            format!(
                "root filesystem on {source} ({device}), stacked on dm-crypt ({kind}) via {via}"
            ),
        ),
        Ok(Layer::Plain { device: leaf }) if leaf == device => Observed::known_because(
            false,
            format!("root filesystem on {source}, no dm-crypt layer"),
        ),
        Ok(Layer::Plain { device: leaf }) => Observed::known_because(
            false,
            format!("root filesystem on {source} ({device}), no dm-crypt layer above {leaf}"),
        ),
        Err(reason) => Observed::unknown(reason),
    }
}

/// The filesystem mounted at `/`.
#[derive(Debug, PartialEq, Eq)]
struct RootMount {
    /// `major:minor` from mountinfo; absent when only `/proc/mounts` could be read.
    dev: Option<String>,
    fs_type: String,
    source: String,
}

fn root_mount(root: &Root) -> Result<RootMount, String> {
    let mountinfo = root.read_to_string("/proc/self/mountinfo");
    if let Ok(text) = &mountinfo {
        if let Some(m) = parse_mountinfo(text) {
            return Ok(m);
        }
    }
    match root.read_to_string("/proc/mounts") {
        Ok(text) => parse_mounts(&text)
            .ok_or_else(|| "no filesystem is mounted at / according to /proc/mounts".to_owned()),
        Err(e) => Err(match mountinfo {
            Err(first) => format!(
                "cannot read /proc/self/mountinfo ({}) or /proc/mounts ({}): is /proc mounted?",
                describe(&first),
                describe(&e)
            ),
            Ok(_) => format!(
                "no filesystem is mounted at / according to /proc/self/mountinfo, and /proc/mounts \
                 cannot be read ({})",
                describe(&e)
            ),
        }),
    }
}

/// The last mount of `/` in mountinfo format (`id parent maj:min root mountpoint opts [optional…]
/// - fstype source superopts`); later lines mount over earlier ones.
fn parse_mountinfo(text: &str) -> Option<RootMount> {
    text.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let left: Vec<&str> = left.split(' ').collect();
        let mut right = right.split(' ');
        if left.len() < 5 || unescape(left[4]) != "/" {
            return None;
        }
        Some(RootMount {
            dev: Some(left[2].to_owned()),
            fs_type: right.next()?.to_owned(),
            source: unescape(right.next()?),
        })
    })
}

/// The last mount of `/` in `/proc/mounts` format (`source mountpoint fstype opts 0 0`).
fn parse_mounts(text: &str) -> Option<RootMount> {
    text.lines().rev().find_map(|line| {
        let mut f = line.split(' ');
        let source = unescape(f.next()?);
        if unescape(f.next()?) != "/" {
            return None;
        }
        Some(RootMount {
            dev: None,
            fs_type: f.next()?.to_owned(),
            source,
        })
    })
}

/// The kernel writes space, tab, newline and backslash in mount fields as `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a root of this filesystem type has no local disk this probe could inspect.
fn no_local_disk(fs: &str) -> Option<String> {
    let reason = match fs {
        "overlay" | "aufs" | "fuse-overlayfs" => {
            format!("root filesystem is {fs} (container?): cannot see the backing disk")
        }
        "tmpfs" | "ramfs" | "rootfs" => format!(
            "root filesystem is {fs}, held in memory (live system or container?): no disk to inspect"
        ),
        "9p" | "virtiofs" => format!(
            "root filesystem is {fs}, shared from a host (virtual machine or container?): cannot \
             see the backing disk"
        ),
        "nfs" | "nfs4" | "cifs" | "smb3" | "ceph" | "glusterfs" => format!(
            "root filesystem is {fs} on a network server: its disk cannot be inspected from here"
        ),
        "zfs" | "bcachefs" => format!(
            "root filesystem is {fs}, whose native encryption is not visible to this probe"
        ),
        f if f.starts_with("fuse") => {
            format!("root filesystem is {fs} (FUSE): cannot see the backing disk")
        }
        _ => return None,
    };
    Some(reason)
}

/// The `/sys/class/block` name of the device holding the root filesystem.
fn root_device(root: &Root, mount: &RootMount) -> Result<String, String> {
    let names = root.list_dir("/sys/class/block").map_err(|e| {
        format!(
            "cannot read /sys/class/block ({}): is sysfs mounted?",
            describe(&e)
        )
    })?;
    let read = |path: String| root.read_to_string(&path).map(|s| s.trim().to_owned()).ok();

    // Major 0 is an anonymous device number (btrfs, for one): fall back to the source path.
    if let Some(dev) = mount.dev.as_deref().filter(|d| !d.starts_with("0:")) {
        if let Some(name) = names
            .iter()
            .find(|n| read(format!("/sys/class/block/{n}/dev")).as_deref() == Some(dev))
        {
            return Ok(name.clone());
        }
    }
    if let Some(rest) = mount.source.strip_prefix("/dev/") {
        if let Some(mapped) = rest.strip_prefix("mapper/") {
            if let Some(name) = names
                .iter()
                .find(|n| read(format!("/sys/class/block/{n}/dm/name")).as_deref() == Some(mapped))
            {
                return Ok(name.clone());
            }
        } else if names.iter().any(|n| n == rest) {
            return Ok(rest.to_owned());
        }
        // A link such as /dev/disk/by-uuid/…, resolved inside the root.
        if let Ok(target) = std::fs::canonicalize(root.path(&mount.source)) {
            if let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) {
                if names.contains(&name) {
                    return Ok(name);
                }
            }
        }
    }
    let dev = mount.dev.as_deref().unwrap_or("no device number");
    Err(format!(
        "root filesystem {} ({dev}) matches no device in /sys/class/block",
        mount.source
    ))
}

/// What lies under a device, as far as encryption goes.
#[derive(Debug, PartialEq, Eq)]
enum Layer {
    /// Every path down passes a dm-crypt device; `device` is the first one found.
    Crypt { device: String, kind: &'static str },
    /// Some path down reaches `device`, a disk or partition, without passing dm-crypt.
    Plain { device: String },
}

/// What a device-mapper uuid says about encryption. cryptsetup names its devices `CRYPT-<TYPE>-…`;
/// LVM uses `LVM-…`, multipath `mpath-…`, and so on.
#[derive(Debug, PartialEq, Eq)]
enum DmKind {
    Encrypting(&'static str),
    NotEncrypting,
    Unrecognised(String),
}

fn dm_kind(uuid: &str) -> DmKind {
    let Some(rest) = uuid.strip_prefix("CRYPT-") else {
        return DmKind::NotEncrypting;
    };
    match rest.split('-').next().unwrap_or_default() {
        "LUKS" | "LUKS1" | "LUKS2" => DmKind::Encrypting("LUKS"),
        "PLAIN" => DmKind::Encrypting("plain"),
        "LOOPAES" => DmKind::Encrypting("loop-AES"),
        "TCRYPT" => DmKind::Encrypting("TrueCrypt/VeraCrypt"),
        "BITLK" => DmKind::Encrypting("BitLocker"),
        "FVAULT2" => DmKind::Encrypting("FileVault 2"),
        // cryptsetup also makes integrity-only devices: they protect, but do not hide, the data.
        "VERITY" | "INTEGRITY" | "SUBDEV" => DmKind::NotEncrypting,
        other => DmKind::Unrecognised(other.to_owned()),
    }
}

fn walk(root: &Root, name: &str, depth: usize) -> Result<Layer, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "device stack below {name} is deeper than {MAX_DEPTH} layers"
        ));
    }
    let dir = format!("/sys/class/block/{name}");
    if !root.exists(&dir) {
        return Err(format!(
            "{dir} is missing, so the device stack cannot be followed"
        ));
    }
    let is_dm = root.exists(&format!("{dir}/dm"));
    if is_dm {
        let uuid = root
            .read_to_string(&format!("{dir}/dm/uuid"))
            .map_err(|e| format!("cannot read {dir}/dm/uuid ({})", describe(&e)))?;
        let uuid = uuid.trim();
        if uuid.is_empty() {
            return Err(format!(
                "device-mapper device {name} has no uuid: cannot tell whether it is dm-crypt"
            ));
        }
        match dm_kind(uuid) {
            DmKind::Encrypting(kind) => {
                return Ok(Layer::Crypt {
                    device: name.to_owned(),
                    kind,
                })
            }
            DmKind::NotEncrypting => {}
            DmKind::Unrecognised(ty) => {
                return Err(format!(
                    "device-mapper device {name} is a cryptsetup device of unrecognised type {ty}"
                ))
            }
        }
    }
    if root.exists(&format!("{dir}/loop")) {
        let file = root
            .read_to_string(&format!("{dir}/loop/backing_file"))
            .map(|f| f.trim().to_owned())
            .unwrap_or_else(|_| "a file".to_owned());
        return Err(format!(
            "root filesystem is on loop device {name}, backed by {file}: cannot see the disk under it"
        ));
    }
    let slaves = match root.list_dir(&format!("{dir}/slaves")) {
        Ok(s) => s,
        // Partitions have no slaves directory at all.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("cannot read {dir}/slaves ({})", describe(&e))),
    };
    if slaves.is_empty() {
        if is_dm {
            return Err(format!(
                "device-mapper device {name} lists no underlying devices"
            ));
        }
        return Ok(Layer::Plain {
            device: name.to_owned(),
        });
    }
    let mut crypt = None;
    let mut failure = None;
    for slave in &slaves {
        match walk(root, slave, depth + 1) {
            // One unencrypted path is enough: part of the filesystem lies on it.
            Ok(plain @ Layer::Plain { .. }) => return Ok(plain),
            Ok(c @ Layer::Crypt { .. }) => {
                crypt.get_or_insert(c);
            }
            Err(reason) => {
                failure.get_or_insert(reason);
            }
        }
    }
    match (failure, crypt) {
        (Some(reason), _) => Err(reason),
        (None, Some(c)) => Ok(c),
        (None, None) => Err(format!("no device under {name} could be followed")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    const LUKS_UUID: &str = "CRYPT-LUKS2-0f1e2d3c4b5a69788796a5b4c3d2e1f0-luks-0f1e";

    fn reason(o: &Observed<bool>) -> &str {
        match o {
            Observed::Unknown { reason } => reason,
            Observed::Known { .. } => panic!("expected unknown, got {o:?}"),
        }
    }

    #[test]
    fn luks_root_is_encrypted() {
        let f = Fixture::new();
        f.root_mount("253:1", "ext4", "/dev/mapper/luks-0f1e")
            .dm("dm-1", "253:1", "luks-0f1e", LUKS_UUID, &["nvme0n1p3"])
            .block("nvme0n1p3", "259:3")
            .block("nvme0n1", "259:0");
        assert_eq!(
            probe(&f.root()),
            Observed::known_because(true, "root filesystem on dm-crypt (LUKS) via dm-1")
        );
    }

    #[test]
    fn lvm_on_luks_root_is_encrypted_through_the_stack() {
        let f = Fixture::new();
        f.root_mount("253:1", "ext4", "/dev/mapper/vg-root")
            .dm(
                "dm-1",
                "253:1",
                "vg-root",
                "LVM-abcdefABCDEF0123456789abcdefABCDEF0123456789ab",
                &["dm-0"],
            )
            .dm("dm-0", "253:0", "cryptlvm", LUKS_UUID, &["sda2"])
            .block("sda2", "8:2");
        assert_eq!(
            probe(&f.root()),
            Observed::known_because(
                true,
                "root filesystem on /dev/mapper/vg-root (dm-1), stacked on dm-crypt (LUKS) via dm-0"
            )
        );
    }

    #[test]
    fn plain_root_is_not_encrypted() {
        let f = Fixture::new();
        f.root_mount("254:0", "ext4", "/dev/vda")
            .block("vda", "254:0")
            .mkdir("/sys/class/block/vda/slaves");
        assert_eq!(
            probe(&f.root()),
            Observed::known_because(false, "root filesystem on /dev/vda, no dm-crypt layer")
        );
    }

    #[test]
    fn lvm_spanning_a_plain_disk_is_not_encrypted() {
        let f = Fixture::new();
        f.root_mount("253:2", "xfs", "/dev/mapper/vg-root")
            .dm("dm-2", "253:2", "vg-root", "LVM-xyz", &["dm-0", "sdb1"])
            .dm("dm-0", "253:0", "cryptlvm", LUKS_UUID, &["sda2"])
            .block("sda2", "8:2")
            .block("sdb1", "8:17");
        assert_eq!(
            probe(&f.root()),
            Observed::known_because(
                false,
                "root filesystem on /dev/mapper/vg-root (dm-2), no dm-crypt layer above sdb1"
            )
        );
    }

    #[test]
    fn dm_verity_is_integrity_not_encryption() {
        let f = Fixture::new();
        f.root_mount("253:0", "erofs", "/dev/dm-0")
            .dm(
                "dm-0",
                "253:0",
                "root",
                "CRYPT-VERITY-00112233445566778899aabbccddeeff-root",
                &["sda3"],
            )
            .block("sda3", "8:3");
        assert_eq!(
            probe(&f.root()),
            Observed::known_because(
                false,
                "root filesystem on /dev/dm-0 (dm-0), no dm-crypt layer above sda3"
            )
        );
    }

    #[test]
    fn btrfs_root_is_found_by_its_source_device() {
        // btrfs reports an anonymous device number (major 0) in mountinfo.
        let f = Fixture::new();
        f.root_mount("0:31", "btrfs", "/dev/mapper/cryptroot")
            .dm("dm-0", "253:0", "cryptroot", LUKS_UUID, &["nvme0n1p2"])
            .block("nvme0n1p2", "259:2");
        assert_eq!(
            probe(&f.root()),
            Observed::known_because(true, "root filesystem on dm-crypt (LUKS) via dm-0")
        );
    }

    #[test]
    fn overlay_root_is_unknown() {
        let f = Fixture::new();
        f.root_mount("0:45", "overlay", "overlay")
            .block("vda", "254:0");
        assert_eq!(
            probe(&f.root()),
            Observed::unknown(
                "root filesystem is overlay (container?): cannot see the backing disk"
            )
        );
    }

    #[test]
    fn missing_sysfs_is_unknown() {
        let f = Fixture::new();
        f.root_mount("254:0", "ext4", "/dev/vda");
        let r = probe(&f.root());
        assert_eq!(
            reason(&r),
            "cannot read /sys/class/block (it does not exist): is sysfs mounted?"
        );
    }

    #[test]
    fn missing_proc_is_unknown() {
        let f = Fixture::new();
        f.block("vda", "254:0");
        let r = probe(&f.root());
        assert!(
            reason(&r).starts_with("cannot read /proc/self/mountinfo"),
            "{r:?}"
        );
    }

    #[test]
    fn dm_device_without_uuid_is_unknown() {
        let f = Fixture::new();
        f.root_mount("253:0", "ext4", "/dev/mapper/root")
            .dm("dm-0", "253:0", "root", "", &["sda1"])
            .block("sda1", "8:1");
        assert_eq!(
            reason(&probe(&f.root())),
            "device-mapper device dm-0 has no uuid: cannot tell whether it is dm-crypt"
        );
    }

    #[test]
    fn broken_stack_below_a_dm_device_is_unknown() {
        let f = Fixture::new();
        f.root_mount("253:1", "ext4", "/dev/mapper/vg-root").dm(
            "dm-1",
            "253:1",
            "vg-root",
            "LVM-x",
            &["dm-0"],
        );
        assert_eq!(
            reason(&probe(&f.root())),
            "/sys/class/block/dm-0 is missing, so the device stack cannot be followed"
        );
    }

    #[test]
    fn loop_root_is_unknown() {
        let f = Fixture::new();
        f.root_mount("7:0", "squashfs", "/dev/loop0")
            .block("loop0", "7:0")
            .file(
                "/sys/class/block/loop0/loop/backing_file",
                "/cdrom/casper/filesystem.squashfs\n",
            );
        assert_eq!(
            reason(&probe(&f.root())),
            "root filesystem is on loop device loop0, backed by /cdrom/casper/filesystem.squashfs: \
             cannot see the disk under it"
        );
    }

    #[test]
    fn proc_mounts_is_used_when_mountinfo_is_missing() {
        let f = Fixture::new();
        f.file(
            "/proc/mounts",
            "proc /proc proc rw 0 0\n/dev/sda1 / ext4 rw,relatime 0 0\n",
        )
        .block("sda1", "8:1");
        assert_eq!(
            probe(&f.root()),
            Observed::known_because(false, "root filesystem on /dev/sda1, no dm-crypt layer")
        );
    }

    #[test]
    fn mountinfo_takes_the_last_root_mount_and_unescapes_fields() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                    2 1 0:5 / / rw shared:1 master:2 - overlay over\\040lay rw\n\
                    3 2 0:6 / /my\\040dir rw - tmpfs tmpfs rw\n";
        assert_eq!(
            parse_mountinfo(text),
            Some(RootMount {
                dev: Some("0:5".into()),
                fs_type: "overlay".into(),
                source: "over lay".into()
            })
        );
        assert_eq!(unescape("a\\134b\\011"), "a\\b\t");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }

    #[test]
    fn cryptsetup_uuid_types() {
        assert_eq!(dm_kind(LUKS_UUID), DmKind::Encrypting("LUKS"));
        assert_eq!(dm_kind("CRYPT-PLAIN-home"), DmKind::Encrypting("plain"));
        assert_eq!(
            dm_kind("CRYPT-BITLK-1234-win"),
            DmKind::Encrypting("BitLocker")
        );
        assert_eq!(dm_kind("CRYPT-INTEGRITY-x"), DmKind::NotEncrypting);
        assert_eq!(dm_kind("LVM-abc"), DmKind::NotEncrypting);
        assert_eq!(
            dm_kind("CRYPT-NEWTHING-x"),
            DmKind::Unrecognised("NEWTHING".into())
        );
    }
}
