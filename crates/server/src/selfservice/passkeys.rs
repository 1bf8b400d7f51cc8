//! A signed-in person's passkeys: confirm with one of their keys (step-up), add this laptop's
//! or a phone's passkey (verified by webauthn-rs and bound through the same code as the desktop
//! agent's, `enrol::bind_credential`, under the same policy, evidence and audit), and what they
//! see about themselves.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{CredentialView, PersonSummary};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use webauthn_rs_core::proto::{
    AuthenticatorAttachment, COSEAlgorithm, Credential, PublicKeyCredentialHints, RegistrationState,
};
use webauthn_rs_core::ChallengeRegisterBuilder;

use super::challenges::{
    assertion_challenge, assertion_from, challenge_json, missing_part, required_text,
    store_challenge, take_challenge, text_at, FinishCeremony, WebChallenge,
};
use super::session::{self, ScriptCall, WebSession};
use crate::audit;
use crate::auth::JsonBody;
use crate::enrol;
use crate::error::{Error, Result};
use crate::policy::DeviceClass;
use crate::secrets::{b64, unb64};
use crate::state::AppState;
use crate::store::credentials;

use super::store;

/// `POST /api/v1/me/passkeys/begin` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginPasskey {
    /// `platform` (this laptop) or `phone`.
    pub class: DeviceClass,
    /// A name for it, e.g. `work laptop`.
    pub name: Option<String>,
}

/// A passkey was added.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyAdded {
    /// The credential, bound to the person.
    pub credential: CredentialView,
    /// Where the person stands against their population's policy now.
    pub coverage: super::Coverage,
}

/// What the signed-in person sees about themselves.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The person.
    pub person: PersonSummary,
    /// Their credentials, every class.
    pub credentials: Vec<CredentialView>,
    /// Where they stand against their population's policy.
    pub coverage: super::Coverage,
    /// The credential they signed in with, if they did with a passkey.
    pub signed_in_with: Option<String>,
    /// Until when they may add a passkey without confirming with a key again (unix ms).
    pub may_add_until_ms: i64,
}

/// `POST /api/v1/me/step-up/begin` (session): a challenge for confirming with one of the
/// signed-in person's active keys.
#[utoipa::path(post, path = "/api/v1/me/step-up/begin", tag = "self-service",
    responses((status = 201, body = WebChallenge), crate::openapi::Denied, crate::openapi::Conflict))]
pub async fn step_up_begin(
    State(state): State<AppState>,
    ScriptCall(session): ScriptCall,
) -> Result<(StatusCode, Json<WebChallenge>)> {
    let now = state.now_ms();
    let creds = credentials::active_webauthn_of(&state.db, &session.person_id)
        .await?
        .iter()
        .map(|w| serde_json::from_str::<Credential>(w).map_err(Error::Corrupt))
        .collect::<Result<Vec<_>>>()?;
    if creds.is_empty() {
        return Err(Error::conflict(
            ErrorCode::NoActiveKey,
            "you have no active key to confirm with; ask the help desk for a recovery",
        ));
    }
    let challenge = assertion_challenge(&state, Some(&session.id), "step_up", creds, now).await?;
    Ok((StatusCode::CREATED, Json(challenge)))
}

/// Answer to a step-up.
#[derive(Debug, Serialize, ToSchema)]
pub struct SteppedUp {
    /// Until when a passkey may be added without confirming again (unix ms).
    pub may_add_until_ms: i64,
}

