//! Keywarden agent core: everything the CLI and the desktop app do, with no UI and no Tauri.
//!
//! - [`config`]: folders and the provisioned configuration;
//! - [`identity`]: the device key pair and the request sequence counter;
//! - [`client`]: device-signed requests to the service;
//! - [`outbox`]: durable report queue (written before sending, removed after the ack);
//! - [`enrol`]: the enrolment state machine, prompting through [`enrol::EnrolPrompts`];
//! - [`managed`]: the system-wide configuration IT installs, which overrides the user's;
//! - [`checkin`]: background check-in (schedule, key plug-in, "check in now") and its status;
//! - [`diagnose`]: why no security key is found, and how to fix it.
//!
//! Calls block (network and keys); async callers run them on a blocking thread.
#![forbid(unsafe_code)]

pub mod checkin;
pub mod client;
pub mod config;
pub mod diagnose;
pub mod enrol;
mod error;
mod files;
pub mod identity;
pub mod locks;
pub mod managed;
pub mod outbox;
pub mod reclaim;
pub mod stepup;

pub use error::{Error, Result};
pub use keywarden_keys as keys;

use keywarden_keys::{KeyInfo, Keyring};
use keywarden_protocol::{
    EnrolBeginRequest, EnrolBeginResponse, EnrolFinishResponse, ProvisionRequest,
    ProvisionResponse, Report, ReportAck, ReportBatch, ReportBatchAck, ReportOutcome,
};

use crate::client::Client;
use crate::config::{Config, Paths};
use crate::enrol::{EnrolPrompts, Enrolled};
use crate::identity::DeviceKey;
use crate::outbox::Outbox;

