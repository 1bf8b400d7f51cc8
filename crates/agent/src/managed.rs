//! Managed configuration: a system-wide file that IT or an MDM installs. It overrides what the
//! user's own configuration says and, by default, locks the server URL so that a person cannot
//! point the agent at another service.
//!
//! The file is JSON, e.g. `{"server_url": "https://keywarden.example.com",
//! "checkin_interval_seconds": 3600, "rp_id": "keywarden.example.com", "origin":
//! "https://keywarden.example.com"}`. `rp_id` and `origin` (given together) lock the relying
//! party the agent signs for: they override what provisioning pinned, and provisioning against
//! a service that names another one is refused. `ca_bundle` names a PEM file of CA certificates
//! trusted for the service besides the system's roots (a corporate CA, or the pilot CA of
//! `keywarden-server tls init`); `pin_ca_sha256`, the SHA-256 of one of them, makes it the only
//! CA trusted. Unknown fields are refused, so a typo is an error and not
//! a silently ignored setting. `KEYWARDEN_MANAGED_CONFIG` names another file (tests, staging).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::ServerTrust;
use crate::error::{Error, Result};
use crate::files;

/// Where the managed configuration lives on Linux.
pub const MANAGED_CONFIG_PATH: &str = "/etc/keywarden/managed.json";

/// Default seconds between scheduled check-ins.
pub const DEFAULT_CHECKIN_INTERVAL_SECONDS: u64 = 3600;

/// Shortest check-in interval accepted (a managed file cannot make agents flood the service).
pub const MIN_CHECKIN_INTERVAL_SECONDS: u64 = 60;

fn default_lock() -> bool {
    true
}

/// What IT manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedConfig {
    /// The service every laptop reports to.
    pub server_url: Option<String>,
    /// When true (the default), the server URL cannot be changed by the user.
    #[serde(default = "default_lock")]
    pub lock_server_url: bool,
    /// Seconds between scheduled check-ins.
    pub checkin_interval_seconds: Option<u64>,
    /// The organisation's WebAuthn relying party id: the only one the agent signs for, whatever
    /// a service asks. Given with [`ManagedConfig::origin`].
    pub rp_id: Option<String>,
    /// The only origin the agent puts into clientDataJSON. Given with [`ManagedConfig::rp_id`].
    pub origin: Option<String>,
    /// A PEM file of CA certificates trusted for the service's HTTPS besides the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// SHA-256 fingerprint (hex) of one CA in [`ManagedConfig::ca_bundle`]: with it, only a
    /// chain to that CA is accepted (not the system's roots).
    pub pin_ca_sha256: Option<String>,
    /// The file it was read from.
    #[serde(skip)]
    pub source: PathBuf,
    /// What [`ManagedConfig::ca_bundle`] and [`ManagedConfig::pin_ca_sha256`] make trusted,
    /// read once with the file.
    #[serde(skip)]
    pub server_trust: ServerTrust,
}