/// `POST /api/v1/me/step-up/finish` (session): a fresh assertion from one of the signed-in
/// person's own active keys makes the session fresh enough to add a passkey.
#[utoipa::path(post, path = "/api/v1/me/step-up/finish", tag = "self-service", request_body = FinishCeremony,
    responses((status = 200, body = SteppedUp), crate::openapi::Invalid, crate::openapi::Denied, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn step_up_finish(
    State(state): State<AppState>,
    ScriptCall(session): ScriptCall,
    JsonBody(req): JsonBody<FinishCeremony>,
) -> Result<Json<SteppedUp>> {
    let now = state.now_ms();
    let actor = format!("web:{}", session.id);
    let mut tx = crate::db::begin(&state.db).await?;
    let verified = async {
        let c = take_challenge(
            &mut tx,
            &req.challenge_id,
            "step_up",
            Some(&session.id),
            now,
        )
        .await?;
        let a = assertion_from(&req.credential)?;
        let v = crate::stepup::verify_assertion(
            &state, &mut tx, &c.state, &a, "browser", "add_key", now,
        )
        .await?;
        if v.person_id != session.person_id {
            return Err(Error::forbidden(
                ErrorCode::StepUpWrongPerson,
                "the key used belongs to someone else; use one of your own keys",
            ));
        }
        Ok(v)
    }
    .await;
    let v = match verified {
        Ok(v) => v,
        Err(e) => {
            drop(tx);
            return Err(crate::stepup::refused(&state, &actor, "add_key", e, now).await);
        }
    };
    let until = now + session::PROOF_MS;
    store::prove_session(&mut tx, &session.id, until, now).await?;
    audit::record(
        &mut tx,
        now,
        &actor,
        "person.stepped_up",
        &session.person_id,
        serde_json::json!({"credential_id": v.credential_id, "purpose": "add_key", "in": "browser"}),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(SteppedUp {
        may_add_until_ms: until,
    }))
}

fn clean_name(name: Option<&str>) -> Result<Option<String>> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::bad_request(
            ErrorCode::NameInvalid,
            "a name is at most 64 characters, on one line",
        ));
    }
    Ok(Some(name.to_owned()))
}

/// `POST /api/v1/me/passkeys/begin` (session): registration options for this laptop's
/// passkey or a phone's. Needs a fresh proof (a redeemed link, or a key touched in the last
/// few minutes): adding to someone who has a key needs that key.
#[utoipa::path(post, path = "/api/v1/me/passkeys/begin", tag = "self-service", request_body = BeginPasskey,
    responses((status = 201, body = WebChallenge), crate::openapi::Invalid, crate::openapi::Denied))]
pub async fn passkey_begin(
    State(state): State<AppState>,
    ScriptCall(session): ScriptCall,
    JsonBody(req): JsonBody<BeginPasskey>,
) -> Result<(StatusCode, Json<WebChallenge>)> {
    let now = state.now_ms();
    if !matches!(req.class, DeviceClass::Platform | DeviceClass::Phone) {
        return Err(Error::bad_request(
            ErrorCode::ClassNotOffered,
            "here you can add this laptop's passkey or a phone's; add security keys with the Keywarden desktop app",
        ));
    }
    let name = clean_name(req.name.as_deref())?;
    if !session.may_add(now) {
        let e = Error::forbidden(
            ErrorCode::StepUpRequired,
            "confirm with one of your keys first: adding a passkey needs a key you already have",
        );
        audit::record_refusal(
            &state.db,
            now,
            &format!("web:{}", session.id),
            "enrolment.refused",
            &session.person_id,
            serde_json::json!({"reason": ErrorCode::StepUpRequired, "in": "browser"}),
        )
        .await?;
        return Err(e);
    }
    let mut tx = crate::db::begin(&state.db).await?;
    let person = enrol::load_person(&mut tx, &session.person_id).await?;
    let (builder, _) = enrol::registration_builder(&state, &mut tx, &person).await?;
    tx.commit().await?;
    let (attachment, hint) = match req.class {
        DeviceClass::Platform => (
            AuthenticatorAttachment::Platform,
            PublicKeyCredentialHints::ClientDevice,
        ),
        _ => (
            AuthenticatorAttachment::CrossPlatform,
            PublicKeyCredentialHints::Hybrid,
        ),
    };
    let (ccr, reg_state) = browser_registration(&state, builder, Some(attachment), hint)?;
    let id = store_challenge(
        &state,
        Some(&session.id),
        "register",
        serde_json::to_string(&reg_state).map_err(Error::Corrupt)?,
        Some(req.class),
        name.as_deref(),
        now,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebChallenge {
            challenge_id: id,
            public_key: challenge_json(&ccr.public_key)?,
        }),
    ))
}

