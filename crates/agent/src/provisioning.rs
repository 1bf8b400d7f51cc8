//! Provisioning a laptop and the relying party it is pinned to.

use keywarden_protocol::{EnrolBeginResponse, ProvisionRequest, ProvisionResponse};

use crate::config::Config;
use crate::identity::DeviceKey;
use crate::{config, now_ms, Agent, Error, RelyingParty, Result, AGENT_VERSION};

impl Agent {
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
        let client = self.client(&server)?;
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
    pub(crate) fn pins_from_provisioning(
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
}
