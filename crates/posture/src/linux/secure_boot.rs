//! Does the firmware enforce secure boot?
//!
//! Without UEFI there is no secure boot. With UEFI the firmware publishes its state in the
//! `SecureBoot` variable of the EFI global namespace, which Linux exposes through efivarfs as a
//! file holding 4 bytes of attributes followed by the 1-byte value.

use super::{describe, Root};
use keywarden_protocol::Observed;

const EFI_DIR: &str = "/sys/firmware/efi";
const EFIVARS_DIR: &str = "/sys/firmware/efi/efivars";
/// `SecureBoot` in the EFI global variable namespace.
const SECURE_BOOT_VAR: &str =
    "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e98c0130d5d8";

pub(crate) fn probe(root: &Root) -> Observed<bool> {
    if !root.exists(EFI_DIR) {
        if !root.exists("/sys/firmware") {
            return Observed::unknown(
                "/sys/firmware is missing (sysfs not mounted, or a container?): cannot tell how \
                 the machine booted",
            );
        }
        return Observed::known_because(
            false,
            "booted without UEFI (legacy BIOS): secure boot cannot be on",
        );
    }
    match root.read(SECURE_BOOT_VAR) {
        Ok(bytes) => match bytes.as_slice() {
            [_, _, _, _, 1] => Observed::known_because(true, "EFI variable SecureBoot is 1"),
            [_, _, _, _, 0] => Observed::known_because(false, "EFI variable SecureBoot is 0"),
            [_, _, _, _, v] => Observed::unknown(format!(
                "EFI variable SecureBoot holds unexpected value {v}"
            )),
            other => Observed::unknown(format!(
                "EFI variable SecureBoot is {} bytes long, expected 5",
                other.len()
            )),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => absent_variable(root),
        Err(e) => Observed::unknown(format!("cannot read {SECURE_BOOT_VAR} ({})", describe(&e))),
    }
}

/// UEFI firmware that supports secure boot always defines `SecureBoot`; its absence only means
/// "unsupported" when the other variables can be seen.
fn absent_variable(root: &Root) -> Observed<bool> {
    match root.list_dir(EFIVARS_DIR) {
        Ok(names) if !names.is_empty() => Observed::known_because(
            false,
            "UEFI firmware defines no SecureBoot variable: it does not support secure boot",
        ),
        Ok(_) => Observed::unknown(format!(
            "{EFIVARS_DIR} is empty (efivarfs not mounted?): cannot read the SecureBoot variable"
        )),
        Err(e) => Observed::unknown(format!(
            "cannot read {EFIVARS_DIR} ({}): cannot read the SecureBoot variable",
            describe(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;
    use super::*;

    /// Attributes NV + BS + RT, as the firmware sets them.
    const ATTRS: [u8; 4] = [0x06, 0, 0, 0];

    fn with_var(value: &[u8]) -> Fixture {
        let f = Fixture::new();
        f.file(SECURE_BOOT_VAR, value);
        f
    }

    /// What the probe says with the variable holding the firmware's attributes then `value`.
    fn probe_value(value: u8) -> Observed<bool> {
        let mut bytes = ATTRS.to_vec();
        bytes.push(value);
        probe(&with_var(&bytes).root())
    }

    #[test]
    fn secure_boot_on() {
        let expected = Observed::known_because(true, "EFI variable SecureBoot is 1");
        assert_eq!(probe_value(1), expected);
    }

    #[test]
    fn secure_boot_off() {
        let expected = Observed::known_because(false, "EFI variable SecureBoot is 0");
        assert_eq!(probe_value(0), expected);
    }

    #[test]
    fn truncated_or_odd_variable_is_unknown() {
        let f = with_var(&ATTRS);
        assert_eq!(
            probe(&f.root()),
            Observed::unknown("EFI variable SecureBoot is 4 bytes long, expected 5")
        );
        let f = with_var(&[6, 0, 0, 0, 7]);
        assert_eq!(
            probe(&f.root()),
            Observed::unknown("EFI variable SecureBoot holds unexpected value 7")
        );
    }

    #[test]
    fn unreadable_variable_is_unknown() {
        // A directory where the file should be: reading it fails whoever runs the test.
        let f = Fixture::new();
        f.mkdir(SECURE_BOOT_VAR);
        let r = probe(&f.root());
        match &r {
            Observed::Unknown { reason } => {
                assert!(
                    reason.starts_with(&format!("cannot read {SECURE_BOOT_VAR} (")),
                    "{reason}"
                )
            }
            other => panic!("expected unknown, got {other:?}"),
        }
    }

    #[test]
    fn efivarfs_not_mounted_is_unknown() {
        let f = Fixture::new();
        f.mkdir(EFIVARS_DIR);
        assert_eq!(
            probe(&f.root()),
            Observed::unknown(
                "/sys/firmware/efi/efivars is empty (efivarfs not mounted?): cannot read the \
                 SecureBoot variable"
            )
        );
    }

    #[test]
    fn firmware_without_the_variable_does_not_support_secure_boot() {
        let f = Fixture::new();
        f.file(
            &format!("{EFIVARS_DIR}/BootOrder-8be4df61-93ca-11d2-aa0d-e98c0130d5d8"),
            [6, 0, 0, 0, 1, 0],
        );
        assert_eq!(probe(&f.root()).value(), Some(&false));
    }

    #[test]
    fn no_efi_means_no_secure_boot() {
        let f = Fixture::new();
        f.mkdir("/sys/firmware/acpi");
        assert_eq!(
            probe(&f.root()),
            Observed::known_because(
                false,
                "booted without UEFI (legacy BIOS): secure boot cannot be on"
            )
        );
    }

    #[test]
    fn no_sysfs_is_unknown() {
        let f = Fixture::new();
        assert!(matches!(probe(&f.root()), Observed::Unknown { .. }));
    }
}
