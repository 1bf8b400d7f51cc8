//! Coverage: for each active person, whether they meet their population's policy (compliant /
//! below minimum / single device class / no authenticator / under exception); per population
//! the share compliant; keys by model; laptop posture compliance by signal. Served at
//! `GET /api/v1/admin/coverage` and printed by `keywarden-server report ...`.
//!
//! One aggregate query over people and their active credentials does the heavy lifting, so the
//! report over 100,000 people stays well under a second on SQLite.

use keywarden_protocol::ErrorCode;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use keywarden_protocol::Observed;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::ToSchema;

use crate::auth::{AnyStaff, Staff};
use crate::error::{Error, Result};
use crate::policy::{DeviceClass, PersonAttrs, Policies, Policy};
use crate::state::AppState;
use crate::store::coverage as store;

/// Routes for coverage.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/coverage", get(handler))
}

/// Where a person stands against their policy. The service CLI's `report people --status`
/// takes the same names (`clap::ValueEnum`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Status {
    /// Meets the policy.
    Compliant,
    /// Has some active authenticators, fewer than the minimum.
    BelowMinimum,
    /// Enough authenticators but not the required classes.
    SingleDeviceClass,
    /// No active authenticator.
    NoAuthenticator,
    /// Exempt until the exception expires.
    UnderException,
}

impl Status {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Compliant => "compliant",
            Status::BelowMinimum => "below_minimum",
            Status::SingleDeviceClass => "single_device_class",
            Status::NoAuthenticator => "no_authenticator",
            Status::UnderException => "under_exception",
        }
    }
}

/// One person's coverage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PersonCoverage {
    /// Person id.
    pub person_id: String,
    /// Login name.
    pub user_name: String,
    /// Population they belong to.
    pub population: String,
    /// Where they stand.
    pub status: Status,
    /// Active authenticators.
    pub active_authenticators: u32,
    /// Classes of those authenticators.
    pub device_classes: Vec<DeviceClass>,
    /// Where their laptops fail their population's ongoing-posture policy, each as
    /// `<hostname>: <why>` (empty when they meet it or it requires nothing).
    pub posture_failures: Vec<String>,
}

/// One population's coverage.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PopulationCoverage {
    /// Population name.
    pub name: String,
    /// Active people in it.
    pub people: u64,
    /// How many of them are compliant.
    pub compliant: u64,
    /// `compliant / people` (1.0 for an empty population).
    pub share_compliant: f64,
    /// People per status.
    pub by_status: BTreeMap<String, u64>,
    /// People holding at least one active credential of each device class.
    #[serde(default)]
    pub people_by_class: BTreeMap<String, u64>,
}

/// Active credentials of one key model.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ModelCount {
    /// AAGUID.
    pub aaguid: String,
    /// Model name where known.
    pub model: Option<String>,
    /// Active credentials.
    pub credentials: u64,
}

/// Laptops per state of one posture signal.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignalCompliance {
    /// Signal, e.g. `disk_encryption`.
    pub signal: String,
    /// Laptops where it is on.
    pub compliant: u64,
    /// Laptops where it is off.
    pub non_compliant: u64,
    /// Laptops where the agent could not tell.
    pub unknown: u64,
}

/// The whole coverage report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CoverageReport {
    /// When computed (unix ms).
    pub generated_at_ms: i64,
    /// People per status over everyone.
    pub by_status: BTreeMap<String, u64>,
    /// Per population.
    pub populations: Vec<PopulationCoverage>,
    /// Keys by model.
    pub keys_by_model: Vec<ModelCount>,
    /// Active credentials per device class (roaming, platform, phone, software).
    #[serde(default)]
    pub credentials_by_class: BTreeMap<String, u64>,
    /// Active credentials that are synced passkeys (backup eligible).
    #[serde(default)]
    pub synced_credentials: u64,
    /// Posture compliance by signal over laptops with a report.
    pub posture: Vec<SignalCompliance>,
    /// Laptops per population against its ongoing-posture policy (populations that require
    /// no ongoing posture are not listed).
    pub posture_by_population: Vec<crate::ongoing::PopulationPosture>,
    /// Per person (filtered by `?status=`; empty with `?people=false`).
    pub people: Vec<PersonCoverage>,
    /// Exceptions past their expiry that nobody revoked: they exempt nobody any more and
    /// need a decision (renew with a new exception, or let coverage count the person).
    pub expired_exceptions: Vec<crate::exceptions::ExceptionView>,
}

