//! The first admin: while nobody holds the admin role, each start of the service writes a
//! one-time setup link (0600 file, never a log; an earlier unused link stops working). Whoever
//! opens it names themselves and makes a passkey; the service verifies it like any browser
//! passkey (its attestation may be unanchored: at first start no vendor root is trusted yet),
//! creates that person (marked as not from the HR feed), gives them the admin role and signs
//! them in. The link works once, for a day, and never once an admin exists.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use keywarden_protocol::ErrorCode;
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Transaction};
use utoipa::ToSchema;
use webauthn_rs_core::proto::{PublicKeyCredentialHints, RegistrationState};

use crate::audit;
use crate::auth::JsonBody;
use crate::enrol;
use crate::error::{Error, OrNotFound as _, Result};
use crate::policy::DeviceClass;
use crate::secrets::{self, b64, new_id};
use crate::selfservice::challenges::{
    challenge_json, store_challenge, take_challenge, text_at, FinishCeremony, WebChallenge,
};
use crate::selfservice::entry::{open_recorded, opened, Opening};
use crate::selfservice::passkeys::{
    add_browser_report, bind_browser_passkey, browser_registration, BrowserBind,
    BrowserRegistration,
};
use crate::selfservice::session::{self, SameOrigin};
use crate::state::AppState;
use crate::store::console as store;

/// How long a setup link works.
pub const SETUP_TTL_MS: i64 = 24 * 60 * 60 * 1000;

const PURPOSE: &str = "console_setup";

/// Whether the console still needs its first admin.
pub async fn needs_admin(db: &AnyPool) -> Result<bool> {
    let mut conn = db.acquire().await?;
    Ok(store::active_admins(&mut conn).await? == 0)
}

/// While nobody holds the admin role: end any unused setup link, make a new one and hand its
/// URL to `deliver` before it is committed (a link that could not be delivered is never
/// issued). `None` when an admin exists.
pub async fn issue_link(
    db: &AnyPool,
    origin: &str,
    now: i64,
    deliver: impl FnOnce(&str) -> Result<()>,
) -> Result<Option<String>> {
    let mut tx = crate::db::begin(db).await?;
    if store::active_admins(&mut tx).await? > 0 {
        return Ok(None);
    }
    store::expire_setups(&mut tx, now).await?;
    let code = secrets::generate("kwsetup_");
    let id = new_id();
    store::insert_setup(&mut tx, &id, &secrets::hash(&code), now, now + SETUP_TTL_MS).await?;
    audit::record(
        &mut tx,
        now,
        "service",
        "console_setup.issued",
        &id,
        serde_json::json!({"expires_at_ms": now + SETUP_TTL_MS}),
    )
    .await?;
    let url = format!("{}/console/setup#code={code}", origin.trim_end_matches('/'));
    deliver(&url)?;
    tx.commit().await?;
    Ok(Some(url))
}

/// `POST /api/v1/console/setup/begin` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginSetup {
    /// The code from the setup link.
    pub code: String,
    /// The first admin's user name (e.g. their work email).
    pub user_name: String,
    /// Their name as people see it.
    pub display_name: String,
}

/// What a setup challenge carries to its finish (kept with the challenge, never sent).
#[derive(Serialize, Deserialize)]
struct Pending {
    setup_id: String,
    user_name: String,
    display_name: String,
    webauthn_user_id: String,
    registration: RegistrationState,
}

/// The setup link `code` names, checked: unused, unexpired, and no admin yet.
async fn open_setup(tx: &mut Transaction<'_, Any>, code: &str, now: i64) -> Result<String> {
    if store::active_admins(tx).await? > 0 {
        return Err(Error::conflict(
            ErrorCode::SetupDone,
            "the console already has an admin; sign in with your passkey instead",
        ));
    }
    let row = store::setup_by_hash(tx, &secrets::hash(code.trim()))
        .await?
        .or_not_found(ErrorCode::SetupLinkUnknown, "this setup link is not known (each start of the service replaces an unused one): use the newest")?;
    crate::error::not_used(
        row.used_at,
        ErrorCode::SetupLinkUsed,
        "this setup link was already used",
    )?;
    crate::error::before_expiry(now, row.expires_at, ErrorCode::SetupLinkExpired, |at| {
        format!("this setup link expired at {at}; restart the service for a new one")
    })?;
    Ok(row.id)
}

fn clean(what: &str, v: &str, code: ErrorCode) -> Result<String> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > 256 || v.chars().any(char::is_control) {
        return Err(Error::bad_request(
            code,
            format!("{what} must be 1 to 256 characters on one line"),
        ));
    }
    Ok(v.to_owned())
}

/// `POST /api/v1/console/setup/begin`: check the setup link and the names, and ask the browser
/// for a passkey.
#[utoipa::path(post, path = "/api/v1/console/setup/begin", tag = "console", request_body = BeginSetup,
    responses((status = 201, body = WebChallenge), crate::openapi::Invalid, crate::openapi::Forbidden, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn begin(
    State(state): State<AppState>,
    _: SameOrigin,
    JsonBody(req): JsonBody<BeginSetup>,
) -> Result<(StatusCode, Json<WebChallenge>)> {
    let now = state.now_ms();
    let user_name = clean("user_name", &req.user_name, ErrorCode::UserNameInvalid)?;
    let display_name = clean(
        "display_name",
        &req.display_name,
        ErrorCode::DisplayNameInvalid,
    )?;
    let mut tx = crate::db::begin(&state.db).await?;
    let setup_id = open_setup(&mut tx, &req.code, now).await?;
    if crate::store::admin::user_name_taken(&mut tx, &user_name).await? {
        return Err(Error::conflict(
            ErrorCode::PersonExists,
            format!("a person with user_name {user_name} exists"),
        ));
    }
    tx.commit().await?;
    let user_id = uuid::Uuid::new_v4();
    let builder = crate::enrol::new_registration(
        &state,
        user_id.as_bytes(),
        &user_name,
        &display_name,
        Vec::new(),
    )?;
    let (ccr, registration) =
        browser_registration(&state, builder, None, PublicKeyCredentialHints::SecurityKey)?;
    let pending = Pending {
        setup_id,
        user_name,
        display_name,
        webauthn_user_id: b64(user_id.as_bytes()),
        registration,
    };
    let challenge_id = store_challenge(
        &state,
        None,
        PURPOSE,
        serde_json::to_string(&pending).map_err(Error::Corrupt)?,
        None,
        None,
        now,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(WebChallenge {
            challenge_id,
            public_key: challenge_json(&ccr.public_key)?,
        }),
    ))
}

