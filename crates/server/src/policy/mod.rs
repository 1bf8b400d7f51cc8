//! Populations and their policy. A population is defined by a SCIM group or a person attribute
//! (user type, department, employee number); a person belongs to the first population, by
//! priority, that matches, else to `default`. Each population carries a [`Policy`]: minimum
//! active authenticators, required device classes, an AAGUID allow-list, whether attestation
//! must chain to a trust anchor, user verification, minimum PIN length, posture requirements
//! for the enrolling laptop and for ongoing compliance, and whether key serial numbers may be
//! collected (not for BYOD).

mod posture;
pub mod preview;

pub use posture::{
    latest_posture, posture_failures, posture_failures_by_signal, PlatformProtection,
    PostureRequirements,
};

use keywarden_protocol::ErrorCode;
use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AdminOnly, AnyStaff, Fresh, JsonBody, Staff};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::policy as store;

/// Routes for populations and their policy.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/populations", get(list))
        .route(
            "/api/v1/admin/populations/{name}",
            put(upsert).delete(remove),
        )
        .route(
            "/api/v1/admin/populations/{name}/preview",
            axum::routing::post(preview::handler),
        )
}

/// A class of authenticator, for "a roaming hardware key plus another class".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// A hardware security key carried by the person (USB/NFC).
    Roaming,
    /// A platform authenticator built into a laptop (its passkey).
    Platform,
    /// A phone, used across devices (hybrid / cross-device) from the browser.
    Phone,
    /// The software key (test/demo only).
    Software,
}

impl DeviceClass {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceClass::Roaming => "roaming",
            DeviceClass::Platform => "platform",
            DeviceClass::Phone => "phone",
            DeviceClass::Software => "software",
        }
    }

    /// What a person calls it.
    pub fn label(self) -> &'static str {
        match self {
            DeviceClass::Roaming => "Security key",
            DeviceClass::Platform => "Laptop passkey",
            DeviceClass::Phone => "Phone passkey",
            DeviceClass::Software => "Software key (test/demo)",
        }
    }

    /// The class of a stored name.
    pub fn parse(name: &str) -> Option<DeviceClass> {
        [
            DeviceClass::Roaming,
            DeviceClass::Platform,
            DeviceClass::Phone,
            DeviceClass::Software,
        ]
        .into_iter()
        .find(|c| c.as_str() == name)
    }
}

/// The policy of one population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Active authenticators each person needs.
    pub min_authenticators: u32,
    /// Classes every person must hold at least one of, e.g. `["roaming"]`.
    pub required_device_classes: Vec<DeviceClass>,
    /// Distinct classes each person must hold (2 = "a roaming key plus another class").
    pub min_device_classes: u32,
    /// AAGUIDs allowed to enrol; empty allows any attested key.
    pub aaguid_allow_list: Vec<String>,
    /// Whether a key's attestation must chain to a trust anchor (a root from the FIDO
    /// metadata or one an admin added). The default, for organisation keys; `false` also
    /// accepts self and `none` attestation (e.g. people's own phones), recorded as such.
    pub require_trusted_attestation: bool,
    /// Whether the key must verify the user (PIN or biometrics) at enrolment.
    pub require_user_verification: bool,
    /// Shortest PIN the key must enforce. The agent raises a key's minimum to it at enrolment
    /// (authenticatorConfig setMinPINLength, with this service allowed to read it), where the
    /// key supports that; the attested value is what is checked.
    pub min_pin_length: Option<u32>,
    /// Whether keys must ask for their PIN for every use (alwaysUv). The agent turns it on at
    /// enrolment where the key supports it; a key that cannot is enrolled and shown as not
    /// carrying it.
    pub always_uv: bool,
    /// Posture of the laptop at enrolment.
    pub enrolment_posture: PostureRequirements,
    /// Posture for ongoing compliance.
    pub ongoing_posture: PostureRequirements,
    /// Whether key serial numbers may be collected (false for BYOD).
    pub collect_serial_numbers: bool,
    /// Whether people bring their own keys (BYOD): reclaiming then deletes only the
    /// organisation's credentials and never resets the key.
    pub personal_keys: bool,
    /// Whether synced passkeys (backup eligible, e.g. kept in a password manager or a phone
    /// vendor's cloud) may be enrolled. Off by default: a synced passkey can leave the device.
    pub allow_synced: bool,
    /// Classes that may enrol without a trusted attestation chain even where
    /// `require_trusted_attestation` is on: laptops' and phones' passkeys often give none. The
    /// enrolment evidence records what was (not) attested.
    pub attestation_optional_for: Vec<DeviceClass>,
    /// Classes whose credentials may prove who a person is (sign-in on the self-service pages,
    /// adding a key, reporting one lost, recovery); empty allows every class. E.g. `["roaming"]`
    /// keeps phone passkeys for everyday sign-in at the IdP but not for Keywarden's doors.
    pub step_up_classes: Vec<DeviceClass>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_authenticators: 2,
            required_device_classes: Vec::new(),
            min_device_classes: 1,
            aaguid_allow_list: Vec::new(),
            require_trusted_attestation: true,
            require_user_verification: true,
            min_pin_length: None,
            always_uv: false,
            enrolment_posture: PostureRequirements::default(),
            ongoing_posture: PostureRequirements::default(),
            collect_serial_numbers: true,
            personal_keys: false,
            allow_synced: false,
            attestation_optional_for: Vec::new(),
            step_up_classes: Vec::new(),
        }
    }
}

