//! Enrolment sessions: the person they are for (their row taken), the population's policy and
//! the laptop's posture, opening a session (from a ticket, a step-up or a recovery), and each
//! key's WebAuthn registration ceremony.

use keywarden_protocol::ErrorCode;
use keywarden_protocol::{EnrolBeginResponse, PersonSummary, RegistrationOptions};
use sqlx::{Any, Transaction};
use webauthn_rs_core::proto::{
    AttestationConveyancePreference, COSEAlgorithm, CredentialID, RegistrationState,
    UserVerificationPolicy,
};
use webauthn_rs_core::ChallengeRegisterBuilder;

use crate::error::{Error, OrNotFound as _, Result};
use crate::policy::{self, Policies, Policy};
use crate::secrets::{self, b64, new_id};
use crate::state::AppState;

/// Active credentials of a person.
pub async fn active_count(tx: &mut Transaction<'_, Any>, person_id: &str) -> Result<u32> {
    let n = super::store::active_count(tx, person_id).await?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

pub(crate) struct Person {
    pub(crate) id: String,
    pub(crate) user_name: String,
    pub(crate) display_name: String,
    pub(crate) webauthn_user_id: String,
    pub(crate) active: bool,
}

impl Person {
    /// How the person is shown to themselves.
    pub(crate) fn summary(&self) -> PersonSummary {
        PersonSummary {
            id: self.id.clone(),
            user_name: self.user_name.clone(),
            display_name: self.display_name.clone(),
        }
    }
}

/// Load a person inside a write transaction, holding their row until commit: an offboarding
/// (which takes the same row first) and an enrolment for that person run one after the other,
/// so a credential can never be bound to someone whose offboarding already revoked the rest.
pub(crate) async fn load_person(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Person> {
    crate::db::lock_person(tx, id).await?;
    let r = super::store::person(tx, id)
        .await?
        .or_not_found(ErrorCode::PersonUnknown, format!("no person with id {id}"))?;
    Ok(Person {
        id: r.id,
        user_name: r.user_name,
        display_name: r.display_name,
        webauthn_user_id: r.webauthn_user_id,
        active: r.active != 0,
    })
}

/// [`load_person`], refusing a person who is no longer active (left, or suspended by HR): no
/// ticket, session, link or ceremony goes on for them.
pub(crate) async fn load_active_person(tx: &mut Transaction<'_, Any>, id: &str) -> Result<Person> {
    let person = load_person(tx, id).await?;
    if !person.active {
        return Err(Error::forbidden(
            ErrorCode::PersonInactive,
            "this person is no longer active",
        ));
    }
    Ok(person)
}

/// Open an enrolment session proven by something other than an enrolment ticket (a step-up
/// from one of the person's keys, a recovery): the session hangs off an internal, already
/// redeemed ticket row whose `created_by` names the proof (`add_key:<credential>`,
/// `recovery:<id>`) and whose hash no ticket can match.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_proven_session(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    proof: &str,
    expires_at: i64,
    device_id: &str,
    recovery_id: Option<&str>,
    now: i64,
) -> Result<EnrolBeginResponse> {
    let ticket_id = insert_proof_ticket(tx, person_id, proof, expires_at, device_id, now).await?;
    open_session(
        state,
        tx,
        person_id,
        &ticket_id,
        device_id,
        recovery_id,
        now,
    )
    .await
}

/// The internal, already redeemed ticket row a session proven otherwise hangs off (see
/// [`open_proven_session`]); its id.
async fn insert_proof_ticket(
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    proof: &str,
    expires_at: i64,
    device_id: &str,
    now: i64,
) -> Result<String> {
    let ticket_id = new_id();
    let sql = "INSERT INTO enrolment_tickets (id, ticket_hash, person_id, created_by, created_at, expires_at, redeemed_at, redeemed_by_device) VALUES ($1, $2, $3, $4, $5, $6, $5, $7)";
    let ticket_hash = secrets::hash(&format!("{proof}:{ticket_id}"));
    let ticket = (
        &ticket_id,
        &ticket_hash,
        person_id,
        proof,
        now,
        expires_at,
        device_id,
    );
    crate::store::execute(&mut **tx, sql, ticket).await?;
    Ok(ticket_id)
}

/// An enrolment session's row; its id and when it ends (the service's session lifetime, or
/// `until` when sooner).
async fn insert_session(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    (person_id, ticket_id, device_id): (&str, &str, &str),
    recovery_id: Option<&str>,
    until: Option<i64>,
    now: i64,
) -> Result<(String, i64)> {
    let session_id = new_id();
    let session_ttl = i64::try_from(state.settings.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session_expires = until.map_or(now + session_ttl, |u| u.min(now + session_ttl));
    let sql = "INSERT INTO enrolment_sessions (id, ticket_id, person_id, device_id, created_at, expires_at, recovery_id) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    let session = (
        &session_id,
        ticket_id,
        person_id,
        device_id,
        now,
        session_expires,
        recovery_id,
    );
    crate::store::execute(&mut **tx, sql, session).await?;
    Ok((session_id, session_expires))
}

/// Open an enrolment session for a key IT issues to `person` at an issuing station (`proof`
/// names the issuing session), ending no later than `until`, and start its ceremony. Unlike
/// every other session, the station is not bound to the person: it is nobody's own laptop.
pub(crate) async fn open_station_session(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person: &Person,
    (proof, device_id): (&str, &str),
    until: i64,
    now: i64,
) -> Result<EnrolBeginResponse> {
    let ticket_id = insert_proof_ticket(tx, &person.id, proof, until, device_id, now).await?;
    let (session_id, session_expires) = insert_session(
        state,
        tx,
        (&person.id, &ticket_id, device_id),
        None,
        Some(until),
        now,
    )
    .await?;
    new_ceremony(state, tx, &session_id, session_expires, person, now).await
}

/// Open an enrolment session for a person on a laptop (from a redeemed enrolment ticket, or a
/// recovery), bind the laptop to the person, and start the first ceremony.
pub(crate) async fn open_session(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    ticket_id: &str,
    device_id: &str,
    recovery_id: Option<&str>,
    now: i64,
) -> Result<EnrolBeginResponse> {
    let person = load_person(tx, person_id).await?;
    let (session_id, session_expires) = insert_session(
        state,
        tx,
        (&person.id, ticket_id, device_id),
        recovery_id,
        None,
        now,
    )
    .await?;
    bind_laptop(tx, device_id, &person.id, now).await?;
    new_ceremony(state, tx, &session_id, session_expires, &person, now).await
}

/// Bind a laptop to a person (it is theirs, or one of theirs).
pub(crate) async fn bind_laptop(
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    person_id: &str,
    now: i64,
) -> Result<()> {
    let sql = "INSERT INTO device_bindings (device_id, person_id, bound_at) VALUES ($1, $2, $3) \
         ON CONFLICT (device_id, person_id) DO UPDATE SET unbound_at = NULL, bound_at = excluded.bound_at";
    crate::store::execute(&mut **tx, sql, (device_id, person_id, now)).await?;
    Ok(())
}

/// The population and policy of a person.
pub(crate) async fn policy_for(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
) -> Result<(String, Policy)> {
    let policies = Policies::load(&mut **tx, state.settings.min_authenticators).await?;
    let attrs = policy::person_attrs(tx, person_id).await?;
    let (name, p) = policies.resolve(&attrs);
    Ok((name.to_owned(), p.clone()))
}

/// What an authenticator answered to a registration ceremony.
pub(crate) struct KeyAnswer<'a> {
    /// The new credential's id.
    pub(crate) raw_id: &'a [u8],
    /// Its attestation object.
    pub(crate) attestation_object: &'a [u8],
    /// The client data it signed over.
    pub(crate) client_data_json: &'a [u8],
}

