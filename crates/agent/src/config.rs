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