/// A registration of a browser passkey from the base options (attestation asked for, user
/// verification and a discoverable credential required, the person's other credentials
/// excluded): the algorithms browsers offer, the attachment and hint, and synced passkeys left
/// to the population's policy; with the state webauthn-rs keeps for the finish.
pub(crate) fn browser_registration(
    state: &AppState,
    builder: ChallengeRegisterBuilder,
    attachment: Option<AuthenticatorAttachment>,
    hint: PublicKeyCredentialHints,
) -> Result<(
    webauthn_rs_core::proto::CreationChallengeResponse,
    RegistrationState,
)> {
    let builder = builder
        .credential_algorithms(vec![
            COSEAlgorithm::ES256,
            COSEAlgorithm::EDDSA,
            COSEAlgorithm::RS256,
        ])
        .authenticator_attachment(attachment)
        .hints(Some(vec![hint]))
        // Synced passkeys are judged by the population's policy after verification, with
        // a clear refusal, rather than by the library's blanket rule.
        .reject_synchronised_authenticators(false);
    Ok(state.webauthn.generate_challenge_register(builder)?)
}

/// A browser's registration answer (`PublicKeyCredential.toJSON()`), decoded.
pub(crate) struct BrowserRegistration {
    /// The credential id, raw.
    pub raw_id: Vec<u8>,
    /// The attestation object.
    pub attestation_object: Vec<u8>,
    /// The clientDataJSON bytes.
    pub client_data_json: Vec<u8>,
}

impl BrowserRegistration {
    /// Read the answer; a part missing or not base64url is `attestation_malformed`.
    pub(crate) fn parse(credential: &serde_json::Value) -> Result<BrowserRegistration> {
        let code = ErrorCode::AttestationMalformed;
        let bytes = |path: &[&str]| {
            text_at(credential, path)
                .and_then(|s| unb64(&s))
                .ok_or_else(|| missing_part(code, path))
        };
        let id = required_text(credential, &["id"], code)?;
        Ok(BrowserRegistration {
            attestation_object: bytes(&["response", "attestationObject"])?,
            client_data_json: bytes(&["response", "clientDataJSON"])?,
            raw_id: unb64(&id).ok_or_else(|| missing_part(code, &["base64url id"]))?,
        })
    }
}

/// What the browser said about the authenticator that answered (its attachment and how it is
/// reached), checked against the class the person chose: not attested, so it only catches the
/// plain mix-up (a USB key offered as "a phone", a roaming key as "this laptop"); the evidence
/// keeps it, marked unattested.
fn browser_report(credential: &serde_json::Value, class: DeviceClass) -> Result<serde_json::Value> {
    let attachment = text_at(credential, &["authenticatorAttachment"]);
    let transports: Vec<String> = credential
        .get("response")
        .and_then(|r| r.get("transports"))
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mismatch = match class {
        DeviceClass::Platform => attachment.as_deref().is_some_and(|a| a != "platform"),
        DeviceClass::Phone => {
            attachment.as_deref() == Some("platform")
                || (!transports.is_empty() && !transports.iter().any(|t| t == "hybrid"))
        }
        _ => false,
    };
    if mismatch {
        return Err(Error::forbidden(
            ErrorCode::DeviceClassMismatch,
            format!(
                "you chose to add a {}, but the browser says the authenticator that answered is {} (reached over {}); add security keys with the Keywarden desktop app",
                class.label().to_lowercase(),
                match attachment.as_deref() {
                    Some("platform") => "built into this device",
                    _ => "a separate device",
                },
                if transports.is_empty() { "an unknown transport".to_owned() } else { transports.join(", ") }
            ),
        ));
    }
    Ok(serde_json::json!({
        "authenticator_attachment": attachment,
        "transports": transports,
        "attested": false,
    }))
}

