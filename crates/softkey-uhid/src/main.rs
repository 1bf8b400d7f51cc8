//! `keywarden-softkey`: the project's software key (test/demo) presented to the system as a real
//! USB HID FIDO device through Linux `/dev/uhid`.
//!
//! The authenticator is `keywarden_keys::soft::SoftKey` (state in a JSON file) behind the CTAP2
//! command layer (`keywarden_keys::ctap2`) and the CTAPHID framing (`keywarden_keys::ctaphid`).
//! Every HID client on the machine (hidapi, libfido2, browsers) sees a FIDO key whose product
//! name says it is a software key for tests and demos; its AAGUID is the soft key's, so the
//! Keywarden agent labels it `software key (test/demo)` as well. It never stands in for a real
//! key: it exists only while this process runs, and stopping the process unplugs it.

mod uhid;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use keywarden_keys::ctap2::Profile;
use keywarden_keys::soft::{Attestation, SoftKeyOptions};

/// Product name every HID client sees: the soft key's model name.
pub const PRODUCT_NAME: &str = keywarden_keys::models::SOFT_KEY_MODEL;

/// Key families the software key (test/demo) can imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProfileName {
    /// CTAP 2.1: PIN protocols 2 and 1, credential management 0x0A, selection, x5c attestation.
    Fido21,
    /// CTAP 2.1 with PIN protocol 2 only and self attestation (no certificate).
    Fido21Proto2,
    /// CTAP 2.0 with the 2.1 preview: PIN protocol 1 only, credential management 0x41, no
    /// selection, x5c attestation.
    Fido20,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AttestationArg {
    /// packed with the soft key's attestation certificate.
    X5c,
    /// packed self attestation.
    #[value(name = "self")]
    SelfSigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FidoVersion {
    /// FIDO_2_0 + FIDO_2_1_PRE.
    #[value(name = "2.0")]
    V20,
    /// FIDO_2_0 + FIDO_2_1.
    #[value(name = "2.1")]
    V21,
}

/// Present the Keywarden software key (test/demo) as a USB FIDO key through /dev/uhid, for
/// end-to-end tests of real HID clients. It is not a security key: its private keys sit in the
/// state file. The key is unplugged when this process ends.
#[derive(Debug, Parser)]
#[command(name = "keywarden-softkey", version, about)]
struct Cli {
    /// Present the key over /dev/uhid (the only transport; needs the uhid kernel module).
    #[arg(long)]
    uhid: bool,
    /// State file of the software key (created if missing).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Key family to imitate.
    #[arg(long, value_enum, default_value = "fido21")]
    profile: ProfileName,
    /// Override the profile's PIN protocols, comma-separated in order of preference, e.g. `2,1`.
    #[arg(long, value_delimiter = ',')]
    pin_protocols: Option<Vec<u8>>,
    /// Override the profile's CTAP version.
    #[arg(long, value_enum)]
    fido: Option<FidoVersion>,
    /// Override the profile's attestation.
    #[arg(long, value_enum)]
    attestation: Option<AttestationArg>,
    /// USB serial number to expose; without it the key has none, like many real keys.
    #[arg(long)]
    serial: Option<String>,
    /// Set this PIN when the key has none yet (tests only; also KEYWARDEN_SOFTKEY_PIN).
    #[arg(long, env = "KEYWARDEN_SOFTKEY_PIN", hide_env_values = true)]
    initial_pin: Option<String>,
    /// Minimum PIN length of a new key (getInfo minPINLength).
    #[arg(long, default_value_t = 4)]
    min_pin_length: u32,
    /// Require a PIN change before the PIN can be used (getInfo forcePINChange).
    #[arg(long)]
    force_pin_change: bool,
    /// How many discoverable credentials fit on a new key.
    #[arg(long, default_value_t = 25)]
    max_credentials: u32,
    /// How long "the user" takes to touch the key; KEEPALIVE reports go out meanwhile.
    #[arg(long, default_value_t = 200)]
    touch_delay_ms: u64,
}

impl Cli {
    fn profile(&self) -> Profile {
        let mut p = match self.profile {
            ProfileName::Fido21 => Profile::default(),
            ProfileName::Fido21Proto2 => Profile {
                pin_protocols: vec![2],
                fido_2_1: true,
                attestation: Attestation::SelfSigned,
            },
            ProfileName::Fido20 => Profile {
                pin_protocols: vec![1],
                fido_2_1: false,
                attestation: Attestation::X5c,
            },
        };
        if let Some(v) = &self.pin_protocols {
            p.pin_protocols = v.clone();
        }
        if let Some(f) = self.fido {
            p.fido_2_1 = f == FidoVersion::V21;
        }
        if let Some(a) = self.attestation {
            p.attestation = match a {
                AttestationArg::X5c => Attestation::X5c,
                AttestationArg::SelfSigned => Attestation::SelfSigned,
            };
        }
        p
    }

    fn options(&self) -> SoftKeyOptions {
        SoftKeyOptions {
            min_pin_length: self.min_pin_length,
            max_discoverable_credentials: self.max_credentials,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keywarden-softkey: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    anyhow::ensure!(
        cli.uhid,
        "choose a transport: --uhid (the only one there is)"
    );
    let profile = cli.profile();
    anyhow::ensure!(
        !profile.pin_protocols.is_empty()
            && profile.pin_protocols.iter().all(|p| *p == 1 || *p == 2),
        "--pin-protocols takes 1 and/or 2"
    );
    uhid::serve(&cli, profile)
}
