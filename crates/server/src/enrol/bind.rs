//! Binding a verified credential to its person, the same for every way in (the desktop agent,
//! the browser): the population's rules on the authenticator, then the credential row, the raw
//! evidence with what was verified, an audit record and the person's notification.

use keywarden_protocol::ErrorCode;
use sqlx::{Any, Transaction};
use webauthn_rs_core::proto::ParsedAttestationData;

use crate::audit;
use crate::error::{Error, Result};
use crate::policy::Policy;
use crate::secrets::{self, b64};
use crate::state::AppState;

/// The population's rules on the authenticator itself, judged on verified facts only: the
/// AAGUID allow-list and the on-key minimum PIN length apply to key models (not to classes the
/// population lets enrol without attestation, whose AAGUID proves nothing); user verification
/// applies to every class.
pub(crate) fn check_key_policy(
    policy: &Policy,
    population: &str,
    verified: &crate::trust::Verified,
) -> Result<()> {
    let key_rules = !policy
        .attestation_optional_for
        .contains(&verified.device_class);
    if key_rules
        && !policy.aaguid_allow_list.is_empty()
        && !policy
            .aaguid_allow_list
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&verified.facts.aaguid))
    {
        return Err(Error::forbidden(
            ErrorCode::AaguidNotAllowed,
            format!(
                "this key model (AAGUID {}) is not on the allow-list of population {population}",
                verified.facts.aaguid
            ),
        ));
    }
    if policy.require_user_verification && !verified.credential.user_verified {
        return Err(Error::forbidden(
            ErrorCode::UserVerificationMissing,
            "the key did not verify the user (PIN or biometrics); the policy requires it",
        ));
    }
    if let Some(min) = policy.min_pin_length.filter(|_| key_rules) {
        match verified.facts.min_pin_length {
            Some(n) if n >= min => {}
            Some(n) => {
                return Err(Error::forbidden(
                    ErrorCode::PinTooShort,
                    format!("the key enforces a minimum PIN length of {n}; population {population} requires at least {min}: raise the key's minimum PIN length or use another key"),
                ))
            }
            None => {
                return Err(Error::forbidden(
                    ErrorCode::PinLengthUnknown,
                    format!("the key did not report its minimum PIN length in its attested data (the minPinLength extension); population {population} requires at least {min}: use a key that reports it"),
                ))
            }
        }
    }
    Ok(())
}

/// A verified registration about to be bound to its person.
pub(crate) struct NewCredential<'a> {
    /// The person it is bound to.
    pub person_id: &'a str,
    /// What webauthn-rs and the trust rules verified.
    pub verified: &'a crate::trust::Verified,
    /// The raw attestationObject and clientDataJSON (kept as evidence).
    pub attestation_object: &'a [u8],
    /// See `attestation_object`.
    pub client_data_json: &'a [u8],
    /// The challenge the service issued (base64url).
    pub challenge: &'a str,
    /// The laptop whose agent enrolled it; `None` in the browser.
    pub device_id: Option<&'a str>,
    /// The agent ceremony; `None` in the browser.
    pub ceremony_id: Option<&'a str>,
    /// The model name, where known.
    pub model: Option<&'a str>,
    /// What the agent saw of the key (JSON), `{}` from the browser.
    pub key_info: String,
    /// What the key enforced itself (agent enrolments); `None` from the browser.
    pub on_key: Option<keywarden_protocol::OnKeySettings>,
    /// The enrolling laptop's posture (JSON), if known.
    pub posture: Option<String>,
    /// The name its person gave it.
    pub name: Option<&'a str>,
    /// Agent or browser.
    pub via: crate::trust::Via,
    /// Who the audit log names.
    pub actor: &'a str,
    /// Where it was added, for the person's notification (e.g. `on laptop host-1`).
    pub place: String,
}

