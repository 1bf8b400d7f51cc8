//! Coverage: for each active person, whether they meet their population's policy (compliant /
//! below minimum / single device class / no authenticator / under exception); per population
//! the share compliant; keys by model; laptop posture compliance by signal. Served at
//! `GET /api/v1/admin/coverage` and printed by `keywarden-server report ...`.
//!
//! The report reads what the database keeps on each person's row as their credentials change
//! (triggers, see `store::coverage`) and each person's population (assigned when it may change,
//! [`assign`]): one grouped scan of an index, so it costs about the same at any time of day and
//! far less than a join over every credential. [`recompute`] builds the same report from the
//! credentials themselves: the consistency check ([`verify`]) compares the two, and the policy
//! preview uses it for rules not saved yet.

pub mod assign;
mod recompute;
mod text;

pub use recompute::{recompute, recompute_with, verify, Mismatch};
pub use text::render;

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use keywarden_protocol::Observed;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::ToSchema;

use crate::auth::{AnyStaff, QueryParams, Staff};
use crate::error::Result;
use crate::policy::{DeviceClass, Policies, Policy, PostureRequirements};
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

/// The device classes whose bits are set in a row's `cov_classes`, in the report's order.
fn classes_of(bits: i64) -> Vec<DeviceClass> {
    CLASS_BITS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// Each device class with its bit in `cov_classes` (migration 0010).
const CLASS_BITS: [(i64, DeviceClass); 4] = [
    (1, DeviceClass::Roaming),
    (2, DeviceClass::Platform),
    (4, DeviceClass::Phone),
    (8, DeviceClass::Software),
];

/// A kept row's standing under the rules: its population as the rules name it, that
/// population's policy, its active credentials and their classes.
struct Kept<'p> {
    population: &'p str,
    policy: &'p Policy,
    n: u32,
    classes: Vec<DeviceClass>,
}

impl<'p> Kept<'p> {
    fn of(policies: &'p Policies, kind: &store::Kind) -> Self {
        let population = policies.name_of(kind.population.as_deref());
        Kept {
            population,
            policy: policies.policy_of(population),
            n: u32::try_from(count(kind.cov_n)).unwrap_or(u32::MAX),
            classes: classes_of(kind.cov_classes),
        }
    }

    fn status(&self, exempt: bool) -> Status {
        status_of(self.policy, self.n, &self.classes, exempt)
    }
}

impl PersonCoverage {
    /// A person as the report lists them (their laptops not judged yet).
    fn listed(
        person_id: String,
        user_name: String,
        population: &str,
        status: Status,
        n: u32,
        classes: Vec<DeviceClass>,
    ) -> Self {
        PersonCoverage {
            person_id,
            user_name,
            population: population.to_owned(),
            status,
            active_authenticators: n,
            device_classes: classes,
            posture_failures: Vec::new(),
        }
    }
}

/// The report's counts as people are added to it, one at a time (a recompute) or a group of
/// alike people at a time (the incremental read).
struct Tally {
    populations: BTreeMap<String, PopulationCoverage>,
    by_status: BTreeMap<String, u64>,
    credentials_by_class: BTreeMap<String, u64>,
    synced_credentials: u64,
}

impl Tally {
    fn new(policies: &Policies) -> Self {
        let populations = policies
            .populations
            .iter()
            .map(|p| p.name.clone())
            .chain([crate::policy::DEFAULT_POPULATION.to_owned()])
            .map(|name| {
                let empty = PopulationCoverage {
                    name: name.clone(),
                    people: 0,
                    compliant: 0,
                    share_compliant: 1.0,
                    by_status: BTreeMap::new(),
                    people_by_class: BTreeMap::new(),
                };
                (name, empty)
            })
            .collect();
        Tally {
            populations,
            by_status: BTreeMap::new(),
            credentials_by_class: BTreeMap::new(),
            synced_credentials: 0,
        }
    }

    /// `people` people of `population` (a name the rules know; otherwise counted in no
    /// population) in `status`, each holding `classes`.
    fn people(&mut self, population: &str, status: Status, people: u64, classes: &[DeviceClass]) {
        *self
            .by_status
            .entry(status.as_str().to_owned())
            .or_default() += people;
        if let Some(pc) = self.populations.get_mut(population) {
            pc.people += people;
            if status == Status::Compliant {
                pc.compliant += people;
            }
            *pc.by_status.entry(status.as_str().to_owned()).or_default() += people;
            for c in classes {
                *pc.people_by_class.entry(c.as_str().to_owned()).or_default() += people;
            }
        }
    }

