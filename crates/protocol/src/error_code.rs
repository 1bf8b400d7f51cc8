//! The one vocabulary of error codes: every code the service sends in its error shape, and every
//! code the agent hands its desktop UI. Service, agent and UI use this enum (the UI through the
//! generated TypeScript union), so a code that is not here cannot be sent or matched. A code this
//! build does not know (a newer service) reads as [`ErrorCode::Unknown`], never as a failure to
//! read the error; the message still says what happened.

use serde::{Deserialize, Deserializer, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

/// Declares the codes once: the variant, its wire text and what it means.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal,)*) => {
        /// A stable snake_case code a client can act on. The HTTP status travels beside it; a
        /// code's meaning never changes, codes are only added.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[cfg_attr(feature = "ts", derive(TS), ts(export))]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[doc = $doc])* #[serde(rename = $text)] $variant,)*
            /// A code this build does not know (sent by a newer service). Never sent.
            #[serde(rename = "unknown")]
            Unknown,
        }

        impl ErrorCode {
            /// Every code this build knows (not [`ErrorCode::Unknown`]).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it travels on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The code for its wire text; [`ErrorCode::Unknown`] for any text this build does
            /// not know.
            pub fn from_wire(text: &str) -> ErrorCode {
                match text {
                    $($text => ErrorCode::$variant,)*
                    _ => ErrorCode::Unknown,
                }
            }
        }
    };
}

impl ErrorCode {
    /// Whether the error is about the key's PIN (wrong, blocked, refused by its rules): the
    /// desktop app then forgets a PIN it was holding.
    pub fn is_about_pin(self) -> bool {
        matches!(
            self,
            ErrorCode::PinInvalid
                | ErrorCode::PinAuthBlocked
                | ErrorCode::PinBlocked
                | ErrorCode::PinPolicy
                | ErrorCode::PinRejected
        )
    }
}

/// The OpenAPI schema: the wire texts, written from the same table as [`ErrorCode::as_str`].
/// (utoipa's derive does not see a `serde(rename)` whose text comes from a macro argument, so
/// it listed the Rust variant names, which the service never sends.)
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let texts = ErrorCode::ALL
            .iter()
            .chain([&ErrorCode::Unknown])
            .map(|code| code.as_str());
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "A stable snake_case code a client can act on. The HTTP status travels beside it; \
                 a code's meaning never changes, codes are only added.",
            ))
            .enum_values(Some(texts))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(ErrorCode::from_wire(&text))
    }
}