/// This agent's version.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Now, unix milliseconds.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
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

    /// Provision this laptop: create the device key, register it with the one-time token,
    /// save the configuration. Refuses to replace an existing identity unless `reprovision`.
    pub fn provision(&self, server: &str, token: &str, reprovision: bool) -> Result<Config> {
        let server = self.effective_server(Some(server))?;
        if let Some(existing) = Config::load(&self.paths)? {
            if !reprovision {
                return Err(Error::AlreadyProvisioned {
                    device_id: existing.device_id,
                    server: existing.server_url,
                });
            }
        }
        let key = DeviceKey::generate();
        let hostname = keywarden_posture::collect(now_ms())
            .hostname
            .value()
            .cloned()
            .unwrap_or_else(|| "unknown-host".to_owned());
        let client = Client::new(&server)?;
        let resp: ProvisionResponse = client.post_plain(
            "/api/v1/agent/provision",
            &ProvisionRequest {
                token: token.trim().to_owned(),
                device_public_key: key.public_b64(),
                hostname,
                agent_version: AGENT_VERSION.to_owned(),
            },
        )?;
        // The key is saved only once the service accepted it, and before the config that
        // points at it, so a crash in between leaves "not provisioned", never a config
        // without its key.
        key.save(&self.paths)?;
        let _ = std::fs::remove_file(self.paths.seq_file());
        let cfg = Config {
            server_url: server,
            device_id: resp.device_id,
            provisioned_at_ms: now_ms(),
        };
        cfg.save(&self.paths)?;
        Ok(cfg)
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

    /// The outbox.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.paths.outbox_dir())
    }

    /// Collect posture and key inventory into a new report and put it in the outbox.
    pub fn queue_report(&self) -> Result<Report> {
        let now = now_ms();
        let keys = match self.keyring.list() {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "key inventory failed; reporting no keys");
                Vec::new()
            }
        };
        let report = Report {
            report_id: uuid::Uuid::new_v4().to_string(),
            created_at_ms: now,
            agent_version: AGENT_VERSION.to_owned(),
            posture: keywarden_posture::collect(now),
            keys,
        };
        self.outbox().push(&report)?;
        Ok(report)
    }

    /// Send every pending report, oldest first, as few signed requests as the batch limits
    /// allow (normally one). A report's file is removed only after the service acknowledged
    /// it; one the service refused for good is moved to `outbox/rejected/` and kept. Stops at
    /// the first outage (the rest wait). A service without the batch endpoint (an older one),
    /// or one that refuses a batch as a whole, gets the reports one per request instead.
    pub fn flush(&self) -> Result<FlushOutcome> {
        let cfg = self.config()?;
        let key = DeviceKey::load(&self.paths)?;
        let sender = Sender {
            client: Client::new(&cfg.server_url)?,
            paths: &self.paths,
            key: &key,
            device_id: &cfg.device_id,
            outbox: self.outbox(),
        };
        let mut outcome = FlushOutcome::default();
        let pending = sender.outbox.pending()?;
        let mut rest: &[outbox::Pending] = &pending;
        while !rest.is_empty() {
            let (chunk, after) = rest.split_at(batch_len(rest));
            let stop = match sender.batch(chunk) {
                Ok(ack) => sender.apply(chunk, &ack, &mut outcome)?,
                Err(e) if batch_refused_whole(&e) => {
                    tracing::info!(error = %e, "batch not taken; sending reports one by one");
                    let mut stop = None;
                    for (i, item) in chunk.iter().enumerate() {
                        if let Some(why) = sender.single(item, &mut outcome)? {
                            stop = Some((why, i));
                            break;
                        }
                    }
                    stop.map(|(why, i)| {
                        outcome.pending = rest.len() - i;
                        why
                    })
                }
                Err(e) => {
                    outcome.pending = rest.len();
                    Some(e.to_string())
                }
            };
            if let Some(why) = stop {
                if outcome.pending == 0 {
                    outcome.pending = rest.len();
                }
                outcome.stopped_by = Some(why);
                break;
            }
            rest = after;
        }
        Ok(outcome)
    }

    /// Queue a fresh report and send the outbox.
    pub fn report(&self) -> Result<(Report, FlushOutcome)> {
        let report = self.queue_report()?;
        let outcome = self.flush()?;
        Ok((report, outcome))
    }

    /// A device-signed POST to the service this laptop is provisioned with.
    pub fn call_signed<B: serde::Serialize, R: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R> {
        let cfg = self.config()?;
        let key = DeviceKey::load(&self.paths)?;
        Client::new(&cfg.server_url)?.post_signed(&self.paths, &key, &cfg.device_id, path, body)
    }

    /// Open one of the keys present.
    pub fn open_key(&self, key_id: &str) -> Result<Box<dyn keywarden_keys::Authenticator>> {
        Ok(self.keyring.open(key_id)?)
    }

    /// Redeem an enrolment ticket: opens the session and the first key's ceremony.
    pub fn begin_enrolment(&self, ticket: &str) -> Result<EnrolBeginResponse> {
        let cfg = self.config()?;
        let key = DeviceKey::load(&self.paths)?;
        Client::new(&cfg.server_url)?.post_signed(
            &self.paths,
            &key,
            &cfg.device_id,
            "/api/v1/agent/enrolments",
            &EnrolBeginRequest {
                ticket: ticket.trim().to_owned(),
                step_up: None,
            },
        )
    }

    /// Open the next key's ceremony in an enrolment session (the backup key).
    pub fn next_ceremony(&self, enrolment_id: &str) -> Result<EnrolBeginResponse> {
        let cfg = self.config()?;
        let key = DeviceKey::load(&self.paths)?;
        Client::new(&cfg.server_url)?.post_signed(
            &self.paths,
            &key,
            &cfg.device_id,
            &format!("/api/v1/agent/enrolments/{enrolment_id}/ceremonies"),
            &serde_json::json!({}),
        )
    }

    /// Enrol the key `key_id` (or ask which, when `None` and several are present) in the
    /// ceremony `begin`, and have the service verify and bind it.
    pub fn enrol_key(
        &self,
        begin: &EnrolBeginResponse,
        key_id: Option<&str>,
        prompts: &dyn EnrolPrompts,
    ) -> Result<Enrolled> {
        let keys = self.keys()?;
        let chosen =
            match key_id {
                Some(id) => keys.iter().find(|k| k.id == id).cloned().ok_or_else(|| {
                    Error::Key(keywarden_keys::Error::NotFound { id: id.to_owned() })
                })?,
                None => match keys.len() {
                    0 => {
                        let hint = diagnose::diagnose(&diagnose::Probe::system())
                            .into_iter()
                            .next()
                            .map(|f| format!("{}; {}", f.problem, f.fix));
                        return Err(Error::NoKey { hint });
                    }
                    1 => keys[0].clone(),
                    _ => {
                        let i = prompts.choose_key(&keys)?;
                        keys.get(i).cloned().ok_or(Error::Cancelled)?
                    }
                },
            };
        let mut key = self.keyring.open(&chosen.id)?;
        let (finish, pin) = enrol::make_credential_keeping_pin(key.as_mut(), begin, prompts)?;
        let cfg = self.config()?;
        let device_key = DeviceKey::load(&self.paths)?;
        let result: EnrolFinishResponse = match Client::new(&cfg.server_url)?.post_signed(
            &self.paths,
            &device_key,
            &cfg.device_id,
            &format!("/api/v1/agent/ceremonies/{}/finish", begin.ceremony_id),
            &finish,
        ) {
            Ok(r) => r,
            Err(e) => {
                // The service refused it: take the credential off the key again.
                enrol::remove_refused(key.as_mut(), &finish, &pin, &e);
                return Err(e);
            }
        };
        Ok(Enrolled {
            key: finish.key,
            result,
        })
    }
}

