//! The enrolment state machine, shared by the CLI and the desktop app.
//!
//! ticket → session (whose enrolment it is) → per key: choose the key → set a PIN if it has
//! none → PIN (retries shown) → touch → service verifies attestation → coverage (n of m) →
//! next key (the backup) or done. What a person must decide or type goes through
//! [`EnrolPrompts`]; the core never reads a terminal or a window itself.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_keys::{Authenticator, Error as KeyError, KeyInfo, MakeCredentialRequest, Prompt};
use keywarden_protocol::{
    EnrolBeginResponse, EnrolFinishRequest, EnrolFinishResponse, PolicyStanding,
    RegistrationOptions,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::pin;

/// What the person is asked during enrolment. Every method may return [`Error::Cancelled`].
pub trait EnrolPrompts: Prompt {
    /// Several keys are present: which one (index into `keys`)?
    fn choose_key(&self, keys: &[KeyInfo]) -> Result<usize>;
    /// The key has no PIN: choose one (at least `min_len` characters). The caller confirms it
    /// (typed twice) before returning it.
    fn new_pin(&self, key: &KeyInfo, min_len: u32) -> Result<String>;
    /// The key's PIN. `retries` is what the key says is left; `last_failed` is true after a
    /// wrong PIN.
    fn pin(&self, key: &KeyInfo, retries: Option<u32>, last_failed: bool) -> Result<String>;
    /// The PIN is to be changed (the key demands it when `key.force_pin_change` is true): the
    /// new PIN, of at least `min_len` characters, confirmed by the caller. `retries` is what the
    /// key says is left for the current PIN, which [`EnrolPrompts::pin`] asks for next. Without
    /// a way to ask, the key's demand is the answer.
    fn change_pin(&self, key: &KeyInfo, min_len: u32, retries: Option<u32>) -> Result<String> {
        let _ = (key, retries);
        Err(Error::Key(KeyError::PinChangeRequired { min_len }))
    }
}

/// The clientDataJSON a platform builds (`kind` is `webauthn.create` or `webauthn.get`); field
/// order as WebAuthn shows it.
#[derive(Serialize)]
struct ClientData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    challenge: &'a str,
    origin: &'a str,
    #[serde(rename = "crossOrigin")]
    cross_origin: bool,
}

/// Serialized clientDataJSON of `kind` for a challenge from `origin`.
pub(crate) fn client_data(kind: &'static str, challenge: &str, origin: &str) -> Vec<u8> {
    let cd = ClientData {
        kind,
        challenge,
        origin,
        cross_origin: false,
    };
    serde_json::to_vec(&cd).unwrap_or_default()
}

/// Serialized clientDataJSON for a registration.
pub fn client_data_json(options: &RegistrationOptions) -> Vec<u8> {
    client_data("webauthn.create", &options.challenge, &options.origin)
}

fn decode(field: &str, text: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| Error::BadResponse {
            status: 200,
            reason: format!("{field} is not base64url"),
        })
}

/// Run makeCredential on an opened key for one ceremony; returns the request to finish it.
/// Sets a PIN first when the key has none, guides a key that demands a new PIN through the
/// change, and puts the population's on-key policy on the key first ([`pin::apply_key_policy`]).
/// A wrong PIN asks again while more than one retry is left.
pub fn make_credential(
    key: &mut dyn Authenticator,
    begin: &EnrolBeginResponse,
    prompts: &dyn EnrolPrompts,
) -> Result<EnrolFinishRequest> {
    make_credential_keeping_pin(key, begin, prompts).map(|made| made.finish)
}

/// What [`make_credential_keeping_pin`] made.
#[derive(Debug)]
pub struct Made {
    /// The request that finishes the ceremony.
    pub finish: EnrolFinishRequest,
    /// The PIN that worked, so that a credential the service then refuses can be removed from
    /// the key again ([`remove_refused`]).
    pub pin: String,
    /// What became of the population's on-key policy, when it had one.
    pub key_policy: Option<pin::KeyPolicyOutcome>,
}