/// Where the population checks a laptop's posture before enrolling on it, a laptop's passkey
/// may be added only from a laptop Keywarden knows: a session opened by the desktop app's
/// one-time link, whose laptop must meet the enrolment posture now. A browser on an unknown
/// machine cannot say what its posture is, and the service does not guess.
async fn check_laptop_of_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session: &WebSession,
    policy: &crate::policy::Policy,
    population: &str,
    now: i64,
) -> Result<()> {
    let device = match session.proof.strip_prefix("link:") {
        Some(link_id) => store::link_device(tx, link_id).await?,
        None => None,
    };
    let Some(device) = device else {
        return Err(Error::forbidden(
            ErrorCode::LaptopPostureUnknown,
            format!("population {population} checks a laptop's posture before adding its passkey, and this browser's laptop is unknown: add it from the Keywarden app on the laptop (\"Add this laptop or your phone\"), or add a phone instead"),
        ));
    };
    enrol::check_laptop(policy, tx, &device, now).await
}

/// Refusals at the end of a browser registration that are audited.
const REFUSALS: &[ErrorCode] = &[
    ErrorCode::AaguidNotAllowed,
    ErrorCode::AttestationUntrusted,
    ErrorCode::AttestationChainRequired,
    ErrorCode::UserVerificationMissing,
    ErrorCode::DeviceClassMismatch,
    ErrorCode::SyncedPasskeyNotAllowed,
    ErrorCode::LaptopPostureUnknown,
    ErrorCode::LaptopNoncompliant,
    ErrorCode::PersonInactive,
    ErrorCode::CredentialExists,
];

/// `POST /api/v1/me/passkeys/finish` (session): verify the registration with webauthn-rs and
/// the population's rules, and bind the passkey.
#[utoipa::path(post, path = "/api/v1/me/passkeys/finish", tag = "self-service", request_body = FinishCeremony,
    responses((status = 201, body = PasskeyAdded), crate::openapi::Invalid, crate::openapi::Denied, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn passkey_finish(
    State(state): State<AppState>,
    ScriptCall(session): ScriptCall,
    JsonBody(req): JsonBody<FinishCeremony>,
) -> Result<(StatusCode, Json<PasskeyAdded>)> {
    let now = state.now_ms();
    match passkey_finish_in(&state, &session, &req, now).await {
        Ok(added) => {
            state.outbox_wake.notify_one();
            Ok((StatusCode::CREATED, Json(added)))
        }
        Err(e) => {
            let (_, code, message) = e.parts();
            if REFUSALS.contains(&code) {
                audit::record_refusal(
                    &state.db,
                    now,
                    &format!("web:{}", session.id),
                    "enrolment.refused",
                    &session.person_id,
                    serde_json::json!({"reason": code, "message": message, "in": "browser"}),
                )
                .await?;
            }
            Err(e)
        }
    }
}

async fn passkey_finish_in(
    state: &AppState,
    session: &WebSession,
    req: &FinishCeremony,
    now: i64,
) -> Result<PasskeyAdded> {
    let BrowserRegistration {
        raw_id,
        attestation_object,
        client_data_json,
    } = BrowserRegistration::parse(&req.credential)?;
    let mut tx = crate::db::begin(&state.db).await?;
    let c = take_challenge(
        &mut tx,
        &req.challenge_id,
        "register",
        Some(&session.id),
        now,
    )
    .await?;
    let class = c
        .class
        .as_deref()
        .and_then(DeviceClass::parse)
        .ok_or_else(|| Error::Webauthn("stored challenge has no class".into()))?;
    let person = enrol::load_active_person(&mut tx, &session.person_id).await?;
    let answer = enrol::KeyAnswer {
        raw_id: &raw_id,
        attestation_object: &attestation_object,
        client_data_json: &client_data_json,
    };
    let (mut verified, population, policy) = enrol::verify_answer(
        state,
        &mut tx,
        &person.id,
        &c.state,
        &answer,
        crate::trust::Via::Browser(class),
        now,
    )
    .await?;
    add_browser_report(&mut verified, &req.credential, class)?;
    if credentials::exists(&mut tx, &b64(verified.credential.cred_id.as_ref())).await? {
        return Err(Error::conflict(
            ErrorCode::CredentialExists,
            "this passkey is already enrolled",
        ));
    }
    enrol::check_key_policy(&policy, &population, &verified)?;
    if class == DeviceClass::Platform && !policy.enrolment_posture.is_empty() {
        check_laptop_of_session(&mut tx, session, &policy, &population, now).await?;
    }
    let reg = BrowserRegistration {
        raw_id,
        attestation_object,
        client_data_json,
    };
    let bind = BrowserBind {
        person_id: &person.id,
        class,
        name: c.name.as_deref(),
        actor: &format!("web:{}", session.id),
        place: "in the browser (Keywarden's self-service pages)",
    };
    let cred_id = bind_browser_passkey(state, &mut tx, &verified, &reg, bind, now).await?;
    let credential = crate::store::credentials::by_id(&mut **tx, &cred_id)
        .await?
        .ok_or(Error::Database(sqlx::Error::RowNotFound))?;
    let coverage = super::coverage_of(state, &mut tx, &person.id).await?;
    tx.commit().await?;
    Ok(PasskeyAdded {
        credential,
        coverage,
    })
}

/// Keep what the browser said about the authenticator in the evidence, after checking it
/// against the class asked for ([`browser_report`]).
pub(crate) fn add_browser_report(
    verified: &mut crate::trust::Verified,
    credential: &serde_json::Value,
    class: DeviceClass,
) -> Result<()> {
    let report = browser_report(credential, class)?;
    if let Some(evidence) = verified.evidence.as_object_mut() {
        evidence.insert("browser_report".to_owned(), report);
    }
    Ok(())
}

/// Whose browser passkey is bound, how it is named and who is audited.
pub(crate) struct BrowserBind<'a> {
    /// The person.
    pub person_id: &'a str,
    /// Its device class.
    pub class: DeviceClass,
    /// The name the person gave it.
    pub name: Option<&'a str>,
    /// Audit actor.
    pub actor: &'a str,
    /// Where it was added, for the person's notification.
    pub place: &'a str,
}

