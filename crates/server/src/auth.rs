//! Who is calling: staff with a bearer token or a console session (a passkey sign-in of a person
//! holding a staff role), agents with device-signed requests.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use keywarden_protocol::ErrorCode;
use keywarden_protocol::{signing_input, HEADER_DEVICE, HEADER_SEQ, HEADER_SIGNATURE, HEADER_TIME};
use sqlx::{Any, Transaction};

use crate::error::{Error, Result};
use crate::secrets;
use crate::state::AppState;

/// What an API token may do. Each role has its own tokens, stored hashed. The service CLI's
/// `--role` takes the same names (`clap::ValueEnum`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including issuing tokens and changing policy.
    Admin,
    /// IT help desk: provisioning tokens, enrolment tickets, read views.
    Helpdesk,
    /// Read-only: coverage, evidence, the audit log.
    Auditor,
    /// The HR/IdP feed: the SCIM endpoints only.
    Scim,
}

impl Role {
    /// Stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Helpdesk => "helpdesk",
            Role::Auditor => "auditor",
            Role::Scim => "scim",
        }
    }

    /// Parse a stored or requested role name.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "admin" => Some(Role::Admin),
            "helpdesk" => Some(Role::Helpdesk),
            "auditor" => Some(Role::Auditor),
            "scim" => Some(Role::Scim),
            _ => None,
        }
    }

    /// Every role, for listings and the role × endpoint test.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Helpdesk, Role::Auditor, Role::Scim];
}

/// An authenticated API caller and its role: a bearer token, or a console session. Handlers
/// call [`Caller::require`] (or take [`Staff`] / [`Fresh`]) before touching anything, so the
/// console and the API answer to one role matrix.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id (never the token); for a console session `session:<id>`.
    pub token_id: String,
    /// The token's role, or the console person's staff role.
    pub role: Role,
    /// The person the token was issued to (recovery approvers), or who signed in.
    pub person_id: Option<String>,
    /// Set when the call comes from a console session.
    pub console: Option<ConsoleCaller>,
}

/// A console caller: a person signed in with a passkey who holds a staff role.
#[derive(Debug, Clone)]
pub struct ConsoleCaller {
    /// The web session.
    pub session_id: String,
    /// Their user name.
    pub user_name: String,
    /// Their display name.
    pub display_name: String,
    /// Until when their last touch of a key counts as fresh (sensitive actions need it).
    pub fresh_until: i64,
    /// The page's CSRF token.
    pub csrf: String,
}

impl Caller {
    /// Audit actor name, e.g. `admin-token:<id>` or `helpdesk-console:<session id>`.
    pub fn actor(&self) -> String {
        match &self.console {
            Some(c) => format!("{}-console:{}", self.role.as_str(), c.session_id),
            None => format!("{}-token:{}", self.role.as_str(), self.token_id),
        }
    }

    /// Refuse a console caller whose last touch of a key is older than a few minutes (a
    /// token caller is a script: it has no key to touch).
    pub fn require_fresh(&self, now: i64) -> Result<()> {
        match &self.console {
            Some(c) if now >= c.fresh_until => Err(Error::forbidden(
                ErrorCode::FreshTouchRequired,
                "this action needs a fresh touch of your key: confirm with your passkey and try again",
            )),
            _ => Ok(()),
        }
    }