impl ManagedConfig {
    /// The managed file's path: `KEYWARDEN_MANAGED_CONFIG`, else [`MANAGED_CONFIG_PATH`].
    pub fn default_path() -> PathBuf {
        std::env::var_os("KEYWARDEN_MANAGED_CONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(MANAGED_CONFIG_PATH))
    }

    /// Read and check the file at [`ManagedConfig::default_path`]; `None` when there is none.
    pub fn load_default() -> Result<Option<ManagedConfig>> {
        Self::load(&Self::default_path())
    }

    /// Read and check the file; `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<ManagedConfig>> {
        let Some(bytes) = files::read_optional(path)? else {
            return Ok(None);
        };
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_owned(),
            reason,
        };
        let mut cfg: ManagedConfig =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if let Some(url) = &cfg.server_url {
            cfg.server_url = Some(
                crate::config::normalise_server_url(url)
                    .map_err(|e| corrupt(format!("server_url: {e}")))?,
            );
        }
        if let Some(s) = cfg.checkin_interval_seconds {
            if s < MIN_CHECKIN_INTERVAL_SECONDS {
                return Err(corrupt(format!(
                    "checkin_interval_seconds is {s}; the shortest allowed is {MIN_CHECKIN_INTERVAL_SECONDS}"
                )));
            }
        }
        match (&cfg.rp_id, &cfg.origin) {
            (None, None) => {}
            (Some(rp), Some(origin)) => {
                let rp = crate::config::normalise_rp_id(rp);
                let origin = crate::config::normalise_origin(origin).ok_or_else(|| {
                    corrupt(format!(
                        "origin {origin} is not an https origin such as https://keywarden.example.com"
                    ))
                })?;
                if rp.is_empty() || !crate::config::origin_serves_rp(&origin, &rp) {
                    return Err(corrupt(format!(
                        "origin {origin} is not on the relying party {rp} or one of its subdomains"
                    )));
                }
                cfg.rp_id = Some(rp);
                cfg.origin = Some(origin);
            }
            _ => {
                return Err(corrupt(
                    "rp_id and origin pin the relying party together; give both or neither".into(),
                ))
            }
        }
        cfg.server_trust = match (&cfg.ca_bundle, &cfg.pin_ca_sha256) {
            (None, None) => ServerTrust::default(),
            (None, Some(_)) => {
                return Err(corrupt(
                    "pin_ca_sha256 names a CA of ca_bundle; give ca_bundle too".into(),
                ))
            }
            (Some(bundle), pin) => {
                let pem = files::read_optional(bundle)?.ok_or_else(|| {
                    corrupt(format!("ca_bundle {} does not exist", bundle.display()))
                })?;
                ServerTrust::from_bundle(&pem, pin.as_deref()).map_err(|reason| {
                    corrupt(format!("ca_bundle {}: {reason}", bundle.display()))
                })?
            }
        };
        cfg.source = path.to_owned();
        Ok(Some(cfg))
    }

    /// The relying party id and origin IT fixed, when the file names them.
    pub fn pinned_relying_party(&self) -> Option<(&str, &str)> {
        self.rp_id.as_deref().zip(self.origin.as_deref())
    }

    /// The server URL IT fixed, when it is locked.
    pub fn locked_server(&self) -> Option<&str> {
        self.server_url.as_deref().filter(|_| self.lock_server_url)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `text` loaded as the managed configuration file.
    fn load(text: &str) -> Result<Option<ManagedConfig>> {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("managed.json");
        std::fs::write(&p, text).unwrap();
        ManagedConfig::load(&p)
    }

    /// `text` loaded, when it is accepted.
    fn accepted(text: &str) -> ManagedConfig {
        load(text).unwrap().unwrap()
    }

    #[test]
    fn missing_file_is_no_managed_config() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(
            ManagedConfig::load(&d.path().join("none.json")).unwrap(),
            None
        );
    }

    #[test]
    fn server_is_locked_by_default_and_normalised() {
        let m = accepted(r#"{"server_url": "https://kw.example.com/"}"#);
        assert_eq!(m.locked_server(), Some("https://kw.example.com"));
        let m = accepted(r#"{"server_url": "https://kw.example.com", "lock_server_url": false}"#);
        assert_eq!(m.locked_server(), None);
    }

    #[test]
    fn the_relying_party_is_pinned_normalised_with_its_origin() {
        let m = accepted(
            r#"{"rp_id": "Keywarden.Example.com", "origin": "https://login.keywarden.example.com/"}"#,
        );
        assert_eq!(
            m.pinned_relying_party(),
            Some((
                "keywarden.example.com",
                "https://login.keywarden.example.com"
            ))
        );
        let m = accepted(r#"{"server_url": "https://kw.example.com"}"#);
        assert_eq!(m.pinned_relying_party(), None);
    }

    #[test]
    fn the_shipped_template_is_accepted_and_trusts_the_system_roots_only() {
        let m = accepted(include_str!(
            "../../../installer/managed-config/managed.json"
        ));
        assert_eq!(m.ca_bundle, None);
        assert_eq!(m.server_trust, ServerTrust::default());
    }

    #[test]
    fn typos_insecure_urls_and_tiny_intervals_are_refused() {
        for bad in [
            r#"{"server_ur": "https://kw.example.com"}"#,
            r#"{"server_url": "http://kw.example.com"}"#,
            r#"{"checkin_interval_seconds": 5}"#,
            r#"{"rp_id": "keywarden.example.com"}"#,
            r#"{"rp_id": "keywarden.example.com", "origin": "https://evil.example.net"}"#,
            r#"{"rp_id": "keywarden.example.com", "origin": "not an origin"}"#,
            "not json",
        ] {
            let e = load(bad).unwrap_err();
            assert!(matches!(e, Error::Corrupt { .. }), "{bad}: {e}");
        }
    }
}