impl Policy {
    /// What this policy has a key enforce itself, for the agent to apply at enrolment; `None`
    /// when nothing.
    pub fn key_policy(&self) -> Option<keywarden_protocol::KeyPolicy> {
        let p = keywarden_protocol::KeyPolicy {
            min_pin_length: self.min_pin_length,
            always_uv: self.always_uv,
        };
        (!p.is_empty()).then_some(p)
    }
}

/// How a population selects people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Selector {
    /// Members of the SCIM group with this display name.
    Group {
        /// Group display name (case-insensitive).
        value: String,
    },
    /// People whose attribute equals the value (case-insensitive).
    Attribute {
        /// `user_type`, `department` or `employee_number_prefix`.
        key: String,
        /// The value to match.
        value: String,
    },
}

/// `PUT /api/v1/admin/populations/{name}` body, and a listed population.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PopulationSpec {
    /// Lower numbers are tried first.
    pub priority: i64,
    /// Who belongs.
    pub selector: Selector,
    /// Their policy.
    #[serde(default)]
    pub policy: Policy,
}

/// A population with its name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Population {
    /// Name, e.g. `contractors`.
    pub name: String,
    /// Definition and policy.
    #[serde(flatten)]
    pub spec: PopulationSpec,
}

/// `Population`'s schema: [`PopulationSpec`]'s object with `name` added. (The derived one was
/// `allOf` of `{name}` and the spec, whose `additionalProperties: false`, from
/// `deny_unknown_fields`, then refused the `name` of every population listed.)
impl utoipa::PartialSchema for Population {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
        use utoipa::openapi::RefOr;
        let RefOr::T(Schema::Object(spec)) = <PopulationSpec as utoipa::PartialSchema>::schema()
        else {
            unreachable!("a struct's derived schema is an object")
        };
        let mut population: Object = spec;
        population.description = Some("A population with its name.".to_owned());
        population.properties.insert(
            "name".to_owned(),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("Name, e.g. `contractors`."))
                .into(),
        );
        population.required.insert(0, "name".to_owned());
        RefOr::T(Schema::Object(population))
    }
}

impl ToSchema for Population {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <PopulationSpec as ToSchema>::schemas(schemas);
    }
}

/// The attributes population selectors read: a person's row, with their groups read beside it.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct PersonAttrs {
    /// SCIM userType.
    pub user_type: Option<String>,
    /// Enterprise department.
    pub department: Option<String>,
    /// Enterprise employeeNumber.
    pub employee_number: Option<String>,
    /// Display names of the person's groups.
    #[sqlx(skip)]
    pub groups: Vec<String>,
}

/// Populations in priority order plus the default policy; resolves people to policies.
#[derive(Debug, Clone)]
pub struct Policies {
    /// Defined populations, by priority.
    pub populations: Vec<Population>,
    /// Policy of people matching none.
    pub default: Policy,
}

/// Name of the population of people no other population selects.
pub const DEFAULT_POPULATION: &str = "default";

