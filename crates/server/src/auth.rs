//! Who is calling: admins with a bearer token, agents with device-signed requests.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use keywarden_protocol::{signing_input, HEADER_DEVICE, HEADER_SEQ, HEADER_SIGNATURE, HEADER_TIME};
use sqlx::{Any, Row, Transaction};

use crate::error::{Error, Result};
use crate::secrets;
use crate::state::AppState;

/// What an API token may do. Each role has its own tokens, stored hashed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
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

/// An authenticated API caller (bearer token) and its role. Handlers call
/// [`Caller::require`] before touching anything.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's id (never the token), as the audit actor.
    pub token_id: String,
    /// The token's role.
    pub role: Role,
    /// The person the token was issued to, if any (recovery approvers).
    pub person_id: Option<String>,
}

impl Caller {
    /// Audit actor name, e.g. `admin-token:<id>`.
    pub fn actor(&self) -> String {
        format!("{}-token:{}", self.role.as_str(), self.token_id)
    }

    /// Refuse unless the caller's role is one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<()> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(Error::forbidden(
                "role_forbidden",
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
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::unauthorized(
                    "token_missing",
                    "this API needs an Authorization: Bearer token",
                )
            })?;
        let token = header.strip_prefix("Bearer ").ok_or_else(|| {
            Error::unauthorized(
                "token_malformed",
                "Authorization header must be 'Bearer <token>'",
            )
        })?;
        let row = sqlx::query(
            "SELECT id, role, person_id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(secrets::hash(token.trim()))
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| Error::unauthorized("token_unknown", "unknown or revoked API token"))?;
        let role: String = row.try_get("role")?;
        let role = Role::parse(&role).ok_or_else(|| {
            Error::forbidden("role_forbidden", format!("token role {role} is not known"))
        })?;
        Ok(Caller {
            token_id: row.try_get("id")?,
            role,
            person_id: row.try_get("person_id")?,
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
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Error::unauthorized(
                "signature_missing",
                format!("signed request needs the {name} header"),
            )
        })
}

impl SignedCall {
    /// Check the signature over method, path, headers and body, and that the time is fresh.
    pub async fn verify(
        state: &AppState,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<SignedCall> {
        let device_id = header(headers, HEADER_DEVICE)?;
        let seq: u64 = header(headers, HEADER_SEQ)?.parse().map_err(|_| {
            Error::unauthorized("signature_malformed", "sequence number is not a number")
        })?;
        let time_ms: i64 = header(headers, HEADER_TIME)?.parse().map_err(|_| {
            Error::unauthorized("signature_malformed", "request time is not a number")
        })?;
        let sig = URL_SAFE_NO_PAD
            .decode(header(headers, HEADER_SIGNATURE)?)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| {
                Error::unauthorized("signature_malformed", "signature is not base64url Ed25519")
            })?;
        let seq_i64 = i64::try_from(seq)
            .map_err(|_| Error::unauthorized("signature_malformed", "sequence number too large"))?;

        let row = sqlx::query("SELECT public_key FROM devices WHERE id = $1")
            .bind(device_id)
            .fetch_optional(&state.db)
            .await?
            .ok_or_else(|| {
                Error::unauthorized(
                    "device_unknown",
                    format!("device {device_id} is not provisioned"),
                )
            })?;
        let pk: String = row.try_get("public_key")?;
        let key = secrets::unb64(&pk)
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| Error::Webauthn("stored device key is unreadable".into()))?;
        let input = signing_input(method.as_str(), path, device_id, seq, time_ms, body);
        key.verify(&input, &sig).map_err(|_| {
            Error::unauthorized(
                "signature_invalid",
                "request signature does not verify for this device",
            )
        })?;

        let now = state.now_ms();
        let skew = i64::try_from(state.settings.max_clock_skew.as_millis()).unwrap_or(i64::MAX);
        if (now - time_ms).abs() > skew {
            return Err(Error::unauthorized(
                "request_stale",
                format!(
                    "request signed at {} is more than {} s from the service clock ({})",
                    secrets::fmt_time(time_ms),
                    skew / 1000,
                    secrets::fmt_time(now)
                ),
            ));
        }
        Ok(SignedCall {
            device_id: device_id.to_owned(),
            seq: seq_i64,
        })
    }

    /// Claim the sequence number inside the work's transaction; a number at or below the last
    /// one accepted is a replay. Atomic, so two service replicas cannot both accept it.
    pub async fn claim(&self, tx: &mut Transaction<'_, Any>) -> Result<()> {
        let done = sqlx::query("UPDATE devices SET last_seq = $1 WHERE id = $2 AND last_seq < $1")
            .bind(self.seq)
            .bind(&self.device_id)
            .execute(&mut **tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(self.replayed());
        }
        Ok(())
    }

    /// The refusal of a request whose sequence number was used before.
    pub fn replayed(&self) -> Error {
        Error::conflict(
            "request_replayed",
            format!(
                "sequence number {} was already used by this device",
                self.seq
            ),
        )
    }
}

/// Parse a JSON body into `T`, with the service's error shape on failure.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Error::bad_request("malformed_json", format!("request body is not valid: {e}"))
    })
}