    /// One person counted in `from` is in `to` instead (an exception in force).
    fn moved(&mut self, population: &str, from: Status, to: Status) {
        let shift = |counts: &mut BTreeMap<String, u64>| {
            if let Some(n) = counts.get_mut(from.as_str()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(from.as_str());
                }
            }
            *counts.entry(to.as_str().to_owned()).or_default() += 1;
        };
        shift(&mut self.by_status);
        if let Some(pc) = self.populations.get_mut(population) {
            shift(&mut pc.by_status);
            if from == Status::Compliant {
                pc.compliant = pc.compliant.saturating_sub(1);
            }
            if to == Status::Compliant {
                pc.compliant += 1;
            }
        }
    }

    /// Active credentials of each class, and synced ones.
    fn credentials(&mut self, by_class: [(DeviceClass, i64); 4], synced: i64) {
        for (class, n) in by_class {
            let n = count(n);
            if n > 0 {
                *self
                    .credentials_by_class
                    .entry(class.as_str().to_owned())
                    .or_default() += n;
            }
        }
        self.synced_credentials += count(synced);
    }
}

/// Populations that judge laptops' ongoing posture, with their requirements.
fn judging_laptops(policies: &Policies) -> Vec<(&str, &PostureRequirements)> {
    policies
        .populations
        .iter()
        .map(|p| (p.name.as_str(), &p.spec.policy.ongoing_posture))
        .chain([(
            crate::policy::DEFAULT_POPULATION,
            &policies.default.ongoing_posture,
        )])
        .filter(|(_, r)| !r.is_empty())
        .collect()
}

/// Whether `people_filter` lists a person in `status`.
fn listed(people_filter: Option<Option<Status>>, status: Status) -> bool {
    match people_filter {
        None => false,
        Some(None) => true,
        Some(Some(s)) => s == status,
    }
}

/// Compute the report from what each person's row keeps. `people_filter`: `None` lists nobody,
/// `Some(None)` everyone, `Some(Some(s))` only people with status `s`.
pub async fn compute(
    db: &AnyPool,
    now: i64,
    default_min: u32,
    people_filter: Option<Option<Status>>,
) -> Result<CoverageReport> {
    assign::unassigned(db).await?;
    let policies = Policies::load(db, default_min).await?;
    let read = kept(db, now, &policies, people_filter, true).await?;
    finish(db, now, read.tally, read.parts).await
}

/// The report's counts from what each person's row keeps, and its lists.
async fn kept<'p>(
    db: &AnyPool,
    now: i64,
    policies: &'p Policies,
    people_filter: Option<Option<Status>>,
    keys: bool,
) -> Result<KeptRead<'p>> {
    let required = judging_laptops(policies);
    let judged: Vec<&str> = required.iter().map(|(name, _)| *name).collect();
    let listing = people_filter.is_some();
    let (groups, exempt, judged_people, listed_people, model_rows, laptops) = tokio::try_join!(
        store::groups(db),
        store::exempt_standings(db, now),
        async {
            if listing {
                Ok(Vec::new())
            } else {
                store::judged_laptops(db, &judged).await
            }
        },
        async {
            if listing {
                store::standings(db).await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if keys {
                store::models(db).await
            } else {
                Ok(Vec::new())
            }
        },
        crate::ongoing::laptops(db),
    )?;
    let mut tally = Tally::new(policies);
    for g in &groups {
        let kept = Kept::of(policies, &g.kind);
        let status = kept.status(false);
        tally.people(kept.population, status, count(g.people), &kept.classes);
        let c = &g.by_class;
        tally.credentials(
            [
                (DeviceClass::Roaming, c.roaming),
                (DeviceClass::Platform, c.platform),
                (DeviceClass::Phone, c.phone),
                (DeviceClass::Software, c.software),
            ],
            g.synced,
        );
    }
    let exempt_ids: HashSet<&str> = exempt.iter().map(|p| p.id.as_str()).collect();
    for p in &exempt {
        let kept = Kept::of(policies, &p.kind);
        tally.moved(kept.population, kept.status(false), Status::UnderException);
    }
    let mut subjects = Vec::new();
    let mut people = Vec::new();
    // Without a listing, the laptops of the populations that judge them, a row per laptop.
    for j in &judged_people {
        let population = policies.name_of(j.population.as_deref());
        let policy = policies.policy_of(population);
        subjects.push(crate::ongoing::Subject {
            person_id: j.id.clone(),
            population,
            requirements: &policy.ongoing_posture,
            laptops: crate::ongoing::Laptops::from_aggregate(
                j.cov_laptop.clone(),
                j.cov_several_laptops > 0,
            ),
        });
    }
    for p in &listed_people {
        let kept = Kept::of(policies, &p.kind);
        if !kept.policy.ongoing_posture.is_empty() {
            subjects.push(crate::ongoing::Subject {
                person_id: p.id.clone(),
                population: kept.population,
                requirements: &kept.policy.ongoing_posture,
                laptops: crate::ongoing::Laptops::from_aggregate(
                    p.cov_laptop.clone(),
                    p.cov_several_laptops > 0,
                ),
            });
        }
        let status = kept.status(exempt_ids.contains(p.id.as_str()));
        if listed(people_filter, status) {
            let (id, name) = (p.id.clone(), p.user_name.clone());
            people.push(PersonCoverage::listed(
                id,
                name,
                kept.population,
                status,
                kept.n,
                kept.classes,
            ));
        }
    }
    let parts = Parts {
        required,
        subjects,
        people,
        model_rows,
        laptops,
    };
    let exempt = exempt.into_iter().map(|p| p.id).collect();
    Ok(KeptRead {
        tally,
        parts,
        groups,
        exempt,
    })
}