    /// Refuse unless the caller's role is one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<()> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::forbidden(
                ErrorCode::RoleForbidden,
                format!(
                    "role {} may not use this endpoint (allowed: {})",
                    self.role.as_str(),
                    allowed
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let Some(header) = header else {
            return match crate::console::caller(state, parts).await? {
                Some(caller) => Ok(caller),
                None => Err(Error::unauthorized(
                    ErrorCode::TokenMissing,
                    "this API needs an Authorization: Bearer token (or a console sign-in)",
                )),
            };
        };
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            Error::unauthorized(
                ErrorCode::TokenMalformed,
                "Authorization header must be 'Bearer <token>'",
            )
        })?;
        let row = crate::store::tokens::by_hash(&state.db, &secrets::hash(token.trim()))
            .await?
            .ok_or_else(|| Error::unauthorized(ErrorCode::TokenUnknown, "unknown API token"))?;
        let role = Role::parse(&row.role).ok_or_else(|| {
            Error::forbidden(
                ErrorCode::RoleForbidden,
                format!("token role {} is not known", row.role),
            )
        })?;
        let caller = Caller {
            token_id: row.id.clone(),
            role,
            person_id: row.person_id.clone(),
            console: None,
        };
        let now = state.now_ms();
        if let Err(e) = token_state(&row, caller.person_id.is_some(), now) {
            // A known token refused (its holder left, revoked, expired) is worth an audit record:
            // someone still holds it.
            let (_, code, message) = e.parts();
            if let Err(err) = crate::audit::record_refusal(
                &state.db,
                now,
                &caller.actor(),
                "api_token.refused",
                &caller.token_id,
                serde_json::json!({"reason": code, "message": message, "person_id": caller.person_id}),
            )
            .await
            {
                tracing::error!(error = %err, "could not audit a refused API token");
            }
            return Err(e);
        }
        if row
            .last_used_at
            .is_none_or(|at| now - at >= USE_RECORD_INTERVAL_MS)
        {
            if let Err(err) = record_use(state, &caller.token_id, now).await {
                tracing::warn!(error = %err, token = %caller.token_id, "could not record an API token's use");
            }
        }
        Ok(caller)
    }
}

/// A token's use is written at most this often (last use is for people reading a listing, not
/// an access log: the audit log is that).
const USE_RECORD_INTERVAL_MS: i64 = 60_000;

/// Refuse a token whose person is inactive (whatever else its state), that was revoked, or
/// that expired.
fn token_state(row: &crate::store::tokens::TokenRow, named: bool, now: i64) -> Result<()> {
    if named {
        let active = row.active.unwrap_or(0) != 0;
        let deleted = row.deleted_at.is_some();
        if !active || deleted {
            return Err(Error::unauthorized(
                ErrorCode::TokenHolderInactive,
                "the person this token was issued to is no longer active; their tokens do not work",
            ));
        }
    }
    if let Some(at) = row.revoked_at {
        let reason = row.revoked_reason.as_deref();
        return Err(Error::unauthorized(
            ErrorCode::TokenRevoked,
            format!(
                "this token was revoked at {}{}; ask an admin for a new one",
                secrets::fmt_time(at),
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ),
        ));
    }
    match row.expires_at {
        Some(at) if now < at => Ok(()),
        at => Err(Error::unauthorized(
            ErrorCode::TokenExpired,
            format!(
                "this token expired at {}; ask an admin for a new one",
                at.map_or_else(|| "issue (it had no expiry)".to_owned(), secrets::fmt_time)
            ),
        )),
    }
}

/// Record when a token was last used, in its own short write (never the caller's transaction:
/// a refused request's rollback stays complete, and last use is kept apart from the token).
async fn record_use(state: &AppState, token_id: &str, now: i64) -> Result<()> {
    let _turn = state.write_turn().await;
    crate::store::tokens::record_use(&state.db, token_id, now).await
}

/// The roles an endpoint admits, named once as a type, so a handler's signature says who may
/// call it ([`Staff`]).
pub trait Roles: Send + Sync {
    /// The roles admitted.
    const ALLOWED: &'static [Role];
}

/// Admins only.
#[derive(Debug)]
pub struct AdminOnly;
impl Roles for AdminOnly {
    const ALLOWED: &'static [Role] = &[Role::Admin];
}

/// Admins and the help desk (people, tickets, recoveries, laptops).
#[derive(Debug)]
pub struct AdminOrHelpdesk;
impl Roles for AdminOrHelpdesk {
    const ALLOWED: &'static [Role] = &[Role::Admin, Role::Helpdesk];
}

/// Admins and auditors (evidence, audit log, trust anchors).
#[derive(Debug)]
pub struct AdminOrAuditor;
impl Roles for AdminOrAuditor {
    const ALLOWED: &'static [Role] = &[Role::Admin, Role::Auditor];
}

/// Every staff role (reading people, laptops, coverage, offboardings).
#[derive(Debug)]
pub struct AnyStaff;
impl Roles for AnyStaff {
    const ALLOWED: &'static [Role] = &[Role::Admin, Role::Helpdesk, Role::Auditor];
}