/// Bind a verified browser passkey to its person (no laptop, no agent ceremony), through the
/// same [`enrol::bind_credential`] as every credential; its id.
pub(crate) async fn bind_browser_passkey(
    state: &AppState,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    verified: &crate::trust::Verified,
    reg: &BrowserRegistration,
    b: BrowserBind<'_>,
    now: i64,
) -> Result<String> {
    let challenge = verified_challenge(&reg.client_data_json)?;
    enrol::bind_credential(
        state,
        tx,
        enrol::NewCredential {
            person_id: b.person_id,
            verified,
            attestation_object: &reg.attestation_object,
            client_data_json: &reg.client_data_json,
            challenge: &challenge,
            device_id: None,
            ceremony_id: None,
            model: None,
            key_info: "{}".to_owned(),
            on_key: None,
            posture: None,
            name: b.name,
            via: crate::trust::Via::Browser(b.class),
            actor: b.actor,
            place: b.place.to_owned(),
        },
        now,
    )
    .await
}

/// The challenge in a clientDataJSON that webauthn-rs already checked against the stored one.
fn verified_challenge(client_data_json: &[u8]) -> Result<String> {
    serde_json::from_slice::<serde_json::Value>(client_data_json)
        .ok()
        .and_then(|v| {
            v.get("challenge")
                .and_then(|c| c.as_str())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            Error::bad_request(
                ErrorCode::AttestationMalformed,
                "clientDataJSON has no challenge",
            )
        })
}

/// `GET /api/v1/me` (session): the signed-in person, their credentials and coverage.
#[utoipa::path(get, path = "/api/v1/me", tag = "self-service", responses((status = 200, body = Me), crate::openapi::Unauthenticated))]
pub async fn me(State(state): State<AppState>, session: WebSession) -> Result<Json<Me>> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    let credentials = super::credentials_of(&mut tx, &session.person_id).await?;
    let coverage = super::coverage_of(&state, &mut tx, &session.person_id).await?;
    tx.commit().await?;
    Ok(Json(Me {
        person: PersonSummary {
            id: session.person_id.clone(),
            user_name: session.user_name.clone(),
            display_name: session.display_name.clone(),
        },
        credentials,
        coverage,
        signed_in_with: session.signed_in_with.clone(),
        may_add_until_ms: if session.may_add(now) {
            session.proof_expires_at
        } else {
            0
        },
    }))
}
