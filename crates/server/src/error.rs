//! The service's one error type. Every failure, including a body that does not parse, leaves
//! as the same JSON shape (`{"error": {"code", "message"}}`); internal causes are logged, never
//! sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keywarden_protocol::{ErrorBody, ErrorCode, ErrorDetail};

/// Result alias for the service.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a request or at start-up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request body or a parameter was not acceptable; `code` says which rule it broke.
    #[error("{message}")]
    BadRequest {
        /// Stable machine code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
    },
    /// No or an unknown credential for this endpoint.
    #[error("{message}")]
    Unauthorized {
        /// Stable machine code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
    },
    /// Authenticated, but not allowed to do this.
    #[error("{message}")]
    Forbidden {
        /// Stable machine code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
    },
    /// The thing named does not exist.
    #[error("{message}")]
    NotFound {
        /// Stable machine code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
    },
    /// The request conflicts with the current state (already used, replayed, duplicate).
    #[error("{message}")]
    Conflict {
        /// Stable machine code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
    },
    /// The thing named existed but its time is over.
    #[error("{message}")]
    Gone {
        /// Stable machine code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
    },
    /// Too many attempts.
    #[error("{message}")]
    TooManyRequests {
        /// Stable machine code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
    },
    /// Refused by a limit before any work (body size, rate, load, time); `retry_after` says when
    /// trying again may help.
    #[error("{message}")]
    Limited {
        /// 413, 429 or 503.
        status: StatusCode,
        /// Stable machine code.
        code: ErrorCode,
        /// Human sentence.
        message: String,
        /// Sent as `Retry-After`.
        retry_after: Option<std::time::Duration>,
    },
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// A migration failed at start-up.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Stored JSON could not be read back (a bug or a hand-edited database).
    #[error("stored record is unreadable")]
    Corrupt(#[source] serde_json::Error),
    /// A file or socket operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The service's own set-up (a key file, a setting) is not usable; said at start.
    #[error("{0}")]
    Config(String),
    /// WebAuthn machinery failed for a reason that is ours, not the client's.
    #[error("webauthn setup failed: {0}")]
    Webauthn(String),
}

impl From<webauthn_rs_core::error::WebauthnError> for Error {
    fn from(e: webauthn_rs_core::error::WebauthnError) -> Self {
        Error::Webauthn(format!("{e:?}"))
    }
}

impl Error {
    /// A 400 with a code and a sentence.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::BadRequest {
            code,
            message: message.into(),
        }
    }
    /// A 401.
    pub fn unauthorized(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Unauthorized {
            code,
            message: message.into(),
        }
    }
    /// A 403.
    pub fn forbidden(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Forbidden {
            code,
            message: message.into(),
        }
    }
    /// A 404.
    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::NotFound {
            code,
            message: message.into(),
        }
    }
    /// A 409.
    pub fn conflict(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }
    /// A 429.
    pub fn too_many(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::TooManyRequests {
            code,
            message: message.into(),
        }
    }
    /// A 410.
    pub fn gone(code: ErrorCode, message: impl Into<String>) -> Self {
        Error::Gone {
            code,
            message: message.into(),
        }
    }

    /// A refusal by a limit ([`Error::Limited`]).
    pub fn limited(
        status: StatusCode,
        code: ErrorCode,
        message: impl Into<String>,
        retry_after: Option<std::time::Duration>,
    ) -> Self {
        Error::Limited {
            status,
            code,
            message: message.into(),
            retry_after,
        }
    }

    /// The code the caller receives (`internal` for the service's own failures).
    pub fn code(&self) -> ErrorCode {
        self.parts().1
    }

    pub(crate) fn parts(&self) -> (StatusCode, ErrorCode, String) {
        match self {
            Error::BadRequest { code, message } => {
                (StatusCode::BAD_REQUEST, *code, message.clone())
            }
            Error::Unauthorized { code, message } => {
                (StatusCode::UNAUTHORIZED, *code, message.clone())
            }
            Error::Forbidden { code, message } => (StatusCode::FORBIDDEN, *code, message.clone()),
            Error::NotFound { code, message } => (StatusCode::NOT_FOUND, *code, message.clone()),
            Error::Conflict { code, message } => (StatusCode::CONFLICT, *code, message.clone()),
            Error::Gone { code, message } => (StatusCode::GONE, *code, message.clone()),
            Error::TooManyRequests { code, message } => {
                (StatusCode::TOO_MANY_REQUESTS, *code, message.clone())
            }
            Error::Limited {
                status,
                code,
                message,
                ..
            } => (*status, *code, message.clone()),
            Error::Database(_)
            | Error::Migrate(_)
            | Error::Corrupt(_)
            | Error::Io { .. }
            | Error::Config(_)
            | Error::Webauthn(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; the service log has the details".to_owned(),
            ),
        }
    }
}