/// A bearer-token caller whose role is one of `R`'s, checked before the handler runs (and
/// before its body is read); anyone else gets 403 `role_forbidden` and nothing happens. With
/// `FRESH` (spelled [`Fresh`]) a console caller must also have touched their key lately.
#[derive(Debug)]
pub struct Staff<R: Roles, const FRESH: bool = false> {
    /// The caller.
    pub caller: Caller,
    roles: std::marker::PhantomData<R>,
}

/// [`Staff`] for a sensitive action (issue a ticket or a recovery, approve, suspend or revoke,
/// retire a laptop, change policy or roles): a console caller must also have touched their key
/// in the last few minutes, else 403 `fresh_touch_required` and nothing happens.
pub type Fresh<R> = Staff<R, true>;

impl<R: Roles, const FRESH: bool> std::ops::Deref for Staff<R, FRESH> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<R: Roles, const FRESH: bool> FromRequestParts<AppState> for Staff<R, FRESH> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(R::ALLOWED)?;
        if FRESH {
            caller.require_fresh(state.now_ms())?;
        }
        Ok(Staff {
            caller,
            roles: std::marker::PhantomData,
        })
    }
}

/// A device-signed request whose signature and freshness have been checked. Its sequence number
/// is not yet claimed: the handler calls [`SignedCall::claim`] inside the transaction that does
/// the work, so a refused request changes nothing, not even the sequence.
#[derive(Debug, Clone)]
pub struct SignedCall {
    /// The device that signed.
    pub device_id: String,
    /// Its sequence number.
    pub seq: i64,
    /// The path it was sent to.
    pub path: String,
    /// When the service verified it (unix ms, the service's clock).
    pub verified_at: i64,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Error::unauthorized(
                ErrorCode::SignatureMissing,
                format!("signed request needs the {name} header"),
            )
        })
}

/// The signature headers of a device-signed request, read but not yet checked: what
/// [`SignedCall::verify`] takes from the request before it looks the device up.
#[derive(Debug)]
pub struct Envelope<'a> {
    /// The device that says it signed.
    pub device_id: &'a str,
    seq: u64,
    time_ms: i64,
    signature: Signature,
}

impl<'a> Envelope<'a> {
    /// Read the device, sequence, time and signature headers; a missing or unreadable one is
    /// refused (401 `signature_missing` / `signature_malformed`).
    pub fn parse(headers: &'a HeaderMap) -> Result<Self> {
        let device_id = header(headers, HEADER_DEVICE)?;
        let seq: u64 = header(headers, HEADER_SEQ)?.parse().map_err(|_| {
            Error::unauthorized(
                ErrorCode::SignatureMalformed,
                "sequence number is not a number",
            )
        })?;
        let time_ms: i64 = header(headers, HEADER_TIME)?.parse().map_err(|_| {
            Error::unauthorized(
                ErrorCode::SignatureMalformed,
                "request time is not a number",
            )
        })?;
        let signature = URL_SAFE_NO_PAD
            .decode(header(headers, HEADER_SIGNATURE)?)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| {
                Error::unauthorized(
                    ErrorCode::SignatureMalformed,
                    "signature is not base64url Ed25519",
                )
            })?;
        if i64::try_from(seq).is_err() {
            return Err(Error::unauthorized(
                ErrorCode::SignatureMalformed,
                "sequence number too large",
            ));
        }
        Ok(Envelope {
            device_id,
            seq,
            time_ms,
            signature,
        })
    }

    /// Check the signature over method, path, these headers and the body with the device's
    /// public key.
    pub fn check_signature(
        &self,
        key: &VerifyingKey,
        method: &Method,
        path: &str,
        body: &[u8],
    ) -> Result<()> {
        let input = signing_input(
            method.as_str(),
            path,
            self.device_id,
            self.seq,
            self.time_ms,
            body,
        );
        key.verify(&input, &self.signature).map_err(|_| {
            Error::unauthorized(
                ErrorCode::SignatureInvalid,
                "request signature does not verify for this device",
            )
        })
    }

    /// Check that the request was signed within `max_skew_ms` of `now_ms` (401 `request_stale`).
    pub fn check_fresh(&self, path: &str, now_ms: i64, max_skew_ms: i64) -> Result<SignedCall> {
        // abs_diff: a signed time at either end of i64 must not overflow the subtraction.
        if now_ms.abs_diff(self.time_ms) > max_skew_ms.unsigned_abs() {
            return Err(Error::unauthorized(
                ErrorCode::RequestStale,
                format!(
                    "request signed at {} is more than {} s from the service clock ({})",
                    secrets::fmt_time(self.time_ms),
                    max_skew_ms / 1000,
                    secrets::fmt_time(now_ms)
                ),
            ));
        }
        Ok(SignedCall {
            device_id: self.device_id.to_owned(),
            seq: i64::try_from(self.seq).unwrap_or(i64::MAX),
            path: path.to_owned(),
            verified_at: now_ms,
        })
    }
}