pub(crate) fn status_of(policy: &Policy, n: u32, classes: &[DeviceClass], exempt: bool) -> Status {
    if exempt {
        return Status::UnderException;
    }
    if n == 0 {
        return Status::NoAuthenticator;
    }
    if n < policy.min_authenticators {
        return Status::BelowMinimum;
    }
    let distinct = u32::try_from(classes.len()).unwrap_or(u32::MAX);
    let has_required = policy
        .required_device_classes
        .iter()
        .all(|c| classes.contains(c));
    if distinct < policy.min_device_classes || !has_required {
        return Status::SingleDeviceClass;
    }
    Status::Compliant
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Compute the report. `people_filter`: `None` lists nobody, `Some(None)` everyone,
/// `Some(Some(s))` only people with status `s`.
pub async fn compute(
    db: &AnyPool,
    now: i64,
    default_min: u32,
    people_filter: Option<Option<Status>>,
) -> Result<CoverageReport> {
    let policies = Policies::load(db, default_min).await?;
    compute_with(db, now, &policies, people_filter).await
}

/// [`compute`] under `policies` (the stored ones, or a change not yet saved: the impact preview).
pub async fn compute_with(
    db: &AnyPool,
    now: i64,
    policies: &Policies,
    people_filter: Option<Option<Status>>,
) -> Result<CoverageReport> {
    let memberships = if policies.uses_groups() {
        crate::policy::all_memberships(db).await?
    } else {
        Default::default()
    };
    let exempt: HashSet<String> = store::exempt_people(db, now).await?;
    // Populations that judge laptops' ongoing posture; the laptops of people's active keys are
    // only read when there is one.
    let required: Vec<_> = policies
        .populations
        .iter()
        .map(|p| (p.name.as_str(), &p.spec.policy.ongoing_posture))
        .chain([(
            crate::policy::DEFAULT_POPULATION,
            &policies.default.ongoing_posture,
        )])
        .filter(|(_, r)| !r.is_empty())
        .collect();

    // The three reads are independent: run them side by side (SQLite in WAL mode and
    // PostgreSQL both serve concurrent readers), which matters on a large directory.
    let (rows, model_rows, laptops) = tokio::try_join!(
        store::people(db, !required.is_empty()),
        store::models(db),
        crate::ongoing::laptops(db),
    )?;
    let mut pops: BTreeMap<String, PopulationCoverage> = BTreeMap::new();
    for p in policies
        .populations
        .iter()
        .map(|p| p.name.clone())
        .chain([crate::policy::DEFAULT_POPULATION.to_owned()])
    {
        pops.insert(
            p.clone(),
            PopulationCoverage {
                name: p,
                people: 0,
                compliant: 0,
                share_compliant: 1.0,
                by_status: BTreeMap::new(),
                people_by_class: BTreeMap::new(),
            },
        );
    }
    let mut credentials_by_class: BTreeMap<String, u64> = BTreeMap::new();
    let mut synced_credentials = 0;
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut people = Vec::new();
    let mut posture_subjects = Vec::new();
    for r in rows {
        let id = r.id;
        let mut classes = Vec::new();
        for (n, class) in [
            (r.n_roaming, DeviceClass::Roaming),
            (r.n_platform, DeviceClass::Platform),
            (r.n_phone, DeviceClass::Phone),
            (r.n_software, DeviceClass::Software),
        ] {
            let n = count(n);
            if n > 0 {
                classes.push(class);
                *credentials_by_class
                    .entry(class.as_str().to_owned())
                    .or_default() += n;
            }
        }
        synced_credentials += count(r.n_synced);
        let n = u32::try_from(count(r.n)).unwrap_or(u32::MAX);
        let attrs = PersonAttrs {
            user_type: r.user_type,
            department: r.department,
            employee_number: r.employee_number,
            groups: memberships.get(&id).cloned().unwrap_or_default(),
        };
        let (population, policy) = policies.resolve(&attrs);
        if !policy.ongoing_posture.is_empty() {
            posture_subjects.push(crate::ongoing::Subject {
                person_id: id.clone(),
                population,
                requirements: &policy.ongoing_posture,
                laptops: crate::ongoing::Laptops::from_aggregate(r.laptop, r.several_laptops > 0),
            });
        }
        let status = status_of(policy, n, &classes, exempt.contains(&id));
        *by_status.entry(status.as_str().to_owned()).or_default() += 1;
        if let Some(pc) = pops.get_mut(population) {
            pc.people += 1;
            if status == Status::Compliant {
                pc.compliant += 1;
            }
            *pc.by_status.entry(status.as_str().to_owned()).or_default() += 1;
            for c in &classes {
                *pc.people_by_class.entry(c.as_str().to_owned()).or_default() += 1;
            }
        }
        let listed = match people_filter {
            None => false,
            Some(None) => true,
            Some(Some(s)) => s == status,
        };
        if listed {
            people.push(PersonCoverage {
                person_id: id,
                user_name: r.user_name,
                population: population.to_owned(),
                status,
                active_authenticators: n,
                device_classes: classes,
                posture_failures: Vec::new(),
            });
        }
    }
    for pc in pops.values_mut() {
        if pc.people > 0 {
            pc.share_compliant = pc.compliant as f64 / pc.people as f64;
        }
    }
    let keys_by_model = model_rows
        .into_iter()
        .map(|r| ModelCount {
            aaguid: r.aaguid,
            model: r.model,
            credentials: count(r.n),
        })
        .collect();
    let ongoing = crate::ongoing::evaluate(db, now, &required, &posture_subjects, &laptops).await?;
    for p in &mut people {
        if let Some(f) = ongoing.failures.get(&p.person_id) {
            p.posture_failures.clone_from(f);
        }
    }
    Ok(CoverageReport {
        generated_at_ms: now,
        by_status,
        populations: pops.into_values().collect(),
        keys_by_model,
        credentials_by_class,
        synced_credentials,
        posture: posture_by_signal(&laptops),
        posture_by_population: ongoing.populations,
        people,
        expired_exceptions: crate::exceptions::load(db, now, true).await?,
    })
}

fn posture_by_signal(laptops: &HashMap<String, crate::ongoing::Laptop>) -> Vec<SignalCompliance> {
    let mut out: Vec<SignalCompliance> = ["disk_encryption", "firewall", "secure_boot"]
        .iter()
        .map(|s| SignalCompliance {
            signal: (*s).to_owned(),
            compliant: 0,
            non_compliant: 0,
            unknown: 0,
        })
        .collect();
    for p in laptops.values().filter_map(|l| l.posture.as_ref()) {
        for (i, o) in [&p.disk_encryption, &p.firewall, &p.secure_boot]
            .into_iter()
            .enumerate()
        {
            if let Some(s) = out.get_mut(i) {
                match o {
                    Observed::Known { value: true, .. } => s.compliant += 1,
                    Observed::Known { value: false, .. } => s.non_compliant += 1,
                    Observed::Unknown { .. } => s.unknown += 1,
                }
            }
        }
    }
    out
}

/// `GET /api/v1/admin/coverage` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CoverageQuery {
    /// Only list people with this status.
    pub status: Option<Status>,
    /// List people at all (default true).
    pub people: Option<bool>,
}