impl Policies {
    /// Load every population.
    pub async fn load<'c>(
        db: impl sqlx::Executor<'c, Database = Any>,
        default_min: u32,
    ) -> Result<Policies> {
        let rows = store::populations(db).await?;
        let mut populations = Vec::with_capacity(rows.len());
        for r in rows {
            let selector = if r.match_kind == "group" {
                Selector::Group {
                    value: r.match_value,
                }
            } else {
                Selector::Attribute {
                    key: r.match_key.unwrap_or_default(),
                    value: r.match_value,
                }
            };
            let policy: Policy = serde_json::from_str(&r.policy).map_err(Error::Corrupt)?;
            populations.push(Population {
                name: r.name,
                spec: PopulationSpec {
                    priority: r.priority,
                    selector,
                    policy,
                },
            });
        }
        Ok(Policies {
            populations,
            default: Policy {
                min_authenticators: default_min,
                ..Policy::default()
            },
        })
    }

    /// Whether any population is defined by a group (so memberships must be loaded).
    pub fn uses_groups(&self) -> bool {
        self.populations
            .iter()
            .any(|p| matches!(p.spec.selector, Selector::Group { .. }))
    }

    /// A population's name as the rules spell it, from a stored assignment: the default
    /// population for none, or for a name the rules no longer have (a population removed is
    /// reassigned in the same transaction, so that is not expected).
    pub fn name_of<'a>(&'a self, stored: Option<&str>) -> &'a str {
        stored
            .and_then(|s| self.populations.iter().find(|p| p.name == s))
            .map_or(DEFAULT_POPULATION, |p| p.name.as_str())
    }

    /// The policy of a population by name (the default policy for a name the rules do not know).
    pub fn policy_of(&self, population: &str) -> &Policy {
        self.populations
            .iter()
            .find(|p| p.name == population)
            .map_or(&self.default, |p| &p.spec.policy)
    }

    /// The population and policy of a person.
    pub fn resolve<'a>(&'a self, a: &PersonAttrs) -> (&'a str, &'a Policy) {
        for p in &self.populations {
            let hit = match &p.spec.selector {
                Selector::Group { value } => a.groups.iter().any(|g| g.eq_ignore_ascii_case(value)),
                Selector::Attribute { key, value } => match key.as_str() {
                    "user_type" => a
                        .user_type
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case(value)),
                    "department" => a
                        .department
                        .as_deref()
                        .is_some_and(|v| v.eq_ignore_ascii_case(value)),
                    "employee_number_prefix" => a
                        .employee_number
                        .as_deref()
                        .is_some_and(|v| v.starts_with(value.as_str())),
                    _ => false,
                },
            };
            if hit {
                return (&p.name, &p.spec.policy);
            }
        }
        (DEFAULT_POPULATION, &self.default)
    }
}

/// The attributes of one person, read inside a transaction.
pub async fn person_attrs(tx: &mut Transaction<'_, Any>, person_id: &str) -> Result<PersonAttrs> {
    let mut attrs = store::attrs(tx, person_id).await?;
    attrs.groups = store::group_names(tx, person_id).await?;
    Ok(attrs)
}

/// `GET /api/v1/admin/populations`.
#[utoipa::path(get, path = "/api/v1/admin/populations", tag = "policy", responses((status = 200, body = Vec<Population>)))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<Population>>> {
    Ok(Json(
        Policies::load(&state.db, state.settings.min_authenticators)
            .await?
            .populations,
    ))
}