/// Every check of a device-signed request that needs no database, in [`SignedCall::verify`]'s
/// order, with the device's stored key given: the entry point of the envelope's fuzz target.
#[doc(hidden)]
pub fn check_envelope(
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    body: &[u8],
    stored_key: &str,
    now_ms: i64,
    max_skew_ms: i64,
) -> Result<SignedCall> {
    let envelope = Envelope::parse(headers)?;
    envelope.check_signature(&stored_device_key(stored_key)?, method, path, body)?;
    envelope.check_fresh(path, now_ms, max_skew_ms)
}

/// A laptop's public key as the devices table keeps it (base64url Ed25519).
fn stored_device_key(stored: &str) -> Result<VerifyingKey> {
    secrets::unb64(stored)
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| Error::Webauthn("stored device key is unreadable".into()))
}

/// The public key of the laptop a request names, or 401 `device_unknown`: checked from the
/// headers alone, before the body is read. Read from the database the first time and kept in
/// memory after ([`crate::device_keys::DeviceKeys`]), unless the laptop was already retired
/// (then the refusal is returned, to be given once the signature checks). Whether a laptop may
/// still act is decided by the claim in the work's transaction ([`SignedCall::claim`]), on
/// every replica at once.
async fn known_device(
    state: &AppState,
    envelope: &Envelope<'_>,
) -> Result<(VerifyingKey, Option<Error>)> {
    let device_id = envelope.device_id;
    if let Some(key) = state.device_keys.get(device_id) {
        return Ok((key, None));
    }
    let row = crate::store::auth::device_key(&state.db, device_id)
        .await?
        .ok_or_else(|| {
            Error::unauthorized(
                ErrorCode::DeviceUnknown,
                format!("device {device_id} is not provisioned"),
            )
        })?;
    let key = stored_device_key(&row.public_key)?;
    Ok(match row.retired_at {
        Some(at) => (
            key,
            Some(retired(
                at,
                row.retired_reason.as_deref().unwrap_or("retired"),
            )),
        ),
        None => {
            state.device_keys.insert(device_id, key);
            (key, None)
        }
    })
}

/// Audit a retired laptop's refused request (`device.refused`) and hand the refusal back.
pub(crate) async fn refuse_retired(
    db: &sqlx::AnyPool,
    device_id: &str,
    path: &str,
    now: i64,
    e: Error,
) -> Error {
    let (_, code, message) = e.parts();
    if let Err(err) = crate::audit::record_refusal(
        db,
        now,
        &format!("device:{device_id}"),
        "device.refused",
        device_id,
        serde_json::json!({"reason": code, "message": message, "path": path}),
    )
    .await
    {
        tracing::error!(error = %err, "could not audit a retired laptop's request");
    }
    e
}

/// The signature over method, path, headers and `body` with the laptop's key; then whether the
/// laptop still works (a retired laptop's signed request is audited) and the time is fresh.
async fn checked(
    state: &AppState,
    envelope: &Envelope<'_>,
    (key, retired): (VerifyingKey, Option<Error>),
    method: &Method,
    path: &str,
    body: &[u8],
) -> Result<SignedCall> {
    envelope.check_signature(&key, method, path, body)?;
    if let Some(e) = retired {
        let now = state.now_ms();
        return Err(refuse_retired(&state.db, envelope.device_id, path, now, e).await);
    }
    let skew = i64::try_from(state.settings.max_clock_skew.as_millis()).unwrap_or(i64::MAX);
    envelope.check_fresh(path, state.now_ms(), skew)
}

impl SignedCall {
    /// Audit actor name: `device:<id>`.
    pub fn actor(&self) -> String {
        format!("device:{}", self.device_id)
    }