error_codes! {
    // --- Sent by the service (the status it is sent with, then what it means) ---
    /// 403: this key model (AAGUID …) is not on the allow-list of population ….
    AaguidNotAllowed = "aaguid_not_allowed",
    /// 403: a key issued by IT is activated only from its person's own laptop.
    ActivationWrongLaptop = "activation_wrong_laptop",
    /// 409: this recovery needs a fresh assertion from another key, not approvals.
    ApprovalNotNeeded = "approval_not_needed",
    /// 403: whoever issued a recovery may not approve it; two other help-desk members must.
    ApproverIsIssuer = "approver_is_issuer",
    /// 409: you already approved this recovery (with this or another of your tokens); a second approver must be someone else.
    ApproverRepeated = "approver_repeated",
    /// 403: … needs a token issued to a named help-desk member (tokens with a person_id).
    ApproverUnnamed = "approver_unnamed",
    /// 403: the key's signature counter did not go up: a replayed or cloned assertion is refused.
    AssertionCounterReplayed = "assertion_counter_replayed",
    /// 403: the assertion did not verify: ….
    AssertionInvalid = "assertion_invalid",
    /// 400: the browser's answer has no ….
    AssertionMalformed = "assertion_malformed",
    /// 403: the key sent … attestation, with no certificate chain; population … requires a chain to a trusted root.
    AttestationChainRequired = "attestation_chain_required",
    /// 400: attestation did not verify: ….
    AttestationInvalid = "attestation_invalid",
    /// 400: attestation_object is not base64url.
    AttestationMalformed = "attestation_malformed",
    /// 400: the key sent no verifiable attestation; attestation is required.
    AttestationMissing = "attestation_missing",
    /// 403: the key's attestation certificate does not lead to a trusted root (…); population … requires a trusted chain: an admin adds the vendor's root or loads the FIDO metadata.
    AttestationUntrusted = "attestation_untrusted",
    /// 400: a report batch needs at least one report.
    BatchEmpty = "batch_empty",
    /// 400: a report batch carries at most … reports, this one ….
    BatchTooLarge = "batch_too_large",
    /// 413: the request body is larger than this endpoint takes (… bytes).
    BodyTooLarge = "body_too_large",
    /// 400: request body: ….
    BodyUnreadable = "body_unreadable",
    /// 403: you signed in with this key, so it is not lost; sign in with another key to report this one.
    CannotReportSignedInKey = "cannot_report_signed_in_key",
    /// 409: this key's enrolment step was already finished.
    CeremonyCompleted = "ceremony_completed",
    /// 410: enrolment step timed out at …; start the key again.
    CeremonyExpired = "ceremony_expired",
    /// 404: no enrolment ceremony ….
    CeremonyUnknown = "ceremony_unknown",
    /// 410: this took too long; start again.
    ChallengeExpired = "challenge_expired",
    /// 403: this challenge was issued for something else; start again.
    ChallengeNotYours = "challenge_not_yours",
    /// 404: this request is not known or took too long; start again.
    ChallengeUnknown = "challenge_unknown",
    /// 409: this challenge was already used; a replayed answer is refused.
    ChallengeUsed = "challenge_used",
    /// 400: here you can add this laptop's passkey or a phone's; add security keys with the Keywarden desktop app.
    ClassNotOffered = "class_not_offered",
    /// 403: the console needs a passkey sign-in; a session opened with a ticket or a link does not reach it.
    ConsolePasskeyRequired = "console_passkey_required",
    /// 409: this credential is already enrolled.
    CredentialExists = "credential_exists",
    /// 400: credential_id differs from the attested one.
    CredentialIdMismatch = "credential_id_mismatch",
    /// 403/409: the credential is already ….
    CredentialNotActive = "credential_not_active",
    /// 400: the lost credential belongs to someone else.
    CredentialNotTheirs = "credential_not_theirs",
    /// 403: you can only report your own keys lost.
    CredentialNotYours = "credential_not_yours",
    /// 403/404: no credential with id ….
    CredentialUnknown = "credential_unknown",
    /// 403: this request did not come from the Keywarden pages; nothing was changed.
    CsrfRefused = "csrf_refused",
    /// 400: database url must start with sqlite: or postgres:.
    DatabaseUrl = "database_url",
    /// 403: you chose to add a …, but the browser says the authenticator that answered is … (reached over …); add security keys with the Keywarden desktop app.
    DeviceClassMismatch = "device_class_mismatch",
    /// 400: device_public_key must be a base64url Ed25519 public key.
    DeviceKeyInvalid = "device_key_invalid",
    /// 409: this device key is already registered.
    DeviceKeyReused = "device_key_reused",
    /// 403/409: this laptop … at …; its device key no longer works: ask IT to provision a replacement.
    DeviceRetired = "device_retired",
    /// 401/404: device … is not provisioned.
    DeviceUnknown = "device_unknown",
    /// 404: no open reclaim directive with that id for that key.
    DirectiveUnknown = "directive_unknown",
    /// 400: display_name must be 1..=256 characters.
    DisplayNameInvalid = "display_name_invalid",
    /// 410: this enrolment was closed (the person left or the recovery was cancelled).
    EnrolmentClosed = "enrolment_closed",
    /// 410: enrolment session closed at …; ask IT for a new ticket.
    EnrolmentExpired = "enrolment_expired",
    /// 404: no enrolment ….
    EnrolmentUnknown = "enrolment_unknown",
    /// 403: this enrolment was opened on another laptop.
    EnrolmentWrongDevice = "enrolment_wrong_device",
    /// 400: the break-glass credential must be an active credential of that person.
    ExceptionCredentialInvalid = "exception_credential_invalid",
    /// 400: a break-glass exception names the credential kept in the safe.
    ExceptionCredentialMissing = "exception_credential_missing",
    /// 400: only break-glass exceptions name a credential.
    ExceptionCredentialUnexpected = "exception_credential_unexpected",
    /// 400: an exception lasts 1..=365 days, not ….
    ExceptionExpiryInvalid = "exception_expiry_invalid",
    /// 400: an exception needs an expiry (days, 1..=365); none is permanent.
    ExceptionExpiryMissing = "exception_expiry_missing",
    /// 400: exception kind … is not one of ….
    ExceptionKindUnknown = "exception_kind_unknown",
    /// 400: an exception needs an owner who answers for it.
    ExceptionOwnerMissing = "exception_owner_missing",
    /// 400: an exception needs a reason.
    ExceptionReasonMissing = "exception_reason_missing",
    /// 404: no open exception ….
    ExceptionUnknown = "exception_unknown",
    /// 400: the form could not be read; reload the page.
    FormInvalid = "form_invalid",
    /// 403: this action needs a fresh touch of your key: confirm with your passkey and try again.
    FreshTouchRequired = "fresh_touch_required",
    /// 403: nobody may grant a staff role to themselves; another admin must issue this token.
    GrantToSelf = "grant_to_self",
    /// 400: hostname must be 1..=255 characters.
    HostnameInvalid = "hostname_invalid",
    /// 500: internal error; the service log has the details.
    Internal = "internal",
    /// 410: this issued key expired before it was activated; IT issues another.
    IssuedKeyExpired = "issued_key_expired",
    /// 409: this key is not an issued key waiting for activation.
    IssuedKeyNotPending = "issued_key_not_pending",
    /// 400: the issuing list names unknown, inactive or repeated people, or has bad columns;
    /// the message names the rows and nothing was issued.
    IssuingListInvalid = "issuing_list_invalid",
    /// 410: the issuing session ended; confirm with your key again to go on.
    IssuingSessionExpired = "issuing_session_expired",
    /// 404: no issuing session with that id.
    IssuingSessionUnknown = "issuing_session_unknown",
    /// 400: label must be 1..=200 characters.
    LabelInvalid = "label_invalid",
    /// 403: this laptop does not meet the enrolment policy: ….
    LaptopNoncompliant = "laptop_noncompliant",
    /// 403: population … checks a laptop's posture before adding its passkey, and this browser's laptop is unknown: add it from the Keywarden app on the laptop ("Add this laptop or your phone"), or add a phone instead.
    LaptopPostureUnknown = "laptop_posture_unknown",
    /// 409: the last admin cannot lose the role; grant it to someone else first.
    LastAdmin = "last_admin",
    /// 410: this link expired at …; open a new one from the Keywarden app.
    LinkExpired = "link_expired",
    /// 404: this link is not known; open it again from the Keywarden app.
    LinkUnknown = "link_unknown",
    /// 409: this link was already used; open a new one from the Keywarden app.
    LinkUsed = "link_used",
    /// 400: body is not UTF-8.
    MalformedJson = "malformed_json",
    /// 400: the FIDO metadata blob is not valid.
    MdsInvalid = "mds_invalid",
    /// 409: blob … is older than blob …, already loaded; fetch the current blob.
    MdsOutdated = "mds_outdated",
    /// 400: a name is 1 to 64 characters, on one line.
    NameInvalid = "name_invalid",
    /// 409: you have no active key to confirm with; ask the help desk for a recovery.
    NoActiveKey = "no_active_key",
    /// 404: no such endpoint.
    NoRoute = "no_route",
    /// 403: … holds no staff role: an admin grants one in the console.
    NoStaffRole = "no_staff_role",
    /// 403: this laptop is not an IT reclaim station; an admin can make it one.
    NotAReclaimStation = "not_a_reclaim_station",
    /// 403: this laptop is not an IT issuing station; an admin can make it one.
    NotAnIssuingStation = "not_an_issuing_station",
    /// 403: this person is not on the issuing session's list.
    NotOnIssuingList = "not_on_issuing_list",
    /// 400: the note is at most 500 characters.
    NoteInvalid = "note_invalid",
    /// 409: a person with user_name … exists.
    PersonExists = "person_exists",
    /// 403: … are issued only for active people.
    PersonInactive = "person_inactive",
    /// 404: no person with id ….
    PersonUnknown = "person_unknown",
    /// 403: the key did not report its minimum PIN length in its attested data (the minPinLength extension); population … requires at least …: use a key that reports it.
    PinLengthUnknown = "pin_length_unknown",
    /// 403: the key enforces a minimum PIN length of …; population … requires at least …: raise the key's minimum PIN length or use another key.
    PinTooShort = "pin_too_short",
    /// 400: min_authenticators must be 1..=10.
    PolicyInvalid = "policy_invalid",
    /// 400: population names are 1..=64 of a-z, 0-9, - and _, and not 'default'.
    PopulationNameInvalid = "population_name_invalid",
    /// 404: no population ….
    PopulationUnknown = "population_unknown",
    /// 400: posture schema version … is not supported (this service reads 1..=…).
    PostureSchemaUnsupported = "posture_schema_unsupported",
    /// 403: the key's answer to the probe does not verify (signature, challenge, origin or relying party).
    ProbeAnswerInvalid = "probe_answer_invalid",
    /// 403: the probe did not ask about this credential.
    ProbeCredentialNotAsked = "probe_credential_not_asked",
    /// 410: the probe challenge expired; ask for a new one.
    ProbeExpired = "probe_expired",
    /// 404: unknown probe challenge; ask for a new one.
    ProbeUnknown = "probe_unknown",
    /// 409: this probe challenge was already used; a replayed answer is refused.
    ProbeUsed = "probe_used",
    /// 403: this probe challenge was issued to another laptop.
    ProbeWrongDevice = "probe_wrong_device",
    /// 400: this probe challenge was issued for another purpose, not ….
    ProbeWrongPurpose = "probe_wrong_purpose",
    /// 400: proofing method … is not one of ….
    ProofingInvalid = "proofing_invalid",
    /// 410: provisioning token expired at ….
    ProvisioningTokenExpired = "provisioning_token_expired",
    /// 404: unknown provisioning token.
    ProvisioningTokenUnknown = "provisioning_token_unknown",
    /// 409: this provisioning token was already used.
    ProvisioningTokenUsed = "provisioning_token_used",
    /// 400: step-up purpose … is not one of ….
    PurposeUnknown = "purpose_unknown",
    /// 400: a query parameter is not valid.
    QueryInvalid = "query_invalid",
    /// 400: say why the key is suspended (1..=500 characters).
    ReasonInvalid = "reason_invalid",
    /// 400: a personal key is never reset; only the organisation's credentials may be removed.
    ReclaimPersonalKeyReset = "reclaim_personal_key_reset",
    /// 403: this recovery needs … more approval(s) from the help desk.
    RecoveryAwaitingApproval = "recovery_awaiting_approval",
    /// 410: this recovery was cancelled.
    RecoveryCancelled = "recovery_cancelled",
    /// 409: this recovery is already ….
    RecoveryClosed = "recovery_closed",
    /// 410: this recovery ticket expired at …; ask the help desk for a new one.
    RecoveryExpired = "recovery_expired",
    /// 409: this recovery is ….
    RecoveryNotAwaitingApproval = "recovery_not_awaiting_approval",
    /// 409: this recovery ticket was already used; ask the help desk for a new one.
    RecoveryTicketUsed = "recovery_ticket_used",
    /// 404: no recovery ….
    RecoveryUnknown = "recovery_unknown",
    /// 429: too many requests from your address to an endpoint that checks a one-time secret; try again in … s.
    RateLimited = "rate_limited",
    /// 429: too many failed ticket redemptions from this laptop; try again after ….
    RedemptionRateLimited = "redemption_rate_limited",
    /// 400: report_id must be a UUID.
    ReportIdInvalid = "report_id_invalid",
    /// 409: sequence number … was already used by this device.
    RequestReplayed = "request_replayed",
    /// 503: the request took longer than … s and was stopped; nothing of it was kept.
    RequestTimeout = "request_timeout",
    /// 401: request signed at … is more than … s from the service clock (…).
    RequestStale = "request_stale",
    /// 403: role … may not use this endpoint (allowed: …).
    RoleForbidden = "role_forbidden",
    /// 400: group selector needs a group name.
    SelectorInvalid = "selector_invalid",
    /// 403: nobody may approve their own recovery.
    SelfApproval = "self_approval",
    /// 403: nobody may issue a recovery for themselves.
    SelfRecovery = "self_recovery",
    /// 503: the service is serving as many requests as it takes at once; try again in a moment.
    ServiceBusy = "service_busy",
    /// 401: your session timed out: sign in again.
    SessionExpired = "session_expired",
    /// 401: you are not signed in: sign in first.
    SessionUnknown = "session_unknown",
    /// 409: the console already has an admin; sign in instead.
    SetupDone = "setup_done",
    /// 410: the setup link expired at …; restart the service for a new one.
    SetupLinkExpired = "setup_link_expired",
    /// 404: this setup link is not known.
    SetupLinkUnknown = "setup_link_unknown",
    /// 409: this setup link was already used.
    SetupLinkUsed = "setup_link_used",
    /// 403: sign in with another of your keys to report one lost.
    SignInWithAnotherKey = "sign_in_with_another_key",
    /// 401: request signature does not verify for this device.
    SignatureInvalid = "signature_invalid",
    /// 401: sequence number is not a number.
    SignatureMalformed = "signature_malformed",
    /// 401: signed request needs the … header.
    SignatureMissing = "signature_missing",
    /// 400: staff roles are admin, helpdesk and auditor.
    StaffRoleInvalid = "staff_role_invalid",
    /// 403: population … does not accept a … to prove who you are; use one of your ….
    StepUpClassNotAllowed = "step_up_class_not_allowed",
    /// 410: the step-up challenge expired; touch your key again.
    StepUpExpired = "step_up_expired",
    /// 403: … already has an active key, so a ticket alone cannot add another: sign in with one of their keys to add a key, or ask the help desk for a recovery if every key is lost.
    StepUpRequired = "step_up_required",
    /// 400: sign in with another of your keys, not the one you are reporting lost.
    StepUpSameKey = "step_up_same_key",
    /// 404: unknown step-up challenge; ask for a new one.
    StepUpUnknown = "step_up_unknown",
    /// 409: this step-up challenge was already used; a replayed assertion is refused.
    StepUpUsed = "step_up_used",
    /// 403: this step-up challenge was issued to another laptop.
    StepUpWrongDevice = "step_up_wrong_device",
    /// 403: the key used to prove the addition belongs to someone else; use one of your own keys.
    StepUpWrongPerson = "step_up_wrong_person",
    /// 400: this step-up challenge was issued for another purpose, not ….
    StepUpWrongPurpose = "step_up_wrong_purpose",
    /// 403: this passkey is synced (it can be copied to other devices through its provider's cloud); population … does not allow synced passkeys: use a passkey kept on this device only, or a security key.
    SyncedPasskeyNotAllowed = "synced_passkey_not_allowed",
    /// 410: ticket was cancelled at …; ask IT for a new one.
    TicketCancelled = "ticket_cancelled",
    /// 410: ticket expired at …; ask IT for a new one.
    TicketExpired = "ticket_expired",
    /// 429: this ticket was tried too often and is locked; ask IT for a new one.
    TicketLocked = "ticket_locked",
    /// 404: unknown enrolment ticket; ask IT for a new one.
    TicketUnknown = "ticket_unknown",
    /// 409: ticket was already used at …; ask IT for a new one.
    TicketUsed = "ticket_used",
    /// 401: this token expired at …; ask an admin for a new one.
    TokenExpired = "token_expired",
    /// 401: the person this token was issued to is no longer active; their tokens do not work.
    TokenHolderInactive = "token_holder_inactive",
    /// 401: Authorization header must be `Bearer <token>`.
    TokenMalformed = "token_malformed",
    /// 401: this API needs an Authorization: Bearer token.
    TokenMissing = "token_missing",
    /// 400: the SCIM token is a service token: leave person_id out.
    TokenPersonNotAllowed = "token_person_not_allowed",
    /// 403: … was created by hand, not by the HR feed; staff roles are granted only to people HR provisioned over SCIM.
    TokenPersonNotFromHr = "token_person_not_from_hr",
    /// 400: … tokens are issued to a named person: say which staff member it is for (person_id; --person on the service CLI), a person from the HR feed or created by an admin.
    TokenPersonRequired = "token_person_required",
    /// 401: this token was revoked at ……; ask an admin for a new one.
    TokenRevoked = "token_revoked",
    /// 409: a token cannot revoke itself; use another admin token.
    TokenSelfRevoke = "token_self_revoke",
    /// 401/404: unknown API token.
    TokenUnknown = "token_unknown",
    /// 409: root … is already a trust anchor.
    TrustAnchorExists = "trust_anchor_exists",
    /// 409: root … comes from the FIDO metadata; it changes only when a newer blob is loaded.
    TrustAnchorFromMds = "trust_anchor_from_mds",
    /// 400: give the root a label of 1 to 200 characters saying what it is.
    TrustAnchorInvalid = "trust_anchor_invalid",
    /// 404: no trust anchor ….
    TrustAnchorUnknown = "trust_anchor_unknown",
    /// 400: ttl_seconds must be 1..=2592000, got ….
    TtlInvalid = "ttl_invalid",
    /// 400: user_name must be 1..=256 characters.
    UserNameInvalid = "user_name_invalid",
    /// 403: the key did not verify the user (PIN or biometrics); the policy requires it.
    UserVerificationMissing = "user_verification_missing",
    // --- Raised by the agent for its desktop UI (never sent by the service) ---
    /// Agent: another failure in the agent; the message says which.
    AgentError = "agent_error",
    /// Agent: this key already holds a passkey of this person.
    AlreadyEnrolled = "already_enrolled",
    /// Agent: no web browser could be started.
    BrowserNotOpened = "browser_not_opened",
    /// Agent: the person cancelled; nothing was changed.
    Cancelled = "cancelled",
    /// Agent: the key reported another problem.
    KeyError = "key_error",
    /// Agent: the key has no room for another passkey.
    KeyFull = "key_full",
    /// Agent: the key was removed before the operation finished.
    KeyRemoved = "key_removed",
    /// Agent: a choice or a secret is needed and there is no way to ask for it.
    NeedsInput = "needs_input",
    /// Agent: no security key was found.
    NoKey = "no_key",
    /// Agent: this laptop is not provisioned yet.
    NotProvisioned = "not_provisioned",
    /// Agent: three wrong PINs in a row; the key must be plugged in again.
    PinAuthBlocked = "pin_auth_blocked",
    /// Agent: the key's PIN is blocked; only a reset (which erases it) helps.
    PinBlocked = "pin_blocked",
    /// Agent: the PIN is wrong; the key has attempts left.
    PinInvalid = "pin_invalid",
    /// Agent: the key refused the new PIN: too short for its rules.
    PinPolicy = "pin_policy",
    /// Agent: the PIN typed does not meet the key's rules.
    PinRejected = "pin_rejected",
    /// Agent: the key demands a new PIN before it can be used (set by IT, or by a minimum PIN
    /// length raised above the PIN's).
    PinChangeRequired = "pin_change_required",
    /// Agent: the service asked the laptop to sign for another relying party.
    RpMismatch = "rp_mismatch",
    /// Agent: the laptop does not know its organisation's relying party, so it signs nothing.
    RpNotPinned = "rp_not_pinned",
    /// Agent: the server URL is fixed by the managed configuration.
    ServerLocked = "server_locked",
    /// Agent: the service could not be reached at all.
    ServiceUnreachable = "service_unreachable",
    /// Agent: the key refused the request.
    TouchDenied = "touch_denied",
    /// Agent: the key was not touched in time.
    TouchTimeout = "touch_timeout",
    /// Agent: the self-service link does not lead to the organisation's page.
    WebLinkNotOurs = "web_link_not_ours",
}

