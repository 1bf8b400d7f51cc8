//! The agent's one error type.

use keywarden_protocol::ErrorCode;
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
    /// A file the agent keeps could not be written because the disk holding it is full (or
    /// the person's disk quota is used up). Written atomically, so nothing was half written;
    /// what was there before, the reports waiting in the outbox among it, is untouched.
    #[error("the disk holding {} is full, so {} could not be written; nothing already queued was lost: the reports waiting are kept and sent as usual, and new ones are queued again once space is freed", dir.display(), file.display())]
    DiskFull {
        /// The folder on the full disk.
        dir: PathBuf,
        /// The file that could not be written.
        file: PathBuf,
        /// The cause (`No space left on device`, `Disk quota exceeded`).
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
        code: ErrorCode,
        /// Its sentence.
        message: String,
        /// Seconds the service asked the agent to wait before trying again (its `Retry-After`,
        /// sent when it sheds load or limits the rate).
        retry_after_secs: Option<u64>,
    },
    /// The service answered with a redirect. The agent follows none: a redirect could take
    /// its requests to another host, or from HTTPS to plain HTTP.
    #[error("the service at {url} answered with a redirect ({status}) to {location}; the agent follows no redirects, so set the server URL to where the service is")]
    Redirected {
        /// The service URL the agent was given.
        url: String,
        /// The 3xx status.
        status: u16,
        /// Where it pointed (`Location`), or `nowhere` when it named none.
        location: String,
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
    /// A key to be issued to someone already has a PIN: issuing starts from a blank key.
    #[error("key {key} already has a PIN: issuing needs a blank key (no PIN set); reset it or use another, then run again")]
    KeyNotBlank {
        /// The key.
        key: String,
    },
    /// An issuing list (CSV) could not be read; the message names the rows or columns.
    #[error("{0}")]
    IssuingList(String),
    /// The service asked the agent to sign for a relying party or origin other than the
    /// organisation's, which the agent pinned at provisioning (or IT fixed in the managed
    /// configuration). Refused before anything reached the key; nothing was sent back.
    #[error("the service asked this laptop to sign for {}, but it signs only for your organisation's {}; nothing was sent to the key or the service. Tell IT: the service, or the network on the way to it, is misconfigured or not your organisation's", rp_text(asked_rp_id, asked_origin.as_deref()), rp_text(pinned_rp_id, Some(pinned_origin.as_str())))]
    RelyingPartyMismatch {
        /// The relying party id the agent signs for.
        pinned_rp_id: String,
        /// The origin the agent signs for.
        pinned_origin: String,
        /// What the service asked for.
        asked_rp_id: String,
        /// The origin the service asked for (`None` where it names none, e.g. a reclaim plan).
        asked_origin: Option<String>,
    },
    /// The laptop does not know its organisation's relying party: it was provisioned before the
    /// agent pinned it, or by a service that does not name it. The agent then signs nothing,
    /// rather than take whatever a service says.
    #[error("this laptop does not know which relying party it may sign for (it was provisioned before the agent pinned it, or by a service that does not name it), so it signs nothing; ask IT to provision it again (keywarden provision --reprovision) or to set rp_id and origin in the managed configuration")]
    RelyingPartyNotPinned,
    /// The service's one-time link into the self-service page does not lead to the
    /// organisation's page (the origin pinned at provisioning), so it was not opened.
    #[error("the service sent a link to {}, not to your organisation's self-service page at {pinned_origin}{}; it was not opened. Tell IT", link_origin.as_deref().unwrap_or("an address that is not a web page"), crate::enrol::WEB_ENROL_PATH)]
    WebLinkNotOurs {
        /// The link's origin, when it has one (never the link: it is a secret).
        link_origin: Option<String>,
        /// The origin this laptop signs for.
        pinned_origin: String,
    },
    /// No web browser could be started to open the self-service page.
    #[error("cannot open a web browser ({source}); open {origin}/me in a browser and sign in with your security key there")]
    BrowserNotOpened {
        /// The organisation's self-service origin, where the person can go by hand.
        origin: String,
        /// Why the browser did not start.
        #[source]
        source: std::io::Error,
    },
    /// A managed configuration fixes the server URL and another one was given.
    #[error("the server URL is set by your organisation to {locked} ({}) and cannot be changed here", file.display())]
    ServerLocked {
        /// The URL IT fixed.
        locked: String,
        /// The managed configuration file.
        file: PathBuf,
    },
}