/// [`make_credential`], also returning the PIN that worked and the on-key policy's outcome.
pub fn make_credential_keeping_pin(
    key: &mut dyn Authenticator,
    begin: &EnrolBeginResponse,
    prompts: &dyn EnrolPrompts,
) -> Result<Made> {
    let info = key.info()?;
    let mut pin = if info.pin_set {
        None
    } else {
        // A first PIN meets the population's minimum too, which the key is about to enforce.
        let policy_min = begin.key_policy.as_ref().and_then(|p| p.min_pin_length);
        let min = pin::min_pin_length(&info).max(policy_min.unwrap_or(0));
        let new = prompts.new_pin(&info, min)?;
        if new.chars().count() < min as usize {
            return Err(Error::PinRejected(format!(
                "the PIN must have at least {min} characters"
            )));
        }
        key.set_pin(&new)?;
        Some(new)
    };
    let opts = &begin.options;
    let mut key_policy = None;
    if let Some(policy) = begin.key_policy.as_ref().filter(|p| !p.is_empty()) {
        let (outcome, worked) = pin::with_pin(key, prompts, pin.take(), |k, p| {
            pin::apply_key_policy(k, policy, &opts.rp_id, p)
        })?;
        pin = Some(worked);
        key_policy = Some(outcome);
    }
    let req = MakeCredentialRequest {
        rp_id: opts.rp_id.clone(),
        rp_name: opts.rp_name.clone(),
        user_id: decode("user_id", &opts.user_id)?,
        user_name: opts.user_name.clone(),
        user_display_name: opts.user_display_name.clone(),
        client_data_json: client_data_json(opts),
        exclude_credentials: opts
            .exclude_credentials
            .iter()
            .map(|c| decode("exclude_credentials", c))
            .collect::<Result<_>>()?,
        resident_key: opts.resident_key_required,
    };
    let (made, pin) = pin::with_pin(key, prompts, pin, |k, p| {
        k.make_credential(&req, p, prompts)
    })?;
    // As the key is now: its PIN state and the settings just put on it.
    let info = key.info()?;
    Ok(Made {
        finish: EnrolFinishRequest {
            credential_id: URL_SAFE_NO_PAD.encode(&made.credential_id),
            attestation_object: URL_SAFE_NO_PAD.encode(&made.attestation_object),
            client_data_json: URL_SAFE_NO_PAD.encode(&req.client_data_json),
            key: info,
        },
        pin,
        key_policy,
    })
}

/// After the service refused a credential the key just made (policy, attestation), remove it
/// from the key again with credential management, so nothing half-made stays on the key. Only a
/// definite refusal (a 4xx answer) counts: after a network failure the service may have bound
/// it. Returns whether the credential was removed.
pub fn remove_refused(
    key: &mut dyn Authenticator,
    made: &EnrolFinishRequest,
    pin: &str,
    error: &Error,
) -> bool {
    let refused = matches!(error, Error::Service { status, .. } if (400..500).contains(status));
    if !refused || made.key.options.get("credMgmt") != Some(&true) {
        return false;
    }
    let Ok(id) = URL_SAFE_NO_PAD.decode(&made.credential_id) else {
        return false;
    };
    key.delete_credential(&id, pin).is_ok()
}

/// The outcome of one key's enrolment.
#[derive(Debug, Clone, Serialize)]
pub struct Enrolled {
    /// The key used.
    pub key: KeyInfo,
    /// What the service bound.
    pub result: EnrolFinishResponse,
    /// What became of the population's on-key policy, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_policy: Option<pin::KeyPolicyOutcome>,
}

/// Prompts for a step-by-step front end (the desktop wizard): each step is one call that
/// already carries what the person typed. The PIN is used once; a wrong PIN ends the step with
/// [`KeyError::PinInvalid`] (and its retries), so the front end asks again in its own window
/// instead of the core waiting on it. The touch request goes to `on_touch`.
pub struct StepPrompts {
    pin: std::sync::Mutex<Option<String>>,
    new_pin: Option<String>,
    on_touch: Box<dyn Fn(&KeyInfo) + Send + Sync>,
}

impl StepPrompts {
    /// Answer with `pin` (the key's PIN) or `new_pin` (to set on a key without one).
    pub fn new(
        pin: Option<String>,
        new_pin: Option<String>,
        on_touch: Box<dyn Fn(&KeyInfo) + Send + Sync>,
    ) -> Self {
        StepPrompts {
            pin: std::sync::Mutex::new(pin),
            new_pin,
            on_touch,
        }
    }
}

impl keywarden_keys::Prompt for StepPrompts {
    fn touch(&self, key: &KeyInfo) {
        (self.on_touch)(key);
    }
}

impl EnrolPrompts for StepPrompts {
    fn choose_key(&self, _keys: &[KeyInfo]) -> Result<usize> {
        Err(Error::NeedsInput(
            "several keys are present; choose one".into(),
        ))
    }