/// Largest batch body the agent sends (the service takes up to 8 MiB).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// How many of the oldest pending reports go into the next batch: at most
/// [`keywarden_protocol::MAX_REPORTS_PER_BATCH`], and not more than [`MAX_BATCH_BYTES`] of
/// them (always at least one).
fn batch_len(pending: &[outbox::Pending]) -> usize {
    let mut bytes = 0;
    let mut n = 0;
    for p in pending
        .iter()
        .take(keywarden_protocol::MAX_REPORTS_PER_BATCH)
    {
        bytes += serde_json::to_vec(&p.report).map(|v| v.len()).unwrap_or(0) + 1;
        if n > 0 && bytes > MAX_BATCH_BYTES {
            break;
        }
        n += 1;
    }
    n.max(1)
}

/// True when the service did not take a batch as a whole but may take its reports one by one:
/// it has no batch endpoint (an older service), or refused the batch's shape or size.
fn batch_refused_whole(e: &Error) -> bool {
    match e {
        Error::Service { status, code, .. } => {
            (*status == 404 && code == "no_route") || *status == 400 || *status == 413
        }
        Error::BadResponse { status, .. } => *status == 404 || *status == 413,
        _ => false,
    }
}

/// What sending the outbox needs.
struct Sender<'a> {
    client: Client,
    paths: &'a Paths,
    key: &'a DeviceKey,
    device_id: &'a str,
    outbox: Outbox,
}

impl Sender<'_> {
    fn batch(&self, chunk: &[outbox::Pending]) -> Result<ReportBatchAck> {
        self.client.post_signed(
            self.paths,
            self.key,
            self.device_id,
            keywarden_protocol::REPORT_BATCH_PATH,
            &ReportBatch {
                reports: chunk.iter().map(|p| p.report.clone()).collect(),
            },
        )
    }

    /// Act on a batch's answer: remove what was acknowledged, set aside what was refused.
    /// Returns why to stop when the answer does not match the batch (then nothing is removed).
    fn apply(
        &self,
        chunk: &[outbox::Pending],
        ack: &ReportBatchAck,
        outcome: &mut FlushOutcome,
    ) -> Result<Option<String>> {
        let matches = ack.results.len() == chunk.len()
            && ack
                .results
                .iter()
                .zip(chunk)
                .enumerate()
                .all(|(i, (r, p))| {
                    usize::try_from(r.index).is_ok_and(|x| x == i)
                        && (r.report_id.as_deref() == Some(p.report.report_id.as_str())
                            || (r.outcome == ReportOutcome::Rejected && r.report_id.is_none()))
                });
        if !matches {
            return Ok(Some(format!(
                "service answered a batch of {} report(s) with {} result(s) that do not match it",
                chunk.len(),
                ack.results.len()
            )));
        }
        for (r, item) in ack.results.iter().zip(chunk) {
            match r.outcome {
                ReportOutcome::Stored | ReportOutcome::AlreadyStored => {
                    self.outbox.acknowledge(&item.path)?;
                    outcome.sent.push(ReportAck {
                        report_id: item.report.report_id.clone(),
                        newly_stored: r.outcome == ReportOutcome::Stored,
                    });
                }
                ReportOutcome::Rejected => {
                    self.outbox.reject(&item.path)?;
                    let why = r
                        .error
                        .as_ref()
                        .map(|e| format!("{} [{}]", e.message, e.code))
                        .unwrap_or_else(|| "refused without a reason".to_owned());
                    outcome.rejected.push((item.report.report_id.clone(), why));
                }
            }
        }
        Ok(None)
    }

    /// Send one report on its own (the endpoint older services have). Returns why to stop.
    fn single(&self, item: &outbox::Pending, outcome: &mut FlushOutcome) -> Result<Option<String>> {
        let sent: Result<ReportAck> = self.client.post_signed(
            self.paths,
            self.key,
            self.device_id,
            "/api/v1/agent/reports",
            &item.report,
        );
        match sent {
            Ok(ack) if ack.report_id == item.report.report_id => {
                self.outbox.acknowledge(&item.path)?;
                outcome.sent.push(ack);
                Ok(None)
            }
            Ok(ack) => Ok(Some(format!(
                "service acknowledged {} for {}",
                ack.report_id, item.report.report_id
            ))),
            Err(Error::Service {
                status,
                code,
                message,
            }) if (400..500).contains(&status)
                && status != 401
                && status != 409
                && status != 429 =>
            {
                self.outbox.reject(&item.path)?;
                outcome
                    .rejected
                    .push((item.report.report_id.clone(), format!("{message} [{code}]")));
                Ok(None)
            }
            Err(e) => Ok(Some(e.to_string())),
        }
    }
}
