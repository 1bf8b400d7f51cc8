//! The agent's one error type.

use std::path::PathBuf;

/// Result alias for the agent.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A command needs a provisioned laptop and this one is not.
    #[error(
        "this laptop is not provisioned yet; run `keywarden provision --server URL --token TOKEN`"
    )]
    NotProvisioned,
    /// Provisioning again would silently replace the device identity.
    #[error("this laptop is already provisioned as device {device_id} with {server}; pass --reprovision to replace its identity")]
    AlreadyProvisioned {
        /// Current device id.
        device_id: String,
        /// Current server.
        server: String,
    },
    /// A file the agent keeps could not be read or written.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done, e.g. `cannot write`.
        action: &'static str,
        /// Which file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file the agent keeps has content it cannot use.
    #[error("{} is unreadable: {reason}", path.display())]
    Corrupt {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The device key file is readable by other users.
    #[error("device key {} is readable by other users (mode {mode:o}); run chmod 600 on it", path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The configured server URL is not usable.
    #[error("server url {url} is not valid: {reason}")]
    ServerUrl {
        /// What was given.
        url: String,
        /// Why not.
        reason: String,
    },
    /// The service could not be reached at all.
    #[error("cannot reach the Keywarden service at {url}")]
    Unreachable {
        /// Where.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with an error.
    #[error("service refused ({status}): {message} [{code}]")]
    Service {
        /// HTTP status.
        status: u16,
        /// Stable code from the service's error shape.
        code: String,
        /// Its sentence.
        message: String,
    },
    /// The service answered with something that is not the expected JSON.
    #[error("service sent an unexpected answer ({status}): {reason}")]
    BadResponse {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// A key operation failed.
    #[error(transparent)]
    Key(#[from] keywarden_keys::Error),
    /// No authenticator is present.
    #[error("no security key found{}", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    NoKey {
        /// Why, where the agent can tell.
        hint: Option<String>,
    },
    /// The person (or the calling program) cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A choice or a secret is needed and there is no way to ask for it (no terminal, no
    /// flag); the message says which flag supplies it.
    #[error("{0}")]
    NeedsInput(String),
    /// The PIN typed does not meet the key's rules.
    #[error("{0}")]
    PinRejected(String),
}

impl Error {
    /// The service's error code, when the service refused.
    pub fn service_code(&self) -> Option<&str> {
        match self {
            Error::Service { code, .. } => Some(code),
            _ => None,
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}