    /// Check the signature over method, path, headers and body, and that the time is fresh.
    pub async fn verify(
        state: &AppState,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<SignedCall> {
        let envelope = Envelope::parse(headers)?;
        let known = known_device(state, &envelope).await?;
        checked(state, &envelope, known, method, path, body).await
    }

    /// A write transaction with this request's sequence number claimed in it ([`Self::claim`]):
    /// what a device-signed handler does first. A retired laptop's refusal is audited.
    pub async fn begin(&self, db: &sqlx::AnyPool) -> Result<crate::db::WriteTx> {
        let mut tx = crate::db::begin(db).await?;
        match self.claim(&mut tx).await {
            Ok(()) => Ok(tx),
            Err(e) if e.parts().1 == ErrorCode::DeviceRetired => {
                tx.rollback().await?;
                Err(refuse_retired(db, &self.device_id, &self.path, self.verified_at, e).await)
            }
            Err(e) => Err(e),
        }
    }

    /// Claim the sequence number inside the work's transaction; a number at or below the last
    /// one accepted is a replay. Atomic, so two service replicas cannot both accept it. This is
    /// where a retired laptop is refused: its key stays known to the service ([`DeviceKeys`]),
    /// its claims do not.
    pub async fn claim(&self, tx: &mut Transaction<'_, Any>) -> Result<()> {
        if !crate::store::auth::claim_seq(tx, &self.device_id, self.seq).await? {
            return Err(self.unclaimed(tx).await?);
        }
        Ok(())
    }

    /// Why this request's claim was refused: its laptop was retired, or the number was used.
    pub async fn unclaimed(&self, tx: &mut Transaction<'_, Any>) -> Result<Error> {
        let (retired_at, reason) = crate::store::auth::retirement(tx, &self.device_id).await?;
        Ok(match retired_at {
            Some(at) => retired(at, reason.as_deref().unwrap_or("retired")),
            None => self.replayed(),
        })
    }

    /// The refusal of a request whose sequence number was used before.
    pub fn replayed(&self) -> Error {
        Error::conflict(
            ErrorCode::RequestReplayed,
            format!(
                "sequence number {} was already used by this device",
                self.seq
            ),
        )
    }
}

/// The refusal of a request signed by a laptop that was retired, marked lost or left behind.
fn retired(at: i64, reason: &str) -> Error {
    let what = match reason {
        "lost" => "was marked lost",
        "offboarded" => "was retired when the last person using it left",
        _ => "was retired",
    };
    Error::forbidden(
        ErrorCode::DeviceRetired,
        format!(
            "this laptop {what} at {}; its device key no longer works: ask IT to provision a replacement",
            secrets::fmt_time(at)
        ),
    )
}

/// A device-signed request, verified, with its JSON body parsed into `T`: what every agent
/// endpoint takes first. The signature covers the raw body, so the body is read once, checked,
/// then parsed; a request that fails either gets the service's error shape.
#[derive(Debug)]
pub struct Signed<T> {
    /// The verified caller (its sequence number not yet claimed).
    pub call: SignedCall,
    /// The parsed body.
    pub body: T,
}

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for Signed<T> {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self> {
        let (call, body) = verified_body(req, state).await?;
        Ok(Signed {
            call,
            body: parse_json(&body)?,
        })
    }
}

/// A device-signed request whose body carries nothing the endpoint reads (the signature
/// still covers it).
impl axum::extract::FromRequest<AppState> for SignedCall {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self> {
        Ok(verified_body(req, state).await?.0)
    }
}

/// A device-signed request, verified, with its raw body: for endpoints that read the body
/// themselves (the report routes, which check each report on its own).
#[derive(Debug)]
pub struct SignedBytes {
    /// The verified caller (its sequence number not yet claimed).
    pub call: SignedCall,
    /// The body the signature covers.
    pub body: axum::body::Bytes,
}

impl axum::extract::FromRequest<AppState> for SignedBytes {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self> {
        let (call, body) = verified_body(req, state).await?;
        Ok(SignedBytes { call, body })
    }
}

/// The headers' claim first (a laptop that is not provisioned is refused before its body is
/// read), then the body within the route's limit, then the signature over it.
async fn verified_body(
    req: axum::extract::Request,
    state: &AppState,
) -> Result<(SignedCall, axum::body::Bytes)> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let headers = req.headers().clone();
    let envelope = Envelope::parse(&headers)?;
    let known = known_device(state, &envelope).await?;
    let body = read_body(req, state).await?;
    let call = checked(state, &envelope, known, &method, &path, &body).await?;
    Ok((call, body))
}