#[cfg(test)]
mod tests {
    use super::ErrorCode;

    #[test]
    fn every_code_reads_back_as_itself_and_unknown_ones_do_not_fail() {
        for code in ErrorCode::ALL {
            let text = serde_json::to_string(code).expect("serialise");
            assert_eq!(text, format!("\"{}\"", code.as_str()));
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&text).expect("parse"),
                *code
            );
        }
        let newer: ErrorCode =
            serde_json::from_str("\"a_code_from_a_newer_service\"").expect("parse");
        assert_eq!(newer, ErrorCode::Unknown);
    }

    /// Regression: the OpenAPI document listed the Rust variant names (`MalformedJson`) as the
    /// codes, so every error response failed its own schema.
    #[cfg(feature = "openapi")]
    #[test]
    fn the_openapi_schema_lists_the_wire_texts() {
        let schema = serde_json::to_value(<ErrorCode as utoipa::PartialSchema>::schema())
            .expect("serialise");
        let listed: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|v| v.as_str().expect("a string"))
            .collect();
        assert!(listed.contains(&"malformed_json"), "{listed:?}");
        assert!(!listed.contains(&"MalformedJson"), "{listed:?}");
        assert_eq!(listed.len(), ErrorCode::ALL.len() + 1);
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{s}"
            );
        }
    }
}
