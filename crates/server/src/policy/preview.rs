//! What a population change would do before it is saved: everyone's coverage under the stored
//! policies and under the change, and who would fall out of compliance or come into it.

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::{validate, Policies, Population, PopulationSpec};
use crate::auth::{AdminOnly, JsonBody, Staff};
use crate::coverage::{self, Status};
use crate::error::Result;
use crate::state::AppState;

/// The most people each list names (the counts are whole).
const LISTED: usize = 200;

/// One person whose standing a change would alter.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Change {
    /// Person id.
    pub person_id: String,
    /// userName.
    pub user_name: String,
    /// Their status now.
    pub now: Status,
    /// Their status after the change.
    pub after: Status,
}

/// The impact of a population change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Preview {
    /// The population changed.
    pub population: String,
    /// Active people who meet their policy now.
    pub compliant_now: u64,
    /// And after the change.
    pub compliant_after: u64,
    /// How many would fall out of compliance.
    pub falling_out_count: u64,
    /// How many would come into it.
    pub coming_in_count: u64,
    /// Who would fall out (the first 200, by user name).
    pub falling_out: Vec<Change>,
    /// Who would come in (the first 200).
    pub coming_in: Vec<Change>,
}

/// The stored policies with `name` defined as `spec`.
fn with_change(mut policies: Policies, name: &str, spec: PopulationSpec) -> Policies {
    policies.populations.retain(|p| p.name != name);
    policies.populations.push(Population {
        name: name.to_owned(),
        spec,
    });
    policies
        .populations
        .sort_by(|a, b| (a.spec.priority, &a.name).cmp(&(b.spec.priority, &b.name)));
    policies
}

/// Everyone's coverage now and under the change; who moves.
pub async fn preview(state: &AppState, name: &str, spec: PopulationSpec) -> Result<Preview> {
    let now = state.now_ms();
    let stored = Policies::load(&state.db, state.settings.min_authenticators).await?;
    let changed = with_change(stored.clone(), name, spec);
    let (before, after) = tokio::try_join!(
        coverage::recompute_with(&state.db, now, &stored, Some(None)),
        coverage::recompute_with(&state.db, now, &changed, Some(None)),
    )?;
    let status_now: std::collections::HashMap<&str, Status> = before
        .people
        .iter()
        .map(|p| (p.person_id.as_str(), p.status))
        .collect();
    let ok = |s: Status| matches!(s, Status::Compliant | Status::UnderException);
    let mut falling_out = Vec::new();
    let mut coming_in = Vec::new();
    for p in &after.people {
        let Some(&was) = status_now.get(p.person_id.as_str()) else {
            continue;
        };
        let change = Change {
            person_id: p.person_id.clone(),
            user_name: p.user_name.clone(),
            now: was,
            after: p.status,
        };
        match (ok(was), ok(p.status)) {
            (true, false) => falling_out.push(change),
            (false, true) => coming_in.push(change),
            _ => {}
        }
    }
    for list in [&mut falling_out, &mut coming_in] {
        list.sort_by(|a, b| a.user_name.cmp(&b.user_name));
    }
    let count = |v: &Vec<Change>| u64::try_from(v.len()).unwrap_or(u64::MAX);
    let compliant =
        |r: &coverage::CoverageReport| r.by_status.get("compliant").copied().unwrap_or(0);
    Ok(Preview {
        population: name.to_owned(),
        compliant_now: compliant(&before),
        compliant_after: compliant(&after),
        falling_out_count: count(&falling_out),
        coming_in_count: count(&coming_in),
        falling_out: falling_out.into_iter().take(LISTED).collect(),
        coming_in: coming_in.into_iter().take(LISTED).collect(),
    })
}

/// `POST /api/v1/admin/populations/{name}/preview` (admin): what saving this definition would
/// do to everyone's coverage; nothing is saved.
#[utoipa::path(post, path = "/api/v1/admin/populations/{name}/preview", tag = "policy", request_body = PopulationSpec,
    params(("name" = String, Path, description = "population name")),
    responses((status = 200, body = Preview), crate::openapi::Invalid))]
pub async fn handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOnly>,
    Path(name): Path<String>,
    JsonBody(spec): JsonBody<PopulationSpec>,
) -> Result<Json<Preview>> {
    validate(&name, &spec)?;
    Ok(Json(preview(&state, &name, spec).await?))
}