/// A lookup that may find nothing, answered as the caller's 404.
pub trait OrNotFound<T> {
    /// The value found, or a 404 with `code` and `says`.
    fn or_not_found(self, code: ErrorCode, says: impl Into<String>) -> Result<T>;
}

impl<T> OrNotFound<T> for Option<T> {
    fn or_not_found(self, code: ErrorCode, says: impl Into<String>) -> Result<T> {
        self.ok_or_else(|| Error::not_found(code, says))
    }
}

/// `Ok` while `now` is before `expires_at`; after, a 410 with `code` and the sentence `says`
/// makes of the time it ended (`2026-12-04T10:00Z`): one-time tickets, tokens, sessions and
/// challenges all end this way.
pub fn before_expiry(
    now: i64,
    expires_at: i64,
    code: ErrorCode,
    says: impl FnOnce(String) -> String,
) -> Result<()> {
    if now < expires_at {
        Ok(())
    } else {
        Err(Error::gone(
            code,
            says(crate::secrets::fmt_time(expires_at)),
        ))
    }
}

/// `value` without the spaces around it, when something is left; else a 400 with `code` and
/// `says` (an owner, a reason).
pub fn non_blank<'a>(value: &'a str, code: ErrorCode, says: &str) -> Result<&'a str> {
    match value.trim() {
        "" => Err(Error::bad_request(code, says)),
        value => Ok(value),
    }
}

/// `value` without the spaces around it, when that is 1 to `max` bytes long; else a 400 with
/// `code` and `says` (names, labels, host names and reasons people type).
pub fn trimmed_text<'a>(
    value: &'a str,
    max: usize,
    code: ErrorCode,
    says: &str,
) -> Result<&'a str> {
    match non_blank(value, code, says)? {
        value if value.len() > max => Err(Error::bad_request(code, says)),
        value => Ok(value),
    }
}

/// [`trimmed_text`] for the field `name`, refused with `{name} must be 1..={max} characters`:
/// the sentence states the limit the check applies.
pub fn field_text<'a>(value: &'a str, name: &str, max: usize, code: ErrorCode) -> Result<&'a str> {
    trimmed_text(
        value,
        max,
        code,
        &format!("{name} must be 1..={max} characters"),
    )
}

/// `Ok` while a one-time thing (a link, a token, a challenge, a ceremony) is unused
/// (`used_at` is `None`); once used, a 409 with `code` and `says`.
pub fn not_used(used_at: Option<i64>, code: ErrorCode, says: &str) -> Result<()> {
    match used_at {
        None => Ok(()),
        Some(_) => Err(Error::conflict(code, says)),
    }
}

/// `Ok` when `value` is one of `allowed`; else a 400 with `code` naming the `what` asked for
/// and every value allowed (`step-up purpose "x" is not one of sign_in, recovery`).
pub fn one_of(value: &str, allowed: &[&str], code: ErrorCode, what: &str) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Error::bad_request(
            code,
            format!("{what} {value:?} is not one of {}", allowed.join(", ")),
        ))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let retry_after = match &self {
            Error::Limited {
                retry_after: Some(wait),
                ..
            } => Some(wait.as_secs().max(1)),
            _ => None,
        };
        if status.is_server_error() && !matches!(self, Error::Limited { .. }) {
            tracing::error!(error = %self, cause = ?std::error::Error::source(&self), "request failed");
        } else {
            tracing::info!(code = code.as_str(), %message, "request refused");
        }
        let body = ErrorBody {
            error: ErrorDetail { code, message },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