/// `keywarden.example.com (https://keywarden.example.com)`.
fn rp_text(rp_id: &str, origin: Option<&str>) -> String {
    match origin {
        Some(o) => format!("{rp_id} ({o})"),
        None => rp_id.to_owned(),
    }
}

impl Error {
    /// Whether the service was not reached because the certificate it presented is not
    /// trusted: it chains to none of the system's roots and the managed CA bundle, or not to
    /// the pinned CA (see [`crate::client::ServerTrust`]).
    pub fn is_untrusted_certificate(&self) -> bool {
        let Error::Unreachable { source, .. } = self else {
            return false;
        };
        // rustls's error travels inside `io::Error`s (nested), whose `source` skips it: look
        // inside them.
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
        while let Some(c) = cause {
            let mut inner = c;
            while let Some(e) = inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                inner = e;
            }
            if matches!(
                inner.downcast_ref::<rustls::Error>(),
                Some(rustls::Error::InvalidCertificate(_))
            ) {
                return true;
            }
            cause = c.source();
        }
        false
    }

    /// Seconds the service asked to be left alone before the next attempt, when it said so.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Service {
                retry_after_secs, ..
            } => *retry_after_secs,
            _ => None,
        }
    }

    /// The service's error code, when the service refused.
    pub fn service_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Service { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The error as the desktop UI receives it: a stable code to act on, a plain sentence
    /// with a way forward, and the PIN retries left when it is about the PIN.
    pub fn to_ui(&self) -> keywarden_protocol::UiError {
        use keywarden_keys::Error as K;
        let ui = |code: ErrorCode, message: String, retries_left: Option<u32>| {
            keywarden_protocol::UiError {
                code,
                message,
                retries_left,
            }
        };
        match self {
            Error::Key(K::PinInvalid { retries_left }) => ui(ErrorCode::PinInvalid,
                format!(
                    "That PIN is wrong. {retries_left} attempt{} left before the key locks for good.",
                    if *retries_left == 1 { "" } else { "s" }
                ),
                Some(*retries_left),
            ),
            Error::Key(K::PinAuthBlocked) => ui(ErrorCode::PinAuthBlocked,
                "Three wrong PINs in a row. Unplug the key, plug it in again, and try once more.".into(),
                None,
            ),
            Error::Key(K::PinBlocked) => ui(ErrorCode::PinBlocked,
                "This key's PIN is blocked after too many wrong attempts. It can only be reset, which erases it; use another key or ask the help desk.".into(),
                Some(0),
            ),
            Error::Key(K::PinPolicy { min_len }) => ui(ErrorCode::PinPolicy,
                format!("The key refused that PIN: it needs at least {min_len} characters."),
                None,
            ),
            Error::Key(K::PinChangeRequired { min_len }) => ui(ErrorCode::PinChangeRequired,
                format!("This key asks for a new PIN before it can be used. Type its current PIN and a new one of at least {min_len} characters."),
                None,
            ),
            Error::Key(K::CredentialExcluded) => ui(ErrorCode::AlreadyEnrolled,
                "This key is already enrolled for you. Use a different key as your backup.".into(),
                None,
            ),
            Error::Key(K::KeyRemoved) | Error::Key(K::NotFound { .. }) => ui(ErrorCode::KeyRemoved,
                "The key was removed before it finished. Nothing was saved; plug it in and try again.".into(),
                None,
            ),
            Error::Key(K::UserActionTimeout) => ui(ErrorCode::TouchTimeout,
                "The key was not touched in time. Try again, and touch the key when it blinks.".into(),
                None,
            ),
            Error::Key(K::OperationDenied) => ui(ErrorCode::TouchDenied,
                "The key refused the request. Try again and touch the key when it blinks.".into(),
                None,
            ),
            Error::Key(K::KeyStoreFull) => ui(ErrorCode::KeyFull,
                "This key has no room for another passkey. Use another key or remove an old passkey from it.".into(),
                None,
            ),
            Error::Key(e) => ui(ErrorCode::KeyError, format!("The key reported a problem: {e}."), None),
            Error::NoKey { .. } => ui(ErrorCode::NoKey, self.to_string(), None),
            Error::Unreachable { url, .. } if self.is_untrusted_certificate() => ui(ErrorCode::ServiceUnreachable,
                format!("The Keywarden service at {url} showed a certificate this laptop does not trust, so nothing was sent. Tell IT: the service's certificate, or the certificate authority your organisation set for it, is wrong."),
                None,
            ),
            Error::Unreachable { url, .. } => ui(ErrorCode::ServiceUnreachable,
                format!("Cannot reach the Keywarden service at {url}. Check your network (or VPN) and try again; nothing was changed."),
                None,
            ),
            Error::Service {
                status,
                code,
                message,
                ..
            } => ui(*code, service_sentence(*status, *code, message), None),
            Error::NotProvisioned => ui(ErrorCode::NotProvisioned,
                "This laptop is not registered with your organisation yet. IT provisions it with `keywarden provision`.".into(),
                None,
            ),
            Error::Cancelled => ui(ErrorCode::Cancelled, "Cancelled. Nothing was changed.".into(), None),
            Error::NeedsInput(m) => ui(ErrorCode::NeedsInput, m.clone(), None),
            Error::PinRejected(m) => ui(ErrorCode::PinRejected, m.clone(), None),
            Error::ServerLocked { .. } => ui(ErrorCode::ServerLocked, self.to_string(), None),
            Error::RelyingPartyMismatch {
                pinned_rp_id,
                pinned_origin,
                asked_rp_id,
                asked_origin,
            } => ui(ErrorCode::RpMismatch,
                format!(
                    "The service asked this laptop to sign for {}, which is not your organisation ({}). Nothing was sent to your key or to the service. Tell IT at once: the service, or the network on the way to it, is not your organisation's.",
                    rp_text(asked_rp_id, asked_origin.as_deref()),
                    rp_text(pinned_rp_id, Some(pinned_origin.as_str()))
                ),
                None,
            ),
            Error::RelyingPartyNotPinned => ui(ErrorCode::RpNotPinned,
                "This laptop does not yet know which sign-in name belongs to your organisation, so it signs nothing with your keys. Ask IT to provision it again, or to set it in the managed configuration.".into(),
                None,
            ),
            Error::WebLinkNotOurs { pinned_origin, .. } => ui(ErrorCode::WebLinkNotOurs,
                format!(
                    "The service sent a link that does not lead to your organisation's page ({pinned_origin}), so Keywarden did not open it. Tell IT: the service, or the network on the way to it, may not be your organisation's."
                ),
                None,
            ),
            Error::BrowserNotOpened { origin, .. } => ui(ErrorCode::BrowserNotOpened,
                format!(
                    "Keywarden could not open your web browser. Open {origin}/me in a browser yourself and sign in with the key you just enrolled: you can add this laptop or your phone there."
                ),
                None,
            ),
            other => ui(ErrorCode::AgentError, other.to_string(), None),
        }
    }

    /// A file error; one because the disk is full becomes [`Error::DiskFull`].
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        use std::io::ErrorKind;
        if matches!(
            source.kind(),
            ErrorKind::StorageFull | ErrorKind::QuotaExceeded
        ) {
            let dir = if path.is_dir() {
                path
            } else {
                path.parent().unwrap_or(path)
            };
            return Error::DiskFull {
                dir: dir.to_owned(),
                file: path.to_owned(),
                source,
            };
        }
        Error::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// One sentence with a way forward for a refusal by the service, for the desktop UI; codes
/// without their own sentence show the service's.
fn service_sentence(status: u16, code: ErrorCode, message: &str) -> String {
    let s = match code {
        ErrorCode::TicketExpired => "This enrolment ticket has expired. Ask IT for a new one.",
        ErrorCode::TicketUsed => "This enrolment ticket was already used. Ask IT for a new one.",
        ErrorCode::TicketUnknown => "This is not a valid enrolment ticket. Check you pasted all of it, or ask IT for a new one.",
        // Step-up: signing in with a key, reporting a key lost, recovering.
        ErrorCode::StepUpSameKey => "That is the key you signed in with. Choose the key you lost, not the one you still have.",
        ErrorCode::CredentialNotYours => "That key belongs to someone else: you can only report your own keys lost.",
        // 403: the key used to sign in; 409: the key reported lost was suspended already.
        ErrorCode::CredentialNotActive if status == 409 => "That key is already suspended or revoked: it no longer works. Nothing was changed.",
        ErrorCode::CredentialNotActive => "The key you used is suspended or revoked, so it cannot sign you in. Use another of your keys, or ask the help desk.",
        ErrorCode::CredentialUnknown => "This key holds no passkey enrolled with your organisation. Use a key you enrolled with Keywarden.",
        ErrorCode::PersonInactive => "Your account is no longer active with your organisation. Ask the help desk.",
        ErrorCode::StepUpExpired => "The sign-in request expired before the key answered. Try again and touch the key when it blinks.",
        ErrorCode::StepUpUsed | ErrorCode::StepUpUnknown | ErrorCode::StepUpWrongDevice | ErrorCode::StepUpWrongPurpose => "The service did not accept that sign-in. Try again; each attempt asks for a fresh touch.",
        ErrorCode::AssertionCounterReplayed => "The service refused this key: its signature counter did not go up, as happens with a copied key. Tell the help desk.",
        ErrorCode::UserVerificationMissing => "The key did not check your PIN, and the service requires it. Try again with the PIN.",
        ErrorCode::AssertionInvalid | ErrorCode::AssertionMalformed => "The key's answer did not verify. Try again; if it keeps failing, use another key.",
        // A ticket (enrolment or recovery) for someone who already has an active key.
        ErrorCode::StepUpRequired => "You already have an active key, so a ticket alone cannot add another: confirm it is you with a key you have (its PIN and a touch).",
        ErrorCode::StepUpWrongPerson => "The key you confirmed with belongs to someone else. Use one of your own keys.",
        ErrorCode::RecoveryUnknown => "This is not a valid recovery ticket. Check you pasted all of it, or ask the help desk for a new one.",
        ErrorCode::RecoveryTicketUsed => "This recovery ticket was already used. Ask the help desk for a new one.",
        ErrorCode::RecoveryExpired => "This recovery ticket has expired. Ask the help desk for a new one.",
        ErrorCode::RecoveryCancelled => "This recovery was cancelled. Ask the help desk for a new one.",
        ErrorCode::RecoveryAwaitingApproval => return format!("The help desk has not finished approving this recovery: {message}. Try again once they have."),
        // The enrolment session (the wizard's later steps, and the browser link it offers).
        ErrorCode::EnrolmentExpired => "This enrolment session has expired. Start again with a new ticket from IT, or add a key with one you already have.",
        ErrorCode::EnrolmentClosed => "This enrolment session was closed, so it cannot go on. Start again with a new ticket from IT, or add a key with one you already have.",
        ErrorCode::EnrolmentUnknown => "The service does not know this enrolment session. Start again with a new ticket from IT.",
        ErrorCode::EnrolmentWrongDevice => "This enrolment session was opened on another laptop, so it cannot go on here. Start again on this laptop.",
        // A service older than this app: the request has no endpoint there.
        ErrorCode::NoRoute if status == 404 => "The Keywarden service does not offer this yet: it runs an older version than this app. Ask IT to update it; nothing was changed.",
        // Reclaim stations.
        ErrorCode::NotAReclaimStation => "This laptop is not an IT reclaim station, so it cannot reclaim keys. An admin can make it one.",
        _ => return format!("The service refused: {message}"),
    };
    s.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, code: ErrorCode, message: &str) -> keywarden_protocol::UiError {
        Error::Service {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
        .to_ui()
    }

    #[test]
    fn step_up_refusals_reach_the_ui_as_sentences_with_their_codes() {
        // (status, code, the service's sentence, what the person reads)
        for (status, code, said, reads) in [
            (
                400,
                ErrorCode::StepUpSameKey,
                "sign in with another of your keys, not the one you are reporting lost",
                "Choose the key you lost",
            ),
            // The key used to sign in is suspended, or the key reported lost already was.
            (
                403,
                ErrorCode::CredentialNotActive,
                "the key used is suspended",
                "The key you used",
            ),
            (
                409,
                ErrorCode::CredentialNotActive,
                "the credential is already suspended",
                "already suspended",
            ),
            (
                403,
                ErrorCode::NotAReclaimStation,
                "this laptop is not an IT reclaim station; an admin can make it one",
                "not an IT reclaim station",
            ),
        ] {
            let e = refused(status, code, said);
            assert_eq!(e.code, code);
            assert!(e.message.contains(reads), "{status} {code}: {}", e.message);
        }
    }

    #[test]
    fn a_service_asking_for_another_relying_party_is_told_plainly() {
        let e = Error::RelyingPartyMismatch {
            pinned_rp_id: "keywarden.example.com".into(),
            pinned_origin: "https://keywarden.example.com".into(),
            asked_rp_id: "evil.example.net".into(),
            asked_origin: Some("https://evil.example.net".into()),
        };
        let ui = e.to_ui();
        assert_eq!(ui.code, ErrorCode::RpMismatch);
        assert!(
            ui.message
                .contains("evil.example.net (https://evil.example.net)")
                && ui.message.contains("Nothing was sent"),
            "{}",
            ui.message
        );
        assert!(e.to_string().contains("keywarden.example.com"), "{e}");
        assert_eq!(
            Error::RelyingPartyNotPinned.to_ui().code,
            ErrorCode::RpNotPinned
        );
        let ask = refused(
            403,
            ErrorCode::StepUpRequired,
            "confirm with an existing key",
        );
        assert!(ask.message.contains("confirm it is you"), "{}", ask.message);
    }

    #[test]
    fn a_full_disk_is_named_with_its_folder_and_says_nothing_queued_was_lost() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("outbox").join("1-a.json");
        for kind in [
            std::io::ErrorKind::StorageFull,
            std::io::ErrorKind::QuotaExceeded,
        ] {
            let e = Error::io("cannot write", &file, std::io::Error::from(kind));
            let Error::DiskFull { dir: full, .. } = &e else {
                panic!("{kind:?}: {e:?}");
            };
            assert_eq!(full, &dir.path().join("outbox"));
            let text = e.to_string();
            assert!(
                text.starts_with(&format!(
                    "the disk holding {} is full",
                    dir.path().join("outbox").display()
                )) && text.contains("nothing already queued was lost"),
                "{text}"
            );
        }
        // Any other failure stays what it was.
        let e = Error::io(
            "cannot write",
            &file,
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        // A folder is named as itself.
        let e = Error::io(
            "cannot create",
            dir.path(),
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert!(
            matches!(&e, Error::DiskFull { dir: d, .. } if d == dir.path()),
            "{e:?}"
        );
    }

    #[test]
    fn a_service_without_the_endpoint_is_called_older_not_broken() {
        let e = refused(404, ErrorCode::NoRoute, "no such endpoint");
        assert_eq!(e.code, ErrorCode::NoRoute);
        assert!(e.message.contains("older version"), "{}", e.message);
    }

    #[test]
    fn an_unknown_refusal_shows_the_services_sentence() {
        // A newer service's code this build does not know still reaches the person, with the
        // service's own sentence.
        let e = refused(
            400,
            ErrorCode::from_wire("something_new"),
            "the service says why",
        );
        assert_eq!(e.code, ErrorCode::Unknown);
        assert_eq!(e.message, "The service refused: the service says why");
    }
}
