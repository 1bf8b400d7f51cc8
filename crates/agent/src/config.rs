//! Where the agent keeps its files, and its configuration.
//!
//! Folders come from the platform conventions (`directories`); `KEYWARDEN_HOME` (or the CLI's
//! `--home`) puts everything under one folder instead, for IT scripting, tests and the demo.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::files;

/// The agent's folders.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Configuration (`config.json`).
    pub config_dir: PathBuf,
    /// State: device key, sequence counter, outbox.
    pub data_dir: PathBuf,
}

impl Paths {
    /// Everything under one folder.
    pub fn under(home: &Path) -> Self {
        Paths {
            config_dir: home.join("config"),
            data_dir: home.join("data"),
        }
    }

    /// `home` if given, else `KEYWARDEN_HOME`, else the platform folders.
    pub fn resolve(home: Option<&Path>) -> Result<Self> {
        if let Some(h) = home {
            return Ok(Self::under(h));
        }
        if let Some(h) = std::env::var_os("KEYWARDEN_HOME") {
            return Ok(Self::under(Path::new(&h)));
        }
        let dirs =
            directories::ProjectDirs::from("org", "Keywarden", "keywarden").ok_or_else(|| {
                Error::Corrupt {
                    path: PathBuf::from("~"),
                    reason: "no home folder found; set KEYWARDEN_HOME".into(),
                }
            })?;
        Ok(Paths {
            config_dir: dirs.config_dir().to_owned(),
            data_dir: dirs.data_dir().to_owned(),
        })
    }

    /// The configuration file.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.json")
    }
    /// The device private key.
    pub fn device_key_file(&self) -> PathBuf {
        self.data_dir.join("device.key")
    }
    /// The request sequence counter.
    pub fn seq_file(&self) -> PathBuf {
        self.data_dir.join("seq")
    }
    /// Held while a sequence number is taken and its request sent (see
    /// [`crate::identity::with_next_seq`]).
    pub fn seq_lock_file(&self) -> PathBuf {
        self.data_dir.join("seq.lock")
    }
    /// The report outbox.
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }
}

/// What provisioning saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Service base URL, e.g. `https://keywarden.example.com`.
    pub server_url: String,
    /// Device id the service assigned.
    pub device_id: String,
    /// When this laptop was provisioned (unix ms).
    pub provisioned_at_ms: i64,
    /// The organisation's WebAuthn relying party id, as the service named it at provisioning:
    /// the agent signs for no other ([`crate::Agent::relying_party`]). `None` in a laptop
    /// provisioned before the agent pinned it, or by a service that does not name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rp_id: Option<String>,
    /// The origin pinned with [`Config::rp_id`], e.g. `https://keywarden.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl Config {
    /// Load, `None` when not provisioned.
    pub fn load(paths: &Paths) -> Result<Option<Config>> {
        let path = paths.config_file();
        match files::read_optional(&path)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt {
                    path,
                    reason: e.to_string(),
                }),
        }
    }

    /// Save atomically.
    pub fn save(&self, paths: &Paths) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Corrupt {
            path: paths.config_file(),
            reason: e.to_string(),
        })?;
        files::write_atomic(&paths.config_file(), &bytes, false)
    }
}

/// Check and normalise a server URL (no trailing slash). Plain http is accepted only for
/// loopback addresses (the demo and tests); anything else must be https.
pub fn normalise_server_url(url: &str) -> Result<String> {
    let bad = |reason: String| Error::ServerUrl {
        url: url.to_owned(),
        reason,
    };
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| bad(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| bad("it has no host".into()))?;
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(bad(
                "plain http is allowed only on loopback; use https".into()
            ))
        }
        other => return Err(bad(format!("scheme {other} is not http(s)"))),
    }
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// A relying party id as the agent compares it: trimmed, lowercase, without a trailing dot.
pub fn normalise_rp_id(rp_id: &str) -> String {
    rp_id.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// A WebAuthn origin as the agent compares it: `scheme://host[:port]`, lowercase, no path, no
/// trailing slash. `None` when it is not an http(s) origin with a host.
pub fn normalise_origin(origin: &str) -> Option<String> {
    let url = reqwest::Url::parse(origin.trim()).ok()?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

/// Whether `origin` (normalised) may serve the relying party `rp_id` (normalised): its host is
/// the RP id or a subdomain of it, as WebAuthn requires.
pub fn origin_serves_rp(origin: &str, rp_id: &str) -> bool {
    reqwest::Url::parse(origin)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .is_some_and(|h| h == rp_id || h.ends_with(&format!(".{rp_id}")))
}
