//! Why no security key is found, where the agent can tell, and how to fix it.
//!
//! The checks read the same places a person would: `/sys/class/hidraw` (is hidraw in the
//! kernel, which nodes are FIDO devices by their report descriptor's usage page 0xF1D0), the
//! udev rules folders (is there a rule granting FIDO devices to the logged-in user), the login
//! session (is this user on the active seat, which is what `uaccess` requires), and opening each
//! FIDO node (permission denied, or busy in another program). [`Probe`] names the roots so tests
//! run the checks over a fake tree.

use std::path::{Path, PathBuf};

use keywarden_protocol::{KeyAccessProblem, NoKeyFinding};

/// Where to look.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The sysfs root (`/sys`).
    pub sys: PathBuf,
    /// The device folder (`/dev`).
    pub dev: PathBuf,
    /// udev rules folders.
    pub udev_rules: Vec<PathBuf>,
    /// The login session's state file (`/run/systemd/sessions/$XDG_SESSION_ID`), if known.
    pub session_file: Option<PathBuf>,
}

impl Probe {
    /// This machine.
    pub fn system() -> Self {
        Probe {
            sys: "/sys".into(),
            dev: "/dev".into(),
            udev_rules: vec![
                "/etc/udev/rules.d".into(),
                "/run/udev/rules.d".into(),
                "/lib/udev/rules.d".into(),
                "/usr/lib/udev/rules.d".into(),
            ],
            session_file: std::env::var_os("XDG_SESSION_ID")
                .filter(|s| !s.is_empty())
                .map(|s| Path::new("/run/systemd/sessions").join(s)),
        }
    }
}

fn finding(
    code: KeyAccessProblem,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> NoKeyFinding {
    NoKeyFinding {
        code,
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// True when a HID report descriptor declares the FIDO usage page (0xF1D0).
pub fn is_fido_descriptor(desc: &[u8]) -> bool {
    desc.windows(3).any(|w| w == [0x06, 0xD0, 0xF1])
}

fn has_fido_udev_rule(dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| {
        std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|text| {
                    let t = text.to_ascii_lowercase();
                    (t.contains("fido") || t.contains("f1d0")) && t.contains("hidraw")
                        || t.contains("id_fido_token")
                })
            })
    })
}

/// `Some(true)` active, `Some(false)` not on the active seat, `None` unknown.
fn session_active(file: Option<&Path>) -> Option<bool> {
    let text = std::fs::read_to_string(file?).ok()?;
    text.lines().find_map(|l| match l.trim() {
        "ACTIVE=1" => Some(true),
        "ACTIVE=0" => Some(false),
        _ => None,
    })
}

/// Run every check; an empty list means the agent found nothing it can name.
pub fn diagnose(probe: &Probe) -> Vec<NoKeyFinding> {
    diagnose_with(probe, &|node| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(node)
            .map(drop)
    })
}