/// Bind a verified credential to its person inside `tx`, the same for every way in: the
/// credential row with its class and sync state, the raw evidence and what was verified, an
/// audit record, and a notification to the person. Returns the credential id.
pub(crate) async fn bind_credential(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    n: NewCredential<'_>,
    now: i64,
) -> Result<String> {
    let credential = &n.verified.credential;
    let cred_id = b64(credential.cred_id.as_ref());
    let aaguid = &n.verified.facts.aaguid;
    let format = format!("{:?}", credential.attestation_format).to_lowercase();
    let x5c_subjects: Vec<String> = match &credential.attestation.data {
        ParsedAttestationData::Basic(chain)
        | ParsedAttestationData::AttCa(chain)
        | ParsedAttestationData::AnonCa(chain) => chain
            .iter()
            .map(|c| format!("{:?}", c.subject_name()))
            .collect(),
        _ => Vec::new(),
    };
    let mut verification = serde_json::json!({
        "verified": true,
        "verifier": "webauthn-rs-core 0.5",
        "attestation_format": format,
        "attestation_type": n.verified.attestation_type,
        "aaguid": aaguid,
        "user_verified": credential.user_verified,
        "backup_eligible": credential.backup_eligible,
        "sign_count": credential.counter,
        "x5c_subjects": x5c_subjects,
    });
    if let (Some(v), Some(extra)) = (
        verification.as_object_mut(),
        n.verified.evidence.as_object(),
    ) {
        v.extend(extra.clone());
    }
    sqlx::query(
        "INSERT INTO credentials (id, person_id, device_id, ceremony_id, aaguid, model, software_key, attestation_format, attestation_type, status, webauthn, key_info, created_at, device_class, enrolled_via, backup_eligible, backup_state, name, key_min_pin_length, key_always_uv) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'active', $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(&cred_id)
    .bind(n.person_id)
    .bind(n.device_id)
    .bind(n.ceremony_id)
    .bind(aaguid)
    .bind(n.model)
    .bind(i64::from(n.verified.software_key))
    .bind(&format)
    .bind(n.verified.attestation_type)
    .bind(serde_json::to_string(credential).map_err(Error::Corrupt)?)
    .bind(&n.key_info)
    .bind(now)
    .bind(n.verified.device_class.as_str())
    .bind(n.via.as_str())
    .bind(i64::from(credential.backup_eligible))
    .bind(i64::from(credential.backup_state))
    .bind(n.name)
    .bind(
        n.on_key
            .as_ref()
            .and_then(|k| k.min_pin_length)
            .map(i64::from),
    )
    .bind(n.on_key.as_ref().and_then(|k| k.always_uv).map(i64::from))
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO enrolment_evidence (credential_id, attestation_object, client_data_json, challenge, rp_id, origin, verification, device_posture) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&cred_id)
    .bind(b64(n.attestation_object))
    .bind(b64(n.client_data_json))
    .bind(n.challenge)
    .bind(&state.settings.rp_id)
    .bind(state.origin())
    .bind(verification.to_string())
    .bind(&n.posture)
    .execute(&mut **tx)
    .await?;
    audit::record(
        tx,
        now,
        n.actor,
        "credential.enrolled",
        n.person_id,
        serde_json::json!({"credential_id": cred_id, "aaguid": aaguid, "attestation": n.verified.attestation_type,
            "software_key": n.verified.software_key, "device_class": n.verified.device_class.as_str(),
            "synced": credential.backup_eligible, "enrolled_via": n.via.as_str()}),
    )
    .await?;
    let what = n
        .model
        .map(str::to_owned)
        .unwrap_or_else(|| n.verified.device_class.label().to_lowercase());
    crate::webhooks::notify(
        tx,
        n.person_id,
        "credential.bound",
        &format!(
            "A new {what} was added to your account {} at {}. If this was not you, report it to your security team at once.",
            n.place,
            secrets::fmt_time(now)
        ),
        serde_json::json!({"credential_id": cred_id, "aaguid": aaguid, "device_id": n.device_id,
            "software_key": n.verified.software_key, "device_class": n.verified.device_class.as_str(),
            "enrolled_via": n.via.as_str()}),
        now,
    )
    .await?;
    Ok(cred_id)
}
