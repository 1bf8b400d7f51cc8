//! Keywarden agent core: everything the CLI and the desktop app do, with no UI and no Tauri.
//!
//! - [`config`]: folders and the provisioned configuration;
//! - [`identity`]: the device key pair and the request sequence counter;
//! - [`client`]: device-signed requests to the service;
//! - [`outbox`]: durable report queue (written before sending, removed after the ack);
//! - [`enrol`]: the enrolment state machine, prompting through [`enrol::EnrolPrompts`];
//! - [`managed`]: the system-wide configuration IT installs, which overrides the user's;
//! - [`checkin`]: background check-in (schedule, key plug-in, "check in now") and its status;
//! - [`diagnose`]: why no security key is found, and how to fix it;
//! - [`keyring`]: the keys the CLI, the tray and the app use (HID, named software keys).
//!
//! Calls block (network and keys); async callers run them on a blocking thread.
#![forbid(unsafe_code)]

pub mod checkin;
pub mod client;
pub mod config;
pub mod diagnose;
pub mod enrol;
mod enrolling;
mod error;
mod files;
pub mod identity;
pub mod issuing;
pub mod keyring;
pub mod locks;
pub mod managed;
pub mod orgkeys;
pub mod outbox;
pub mod pin;
mod provisioning;
pub mod receipts;
pub mod reclaim;
mod reporting;
pub mod stepup;

pub use error::{Error, Result};
pub use keywarden_keys as keys;

use keywarden_keys::{KeyInfo, Keyring};
use keywarden_protocol::ReportAck;

use crate::client::Client;
use crate::config::{Config, Paths};
use crate::identity::DeviceKey;

/// This agent's version.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Now, unix milliseconds.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What every front end (CLI, tray, window) reads before it starts: where the agent keeps its
/// files (under `home`, else the usual place) and the organisation's managed configuration, if
/// IT installed one.
pub fn local_setup(
    home: Option<&std::path::Path>,
) -> Result<(Paths, Option<managed::ManagedConfig>)> {
    let paths = Paths::resolve(home)?;
    let managed = managed::ManagedConfig::load(&managed::ManagedConfig::default_path())?;
    Ok((paths, managed))
}

/// How the tray and the window end when they cannot start: `{program}: error: {e}` on stderr
/// and a failing exit code.
pub fn exit_failure(program: &str, e: &dyn std::fmt::Display) -> std::process::ExitCode {
    eprintln!("{program}: error: {e}");
    std::process::ExitCode::FAILURE
}

/// How the CLI ends when a command fails: `{program}: error: {e}` on stderr, then each cause
/// below it on its own line, and a failing exit code.
pub fn exit_with_causes(
    program: &str,
    e: &(dyn std::error::Error + 'static),
) -> std::process::ExitCode {
    eprintln!("{program}: error: {e}");
    for cause in std::iter::successors(e.source(), |c| c.source()) {
        eprintln!("  caused by: {cause}");
    }
    std::process::ExitCode::FAILURE
}

/// Another of Keywarden's programs (`keywarden-app`, `keywarden-tray`): the one installed beside
/// this binary, else `name` as found on PATH.
pub fn sibling_binary(name: &str) -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .map(|p| p.with_file_name(name))
        .filter(|p| p.exists())
        .unwrap_or_else(|| std::path::PathBuf::from(name))
}

/// The relying party the agent signs for ([`Agent::relying_party`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RelyingParty {
    /// Its id, e.g. `keywarden.example.com`.
    pub rp_id: String,
    /// The origin put into clientDataJSON, e.g. `https://keywarden.example.com`.
    pub origin: String,
    /// True when IT fixed it in the managed configuration, false when provisioning pinned it.
    pub managed: bool,
}

/// What sending the outbox achieved.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FlushOutcome {
    /// Reports the service acknowledged in this flush.
    pub sent: Vec<ReportAck>,
    /// Reports the service refused for good (moved to `outbox/rejected/`), with the reason.
    pub rejected: Vec<(String, String)>,
    /// Reports still waiting (the service was unreachable or failed).
    pub pending: usize,
    /// Why sending stopped early, if it did.
    pub stopped_by: Option<String>,
    /// Seconds the service asked the agent to wait before trying again (its `Retry-After`),
    /// when sending stopped on such an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// The agent: its folders and the keys it may use.
pub struct Agent {
    paths: Paths,
    keyring: Keyring,
    managed: Option<managed::ManagedConfig>,
}

impl Agent {
    /// An agent over these folders and keys, with no managed configuration.
    pub fn new(paths: Paths, keyring: Keyring) -> Self {
        Agent {
            paths,
            keyring,
            managed: None,
        }
    }

    /// The same agent under a managed configuration (see [`managed`]).
    pub fn with_managed(mut self, managed: Option<managed::ManagedConfig>) -> Self {
        self.managed = managed;
        self
    }

    /// The managed configuration in force, if any.
    pub fn managed(&self) -> Option<&managed::ManagedConfig> {
        self.managed.as_ref()
    }

    /// The HTTP client for `server`, trusting what the managed configuration says (else the
    /// system's roots).
    pub(crate) fn client(&self, server: &str) -> Result<Client> {
        let trust = self.managed().map(|m| &m.server_trust);
        Client::new(server, trust.unwrap_or(&client::ServerTrust::default()))
    }