/// A JSON body parsed into `T`, refused in the service's error shape (`malformed_json`) rather
/// than axum's plain-text rejection. Put it after the extractors that check who is calling.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self> {
        Ok(JsonBody(parse_json(&read_body(req, state).await?)?))
    }
}

/// A query string parsed into `T`, refused in the service's error shape (`query_invalid`, 400)
/// rather than axum's plain-text rejection.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| QueryParams(q))
            .map_err(|e| Error::bad_request(ErrorCode::QueryInvalid, e.body_text()))
    }
}

/// A request's raw body, read within the route's limit and refused in the service's error
/// shape: for bodies that may be empty or are parsed by the handler.
#[derive(Debug)]
pub struct RawBody(pub axum::body::Bytes);

impl axum::extract::FromRequest<AppState> for RawBody {
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self> {
        Ok(RawBody(read_body(req, state).await?))
    }
}

/// The request's body, read within the route's limit: over it, `body_too_large` (413); else
/// unreadable, `body_unreadable`; both in the service's error shape.
pub(crate) async fn read_body(
    req: axum::extract::Request,
    state: &AppState,
) -> Result<axum::body::Bytes> {
    <axum::body::Bytes as axum::extract::FromRequest<AppState>>::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::limited(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::BodyTooLarge,
                    "the request body is larger than this endpoint takes",
                    None,
                )
            } else {
                Error::bad_request(ErrorCode::BodyUnreadable, format!("request body: {e}"))
            }
        })
}

/// Parse a JSON body into `T`, with the service's error shape on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Error::bad_request(
            ErrorCode::MalformedJson,
            format!("request body is not valid: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use ed25519_dalek::{Signer as _, SigningKey};

    /// Headers of a request to `/api/v1/agent/reports` signed by `key` at `time_ms`.
    fn signed(key: &SigningKey, time_ms: i64, body: &[u8]) -> HeaderMap {
        let input = signing_input("POST", "/api/v1/agent/reports", "dev-1", 7, time_ms, body);
        let sig = URL_SAFE_NO_PAD.encode(key.sign(&input).to_bytes());
        let mut h = HeaderMap::new();
        for (name, value) in [
            (HEADER_DEVICE, "dev-1".to_owned()),
            (HEADER_SEQ, "7".to_owned()),
            (HEADER_TIME, time_ms.to_string()),
            (HEADER_SIGNATURE, sig),
        ] {
            h.insert(name, HeaderValue::from_str(&value).expect("a header value"));
        }
        h
    }

    fn check(key: &SigningKey, time_ms: i64, now_ms: i64) -> Result<SignedCall> {
        let stored = secrets::b64(key.verifying_key().as_bytes());
        let headers = signed(key, time_ms, b"{}");
        check_envelope(
            &headers,
            &Method::POST,
            "/api/v1/agent/reports",
            b"{}",
            &stored,
            now_ms,
            300_000,
        )
    }

    /// Regression: a correctly signed request dated at the far end of the time header's range
    /// (`x-keywarden-time: -9223372036854775808`) overflowed the clock-skew arithmetic, a panic
    /// in a build with overflow checks and a wrong answer without them; it is refused as stale.
    #[test]
    fn a_signed_request_dated_at_the_ends_of_time_is_stale_not_a_panic() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let now = 1_767_225_600_000;
        assert!(check(&key, now - 1_000, now).is_ok());
        for time_ms in [i64::MIN, i64::MIN + 1, -now, i64::MAX] {
            let e = check(&key, time_ms, now).expect_err("a request from the ends of time");
            assert_eq!(e.parts().1, ErrorCode::RequestStale, "at {time_ms}");
        }
        // The service clock at an extreme does not overflow either.
        let e = check(&key, 0, i64::MIN).expect_err("far from the clock");
        assert_eq!(e.parts().1, ErrorCode::RequestStale);
    }
}
