//! Issuing keys for people at an IT issuing station: the session a staff member opens with a
//! fresh step-up of their own key, each person's ceremony, and the activation a person's own
//! laptop sends once the issued key's PIN was changed. The PINs the station sets never travel.

use serde::{Deserialize, Serialize};

use crate::{PersonSummary, StepUp};

/// One row of an issuing list, as the station read it (a CSV row, or a SCIM group's member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueListEntry {
    /// The row's number in the list (the CSV line, 2 for the first row under the header).
    pub row: u32,
    /// The person's userName.
    pub user_name: String,
    /// How many keys to issue them: 1 or 2.
    pub keys: u32,
}

/// `POST /api/v1/agent/issuing/sessions`: open an issuing session on a station.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IssueSessionRequest {
    /// The staff member's fresh assertion (purpose `issue_keys`) with their own key.
    pub step_up: StepUp,
    /// The people, from a CSV list; empty when `scim_group` names them.
    #[serde(default)]
    pub people: Vec<IssueListEntry>,
    /// The SCIM group (its displayName) whose members are issued keys, instead of `people`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim_group: Option<String>,
    /// Keys per person for a SCIM group: 1 or 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_per_person: Option<u32>,
}

/// One person of an open issuing session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuePerson {
    /// The list row that named them.
    pub row: u32,
    /// Who they are.
    pub person: PersonSummary,
    /// How many keys they get.
    pub keys: u32,
}

/// An open issuing session: every person of the list, validated whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssueSession {
    /// Session id.
    pub session_id: String,
    /// Until when it holds (unix ms); after that the staff member confirms with their key again.
    pub expires_at_ms: i64,
    /// How long an issued key waits for activation before it expires (ms).
    pub issued_key_ttl_ms: i64,
    /// The staff member who opened it.
    pub staff: PersonSummary,
    /// The people to issue keys to, in list order.
    pub people: Vec<IssuePerson>,
}

/// `POST /api/v1/agent/issuing/sessions/{id}/ceremonies`: a key's ceremony for one person.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IssueCeremonyRequest {
    /// The person (from [`IssueSession::people`]).
    pub person_id: String,
}

/// `POST /api/v1/agent/issued-keys/activate`: an issued key activated.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedKeyActivated {
    /// The credential now active.
    pub credential_id: String,
    /// Whose it is.
    pub person: PersonSummary,
}