    /// Its folders.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The saved configuration, or [`Error::NotProvisioned`]. A locked managed server URL
    /// overrides the saved one.
    pub fn config(&self) -> Result<Config> {
        self.config_if_any()?.ok_or(Error::NotProvisioned)
    }

    /// The saved configuration with managed overrides, `None` when not provisioned.
    pub fn config_if_any(&self) -> Result<Option<Config>> {
        let mut cfg = Config::load(&self.paths)?;
        if let (Some(c), Some(locked)) =
            (cfg.as_mut(), self.managed().and_then(|m| m.locked_server()))
        {
            locked.clone_into(&mut c.server_url);
        }
        Ok(cfg)
    }

    /// The server to provision with: the one given, unless IT locked another; the managed
    /// one when none is given.
    pub fn effective_server(&self, given: Option<&str>) -> Result<String> {
        let managed = self.managed();
        match given {
            Some(g) => {
                let g = config::normalise_server_url(g)?;
                if let Some(m) = managed {
                    if let Some(locked) = m.locked_server() {
                        if locked != g {
                            return Err(Error::ServerLocked {
                                locked: locked.to_owned(),
                                file: m.source.clone(),
                            });
                        }
                    }
                }
                Ok(g)
            }
            None => managed.and_then(|m| m.server_url.clone()).ok_or_else(|| {
                Error::NeedsInput(
                    "no server given and no managed configuration names one; pass --server URL"
                        .into(),
                )
            }),
        }
    }

    /// Every key the agent can see now.
    pub fn keys(&self) -> Result<Vec<KeyInfo>> {
        Ok(self.keyring.list()?)
    }

    /// Every key present now and, when there is none, why (where the agent can tell).
    pub fn inventory(&self) -> Result<keywarden_protocol::KeyInventory> {
        let keys = self.keys()?;
        let findings = if keys.is_empty() {
            diagnose::diagnose(&diagnose::Probe::system())
        } else {
            Vec::new()
        };
        Ok(keywarden_protocol::KeyInventory { keys, findings })
    }

    /// Blink the key, so the person sees which one the app means.
    pub fn wink(&self, key_id: &str) -> Result<()> {
        Ok(self.keyring.open(key_id)?.wink()?)
    }

    /// CTAP selection: every key in `key_ids` waits for a touch; returns the id of the first
    /// one touched. Keys that were not touched give up at their own timeout.
    pub fn select_by_touch(
        &self,
        key_ids: &[String],
        prompt: std::sync::Arc<dyn keywarden_keys::Prompt>,
    ) -> Result<String> {
        // Open every key before any of them starts waiting: opening one enumerates all of them
        // (getInfo on each), and on hidraw every open handle sees every answer, so a key already
        // waiting for its touch would read another's getInfo answer as its own.
        let mut opened = Vec::with_capacity(key_ids.len());
        let mut last_err = None;
        for id in key_ids {
            match self.keyring.open(id) {
                Ok(key) => opened.push((id.clone(), key)),
                Err(e) => last_err = Some(e),
            }
        }
        let started = opened.len();
        let (tx, rx) = std::sync::mpsc::channel();
        for (id, mut key) in opened {
            let tx = tx.clone();
            let prompt = prompt.clone();
            std::thread::spawn(move || {
                let r = key.selection(prompt.as_ref()).map(|()| id);
                let _ = tx.send(r);
            });
        }
        drop(tx);
        if started == 0 {
            return Err(last_err
                .map(Error::Key)
                .unwrap_or(Error::NoKey { hint: None }));
        }
        let mut first_err = None;
        for r in rx {
            match r {
                Ok(id) => return Ok(id),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.map(Error::Key).unwrap_or(Error::Cancelled))
    }

    /// Credential management: the discoverable credentials on a key for `rp_id` (needs the PIN).
    pub fn key_credentials(
        &self,
        key_id: &str,
        rp_id: &str,
        pin: &str,
    ) -> Result<Vec<keywarden_protocol::KeyCredential>> {
        use base64::Engine as _;
        let mut key = self.keyring.open(key_id)?;
        Ok(key
            .list_credentials(rp_id, pin)?
            .into_iter()
            .map(|c| keywarden_protocol::KeyCredential {
                rp_id: c.rp_id,
                credential_id: base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(&c.credential_id),
                user_name: c.user_name,
            })
            .collect())
    }

    /// Change the PIN of the key `key_id`, asked for or demanded by the key (getInfo
    /// `forcePINChange`): the new PIN and then the current one through `prompts`, with the key's
    /// minimum and the retries left. Returns the key as it is afterwards.
    pub fn change_key_pin(
        &self,
        key_id: &str,
        prompts: &dyn enrol::EnrolPrompts,
    ) -> Result<KeyInfo> {
        let mut key = self.keyring.open(key_id)?;
        pin::change_pin(key.as_mut(), prompts, None)?;
        Ok(key.info()?)
    }

    /// A device-signed POST to the service this laptop is provisioned with.
    pub fn call_signed<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R> {
        let cfg = self.config()?;
        let key = DeviceKey::load(&self.paths)?;
        self.client(&cfg.server_url)?
            .post_signed(&self.paths, &key, &cfg.device_id, path, body)
    }

    /// Open one of the keys present.
    pub fn open_key(&self, key_id: &str) -> Result<Box<dyn keywarden_keys::Authenticator>> {
        Ok(self.keyring.open(key_id)?)
    }
}

#[cfg(test)]
mod tests;