/// What [`kept`] read: the report's counts and lists, and the groups and exempt people it
/// read them from (the overview finds its longest-exposed people through them).
struct KeptRead<'p> {
    tally: Tally,
    parts: Parts<'p>,
    groups: Vec<store::Group>,
    exempt: HashSet<String>,
}

/// What the console's overview shows: the report's counts (without listing anyone or counting
/// keys by model) and the people below policy (status in `statuses`, not under exception) who
/// have been so the longest, at most `limit`, found through the kinds of standing in those
/// statuses rather than everyone's rows.
pub async fn overview(
    db: &AnyPool,
    now: i64,
    default_min: u32,
    statuses: &[Status],
    limit: usize,
) -> Result<(CoverageReport, Vec<PersonCoverage>)> {
    assign::unassigned(db).await?;
    let policies = Policies::load(db, default_min).await?;
    let read = kept(db, now, &policies, None, false).await?;
    let kinds: Vec<store::Kind> = read
        .groups
        .iter()
        .filter(|g| statuses.contains(&Kept::of(&policies, &g.kind).status(false)))
        .map(|g| g.kind.clone())
        .collect();
    let want = i64::try_from(limit + read.exempt.len()).unwrap_or(i64::MAX);
    let (report, rows) = tokio::try_join!(
        finish(db, now, read.tally, read.parts),
        store::longest_of_kinds(db, &kinds, want),
    )?;
    let longest = rows
        .into_iter()
        .filter(|p| !read.exempt.contains(&p.id))
        .take(limit)
        .map(|p| {
            let kept = Kept::of(&policies, &p.kind);
            let status = kept.status(false);
            PersonCoverage::listed(
                p.id,
                p.user_name,
                kept.population,
                status,
                kept.n,
                kept.classes,
            )
        })
        .collect();
    Ok((report, longest))
}

/// What both ways of computing the report hand to [`finish`].
struct Parts<'p> {
    required: Vec<(&'p str, &'p PostureRequirements)>,
    subjects: Vec<crate::ongoing::Subject<'p>>,
    people: Vec<PersonCoverage>,
    model_rows: Vec<store::ModelRow>,
    laptops: HashMap<String, crate::ongoing::Laptop>,
}

/// Judge the laptops, and put the report together.
async fn finish(db: &AnyPool, now: i64, tally: Tally, parts: Parts<'_>) -> Result<CoverageReport> {
    let Parts {
        required,
        subjects,
        mut people,
        model_rows,
        laptops,
    } = parts;
    let mut populations: Vec<PopulationCoverage> = tally.populations.into_values().collect();
    for pc in &mut populations {
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
    let ongoing = crate::ongoing::evaluate(db, now, &required, &subjects, &laptops).await?;
    for p in &mut people {
        if let Some(f) = ongoing.failures.get(&p.person_id) {
            p.posture_failures.clone_from(f);
        }
    }
    Ok(CoverageReport {
        generated_at_ms: now,
        by_status: tally.by_status,
        populations,
        keys_by_model,
        credentials_by_class: tally.credentials_by_class,
        synced_credentials: tally.synced_credentials,
        posture: posture_by_signal(&laptops),
        posture_by_population: ongoing.populations,
        people,
        expired_exceptions: crate::exceptions::load(db, now, true).await?,
    })
}

fn posture_by_signal(laptops: &HashMap<String, crate::ongoing::Laptop>) -> Vec<SignalCompliance> {
    type Signal = fn(&keywarden_protocol::Posture) -> &Observed<bool>;
    let signals: [(&str, Signal); 8] = [
        ("disk_encryption", |p| &p.disk_encryption),
        ("firewall", |p| &p.firewall),
        ("secure_boot", |p| &p.secure_boot),
        ("screen_lock", |p| &p.screen_lock),
        ("integrity_protection", |p| &p.integrity_protection),
        ("app_verification", |p| &p.app_verification),
        ("malware_protection", |p| &p.malware_protection),
        ("mdm_enrolled", |p| &p.mdm_enrolled),
    ];
    let reports: Vec<&keywarden_protocol::Posture> = laptops
        .values()
        .filter_map(|l| l.posture.as_ref())
        .collect();
    signals
        .iter()
        .map(|(name, get)| {
            let mut s = SignalCompliance {
                signal: (*name).to_owned(),
                compliant: 0,
                non_compliant: 0,
                unknown: 0,
            };
            for p in &reports {
                match get(p) {
                    Observed::Known { value: true, .. } => s.compliant += 1,
                    Observed::Known { value: false, .. } => s.non_compliant += 1,
                    Observed::Unknown { .. } => s.unknown += 1,
                }
            }
            s
        })
        .collect()
}

/// `GET /api/v1/admin/coverage` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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
    QueryParams(q): QueryParams<CoverageQuery>,
) -> Result<Json<CoverageReport>> {
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