/// `GET /api/v1/admin/coverage` (admin, help desk, auditor).
#[utoipa::path(get, path = "/api/v1/admin/coverage", tag = "coverage", params(CoverageQuery),
    responses((status = 200, body = CoverageReport), crate::openapi::Invalid))]
pub async fn handler(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
    query: std::result::Result<Query<CoverageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CoverageReport>> {
    let Query(q) = query.map_err(|e| Error::bad_request(ErrorCode::QueryInvalid, e.body_text()))?;
    let filter = if q.people == Some(false) {
        None
    } else {
        Some(q.status)
    };
    Ok(Json(
        compute(
            &state.db,
            state.now_ms(),
            state.settings.min_authenticators,
            filter,
        )
        .await?,
    ))
}

/// The report as text for the terminal.
pub fn render(report: &CoverageReport, what: &str) -> String {
    let mut s = String::new();
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    if what == "coverage" || what == "all" {
        let _ = writeln!(s, "Coverage by population");
        let _ = writeln!(
            s,
            "{:<24} {:>8} {:>10} {:>8}  by status",
            "population", "people", "compliant", "share"
        );
        for p in &report.populations {
            let detail = p
                .by_status
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                s,
                "{:<24} {:>8} {:>10} {:>8}  {detail}",
                p.name,
                p.people,
                p.compliant,
                pct(p.share_compliant)
            );
        }
        let total: u64 = report.by_status.values().sum();
        let _ = writeln!(s, "\nPeople by status ({total} active)");
        for (k, v) in &report.by_status {
            let _ = writeln!(s, "  {k:<22} {v}");
        }
        if !report.expired_exceptions.is_empty() {
            let _ = writeln!(
                s,
                "\nExpired exceptions (exempt nobody; need a decision): {}",
                report.expired_exceptions.len()
            );
            for e in &report.expired_exceptions {
                let _ = writeln!(
                    s,
                    "  {} {} person {} owner {} expired {}",
                    e.id,
                    e.kind,
                    e.person_id,
                    e.owner,
                    crate::secrets::fmt_time(e.expires_at_ms)
                );
            }
        }
    }
    if what == "keys" || what == "all" {
        let _ = writeln!(s, "\nKeys by model (active credentials)");
        for m in &report.keys_by_model {
            let _ = writeln!(
                s,
                "  {:<38} {:<32} {}",
                m.aaguid,
                m.model.as_deref().unwrap_or("(unknown model)"),
                m.credentials
            );
        }
    }
    if what == "posture" || what == "all" {
        let _ = writeln!(s, "\nLaptop posture by signal (latest report per laptop)");
        let _ = writeln!(
            s,
            "  {:<18} {:>9} {:>13} {:>8}",
            "signal", "compliant", "non-compliant", "unknown"
        );
        for p in &report.posture {
            let _ = writeln!(
                s,
                "  {:<18} {:>9} {:>13} {:>8}",
                p.signal, p.compliant, p.non_compliant, p.unknown
            );
        }
        if !report.posture_by_population.is_empty() {
            let _ = writeln!(
                s,
                "\nLaptop posture by population (ongoing policy; unknown or no report fails)"
            );
            let _ = writeln!(
                s,
                "  {:<22} {:>8} {:>10} {:>8}  failing by signal",
                "population", "laptops", "compliant", "share"
            );
            for p in &report.posture_by_population {
                let detail = p
                    .failing_by_signal
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = writeln!(
                    s,
                    "  {:<22} {:>8} {:>10} {:>8}  {detail}",
                    p.population,
                    p.laptops,
                    p.compliant,
                    pct(p.share_compliant)
                );
            }
        }
    }
    if what == "people" {
        let _ = writeln!(
            s,
            "{:<32} {:<16} {:<20} {:>6}  classes",
            "person", "population", "status", "active"
        );
        for p in &report.people {
            let classes = p
                .device_classes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(",");
            let _ = writeln!(
                s,
                "{:<32} {:<16} {:<20} {:>6}  {classes}",
                p.user_name,
                p.population,
                p.status.as_str(),
                p.active_authenticators
            );
        }
    }
    s
}
