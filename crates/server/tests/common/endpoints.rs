//! The role matrix: every route and who may call it. tests/roles.rs walks it and compares it with
//! the router's real routes.

use keywarden_server::auth::Role;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy)]
pub enum Access {
    /// Anyone (health, the OpenAPI document, provisioning with its one-time token).
    Public,
    /// Bearer tokens of these roles.
    Roles(&'static [Role]),
    /// Device-signed requests only.
    Device,
    /// The self-service pages' endpoints: a session cookie, or a proof (enrolment ticket,
    /// one-time link, passkey assertion) sent from the service's own origin; a bearer token
    /// opens nothing.
    Browser,
    /// The self-service HTML pages and their assets (not in the OpenAPI document): a session
    /// cookie decides what they show; a bearer token changes nothing.
    Page,
}

const A: Role = Role::Admin;
const H: Role = Role::Helpdesk;
const AU: Role = Role::Auditor;
const S: Role = Role::Scim;

/// Every route of the service with who may call it: the role × endpoint matrix, compared with
/// the router's real routes (roles.rs), and, but for the pages, the list the OpenAPI document
/// must cover.
pub const ENDPOINTS: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/openapi.json", Access::Public),
    ("GET", "/me", Access::Page),
    ("GET", "/me/enrol", Access::Page),
    ("GET", "/me/add", Access::Page),
    ("GET", "/me/laptop", Access::Page),
    ("POST", "/me/sign-out", Access::Page),
    ("POST", "/me/credentials/{id}/lost", Access::Page),
    ("POST", "/me/credentials/{id}/name", Access::Page),
    ("GET", "/me/assets/selfservice.js", Access::Page),
    ("GET", "/me/assets/selfservice.css", Access::Page),
    ("GET", "/favicon.ico", Access::Page),
    ("GET", "/console", Access::Page),
    ("GET", "/console/sign-in", Access::Page),
    ("GET", "/console/setup", Access::Page),
    ("GET", "/console/people", Access::Page),
    ("GET", "/console/people/{id}", Access::Page),
    ("GET", "/console/staff", Access::Page),
    ("GET", "/console/policy", Access::Page),
    ("GET", "/console/laptops", Access::Page),
    ("GET", "/console/laptops/{id}", Access::Page),
    ("GET", "/console/keys", Access::Page),
    ("GET", "/console/audit", Access::Page),
    ("GET", "/console/exceptions", Access::Page),
    ("POST", "/console/sign-out", Access::Page),
    ("GET", "/console/assets/console.js", Access::Page),
    ("GET", "/console/assets/console.css", Access::Page),
    ("POST", "/api/v1/console/setup/begin", Access::Browser),
    ("POST", "/api/v1/console/setup/finish", Access::Browser),
    ("GET", "/api/v1/admin/staff", Access::Roles(&[A, AU])),
    (
        "POST",
        "/api/v1/admin/populations/{name}/preview",
        Access::Roles(&[A]),
    ),
    ("PUT", "/api/v1/admin/staff/{id}", Access::Roles(&[A])),
    ("DELETE", "/api/v1/admin/staff/{id}", Access::Roles(&[A])),
    ("POST", "/api/v1/admin/people", Access::Roles(&[A])),
    ("GET", "/api/v1/admin/people", Access::Roles(&[A, H, AU])),
    (
        "POST",
        "/api/v1/admin/provisioning-tokens",
        Access::Roles(&[A, H]),
    ),
    (
        "POST",
        "/api/v1/admin/enrolment-tickets",
        Access::Roles(&[A, H]),
    ),
    ("GET", "/api/v1/admin/devices", Access::Roles(&[A, H, AU])),
    (
        "GET",
        "/api/v1/admin/credentials",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "GET",
        "/api/v1/admin/credentials/{id}/evidence",
        Access::Roles(&[A, AU]),
    ),
    ("POST", "/api/v1/admin/tokens", Access::Roles(&[A])),
    ("GET", "/api/v1/admin/tokens", Access::Roles(&[A])),
    ("DELETE", "/api/v1/admin/tokens/{id}", Access::Roles(&[A])),
    ("GET", "/api/v1/admin/audit/export", Access::Roles(&[A, AU])),
    ("GET", "/api/v1/admin/audit/verify", Access::Roles(&[A, AU])),
    (
        "GET",
        "/api/v1/admin/trust-anchors",
        Access::Roles(&[A, AU]),
    ),
    ("POST", "/api/v1/admin/trust-anchors", Access::Roles(&[A])),
    (
        "DELETE",
        "/api/v1/admin/trust-anchors/{id}",
        Access::Roles(&[A]),
    ),
    (
        "GET",
        "/api/v1/admin/populations",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "PUT",
        "/api/v1/admin/populations/{name}",
        Access::Roles(&[A]),
    ),
    (
        "DELETE",
        "/api/v1/admin/populations/{name}",
        Access::Roles(&[A]),
    ),
    ("POST", "/api/v1/admin/exceptions", Access::Roles(&[A])),
    (
        "GET",
        "/api/v1/admin/exceptions",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "DELETE",
        "/api/v1/admin/exceptions/{id}",
        Access::Roles(&[A]),
    ),
    ("GET", "/api/v1/admin/alerts", Access::Roles(&[A, AU])),
    (
        "POST",
        "/api/v1/admin/credentials/{id}/suspend",
        Access::Roles(&[A, H]),
    ),
    ("POST", "/api/v1/admin/recoveries", Access::Roles(&[A, H])),
    (
        "GET",
        "/api/v1/admin/recoveries",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "DELETE",
        "/api/v1/admin/recoveries/{id}",
        Access::Roles(&[A, H]),
    ),
    (
        "POST",
        "/api/v1/admin/recoveries/{id}/approvals",
        Access::Roles(&[A, H]),
    ),
    (
        "GET",
        "/api/v1/admin/people/{id}/credentials",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "GET",
        "/api/v1/admin/offboardings",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "GET",
        "/api/v1/admin/reports/dormant-access",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "GET",
        "/api/v1/admin/reports/dormant-access.html",
        Access::Roles(&[A, H, AU]),
    ),
    (
        "POST",
        "/api/v1/admin/devices/{id}/reclaim-station",
        Access::Roles(&[A, H]),
    ),
    (
        "POST",
        "/api/v1/admin/devices/{id}/retire",
        Access::Roles(&[A, H]),
    ),
    ("GET", "/api/v1/admin/outbox", Access::Roles(&[A, AU])),
    ("GET", "/api/v1/admin/evidence/csf", Access::Roles(&[A, AU])),
    (
        "GET",
        "/api/v1/admin/evidence/csf.html",
        Access::Roles(&[A, AU]),
    ),
    ("GET", "/api/v1/webhook-key", Access::Public),
    ("GET", "/api/v1/admin/coverage", Access::Roles(&[A, H, AU])),
    ("GET", "/scim/v2/ServiceProviderConfig", Access::Roles(&[S])),
    ("GET", "/scim/v2/Schemas", Access::Roles(&[S])),
    ("GET", "/scim/v2/Schemas/{id}", Access::Roles(&[S])),
    ("GET", "/scim/v2/ResourceTypes", Access::Roles(&[S])),
    ("GET", "/scim/v2/ResourceTypes/{id}", Access::Roles(&[S])),
    ("GET", "/scim/v2/Users", Access::Roles(&[S])),
    ("POST", "/scim/v2/Users", Access::Roles(&[S])),
    ("GET", "/scim/v2/Users/{id}", Access::Roles(&[S])),
    ("PUT", "/scim/v2/Users/{id}", Access::Roles(&[S])),
    ("PATCH", "/scim/v2/Users/{id}", Access::Roles(&[S])),
    ("DELETE", "/scim/v2/Users/{id}", Access::Roles(&[S])),
    ("GET", "/scim/v2/Groups", Access::Roles(&[S])),
    ("POST", "/scim/v2/Groups", Access::Roles(&[S])),
    ("GET", "/scim/v2/Groups/{id}", Access::Roles(&[S])),
    ("PUT", "/scim/v2/Groups/{id}", Access::Roles(&[S])),
    ("PATCH", "/scim/v2/Groups/{id}", Access::Roles(&[S])),
    ("DELETE", "/scim/v2/Groups/{id}", Access::Roles(&[S])),
    ("POST", "/api/v1/agent/provision", Access::Public),
    ("POST", "/api/v1/agent/reports", Access::Device),
    ("POST", "/api/v1/agent/reports/batch", Access::Device),
    ("POST", "/api/v1/agent/enrolments", Access::Device),
    ("POST", "/api/v1/agent/key-additions", Access::Device),
    ("POST", "/api/v1/agent/step-up", Access::Device),
    ("POST", "/api/v1/agent/sign-in", Access::Device),
    (
        "POST",
        "/api/v1/agent/credentials/{id}/lost",
        Access::Device,
    ),
    ("POST", "/api/v1/agent/recoveries", Access::Device),
    ("POST", "/api/v1/agent/reclaim/directives", Access::Device),
    ("POST", "/api/v1/agent/reclaim/receipts", Access::Device),
    ("POST", "/api/v1/agent/keys/probe", Access::Device),
    ("POST", "/api/v1/agent/keys/identify", Access::Device),
    (
        "POST",
        "/api/v1/admin/devices/{id}/issuing-station",
        Access::Roles(&[A, H]),
    ),
    ("POST", "/api/v1/agent/issuing/sessions", Access::Device),
    (
        "POST",
        "/api/v1/agent/issuing/sessions/{id}/ceremonies",
        Access::Device,
    ),
    ("POST", "/api/v1/agent/issued-keys/activate", Access::Device),
    (
        "POST",
        "/api/v1/agent/enrolments/{id}/ceremonies",
        Access::Device,
    ),
    (
        "POST",
        "/api/v1/agent/ceremonies/{id}/finish",
        Access::Device,
    ),
    ("GET", "/api/v1/me", Access::Browser),
    ("POST", "/api/v1/me/session/ticket", Access::Browser),
    ("POST", "/api/v1/me/session/link", Access::Browser),
    ("POST", "/api/v1/me/sign-in/begin", Access::Browser),
    ("POST", "/api/v1/me/sign-in/finish", Access::Browser),
    ("POST", "/api/v1/me/step-up/begin", Access::Browser),
    ("POST", "/api/v1/me/step-up/finish", Access::Browser),
    ("POST", "/api/v1/me/passkeys/begin", Access::Browser),
    ("POST", "/api/v1/me/passkeys/finish", Access::Browser),
    (
        "POST",
        "/api/v1/agent/enrolments/{id}/web-link",
        Access::Device,
    ),
];
