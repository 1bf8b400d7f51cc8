//! Offboarding with no dormant paths: when HR deactivates or deletes a person over SCIM, one
//! transaction revokes every credential and API token, cancels open tickets, enrolment sessions
//! and recoveries, unbinds their laptops, ends their exceptions, queues their keys for
//! reclaiming, and queues a signed revocation event for the IdP ([`crate::webhooks`]). Right
//! after it commits, the laptops left with nobody active bound are retired
//! ([`crate::devices::left_behind`]; shared workstations and reclaim stations stay). Each offboarding
//! records its time-to-revoke: SCIM request received → revocation committed → IdP webhook
//! acknowledged.
//!
//! The dormant-access report lists, for every inactive person, anything still live. Its normal
//! state is empty.

use crate::console::roles;
use crate::tokens;
use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Transaction};
use utoipa::ToSchema;

use crate::audit;
use crate::auth::{AnyStaff, Staff};
use crate::error::{Error, Result};
use crate::secrets::new_id;
use crate::state::AppState;
use crate::store::offboard as store;
use crate::webhooks::{self, Sink};

/// Routes for offboarding records and the dormant-access report.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/offboardings", get(list_handler))
        .route("/api/v1/admin/reports/dormant-access", get(dormant_handler))
        .route(
            "/api/v1/admin/reports/dormant-access.html",
            get(dormant_html_handler),
        )
}

/// What an offboarding did.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Summary {
    /// Credentials revoked.
    pub credentials_revoked: Vec<String>,
    /// Enrolment tickets cancelled.
    pub tickets_cancelled: u64,
    /// Enrolment sessions closed.
    pub sessions_closed: u64,
    /// Recoveries cancelled.
    pub recoveries_cancelled: u64,
    /// Laptops unbound.
    pub devices_unbound: u64,
    /// Exceptions ended.
    pub exceptions_revoked: u64,
    /// Keys queued for reclaiming at an IT reclaim station.
    pub keys_to_reclaim: u64,
    /// Their API tokens revoked (staff who leave).
    #[serde(default)]
    pub tokens_revoked: Vec<String>,
    /// Their sessions on the self-service pages ended, and one-time links to them voided.
    #[serde(default)]
    pub web_sessions_ended: u64,
    /// Laptops left with no active person bound, retired (reason `offboarded`) right after
    /// the offboarding committed.
    #[serde(default)]
    pub devices_retired: Vec<String>,
    /// Their console staff role taken away (staff who leave).
    #[serde(default)]
    pub staff_role_removed: bool,
}

/// The offboarding started inside a SCIM transaction; finish it with [`Pending::committed`]
/// after the commit.
#[derive(Debug)]
pub struct Pending {
    /// Offboarding id.
    pub id: String,
    /// The IdP event id.
    pub event_id: String,
    /// What was done.
    pub summary: Summary,
    /// Who left.
    pub person_id: String,
    /// Who offboarded them (audit actor).
    pub actor: String,
}

impl Pending {
    /// Record the commit time, retire the laptops the leaver left behind, and wake the webhook
    /// deliverer.
    pub async fn committed(self, state: &AppState) -> Result<()> {
        let at_us = state.clock.now_us();
        // The IdP's event is committed: the deliverer need not wait for the bookkeeping below.
        state.outbox_wake.notify_one();
        {
            let _turn = state.write_turn().await;
            store::set_committed(&state.db, &self.id, at_us).await?;
        }
        if let Err(e) = self.retire_laptops(state).await {
            // The laptops are unbound already; the dormant-access report lists them until an
            // admin retires them.
            tracing::error!(error = %e, offboarding = %self.id, "could not retire a leaver's laptops");
        }
        state.outbox_wake.notify_one();
        Ok(())
    }