fn validate(name: &str, spec: &PopulationSpec) -> Result<()> {
    let ok_name = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok_name || name == DEFAULT_POPULATION {
        return Err(Error::bad_request(
            ErrorCode::PopulationNameInvalid,
            "population names are 1..=64 of a-z, 0-9, - and _, and not 'default'",
        ));
    }
    match &spec.selector {
        Selector::Group { value } if value.trim().is_empty() => {
            return Err(Error::bad_request(
                ErrorCode::SelectorInvalid,
                "group selector needs a group name",
            ))
        }
        Selector::Attribute { key, .. }
            if !["user_type", "department", "employee_number_prefix"].contains(&key.as_str()) =>
        {
            return Err(Error::bad_request(
                ErrorCode::SelectorInvalid,
                format!(
                    "attribute {key} is not one of user_type, department, employee_number_prefix"
                ),
            ))
        }
        _ => {}
    }
    let p = &spec.policy;
    if p.min_authenticators == 0 || p.min_authenticators > 10 {
        return Err(Error::bad_request(
            ErrorCode::PolicyInvalid,
            "min_authenticators must be 1..=10",
        ));
    }
    if p.min_device_classes == 0 || p.min_device_classes > 3 {
        return Err(Error::bad_request(
            ErrorCode::PolicyInvalid,
            "min_device_classes must be 1..=3",
        ));
    }
    for a in &p.aaguid_allow_list {
        if uuid::Uuid::parse_str(a).is_err() {
            return Err(Error::bad_request(
                ErrorCode::PolicyInvalid,
                format!("aaguid_allow_list entry {a} is not a UUID"),
            ));
        }
    }
    for (name, req) in [
        ("enrolment_posture", &p.enrolment_posture),
        ("ongoing_posture", &p.ongoing_posture),
    ] {
        if req.max_screen_lock_delay_secs == Some(0) {
            return Err(Error::bad_request(
                ErrorCode::PolicyInvalid,
                format!("{name}.max_screen_lock_delay_secs must be at least 1"),
            ));
        }
    }
    if let Some(n) = p.min_pin_length {
        if !(4..=63).contains(&n) {
            return Err(Error::bad_request(
                ErrorCode::PolicyInvalid,
                "min_pin_length must be 4..=63",
            ));
        }
    }
    Ok(())
}

/// `PUT /api/v1/admin/populations/{name}` (admin): define or change a population and its policy.
#[utoipa::path(put, path = "/api/v1/admin/populations/{name}", tag = "policy", request_body = PopulationSpec,
    params(("name" = String, Path, description = "population name")),
    responses((status = 200, body = Population), crate::openapi::Invalid))]
pub async fn upsert(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    Path(name): Path<String>,
    JsonBody(mut spec): JsonBody<PopulationSpec>,
) -> Result<Json<Population>> {
    for a in &mut spec.policy.aaguid_allow_list {
        *a = a.trim().to_ascii_lowercase();
    }
    validate(&name, &spec)?;
    let (kind, key, value) = match &spec.selector {
        Selector::Group { value } => ("group", None, value.clone()),
        Selector::Attribute { key, value } => ("attribute", Some(key.clone()), value.clone()),
    };
    let now = state.now_ms();
    let row = store::PopulationRow {
        name: name.clone(),
        priority: spec.priority,
        match_kind: kind.to_owned(),
        match_key: key,
        match_value: value,
        policy: serde_json::to_string(&spec.policy).map_err(Error::Corrupt)?,
    };
    let mut tx = crate::db::begin(&state.db).await?;
    let existed = store::delete(&mut tx, &name).await?;
    store::insert(&mut tx, &row, now).await?;
    crate::coverage::assign::everyone(&mut tx, false).await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        if existed {
            "policy.changed"
        } else {
            "policy.created"
        },
        &format!("population:{name}"),
        serde_json::to_value(&spec).map_err(Error::Corrupt)?,
    )
    .await?;
    tx.commit().await?;
    Ok(Json(Population { name, spec }))
}

/// `DELETE /api/v1/admin/populations/{name}` (admin).
#[utoipa::path(delete, path = "/api/v1/admin/populations/{name}", tag = "policy",
    params(("name" = String, Path, description = "population name")),
    responses((status = 204, description = "removed"), crate::openapi::NotFound))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Fresh<AdminOnly>,
    Path(name): Path<String>,
) -> Result<StatusCode> {
    let now = state.now_ms();
    let mut tx = crate::db::begin(&state.db).await?;
    if !store::delete(&mut tx, &name).await? {
        return Err(Error::not_found(
            ErrorCode::PopulationUnknown,
            format!("no population {name}"),
        ));
    }
    crate::coverage::assign::everyone(&mut tx, false).await?;
    audit::record(
        &mut tx,
        now,
        &caller.actor(),
        "policy.removed",
        &format!("population:{name}"),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Group memberships of every person, for resolving many people at once.
pub async fn all_memberships(db: &AnyPool) -> Result<HashMap<String, Vec<String>>> {
    store::all_memberships(db).await
}