/// Verify a key's answer for `person_id` against the ceremony's stored webauthn-rs state (JSON),
/// under the trust rule of their population (trust.rs): the verified key, with the population's
/// name and policy for the checks that follow.
pub(crate) async fn verify_answer(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person_id: &str,
    stored_state: &str,
    answer: &KeyAnswer<'_>,
    via: crate::trust::Via,
    now: i64,
) -> Result<(crate::trust::Verified, String, Policy)> {
    let reg_state: RegistrationState =
        serde_json::from_str(stored_state).map_err(Error::Corrupt)?;
    let reg = crate::trust::registration_response(
        answer.raw_id,
        answer.attestation_object,
        answer.client_data_json,
    )?;
    let (population, policy) = policy_for(state, tx, person_id).await?;
    let verified = crate::trust::verify_registration(
        state,
        tx,
        &reg,
        &reg_state,
        answer.attestation_object,
        &policy,
        &population,
        via,
        now,
    )
    .await?;
    Ok((verified, population, policy))
}

/// Refuse when the enrolling laptop's latest posture does not meet the policy.
pub(crate) async fn check_laptop(
    policy: &Policy,
    tx: &mut Transaction<'_, Any>,
    device_id: &str,
    now: i64,
) -> Result<()> {
    if policy.enrolment_posture.is_empty() {
        return Ok(());
    }
    let posture = policy::latest_posture(tx, device_id).await?;
    let failures = policy::posture_failures(&policy.enrolment_posture, posture.as_ref(), now);
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::forbidden(
            ErrorCode::LaptopNoncompliant,
            format!(
                "this laptop does not meet the enrolment policy: {}",
                failures.join("; ")
            ),
        ))
    }
}

/// An enrolment session, opened on the laptop `opened_on` and closed at `closed_at` if it was,
/// goes on only from that laptop (`device_id`) and while it is open.
pub(crate) fn still_open_on(
    opened_on: &str,
    closed_at: Option<i64>,
    device_id: &str,
) -> Result<()> {
    if opened_on != device_id {
        return Err(Error::forbidden(
            ErrorCode::EnrolmentWrongDevice,
            "this enrolment was opened on another laptop",
        ));
    }
    if closed_at.is_some() {
        return Err(Error::gone(
            ErrorCode::EnrolmentClosed,
            "this enrolment was closed (the person left or the recovery was cancelled)",
        ));
    }
    Ok(())
}