/// [`diagnose`] with the way FIDO nodes are opened given (tests give permission and busy
/// errors that a root test run could not otherwise meet).
pub fn diagnose_with(
    probe: &Probe,
    open: &dyn Fn(&Path) -> std::io::Result<()>,
) -> Vec<NoKeyFinding> {
    let mut out = Vec::new();
    let class = probe.sys.join("class").join("hidraw");
    let Ok(entries) = std::fs::read_dir(&class) else {
        out.push(finding(
            KeyAccessProblem::NoHidraw,
            "this kernel has no hidraw support (/sys/class/hidraw is missing), so no program can talk to a USB security key",
            "use a kernel built with CONFIG_HIDRAW (every distribution kernel has it), or load the hid and usbhid modules",
        ));
        return out;
    };
    let mut fido_nodes = Vec::new();
    for e in entries.flatten() {
        let desc = e.path().join("device").join("report_descriptor");
        if std::fs::read(&desc).is_ok_and(|d| is_fido_descriptor(&d)) {
            fido_nodes.push(probe.dev.join(e.file_name()));
        }
    }
    if fido_nodes.is_empty() {
        out.push(finding(
            KeyAccessProblem::NoFidoDevice,
            "no FIDO security key is connected: none of the HID devices is one",
            "plug the key in (try another USB port or cable); a key that lights up but is not listed here may be in a mode without FIDO enabled",
        ));
        return out;
    }
    let rule = has_fido_udev_rule(&probe.udev_rules);
    let active = session_active(probe.session_file.as_deref());
    for node in fido_nodes {
        let Err(e) = open(&node) else { continue };
        let name = node.display();
        match e.raw_os_error() {
            Some(16) => out.push(finding(
                KeyAccessProblem::DeviceBusy,
                format!("the key at {name} is busy in another program"),
                "close other programs that use the key (a browser prompt, gpg's scdaemon, another FIDO tool) and try again",
            )),
            _ if e.kind() == std::io::ErrorKind::PermissionDenied => {
                if !rule {
                    out.push(finding(
                        KeyAccessProblem::NoUdevRule,
                        format!("a key is plugged in ({name}) but there is no udev rule giving you access to FIDO devices"),
                        "install the udev rule for FIDO devices (the Keywarden package ships 70-keywarden-fido.rules), then unplug the key and plug it in again",
                    ));
                } else if active == Some(false) {
                    out.push(finding(
                        KeyAccessProblem::NotActiveSeat,
                        format!("a key is plugged in ({name}) but your session is not the active one on this seat, so the system does not give you the device"),
                        "switch to your session on the laptop's screen (not a remote or background login) and try again",
                    ));
                } else {
                    out.push(finding(
                        KeyAccessProblem::NoPermission,
                        format!("a key is plugged in ({name}) but you may not open it"),
                        "log in on the laptop's own screen; if you are, unplug the key and plug it in again so the udev rule applies",
                    ));
                }
            }
            _ => out.push(finding(
                KeyAccessProblem::DeviceError,
                format!("the key at {name} cannot be opened: {e}"),
                "unplug the key and plug it in again",
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const FIDO: &[u8] = &[0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01];
    const KEYBOARD: &[u8] = &[0x05, 0x01, 0x09, 0x06, 0xA1, 0x01];

    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Tree {
            Tree {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn probe(&self) -> Probe {
            let r = self.dir.path();
            Probe {
                sys: r.join("sys"),
                dev: r.join("dev"),
                udev_rules: vec![r.join("rules")],
                session_file: Some(r.join("session")),
            }
        }
        fn hidraw(&self, n: u32, desc: &[u8], mode: u32) {
            use std::os::unix::fs::PermissionsExt as _;
            let r = self.dir.path();
            let d = r.join(format!("sys/class/hidraw/hidraw{n}/device"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("report_descriptor"), desc).unwrap();
            std::fs::create_dir_all(r.join("dev")).unwrap();
            let node = r.join(format!("dev/hidraw{n}"));
            std::fs::write(&node, b"").unwrap();
            std::fs::set_permissions(&node, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        fn write(&self, rel: &str, text: &str) {
            let p = self.dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
    }

    fn codes(f: &[NoKeyFinding]) -> Vec<KeyAccessProblem> {
        f.iter().map(|f| f.code).collect()
    }

    fn denied(_: &Path) -> std::io::Result<()> {
        Err(std::io::Error::from_raw_os_error(13))
    }

    #[test]
    fn a_kernel_without_hidraw_is_named() {
        let t = Tree::new();
        assert_eq!(codes(&diagnose(&t.probe())), [KeyAccessProblem::NoHidraw]);
    }

    #[test]
    fn hid_devices_that_are_not_fido_mean_no_key_is_plugged_in() {
        let t = Tree::new();
        t.hidraw(0, KEYBOARD, 0o600);
        assert_eq!(
            codes(&diagnose(&t.probe())),
            [KeyAccessProblem::NoFidoDevice]
        );
        assert!(is_fido_descriptor(FIDO));
        assert!(!is_fido_descriptor(KEYBOARD));
    }

    #[test]
    fn an_openable_key_gives_no_finding() {
        let t = Tree::new();
        t.hidraw(0, FIDO, 0o666);
        assert!(diagnose(&t.probe()).is_empty());
    }

    #[test]
    fn permission_denied_is_explained_by_the_missing_rule_or_the_inactive_seat() {
        let t = Tree::new();
        t.hidraw(1, FIDO, 0o600);
        assert_eq!(
            codes(&diagnose_with(&t.probe(), &denied)),
            [KeyAccessProblem::NoUdevRule]
        );
        t.write(
            "rules/70-keywarden-fido.rules",
            r#"KERNEL=="hidraw*", SUBSYSTEM=="hidraw", ENV{ID_FIDO_TOKEN}=="1", TAG+="uaccess""#,
        );
        t.write("session", "UID=1000\nACTIVE=0\n");
        assert_eq!(
            codes(&diagnose_with(&t.probe(), &denied)),
            [KeyAccessProblem::NotActiveSeat]
        );
        t.write("session", "UID=1000\nACTIVE=1\n");
        assert_eq!(
            codes(&diagnose_with(&t.probe(), &denied)),
            [KeyAccessProblem::NoPermission]
        );
    }

    #[test]
    fn a_key_held_by_another_program_is_named_busy() {
        let t = Tree::new();
        t.hidraw(2, FIDO, 0o600);
        let busy = |_: &Path| Err(std::io::Error::from_raw_os_error(16));
        let f = diagnose_with(&t.probe(), &busy);
        assert_eq!(codes(&f), [KeyAccessProblem::DeviceBusy]);
        assert!(f[0].problem.contains("hidraw2"), "{f:?}");
    }

    #[test]
    fn rules_and_sessions_are_read_as_written() {
        let t = Tree::new();
        let p = t.probe();
        assert!(!has_fido_udev_rule(&p.udev_rules));
        t.write(
            "rules/60-fido-id.rules",
            "SUBSYSTEM==\"hidraw\", IMPORT{program}=\"fido_id\"\n",
        );
        assert!(has_fido_udev_rule(&p.udev_rules));
        assert_eq!(session_active(p.session_file.as_deref()), None);
        t.write("session", "ACTIVE=0\n");
        assert_eq!(session_active(p.session_file.as_deref()), Some(false));
    }
}
