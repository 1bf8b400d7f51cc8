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
mod error;
mod files;
pub mod identity;
pub mod keyring;
pub mod locks;
pub mod managed;
pub mod outbox;
pub mod reclaim;
pub mod stepup;

pub use error::{Error, Result};
pub use keywarden_keys as keys;

use keywarden_keys::{KeyInfo, Keyring};
use keywarden_protocol::{
    EnrolBeginRequest, EnrolBeginResponse, EnrolFinishResponse, ErrorCode, ProvisionRequest,
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
        let (rp_id, origin) = self.pins_from_provisioning(&resp)?;
        // The key is saved only once the service accepted it, and before the config that
        // points at it, so a crash in between leaves "not provisioned", never a config
        // without its key.
        key.save(&self.paths)?;
        let _ = std::fs::remove_file(self.paths.seq_file());
        let cfg = Config {
            server_url: server,
            device_id: resp.device_id,
            provisioned_at_ms: now_ms(),
            rp_id,
            origin,
        };
        cfg.save(&self.paths)?;
        Ok(cfg)
    }

    /// What provisioning pins: the relying party id and origin the service named, checked
    /// against the managed configuration's when IT fixed them (another one is refused, and
    /// nothing is saved). A service that names none (an older one) pins nothing: the agent
    /// then signs nothing until IT pins them ([`Error::RelyingPartyNotPinned`]); it never
    /// takes them from a later answer.
    fn pins_from_provisioning(
        &self,
        resp: &ProvisionResponse,
    ) -> Result<(Option<String>, Option<String>)> {
        let named = match (&resp.rp_id, &resp.origin) {
            (Some(rp), Some(origin)) => Some((
                config::normalise_rp_id(rp),
                config::normalise_origin(origin).ok_or_else(|| Error::BadResponse {
                    status: 201,
                    reason: format!(
                        "the service named {origin} as its origin, which is not an origin"
                    ),
                })?,
            )),
            _ => None,
        };
        if let (Some((rp, origin)), Some((m_rp, m_origin))) = (
            &named,
            self.managed().and_then(|m| m.pinned_relying_party()),
        ) {
            if rp != m_rp || origin != m_origin {
                return Err(Error::RelyingPartyMismatch {
                    pinned_rp_id: m_rp.to_owned(),
                    pinned_origin: m_origin.to_owned(),
                    asked_rp_id: rp.clone(),
                    asked_origin: Some(origin.clone()),
                });
            }
        }
        Ok(named.map_or((None, None), |(rp, o)| (Some(rp), Some(o))))
    }

    /// The relying party this agent signs for: the managed configuration's when IT fixed one,
    /// else the one pinned at provisioning; [`Error::RelyingPartyNotPinned`] when neither.
    pub fn relying_party(&self) -> Result<RelyingParty> {
        if let Some((rp_id, origin)) = self.managed().and_then(|m| m.pinned_relying_party()) {
            return Ok(RelyingParty {
                rp_id: rp_id.to_owned(),
                origin: origin.to_owned(),
                managed: true,
            });
        }
        let cfg = self.config()?;
        match (cfg.rp_id, cfg.origin) {
            (Some(rp_id), Some(origin)) => Ok(RelyingParty {
                rp_id,
                origin,
                managed: false,
            }),
            _ => Err(Error::RelyingPartyNotPinned),
        }
    }

    /// Refuse, before anything reaches a key, a service asking to sign for a relying party or
    /// origin other than [`Agent::relying_party`]. `origin` is `None` where the service names
    /// none (a reclaim plan names only the RP id).
    pub fn check_relying_party(&self, rp_id: &str, origin: Option<&str>) -> Result<()> {
        let pinned = self.relying_party()?;
        let rp_ok = config::normalise_rp_id(rp_id) == pinned.rp_id;
        let origin_ok = origin
            .is_none_or(|o| config::normalise_origin(o).as_deref() == Some(pinned.origin.as_str()));
        if rp_ok && origin_ok {
            return Ok(());
        }
        tracing::warn!(
            asked_rp_id = rp_id,
            asked_origin = ?origin,
            pinned_rp_id = %pinned.rp_id,
            "refused to sign for another relying party"
        );
        Err(Error::RelyingPartyMismatch {
            pinned_rp_id: pinned.rp_id,
            pinned_origin: pinned.origin,
            asked_rp_id: rp_id.to_owned(),
            asked_origin: origin.map(str::to_owned),
        })
    }

    /// [`Agent::check_relying_party`] for a ceremony the service opened.
    pub(crate) fn checked(&self, begin: EnrolBeginResponse) -> Result<EnrolBeginResponse> {
        self.check_relying_party(&begin.options.rp_id, Some(&begin.options.origin))?;
        Ok(begin)
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

    /// Redeem an enrolment ticket: opens the session and the first key's ceremony. For a
    /// person who already has an active key the service wants `step_up` too (a fresh
    /// assertion, purpose `add_key`, from one of their keys: [`stepup::enrol_with_step_up`]);
    /// without it the ticket is refused with `step_up_required`. The ceremony is refused here
    /// when it is for another relying party ([`Agent::check_relying_party`]).
    pub fn begin_enrolment(
        &self,
        ticket: &str,
        step_up: Option<keywarden_protocol::StepUp>,
    ) -> Result<EnrolBeginResponse> {
        let begin = self.call_signed(
            "/api/v1/agent/enrolments",
            &EnrolBeginRequest {
                ticket: ticket.trim().to_owned(),
                step_up,
            },
        )?;
        self.checked(begin)
    }

    /// Open a ceremony for another key of the person whose existing key made `step_up`
    /// (purpose `add_key`): no ticket needed ([`stepup::add_key`]).
    pub fn begin_key_addition(
        &self,
        step_up: keywarden_protocol::StepUp,
    ) -> Result<EnrolBeginResponse> {
        let begin = self.call_signed(
            "/api/v1/agent/key-additions",
            &keywarden_protocol::AddKeyRequest { step_up },
        )?;
        self.checked(begin)
    }

    /// Open the next key's ceremony in an enrolment session (the backup key).
    pub fn next_ceremony(&self, enrolment_id: &str) -> Result<EnrolBeginResponse> {
        let begin = self.call_signed(
            &format!("/api/v1/agent/enrolments/{enrolment_id}/ceremonies"),
            &serde_json::json!({}),
        )?;
        self.checked(begin)
    }

    /// Ask the service for the desktop app's one-time link into the self-service page, on the
    /// enrolment session `enrolment_id` (open, unexpired, this laptop's), where the person adds
    /// a laptop or phone passkey in the browser. The link is a secret: it works once and
    /// signs the browser in as this session's person, so it is never logged or shown; the
    /// caller only hands it to the browser. Refused unless it points at the self-service page
    /// of the origin this laptop is pinned to ([`Agent::relying_party`]), so a service that is
    /// not the organisation's cannot have the app open an address of its choosing.
    pub fn web_link(&self, enrolment_id: &str) -> Result<enrol::WebLink> {
        let link: enrol::WebLink = self.call_signed(
            &format!("/api/v1/agent/enrolments/{enrolment_id}/web-link"),
            &serde_json::json!({}),
        )?;
        enrol::check_web_link(link.url(), &self.relying_party()?.origin)?;
        Ok(link)
    }

    /// Enrol the key `key_id` (or ask which, when `None` and several are present) in the
    /// ceremony `begin`, and have the service verify and bind it.
    pub fn enrol_key(
        &self,
        begin: &EnrolBeginResponse,
        key_id: Option<&str>,
        prompts: &dyn EnrolPrompts,
    ) -> Result<Enrolled> {
        // Nothing reaches a key for another relying party, whoever opened the ceremony.
        self.check_relying_party(&begin.options.rp_id, Some(&begin.options.origin))?;
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
            (*status == 404 && *code == ErrorCode::NoRoute) || *status == 400 || *status == 413
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RP: &str = "keywarden.example.com";
    const ORIGIN: &str = "https://keywarden.example.com";

    /// An agent in `dir` provisioned with `rp` pinned (or none), with one soft key.
    fn agent(dir: &std::path::Path, rp: Option<(&str, &str)>) -> (Agent, std::path::PathBuf) {
        let paths = Paths::under(dir);
        Config {
            server_url: "http://127.0.0.1:9".into(),
            device_id: "dev".into(),
            provisioned_at_ms: 0,
            rp_id: rp.map(|r| r.0.to_owned()),
            origin: rp.map(|r| r.1.to_owned()),
        }
        .save(&paths)
        .unwrap();
        let key = dir.join("soft-key.json");
        let ring = Keyring::new().with(Box::new(keywarden_keys::soft::SoftKeyProvider::new(vec![
            key.clone(),
        ])));
        (Agent::new(paths, ring), key)
    }

    fn managed(dir: &std::path::Path, text: &str) -> managed::ManagedConfig {
        let p = dir.join("managed.json");
        std::fs::write(&p, text).unwrap();
        managed::ManagedConfig::load(&p).unwrap().unwrap()
    }

    fn ceremony(rp_id: &str, origin: &str) -> EnrolBeginResponse {
        serde_json::from_value(serde_json::json!({
            "enrolment_id": "e", "ceremony_id": "c", "session_expires_at_ms": 0,
            "person": {"id": "p", "user_name": "ada@example.com", "display_name": "Ada"},
            "options": {
                "challenge": "AAAA", "rp_id": rp_id, "rp_name": "Evil", "origin": origin,
                "user_id": "AAAA", "user_name": "ada@example.com", "user_display_name": "Ada",
                "algorithms": [-7], "exclude_credentials": [], "user_verification_required": true,
                "resident_key_required": true, "attestation": "direct", "timeout_ms": 60000
            },
            "active_authenticators": 0, "required_authenticators": 2
        }))
        .unwrap()
    }

    #[test]
    fn the_pinned_relying_party_and_origin_pass_and_any_other_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _) = agent(dir.path(), Some((RP, ORIGIN)));
        agent.check_relying_party(RP, Some(ORIGIN)).unwrap();
        agent
            .check_relying_party(
                "Keywarden.Example.com.",
                Some("https://KEYWARDEN.example.com/"),
            )
            .unwrap();
        for (rp, origin) in [
            ("evil.example.net", Some("https://evil.example.net")),
            (RP, Some("https://phish.keywarden.example.com")),
            (RP, Some("http://keywarden.example.com")),
            (RP, Some("https://keywarden.example.com:8443")),
            ("example.com", Some(ORIGIN)),
            ("evil.example.net", None),
        ] {
            match agent.check_relying_party(rp, origin) {
                Err(Error::RelyingPartyMismatch { asked_rp_id, .. }) => assert_eq!(asked_rp_id, rp),
                other => panic!("{rp} {origin:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_laptop_provisioned_before_pinning_signs_nothing_until_it_is_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _) = agent(dir.path(), None);
        assert!(matches!(
            agent.check_relying_party(RP, Some(ORIGIN)),
            Err(Error::RelyingPartyNotPinned)
        ));
        // IT pins it in the managed configuration.
        let m = managed(
            dir.path(),
            &format!(r#"{{"rp_id": "{RP}", "origin": "{ORIGIN}"}}"#),
        );
        let agent = agent.with_managed(Some(m));
        agent.check_relying_party(RP, Some(ORIGIN)).unwrap();
        assert!(agent.relying_party().unwrap().managed);
    }

    #[test]
    fn the_managed_configuration_overrides_what_provisioning_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _) = agent(
            dir.path(),
            Some(("old.example.com", "https://old.example.com")),
        );
        let m = managed(
            dir.path(),
            &format!(r#"{{"rp_id": "{RP}", "origin": "{ORIGIN}"}}"#),
        );
        let agent = agent.with_managed(Some(m));
        agent.check_relying_party(RP, Some(ORIGIN)).unwrap();
        assert!(agent
            .check_relying_party("old.example.com", Some("https://old.example.com"))
            .is_err());
    }

    #[test]
    fn provisioning_pins_what_the_service_names_unless_it_names_another_than_it_managed() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, _) = agent(dir.path(), None);
        let resp = |rp: Option<&str>, origin: Option<&str>| ProvisionResponse {
            device_id: "d".into(),
            server_time_ms: 0,
            rp_id: rp.map(str::to_owned),
            origin: origin.map(str::to_owned),
        };
        assert_eq!(
            agent
                .pins_from_provisioning(&resp(
                    Some("KEYWARDEN.example.com"),
                    Some("https://keywarden.example.com/")
                ))
                .unwrap(),
            (Some(RP.to_owned()), Some(ORIGIN.to_owned()))
        );
        // An older service names none: nothing is pinned (and nothing is guessed).
        assert_eq!(
            agent.pins_from_provisioning(&resp(None, None)).unwrap(),
            (None, None)
        );
        let m = managed(
            dir.path(),
            &format!(r#"{{"rp_id": "{RP}", "origin": "{ORIGIN}"}}"#),
        );
        let agent = agent.with_managed(Some(m));
        assert!(matches!(
            agent.pins_from_provisioning(&resp(
                Some("evil.example.net"),
                Some("https://evil.example.net")
            )),
            Err(Error::RelyingPartyMismatch { .. })
        ));
    }

    #[test]
    fn a_ceremony_for_another_relying_party_never_reaches_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, key_file) = agent(dir.path(), Some((RP, ORIGIN)));
        let key_id = agent.keys().unwrap()[0].id.clone();
        let before = std::fs::read(&key_file).unwrap();
        let prompts = enrol::StepPrompts::new(
            Some("123456".into()),
            Some("123456".into()),
            Box::new(|_| panic!("the key must not be asked for a touch")),
        );
        let e = agent
            .enrol_key(
                &ceremony("evil.example.net", "https://evil.example.net"),
                Some(&key_id),
                &prompts,
            )
            .unwrap_err();
        assert!(matches!(e, Error::RelyingPartyMismatch { .. }), "{e}");
        assert_eq!(
            std::fs::read(&key_file).unwrap(),
            before,
            "the key is untouched"
        );
        assert!(!agent.paths().seq_file().exists(), "nothing was sent");
    }

    /// A service that answers one request with `status` and `body`, and hands back what it was
    /// sent (request line and headers, body).
    fn one_answer(
        status: u16,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<(String, String)>) {
        use std::io::{BufRead as _, Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut sent = vec![0; length];
            reader.read_exact(&mut sent).unwrap();
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            (head, String::from_utf8(sent).unwrap())
        });
        (url, served)
    }

    /// An agent provisioned with the service at `url`, pinned to [`RP`] and [`ORIGIN`].
    fn provisioned_with(dir: &std::path::Path, url: &str) -> Agent {
        let paths = Paths::under(dir);
        Config {
            server_url: url.to_owned(),
            device_id: "dev-1".into(),
            provisioned_at_ms: 0,
            rp_id: Some(RP.into()),
            origin: Some(ORIGIN.into()),
        }
        .save(&paths)
        .unwrap();
        DeviceKey::generate().save(&paths).unwrap();
        Agent::new(paths, Keyring::new())
    }

    #[test]
    fn the_web_link_is_asked_for_the_session_signed_by_the_laptop_and_kept_out_of_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let (url, served) = one_answer(
            201,
            r#"{"url": "https://keywarden.example.com/me/enrol#link=kwl_SECRET", "expires_at_ms": 1700000600000}"#,
        );
        let agent = provisioned_with(dir.path(), &url);
        let session = enrol::Session::from_begin(ceremony(RP, ORIGIN));
        let link = session.web_link(&agent).unwrap();
        assert_eq!(
            link.url(),
            "https://keywarden.example.com/me/enrol#link=kwl_SECRET"
        );
        assert_eq!(link.expires_at_ms, 1_700_000_600_000);
        assert!(
            !format!("{link:?}").contains("kwl_SECRET"),
            "the link never reaches a log: {link:?}"
        );
        let (head, body) = served.join().unwrap();
        assert!(
            head.starts_with("POST /api/v1/agent/enrolments/e/web-link HTTP/1.1"),
            "{head}"
        );
        let head = head.to_ascii_lowercase();
        for h in [
            keywarden_protocol::HEADER_DEVICE,
            keywarden_protocol::HEADER_SEQ,
            keywarden_protocol::HEADER_TIME,
            keywarden_protocol::HEADER_SIGNATURE,
        ] {
            assert!(
                head.contains(&h.to_ascii_lowercase()),
                "{h} missing: {head}"
            );
        }
        assert!(head.contains("dev-1"), "{head}");
        assert_eq!(body, "{}");
    }

    #[test]
    fn a_web_link_anywhere_but_the_pinned_self_service_page_is_refused_without_showing_it() {
        for bad in [
            "https://evil.example.net/me/enrol#link=kwl_SECRET",
            "http://keywarden.example.com/me/enrol#link=kwl_SECRET",
            "https://keywarden.example.com:8443/me/enrol#link=kwl_SECRET",
            "https://keywarden.example.com/me/add#link=kwl_SECRET",
            "https://keywarden.example.com/me/enrol?next=x#link=kwl_SECRET",
            "https://kwl_SECRET@keywarden.example.com/me/enrol#link=kwl_SECRET",
            "https://keywarden.example.com/me/enrol#ticket=kwl_SECRET",
            "https://keywarden.example.com/me/enrol#link=",
            "https://keywarden.example.com/me/enrol",
            "file:///etc/kwl_SECRET",
            "javascript:alert('kwl_SECRET')",
            "not a url kwl_SECRET",
        ] {
            let e = enrol::check_web_link(bad, ORIGIN).unwrap_err();
            assert!(matches!(e, Error::WebLinkNotOurs { .. }), "{bad}: {e}");
            let ui = e.to_ui();
            assert_eq!(ui.code, ErrorCode::WebLinkNotOurs);
            for shown in [e.to_string(), ui.message, format!("{e:?}")] {
                assert!(!shown.contains("kwl_SECRET"), "{bad}: {shown}");
            }
        }
        enrol::check_web_link(
            "https://keywarden.example.com/me/enrol#link=kwl_abc",
            ORIGIN,
        )
        .unwrap();
        // The service answers for another origin: nothing is handed on.
        let dir = tempfile::tempdir().unwrap();
        let (url, served) = one_answer(
            201,
            r#"{"url": "https://evil.example.net/me/enrol#link=kwl_SECRET", "expires_at_ms": 1}"#,
        );
        let agent = provisioned_with(dir.path(), &url);
        let e = agent.web_link("e").unwrap_err();
        served.join().unwrap();
        assert!(
            e.to_string().contains("evil.example.net") && !e.to_string().contains("SECRET"),
            "{e}"
        );
    }

    #[test]
    fn a_closed_or_expired_session_gets_a_sentence_with_a_way_forward() {
        for (code, says) in [
            (ErrorCode::EnrolmentExpired, "has expired"),
            (ErrorCode::EnrolmentClosed, "was closed"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let body: &'static str = Box::leak(
                format!(
                    r#"{{"error": {{"code": "{}", "message": "the enrolment session is over"}}}}"#,
                    code.as_str()
                )
                .into_boxed_str(),
            );
            let (url, served) = one_answer(410, body);
            let agent = provisioned_with(dir.path(), &url);
            let e = agent.web_link("e").unwrap_err();
            served.join().unwrap();
            assert_eq!(e.service_code(), Some(code), "{e}");
            let ui = e.to_ui();
            assert_eq!(ui.code, code);
            assert!(ui.message.contains(says), "{}", ui.message);
            assert!(ui.message.contains("new ticket from IT"), "{}", ui.message);
        }
    }

    #[test]
    fn the_link_goes_to_the_browser_only_and_a_browser_that_does_not_start_is_explained() {
        let answer = r#"{"url": "https://keywarden.example.com/me/enrol#link=kwl_SECRET", "expires_at_ms": 1700000600000}"#;
        let session = enrol::Session::from_begin(ceremony(RP, ORIGIN));

        let dir = tempfile::tempdir().unwrap();
        let (url, served) = one_answer(201, answer);
        let agent = provisioned_with(dir.path(), &url);
        let opened = std::sync::Mutex::new(Vec::new());
        let until = session
            .open_web_link(&agent, &|u| {
                opened.lock().unwrap().push(u.to_owned());
                Ok(())
            })
            .unwrap();
        served.join().unwrap();
        assert_eq!(until, 1_700_000_600_000);
        assert_eq!(
            *opened.lock().unwrap(),
            ["https://keywarden.example.com/me/enrol#link=kwl_SECRET"]
        );

        let dir = tempfile::tempdir().unwrap();
        let (url, served) = one_answer(201, answer);
        let agent = provisioned_with(dir.path(), &url);
        let e = session
            .open_web_link(&agent, &|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no launcher",
                ))
            })
            .unwrap_err();
        served.join().unwrap();
        let ui = e.to_ui();
        assert_eq!(ui.code, ErrorCode::BrowserNotOpened);
        assert!(
            ui.message
                .contains("Open https://keywarden.example.com/me in a browser"),
            "a way forward without the link: {}",
            ui.message
        );
        assert!(!ui.message.contains("SECRET") && !e.to_string().contains("SECRET"));

        // A link for another origin never reaches the browser.
        let dir = tempfile::tempdir().unwrap();
        let (url, served) = one_answer(
            201,
            r#"{"url": "https://evil.example.net/me/enrol#link=kwl_SECRET", "expires_at_ms": 1}"#,
        );
        let agent = provisioned_with(dir.path(), &url);
        let e = session
            .open_web_link(&agent, &|u| panic!("opened {}", u.len()))
            .unwrap_err();
        served.join().unwrap();
        assert!(matches!(e, Error::WebLinkNotOurs { .. }), "{e}");
    }
}