    /// Retire the laptops left with nobody active bound ([`crate::devices::left_behind`]), in a
    /// transaction of its own right after the offboarding's: a signed request in flight holds
    /// its laptop's row and then waits for its person's, which the offboarding holds, so
    /// retiring inside the offboarding would deadlock with it.
    async fn retire_laptops(&self, state: &AppState) -> Result<()> {
        let now = state.now_ms();
        let mut tx = crate::db::begin(&state.db).await?;
        let mut retired = Vec::new();
        for device in crate::devices::left_behind(&mut tx, &self.person_id).await? {
            match crate::devices::retire_in(
                &mut tx,
                &device,
                crate::devices::OFFBOARDED,
                None,
                &self.actor,
                now,
            )
            .await
            {
                Ok(_) => retired.push(device),
                // Retired meanwhile (another leaver of a shared laptop, an admin): done.
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if !retired.is_empty() {
            let summary = Summary {
                devices_retired: retired,
                ..self.summary.clone()
            };
            let summary = serde_json::to_string(&summary).map_err(Error::Corrupt)?;
            store::set_summary(&mut tx, &self.id, &summary).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Retire every laptop that leavers left behind and that is still in service: the second step
/// of offboardings whose process stopped between the offboarding's commit and that step (a crash,
/// a restart, a failed transaction). Run at start-up; returns the laptops retired.
pub async fn retire_left_behind(state: &AppState) -> Result<Vec<String>> {
    let now = state.now_ms();
    let leavers = store::leavers_with_laptops_left(&state.db).await?;
    let mut retired = Vec::new();
    for person in &leavers {
        let mut tx = crate::db::begin(&state.db).await?;
        for device in crate::devices::left_behind(&mut tx, person).await? {
            match crate::devices::retire_in(
                &mut tx,
                &device,
                crate::devices::OFFBOARDED,
                Some("left behind by a leaver; retired when the service started"),
                "service",
                now,
            )
            .await
            {
                Ok(_) => retired.push(device),
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
    }
    if !retired.is_empty() {
        tracing::warn!(laptops = ?retired, "retired laptops that leavers left behind");
        state.outbox_wake.notify_one();
    }
    Ok(retired)
}

/// Revoke everything of `person_id` inside `tx` (the SCIM change's transaction).
pub async fn run(
    tx: &mut Transaction<'_, Any>,
    state: &AppState,
    person_id: &str,
    trigger: &str,
    actor: &str,
    received_at_us: i64,
    now: i64,
) -> Result<Pending> {
    crate::db::lock_person(tx, person_id).await?;
    let names = store::leaver_names(tx, person_id).await?;
    let mut summary = Summary::default();

    let personal = {
        let (_, policy) = crate::enrol::policy_for(state, tx, person_id).await?;
        policy.personal_keys
    };
    for c in store::live_credentials(tx, person_id).await? {
        if c.enrolled_via == "browser" {
            // A laptop's or a phone's passkey lives in that device, not in a key IT can take
            // back: revoking it here (and telling the IdP) is the whole of it.
            summary.credentials_revoked.push(c.id);
            continue;
        }
        let key_info: serde_json::Value =
            serde_json::from_str(&c.key_info).map_err(Error::Corrupt)?;
        let key_id = key_info
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let reclaim = store::NewReclaim {
            id: &new_id(),
            person_id,
            credential_id: &c.id,
            key_id,
            aaguid: &c.aaguid,
            // A key IT issued is the organisation's, whatever the population says of keys.
            ownership: if personal && !crate::store::issuing::was_issued(tx, &c.id).await? {
                "personal"
            } else {
                "organisation"
            },
        };
        store::insert_reclaim(tx, &reclaim, now).await?;
        summary.keys_to_reclaim += 1;
        summary.credentials_revoked.push(c.id);
    }
    store::revoke_credentials(tx, person_id, &format!("offboarded ({trigger})"), now).await?;
    summary.tickets_cancelled = store::cancel_tickets(tx, person_id, now).await?;
    summary.sessions_closed = store::close_sessions(tx, person_id, now).await?;
    let open = store::open_recoveries(tx, person_id).await?;
    for id in &open {
        crate::recovery::cancel_in(tx, id, "person offboarded", now).await?;
    }
    summary.recoveries_cancelled = u64::try_from(open.len()).unwrap_or(u64::MAX);
    summary.devices_unbound = store::unbind_devices(tx, person_id, now).await?;
    summary.web_sessions_ended =
        crate::selfservice::session::end_all_of(tx, person_id, "offboarded", now).await?;
    store::void_web_links(tx, person_id, now).await?;
    let reason = format!("offboarded ({trigger})");
    summary.tokens_revoked = tokens::revoke_person_in(tx, person_id, actor, &reason, now).await?;
    summary.exceptions_revoked = store::revoke_exceptions(tx, person_id, now).await?;
    summary.staff_role_removed = roles::remove_in(tx, person_id, actor, &reason, now).await?;

    let event_id = webhooks::enqueue(
        tx,
        Sink::Idp,
        "person.offboarded",
        Some(person_id),
        serde_json::json!({
            "person": {"id": person_id, "userName": names.user_name, "externalId": names.external_id},
            "trigger": trigger,
            "revoked_credential_ids": summary.credentials_revoked,
            "sign_out_everywhere": true,
        }),
        now,
    )
    .await?;
    let id = new_id();
    let summary_json = serde_json::to_string(&summary).map_err(Error::Corrupt)?;
    store::insert_offboarding(
        tx,
        &store::NewOffboarding {
            id: &id,
            person_id,
            trigger,
            received_at_us,
            event_id: &event_id,
            summary: &summary_json,
        },
    )
    .await?;
    audit::record(
        tx,
        now,
        actor,
        "person.offboarded",
        person_id,
        serde_json::json!({"offboarding_id": id, "trigger": trigger, "event_id": event_id, "summary": summary}),
    )
    .await?;
    Ok(Pending {
        id,
        event_id,
        summary,
        person_id: person_id.to_owned(),
        actor: actor.to_owned(),
    })
}

/// One offboarding with its time-to-revoke.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OffboardingView {
    /// Id.
    pub id: String,
    /// Who left.
    pub person_id: String,
    /// `scim.active_false` or `scim.delete`.
    pub trigger: String,
    /// The IdP revocation event.
    pub event_id: String,
    /// SCIM request received → revocation committed, in milliseconds.
    pub revoke_ms: Option<f64>,
    /// SCIM request received → IdP webhook acknowledged, in milliseconds.
    pub acknowledged_ms: Option<f64>,
    /// What was done.
    pub summary: Summary,
}

/// Every offboarding, oldest first.
pub async fn load(db: &AnyPool) -> Result<Vec<OffboardingView>> {
    let ms = |from: i64, to: Option<i64>| to.map(|t| (t - from) as f64 / 1000.0);
    store::offboardings(db)
        .await?
        .into_iter()
        .map(|r| {
            Ok(OffboardingView {
                revoke_ms: ms(r.received_at_us, r.committed_at_us),
                acknowledged_ms: ms(r.received_at_us, r.acked_at_us),
                summary: serde_json::from_str(&r.summary).map_err(Error::Corrupt)?,
                id: r.id,
                person_id: r.person_id,
                trigger: r.trigger_kind,
                event_id: r.event_id,
            })
        })
        .collect()
}

/// `GET /api/v1/admin/offboardings` (admin, help desk, auditor): offboardings and their time-to-revoke.
#[utoipa::path(get, path = "/api/v1/admin/offboardings", tag = "offboarding", responses((status = 200, body = [OffboardingView])))]
pub async fn list_handler(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<Vec<OffboardingView>>> {
    Ok(Json(load(&state.db).await?))
}

/// What is still live for one inactive person.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DormantPerson {
    /// Person id.
    pub person_id: String,
    /// userName.
    pub user_name: String,
    /// Credentials not revoked.
    pub credentials: Vec<String>,
    /// Enrolment tickets still redeemable.
    pub tickets: Vec<String>,
    /// Enrolment sessions still open.
    pub sessions: Vec<String>,
    /// Recoveries still open.
    pub recoveries: Vec<String>,
    /// Laptops still bound to them.
    pub devices: Vec<String>,
    /// Exceptions still in force.
    pub exceptions: Vec<String>,
    /// Their keys not yet reclaimed (key ids).
    pub keys_not_reclaimed: Vec<String>,
    /// API tokens issued to them, neither revoked nor expired.
    #[serde(default)]
    pub tokens: Vec<String>,
    /// Laptops in service they were bound to that nobody active is bound to any more.
    #[serde(default)]
    pub laptops_left: Vec<String>,
    /// Sessions on the self-service pages still open, and one-time links still usable.
    #[serde(default)]
    pub web_sessions: Vec<String>,
}

/// The dormant-access report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct DormantReport {
    /// When it was computed (unix ms).
    pub generated_at_ms: i64,
    /// Inactive people checked.
    pub inactive_people: u64,
    /// Inactive people with anything still live; normally empty.
    pub people: Vec<DormantPerson>,
}

/// Compute the dormant-access report.
pub async fn dormant(db: &AnyPool, now: i64) -> Result<DormantReport> {
    let inactive = store::inactive_people(db).await?;
    let mut people: BTreeMap<String, DormantPerson> = BTreeMap::new();
    for (what, sql) in store::DORMANT_CHECKS {
        for r in store::dormant_items(db, sql, now).await? {
            let entry = people
                .entry(r.pid.clone())
                .or_insert_with(|| DormantPerson {
                    person_id: r.pid,
                    ..Default::default()
                });
            entry.user_name = r.user_name;
            let item = r.item;
            match what {
                "credentials" => entry.credentials.push(item),
                "tickets" => entry.tickets.push(item),
                "sessions" => entry.sessions.push(item),
                "recoveries" => entry.recoveries.push(item),
                "devices" => entry.devices.push(item),
                "exceptions" => entry.exceptions.push(item),
                "tokens" => entry.tokens.push(item),
                "laptops_left" => entry.laptops_left.push(item),
                "web_sessions" | "web_links" => entry.web_sessions.push(item),
                _ => entry.keys_not_reclaimed.push(item),
            }
        }
    }
    Ok(DormantReport {
        generated_at_ms: now,
        inactive_people: u64::try_from(inactive).unwrap_or(0),
        people: people.into_values().collect(),
    })
}

/// `GET /api/v1/admin/reports/dormant-access` (admin, help desk, auditor).
#[utoipa::path(get, path = "/api/v1/admin/reports/dormant-access", tag = "offboarding", responses((status = 200, body = DormantReport)))]
pub async fn dormant_handler(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<Json<DormantReport>> {
    Ok(Json(dormant(&state.db, state.now_ms()).await?))
}

/// The dormant-access report as text for the terminal.
pub fn render(report: &DormantReport) -> String {
    let mut out = format!(
        "dormant access: {} inactive people checked, {} with access still live\n",
        report.inactive_people,
        report.people.len()
    );
    for p in &report.people {
        out.push_str(&format!("- {} ({})\n", p.user_name, p.person_id));
        for (what, items) in [
            ("credentials", &p.credentials),
            ("tickets", &p.tickets),
            ("enrolment sessions", &p.sessions),
            ("recoveries", &p.recoveries),
            ("laptops bound", &p.devices),
            ("exceptions", &p.exceptions),
            ("keys not reclaimed", &p.keys_not_reclaimed),
            ("API tokens", &p.tokens),
            ("laptops left in service", &p.laptops_left),
            ("self-service sessions and links", &p.web_sessions),
        ] {
            if !items.is_empty() {
                out.push_str(&format!("    {what}: {}\n", items.join(", ")));
            }
        }
    }
    out
}

/// `GET /api/v1/admin/reports/dormant-access.html` (admin, help desk, auditor): the report as a page.
#[utoipa::path(get, path = "/api/v1/admin/reports/dormant-access.html", tag = "offboarding",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
pub async fn dormant_html_handler(
    State(state): State<AppState>,
    _caller: Staff<AnyStaff>,
) -> Result<axum::response::Response> {
    use axum::response::IntoResponse as _;
    let report = dormant(&state.db, state.now_ms()).await?;
    let offboardings = load(&state.db).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        render_html(&report, &offboardings),
    )
        .into_response())
}

/// The dormant-access report and recent offboardings as a self-contained page.
pub fn render_html(report: &DormantReport, offboardings: &[OffboardingView]) -> String {
    use crate::csf::esc;
    let mut s = crate::csf::page_head("Keywarden — dormant access");
    s.push_str(&format!(
        "<h1>Dormant access</h1><div class=meta>Generated {}. {} inactive people checked: {}</div>",
        esc(&crate::secrets::fmt_time(report.generated_at_ms)),
        report.inactive_people,
        if report.people.is_empty() {
            "<span class=ok>nothing is still live for anyone who left.</span>".to_owned()
        } else {
            match report.people.len() {
                1 => "<span class=bad>1 person who left still has live access.</span>".to_owned(),
                n => format!("<span class=bad>{n} people who left still have live access.</span>"),
            }
        }
    ));
    if !report.people.is_empty() {
        s.push_str("<section><h2>Still live</h2><table><tr><th>Person</th><th>Credentials</th><th>Tickets</th><th>Sessions</th><th>Recoveries</th><th>Laptops</th><th>Exceptions</th><th>Keys not reclaimed</th><th>API tokens</th><th>Laptops left in service</th><th>Self-service sessions</th></tr>");
        for p in &report.people {
            let cell = |v: &Vec<String>| {
                if v.is_empty() {
                    "<span class=none>none</span>".to_owned()
                } else {
                    format!("<b>{}</b>", v.len())
                }
            };
            s.push_str(&format!(
                "<tr><td>{}<br><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.user_name), esc(&p.person_id), cell(&p.credentials), cell(&p.tickets), cell(&p.sessions),
                cell(&p.recoveries), cell(&p.devices), cell(&p.exceptions), cell(&p.keys_not_reclaimed),
                cell(&p.tokens), cell(&p.laptops_left), cell(&p.web_sessions)
            ));
        }
        s.push_str("</table></section>");
    }
    s.push_str("<section><h2>Offboardings</h2><table><tr><th>Person</th><th>Trigger</th><th>Revoked in</th><th>IdP acknowledged in</th><th>Credentials revoked</th><th>Keys to reclaim</th></tr>");
    if offboardings.is_empty() {
        s.push_str("<tr><td colspan=6 class=none>no offboardings yet</td></tr>");
    }
    let ms = |v: Option<f64>| {
        v.map_or("<span class=bad>not yet</span>".to_owned(), |v| {
            format!("{v:.1} ms")
        })
    };
    for o in offboardings.iter().rev().take(50) {
        s.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&o.person_id), esc(&o.trigger), ms(o.revoke_ms), ms(o.acknowledged_ms),
            o.summary.credentials_revoked.len(), o.summary.keys_to_reclaim
        ));
    }
    s.push_str("</table></section></body></html>");
    s
}