/// The class of the authenticator that answered, as the browser reports it (checked against
/// metadata where there is some, like every browser passkey).
fn class_of(credential: &serde_json::Value) -> DeviceClass {
    let hybrid = credential
        .get("response")
        .and_then(|r| r.get("transports"))
        .and_then(|t| t.as_array())
        .is_some_and(|a| a.iter().any(|t| t.as_str() == Some("hybrid")));
    match text_at(credential, &["authenticatorAttachment"]).as_deref() {
        Some("platform") => DeviceClass::Platform,
        _ if hybrid => DeviceClass::Phone,
        _ => DeviceClass::Roaming,
    }
}

/// `POST /api/v1/console/setup/finish`: verify the passkey, create the first admin, use up the
/// link and sign them in (the session cookie is set on the answer).
#[utoipa::path(post, path = "/api/v1/console/setup/finish", tag = "console", request_body = FinishCeremony,
    responses((status = 201, body = crate::selfservice::entry::SessionOpened), crate::openapi::Invalid, crate::openapi::Forbidden, crate::openapi::NotFound, crate::openapi::Conflict, crate::openapi::Gone))]
pub async fn finish(
    State(state): State<AppState>,
    _: SameOrigin,
    JsonBody(req): JsonBody<FinishCeremony>,
) -> Result<Response> {
    let now = state.now_ms();
    let reg = BrowserRegistration::parse(&req.credential)?;
    let class = class_of(&req.credential);
    let mut tx = crate::db::begin(&state.db).await?;
    let c = take_challenge(&mut tx, &req.challenge_id, PURPOSE, None, now).await?;
    let pending: Pending = serde_json::from_str(&c.state).map_err(Error::Corrupt)?;
    // The link is checked again: another setup may have finished meanwhile.
    let row_id = pending.setup_id.clone();
    if store::active_admins(&mut tx).await? > 0 {
        return Err(Error::conflict(
            ErrorCode::SetupDone,
            "the console already has an admin; sign in with your passkey instead",
        ));
    }
    let person_id = new_id();
    let person = crate::store::admin::NewPerson {
        id: &person_id,
        user_name: &pending.user_name,
        display_name: &pending.display_name,
        webauthn_user_id: &pending.webauthn_user_id,
        source: "setup",
    };
    crate::store::admin::insert_person(&mut tx, &person, now).await?;
    if !store::use_setup(&mut tx, &row_id, &person_id, now).await? {
        return Err(Error::conflict(
            ErrorCode::SetupLinkUsed,
            "this setup link was already used",
        ));
    }
    let via = crate::trust::Via::Browser(class);
    let registration = crate::trust::registration_response(
        &reg.raw_id,
        &reg.attestation_object,
        &reg.client_data_json,
    )?;
    let (population, mut policy) = enrol::policy_for(&state, &mut tx, &person_id).await?;
    // At first start the organisation has loaded no FIDO metadata nor added a vendor's root
    // yet, so no authenticator could meet a trusted-chain rule: the first admin's passkey is
    // judged by the default policy but for that, and its evidence says how it attested. The
    // door here is the setup link (a file only the service's operator reads).
    policy.attestation_optional_for = vec![
        DeviceClass::Roaming,
        DeviceClass::Platform,
        DeviceClass::Phone,
    ];
    let mut verified = crate::trust::verify_registration(
        &state,
        &mut tx,
        &registration,
        &pending.registration,
        &reg.attestation_object,
        &policy,
        &population,
        via,
        now,
    )
    .await?;
    add_browser_report(&mut verified, &req.credential, class)?;
    enrol::check_key_policy(&policy, &population, &verified)?;
    let actor = format!("console-setup:{row_id}");
    let bind = BrowserBind {
        person_id: &person_id,
        class,
        name: Some("console sign-in"),
        actor: &actor,
        place: "in the browser (Keywarden's console setup)",
    };
    let cred_id = bind_browser_passkey(&state, &mut tx, &verified, &reg, bind, now).await?;
    store::grant(&mut tx, &person_id, "admin", &actor, now).await?;
    audit::record(
        &mut tx,
        now,
        &actor,
        "staff_role.granted",
        &person_id,
        serde_json::json!({"role": "admin", "first_admin": true, "user_name": pending.user_name, "source": "setup"}),
    )
    .await?;
    let person = enrol::load_person(&mut tx, &person_id).await?;
    let opening = Opening {
        proof: format!("passkey:{cred_id}"),
        signed_in_with: Some(cred_id.clone()),
        may_add_until: now + session::PROOF_MS,
        by_session: true,
        action: "person.signed_in",
        detail: serde_json::json!({"credential_id": cred_id, "in": "console setup"}),
    };
    let (token, body) = open_recorded(tx, &person, opening, now).await?;
    state.outbox_wake.notify_one();
    Ok(opened(&token, body))
}
