//! Enrolment calls: redeeming a ticket, adding a key, the next ceremony, the self-service web
//! link and enrolling one key.

use keywarden_protocol::{EnrolBeginRequest, EnrolBeginResponse, EnrolFinishResponse};

use crate::enrol::{EnrolPrompts, Enrolled};
use crate::identity::DeviceKey;
use crate::{diagnose, enrol, Agent, Error, Result};

impl Agent {
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
        let enrol::Made {
            finish,
            pin,
            key_policy,
        } = enrol::make_credential_keeping_pin(key.as_mut(), begin, prompts)?;
        let cfg = self.config()?;
        let device_key = DeviceKey::load(&self.paths)?;
        let result: EnrolFinishResponse = match self.client(&cfg.server_url)?.post_signed(
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
            key_policy,
        })
    }
}
