//! Keys known without a serial: the agent answers the service's silent probes (getAssertion with
//! user presence off, no PIN, no touch) so that a key without a USB serial is recognised by the
//! organisation's credential on it, on any laptop and port. The agent only relays what the keys
//! signed; the service verifies every answer before it believes anything.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_keys::{Authenticator, KeyInfo, ProbeRequest};
use keywarden_protocol::{
    KeyIdentities, KeyProbe, KeyProbeAsk, ProbeAnswer, ProbeAnswers, ProbePurpose,
    PROBE_CLIENT_DATA_TYPE,
};

use crate::error::Result;
use crate::Agent;

/// True when the key's id says nothing stable about it (no USB serial): such keys are probed.
pub fn needs_probe(key: &KeyInfo) -> bool {
    key.id_from_serial != Some(true)
}

/// The clientDataJSON a key signs for a probe: type `keywarden.probe`, the service's challenge
/// and origin.
pub fn client_data(probe: &KeyProbe) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "type": PROBE_CLIENT_DATA_TYPE,
        "challenge": probe.challenge,
        "origin": probe.origin,
    }))
    .expect("a map of three strings always serialises")
}

/// Probe one opened key (named `key_id` on this laptop) for the probe's candidates; `None` when
/// it holds none of them. Candidate ids that are not base64url are skipped.
pub fn answer(
    key: &mut dyn Authenticator,
    key_id: &str,
    probe: &KeyProbe,
) -> Result<Option<ProbeAnswer>> {
    let client_data_json = client_data(probe);
    let req = ProbeRequest {
        rp_id: probe.rp_id.clone(),
        client_data_json: client_data_json.clone(),
        credential_ids: probe
            .credential_ids
            .iter()
            .filter_map(|c| URL_SAFE_NO_PAD.decode(c.trim_end_matches('=')).ok())
            .collect(),
    };
    if req.credential_ids.is_empty() {
        return Ok(None);
    }
    Ok(key.probe(&req)?.map(|a| ProbeAnswer {
        key_id: key_id.to_owned(),
        credential_id: URL_SAFE_NO_PAD.encode(&a.credential_id),
        authenticator_data: URL_SAFE_NO_PAD.encode(&a.authenticator_data),
        client_data_json: URL_SAFE_NO_PAD.encode(&client_data_json),
        signature: URL_SAFE_NO_PAD.encode(&a.signature),
    }))
}

/// Ask the service for a probe for `purpose`, check it is for the organisation's relying party and
/// origin, and probe each of `keys`. A key that cannot be opened or probed is left out (it is
/// then not recognised, as before).
pub(crate) fn probe_keys(
    agent: &Agent,
    purpose: ProbePurpose,
    keys: &[KeyInfo],
) -> Result<ProbeAnswers> {
    let ask = KeyProbeAsk {
        purpose,
        keys: u32::try_from(keys.len()).unwrap_or(u32::MAX),
    };
    let probe: KeyProbe = agent.call_signed("/api/v1/agent/keys/probe", &ask)?;
    agent.check_relying_party(&probe.rp_id, Some(&probe.origin))?;
    let mut answers = Vec::new();
    for k in keys {
        let found = agent
            .open_key(&k.id)
            .and_then(|mut key| answer(key.as_mut(), &k.id, &probe));
        match found {
            Ok(Some(a)) => answers.push(a),
            Ok(None) => {}
            Err(e) => tracing::info!(key = %k.id, error = %e, "could not probe a key"),
        }
    }
    Ok(ProbeAnswers {
        challenge_id: probe.challenge_id,
        answers,
    })
}

/// Have the service recognise the keys without a serial plugged in now by the person's
/// organisation credentials on them (`POST /api/v1/agent/keys/probe`, then `…/identify`):
/// the same key gets the same name (`cred:…`) on every laptop and port. Nothing is sent when
/// every key has a serial, and only answers are sent when some key answered.
pub fn identify(agent: &Agent) -> Result<KeyIdentities> {
    let keys: Vec<KeyInfo> = agent.keys()?.into_iter().filter(needs_probe).collect();
    if keys.is_empty() {
        return Ok(KeyIdentities { keys: Vec::new() });
    }
    let answers = probe_keys(agent, ProbePurpose::Inventory, &keys)?;
    if answers.answers.is_empty() {
        return Ok(KeyIdentities { keys: Vec::new() });
    }
    agent.call_signed("/api/v1/agent/keys/identify", &answers)
}

/// What a successful check-in does besides the report: send reclaim receipts left waiting
/// ([`crate::receipts::ReceiptOutbox`]) and have keys without a serial recognised
/// ([`identify`]). Failures are logged, not the check-in's: the report went through.
pub fn after_check_in(agent: &Agent) {
    match crate::receipts::ReceiptOutbox::of(agent).send(agent) {
        Ok(sent) if sent.stopped_by.is_some() => {
            tracing::info!(pending = sent.pending, reason = ?sent.stopped_by, "reclaim receipts still waiting")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot send reclaim receipts"),
    }
    match identify(agent) {
        Ok(found) => {
            for k in found.keys {
                tracing::debug!(key = %k.key_id, org_key = %k.org_key_id, "key recognised");
            }
        }
        Err(e) => tracing::info!(error = %e, "keys without a serial not recognised this time"),
    }
}