/// An agent's enrolment session, checked inside `tx`: it exists, belongs to this laptop, is
/// neither closed nor expired, and its person is active (their row taken). Returns the person
/// and when the session ends.
pub(crate) async fn open_session_of(
    tx: &mut Transaction<'_, Any>,
    session_id: &str,
    device_id: &str,
    now: i64,
) -> Result<(Person, i64)> {
    let s = super::store::session(tx, session_id).await?.or_not_found(
        ErrorCode::EnrolmentUnknown,
        format!("no enrolment {session_id}"),
    )?;
    still_open_on(&s.device_id, s.closed_at, device_id)?;
    let expires_at = s.expires_at;
    crate::error::before_expiry(now, expires_at, ErrorCode::EnrolmentExpired, |at| {
        format!("enrolment session closed at {at}; ask IT for a new ticket")
    })?;
    let person = load_active_person(tx, &s.person_id).await?;
    Ok((person, expires_at))
}

/// The start of a key's registration for `person`, from the laptop or the browser: direct
/// attestation, user verification and a discoverable credential required, and their credentials
/// not yet revoked excluded (returned too). The caller adds its algorithms and its rule on synced
/// passkeys.
pub(crate) async fn registration_builder(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    person: &Person,
) -> Result<(ChallengeRegisterBuilder, Vec<CredentialID>)> {
    let existing = crate::store::credentials::unrevoked_ids_of(tx, &person.id).await?;
    let exclude: Vec<CredentialID> = existing
        .iter()
        .filter_map(|id| secrets::unb64(id))
        .map(CredentialID::from)
        .collect();
    let user_id = secrets::unb64(&person.webauthn_user_id)
        .ok_or_else(|| Error::Webauthn("stored user handle is unreadable".into()))?;
    let builder = new_registration(
        state,
        &user_id,
        &person.user_name,
        &person.display_name,
        exclude.clone(),
    )?;
    Ok((builder, exclude))
}

/// The options every registration starts from: attestation asked for, user verification and a
/// discoverable credential required, `exclude` not to be made again.
pub(crate) fn new_registration(
    state: &AppState,
    user_id: &[u8],
    user_name: &str,
    display_name: &str,
    exclude: Vec<CredentialID>,
) -> Result<ChallengeRegisterBuilder> {
    Ok(state
        .webauthn
        .new_challenge_register_builder(user_id, user_name, display_name)?
        .attestation(AttestationConveyancePreference::Direct)
        .user_verification_policy(UserVerificationPolicy::Required)
        .exclude_credentials(Some(exclude))
        .require_resident_key(true))
}

pub(crate) async fn new_ceremony(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    session_id: &str,
    session_expires: i64,
    person: &Person,
    now: i64,
) -> Result<EnrolBeginResponse> {
    let (builder, exclude) = registration_builder(state, tx, person).await?;
    let builder = builder
        .credential_algorithms(vec![COSEAlgorithm::ES256, COSEAlgorithm::EDDSA])
        .reject_synchronised_authenticators(true);
    let (ccr, reg_state) = state.webauthn.generate_challenge_register(builder)?;
    let pk = ccr.public_key;
    let challenge = b64(pk.challenge.as_ref());
    let ceremony_id = new_id();
    let ttl = i64::from(pk.timeout.unwrap_or(300_000));
    let sql = "INSERT INTO ceremonies (id, session_id, challenge, state, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
    let state_json = serde_json::to_string(&reg_state).map_err(Error::Corrupt)?;
    let expires_at = (now + ttl).min(session_expires);
    let ceremony = (
        &ceremony_id,
        session_id,
        &challenge,
        &state_json,
        now,
        expires_at,
    );
    crate::store::execute(&mut **tx, sql, ceremony).await?;
    let active = active_count(tx, &person.id).await?;
    let (_, policy) = policy_for(state, tx, &person.id).await?;
    Ok(EnrolBeginResponse {
        enrolment_id: session_id.to_owned(),
        ceremony_id,
        session_expires_at_ms: session_expires,
        person: person.summary(),
        options: RegistrationOptions {
            challenge,
            rp_id: pk.rp.id,
            rp_name: pk.rp.name,
            origin: state.origin().to_owned(),
            user_id: b64(pk.user.id.as_ref()),
            user_name: pk.user.name,
            user_display_name: pk.user.display_name,
            algorithms: pk.pub_key_cred_params.iter().map(|p| p.alg).collect(),
            exclude_credentials: exclude.iter().map(|c| b64(c.as_ref())).collect(),
            user_verification_required: true,
            resident_key_required: true,
            attestation: "direct".to_owned(),
            timeout_ms: u64::try_from(ttl).unwrap_or(300_000),
        },
        active_authenticators: active,
        required_authenticators: policy.min_authenticators,
        key_policy: policy.key_policy(),
    })
}