    fn new_pin(&self, _key: &KeyInfo, min_len: u32) -> Result<String> {
        self.new_pin.clone().ok_or_else(|| {
            Error::NeedsInput(format!(
                "this key has no PIN yet; choose one of at least {min_len} characters"
            ))
        })
    }

    /// The step's `new_pin` with its `pin` (the current one), when the step carried both; else
    /// the key's demand goes back to the front end, which asks for both.
    fn change_pin(&self, _key: &KeyInfo, min_len: u32, _retries: Option<u32>) -> Result<String> {
        self.new_pin
            .clone()
            .ok_or(Error::Key(KeyError::PinChangeRequired { min_len }))
    }

    fn pin(&self, _key: &KeyInfo, retries: Option<u32>, last_failed: bool) -> Result<String> {
        let given = self.pin.lock().ok().and_then(|mut p| p.take());
        match (given, last_failed) {
            (Some(p), false) => Ok(p),
            (_, true) => Err(Error::Key(KeyError::PinInvalid {
                retries_left: retries.unwrap_or(0),
            })),
            (None, false) => Err(Error::NeedsInput("this key's PIN is needed".into())),
        }
    }
}

/// The ticket in a `keywarden://enrol?ticket=...` link, if `link` is one.
pub fn ticket_from_link(link: &str) -> Option<String> {
    let url = reqwest::Url::parse(link.trim()).ok()?;
    if url.scheme() != "keywarden" || url.host_str() != Some("enrol") {
        return None;
    }
    url.query_pairs()
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The desktop app's one-time link into the self-service page ([`crate::Agent::web_link`]).
/// The link is a secret (it signs a browser in once): it is only handed to the browser, and
/// this type's `Debug` leaves it out, so it reaches no log.
#[derive(Clone, serde::Deserialize)]
#[serde(from = "keywarden_protocol::WebLinkResponse")]
pub struct WebLink {
    url: String,
    /// When the link stops working (unix ms): once used, or when the session closes.
    pub expires_at_ms: i64,
}

impl From<keywarden_protocol::WebLinkResponse> for WebLink {
    fn from(r: keywarden_protocol::WebLinkResponse) -> Self {
        WebLink {
            url: r.url,
            expires_at_ms: r.expires_at_ms,
        }
    }
}

impl WebLink {
    /// The link itself, to hand to the browser and nowhere else.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl std::fmt::Debug for WebLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebLink")
            .field("url", &"<secret>")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

/// Where the service's one-time links lead: the self-service page that redeems them.
pub const WEB_ENROL_PATH: &str = "/me/enrol";

/// Accept a one-time link only when it is `{origin}/me/enrol#link=...` for the origin this
/// laptop is pinned to. The error names the link's origin, never the link.
pub fn check_web_link(url: &str, pinned_origin: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url).ok();
    let origin = parsed
        .as_ref()
        .and_then(|u| crate::config::normalise_origin(u.as_str()));
    let ours = parsed.as_ref().is_some_and(|u| {
        origin.as_deref() == Some(pinned_origin)
            && u.path() == WEB_ENROL_PATH
            && u.query().is_none()
            && u.username().is_empty()
            && u.password().is_none()
            && u.fragment()
                .and_then(|f| f.strip_prefix("link="))
                .is_some_and(|l| !l.is_empty())
    });
    if ours {
        return Ok(());
    }
    Err(Error::WebLinkNotOurs {
        link_origin: origin,
        pinned_origin: pinned_origin.to_owned(),
    })
}

/// One enrolment session, as the wizard and `keywarden enrol` walk it: the ticket is redeemed
/// once; each key gets its own ceremony (the next one is opened only when the previous was
/// used); coverage is what the service last said.
#[derive(Debug, Clone)]
pub struct Session {
    begin: EnrolBeginResponse,
    ceremony_used: bool,
    enrolled: Vec<keywarden_protocol::CredentialView>,
    /// Where the person stands: the counts from the session's opening, then what the service
    /// said after the latest key.
    standing: PolicyStanding,
}

impl Session {
    /// Redeem the ticket (for a person without an active key yet; see
    /// [`crate::stepup::enrol_with_step_up`] for one who has).
    pub fn open(agent: &crate::Agent, ticket: &str) -> Result<Session> {
        Ok(Session::from_begin(agent.begin_enrolment(ticket, None)?))
    }

    /// A session the service already opened, e.g. by redeeming a recovery ticket
    /// ([`crate::stepup::recover`]) or for adding a key ([`crate::stepup::add_key`]). Its
    /// relying party is checked again before each key is used ([`crate::Agent::enrol_key`]).
    pub fn from_begin(begin: EnrolBeginResponse) -> Session {
        Session {
            standing: PolicyStanding {
                active_authenticators: begin.active_authenticators,
                required_authenticators: begin.required_authenticators,
                meets_policy: None,
                policy_text: None,
            },
            begin,
            ceremony_used: false,
            enrolled: Vec::new(),
        }
    }

    /// What the UI shows.
    pub fn view(&self) -> keywarden_protocol::WizardSession {
        keywarden_protocol::WizardSession {
            person: self.begin.person.clone(),
            standing: self.standing.clone(),
            session_expires_at_ms: self.begin.session_expires_at_ms,
            enrolled: self.enrolled.clone(),
            rp_id: self.begin.options.rp_id.clone(),
            key_policy: self.begin.key_policy.clone(),
        }
    }

    /// The one-time link into the self-service page for this session's person, to add a
    /// laptop or phone passkey in the browser ([`crate::Agent::web_link`]).
    pub fn web_link(&self, agent: &crate::Agent) -> Result<WebLink> {
        agent.web_link(&self.begin.enrolment_id)
    }

    /// "Add this laptop or your phone": get this session's one-time link and hand it to
    /// `open_browser` (the person's default browser; a test passes one that records it).
    /// Returns when the link stops working (unix ms). The link goes nowhere else: not to the
    /// caller, not to a log.
    pub fn open_web_link(
        &self,
        agent: &crate::Agent,
        open_browser: &dyn Fn(&str) -> std::io::Result<()>,
    ) -> Result<i64> {
        let link = self.web_link(agent)?;
        open_browser(link.url()).map_err(|source| Error::BrowserNotOpened {
            origin: agent
                .relying_party()
                .map(|rp| rp.origin)
                .unwrap_or_default(),
            source,
        })?;
        Ok(link.expires_at_ms)
    }

    /// True once the person has as many authenticators as the policy requires.
    pub fn covered(&self) -> bool {
        self.standing.active_authenticators >= self.standing.required_authenticators
    }

    /// Enrol one key (`None`: the only one present, or ask). Opens a fresh ceremony when the
    /// current one was used by the previous key.
    pub fn enrol(
        &mut self,
        agent: &crate::Agent,
        key_id: Option<&str>,
        prompts: &dyn EnrolPrompts,
    ) -> Result<Enrolled> {
        if self.ceremony_used {
            // Open the next ceremony only for a key that is there, so that a key removed
            // before the step leaves nothing open on the service.
            if let Some(id) = key_id {
                if !agent.keys()?.iter().any(|k| k.id == id) {
                    return Err(Error::Key(KeyError::NotFound { id: id.to_owned() }));
                }
            }
            self.begin = agent.next_ceremony(&self.begin.enrolment_id)?;
            self.ceremony_used = false;
        }
        let done = agent.enrol_key(&self.begin, key_id, prompts)?;
        self.ceremony_used = true;
        self.standing = done.result.standing.clone();
        self.enrolled.push(done.result.credential.clone());
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tickets_come_only_from_keywarden_enrol_links() {
        assert_eq!(
            ticket_from_link("keywarden://enrol?ticket=kwt_abc%2B1").as_deref(),
            Some("kwt_abc+1")
        );
        for bad in [
            "https://enrol?ticket=kwt_abc",
            "keywarden://provision?ticket=kwt_abc",
            "keywarden://enrol?other=1",
            "keywarden://enrol?ticket=",
            "not a url",
        ] {
            assert_eq!(ticket_from_link(bad), None, "{bad}");
        }
    }

    #[test]
    fn step_prompts_use_the_pin_once_and_report_a_wrong_one_with_retries() {
        let info = KeyInfo {
            pin_set: true,
            pin_retries: Some(8),
            id_from_serial: Some(false),
            ..KeyInfo::new("k", keywarden_protocol::KeyBackend::Soft, "l", "")
        };
        let p = StepPrompts::new(Some("1234".into()), None, Box::new(|_| {}));
        assert_eq!(p.pin(&info, Some(8), false).unwrap(), "1234");
        match p.pin(&info, Some(7), true) {
            Err(Error::Key(KeyError::PinInvalid { retries_left: 7 })) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(p.new_pin(&info, 6), Err(Error::NeedsInput(_))));
        assert!(matches!(p.choose_key(&[]), Err(Error::NeedsInput(_))));
    }
}
