//! The console's pages about people, laptops, policy and staff. Each takes [`Console`] with the
//! roles of the API endpoint whose data it shows, so a role sees in the console exactly what the
//! API lets it read; actions on the pages are forms the script sends to the API itself.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};

use super::access::{with, Console};
use super::html::{
    action_button, age, badge, csv, filters, page, pager, url_encode, when, ListQuery, LIST_PAGE,
};
use super::{chart, snapshots};
use keywarden_protocol::ErrorCode;

use crate::auth::{AdminOrAuditor, AnyStaff};
use crate::coverage::{self, PersonCoverage, Status};
use crate::csf::esc;
use crate::error::{OrNotFound as _, Result};
use crate::state::AppState;

/// `GET /console/sign-in`.
pub async fn sign_in() -> Html<String> {
    page(
        "Sign in",
        "",
        None,
        "<h1>Sign in to the Keywarden console</h1>\
         <p>Staff sign in with their own passkey: a security key or a passkey on this device. There are no passwords.</p>\
         <p><button type=\"button\" class=\"primary\" data-action=\"sign-in\">Sign in with a passkey</button></p>\
         <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>",
    )
}

/// `GET /console/setup` (the link's code stays in the fragment: never sent to a server).
pub async fn setup() -> Html<String> {
    page(
        "First admin",
        "",
        None,
        "<h1>Set up the console</h1>\
         <p>This one-time link makes you the console's first admin. Name yourself, then create a passkey \
         (a security key or this device's). Afterwards you give staff roles to people from the HR feed.</p>\
         <form id=\"setup\" data-action=\"setup\">\
         <p><label for=\"user_name\">Your user name (work email)</label>\
         <input id=\"user_name\" name=\"user_name\" autocomplete=\"username\" required></p>\
         <p><label for=\"display_name\">Your name</label>\
         <input id=\"display_name\" name=\"display_name\" autocomplete=\"name\" required></p>\
         <p><button type=\"submit\" class=\"primary\">Create my passkey</button></p></form>\
         <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>",
    )
}

fn exposed(status: Status) -> bool {
    snapshots::is_below(status)
}

fn tile(label: &str, value: String, class: &str, id: &str) -> String {
    format!(
        "<div class=\"tile {class}\" id=\"{id}\"><span class=\"value\">{value}</span><span class=\"label\">{label}</span></div>"
    )
}

/// `GET /console`: who is exposed now, and is it getting better.
pub async fn overview(State(state): State<AppState>, caller: Console<AnyStaff>) -> Response {
    with(caller, |caller| async move {
        let main = overview_main(&state, state.now_ms()).await?;
        Ok(page("Overview", "/console", Some(&caller), main.as_str()).into_response())
    })
    .await
}

/// How old the rendered overview may be before a request renders it again (the service's
/// timer renders it this often, so requests find it ready).
pub const OVERVIEW_MAX_AGE_MS: i64 = 60_000;

/// A render slower than this is kept for the next minute's requests; a faster one is done
/// again for each request, so a small organisation always sees the moment's numbers.
const SLOW_RENDER: std::time::Duration = std::time::Duration::from_millis(100);

/// The overview's content at `now`: over a large directory the one rendered in the last
/// minute, else rendered now (what the benchmark times per request).
pub async fn overview_main(state: &AppState, now: i64) -> Result<Arc<String>> {
    if let Some(r) = state.overview.read().await.as_ref() {
        if r.slow && r.at <= now && now - r.at < OVERVIEW_MAX_AGE_MS {
            return Ok(r.html.clone());
        }
    }
    refresh_overview(state, now).await
}

/// Render the overview from the database, and keep it for the next minute's requests when
/// that was slow.
pub async fn refresh_overview(state: &AppState, now: i64) -> Result<Arc<String>> {
    let started = std::time::Instant::now();
    let html = Arc::new(render_overview(state, now).await?);
    let slow = started.elapsed() >= SLOW_RENDER;
    *state.overview.write().await = Some(crate::state::Rendered {
        at: now,
        html: html.clone(),
        slow,
    });
    Ok(html)
}

async fn render_overview(state: &AppState, now: i64) -> Result<String> {
    {
        let db = &state.db;
        let min = state.settings.min_authenticators;
        let below = [
            Status::BelowMinimum,
            Status::SingleDeviceClass,
            Status::NoAuthenticator,
        ];
        debug_assert!(below.iter().all(|s| exposed(*s)));
        // Independent reads, side by side (both databases serve concurrent readers).
        let ((report, longest), days, dormant, offboardings, exceptions) = tokio::try_join!(
            coverage::overview(db, now, min, &below, 25),
            snapshots::series(db, now, 30),
            crate::offboard::dormant(db, now),
            crate::offboard::load(db),
            crate::exceptions::load(db, now, false),
        )?;
        let listed: Vec<&str> = longest.iter().map(|p| p.person_id.as_str()).collect();
        let since: HashMap<String, i64> = crate::store::console::below_since_of(db, &listed)
            .await?
            .into_iter()
            .collect();
        let of = |s: Status| {
            usize::try_from(report.by_status.get(s.as_str()).copied().unwrap_or(0))
                .unwrap_or(usize::MAX)
        };
        let people: usize = report
            .by_status
            .values()
            .map(|n| usize::try_from(*n).unwrap_or(usize::MAX))
            .sum();
        let exposed_count: usize = below.iter().map(|s| of(*s)).sum();
        let none = of(Status::NoAuthenticator);
        let single = of(Status::SingleDeviceClass);
        let compliant = of(Status::Compliant);
        let failing_laptops: u64 = report
            .posture_by_population
            .iter()
            .map(|p| p.non_compliant)
            .sum();
        let soon = now + 14 * 86_400_000;
        let expiring: Vec<_> = exceptions
            .iter()
            .filter(|e| e.revoked_at_ms.is_none() && e.expires_at_ms <= soon)
            .collect();
        let share = (compliant * 100).checked_div(people).unwrap_or(100);
        let mut main = format!(
            "<h1>Overview</h1><section aria-labelledby=\"now\"><h2 id=\"now\">Now</h2><p class=\"muted\">As of {}.</p><div class=\"tiles\">{}{}{}{}{}{}</div></section>",
            crate::secrets::fmt_time(now),
            tile("people meet their policy", format!("{share} %"), if share == 100 { "ok" } else { "" }, "tile-compliant"),
            tile("people exposed (below policy)", exposed_count.to_string(), if exposed_count == 0 { "ok" } else { "bad" }, "tile-exposed"),
            tile("with one device class only", single.to_string(), if single == 0 { "ok" } else { "bad" }, "tile-single"),
            tile("with no authenticator", none.to_string(), if none == 0 { "ok" } else { "bad" }, "tile-none"),
            tile("people with dormant access (must be 0)", dormant.people.len().to_string(), if dormant.people.is_empty() { "ok" } else { "bad" }, "tile-dormant"),
            tile("laptops failing posture", failing_laptops.to_string(), if failing_laptops == 0 { "ok" } else { "bad" }, "tile-laptops"),
        );
        main.push_str(&format!(
            "<section aria-labelledby=\"trend\"><h2 id=\"trend\">People below policy, last 30 days</h2>{}{}</section>",
            chart::burn_down(&days),
            chart::table(&days)
        ));
        let rows: String = longest
            .iter()
            .map(|p| {
                // Marks are refreshed hourly (and at start): no mark yet means it began since.
                let below = since
                    .get(&p.person_id)
                    .map_or_else(|| "< 1 h".to_owned(), |s| age(now, *s));
                person_row(p, &below)
            })
            .collect();
        main.push_str(&format!(
            "<section aria-labelledby=\"exposed\"><h2 id=\"exposed\">Exposed people ({exposed_count} of {people})</h2>{}</section>",
            if rows.is_empty() {
                "<p class=\"ok\">Nobody is below policy.</p>".to_owned()
            } else {
                format!(
                    "<table id=\"exposed-table\"><thead><tr><th scope=\"col\">Person</th><th scope=\"col\">Population</th><th scope=\"col\">Status</th><th scope=\"col\">Active authenticators</th><th scope=\"col\">Below policy for</th></tr></thead><tbody>{rows}</tbody></table>\
                     <p><a href=\"/console/people?exposed=1\">All exposed people</a></p>"
                )
            }
        ));
        let pops: String = report
            .populations
            .iter()
            .map(|p| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0} %</td></tr>",
                    esc(&p.name),
                    p.people,
                    p.compliant,
                    p.share_compliant * 100.0
                )
            })
            .collect();
        main.push_str(&format!(
            "<section aria-labelledby=\"pops\"><h2 id=\"pops\">By population</h2><table><thead><tr><th scope=\"col\">Population</th><th scope=\"col\">People</th><th scope=\"col\">Compliant</th><th scope=\"col\">Share</th></tr></thead><tbody>{pops}</tbody></table></section>"
        ));
        let dormant_list: String = dormant
            .people
            .iter()
            .map(|d| format!("<li>{}</li>", esc(&d.user_name)))
            .collect();
        let revoke_times: Vec<f64> = offboardings.iter().filter_map(|o| o.revoke_ms).collect();
        let slowest = revoke_times.iter().copied().fold(0.0_f64, f64::max);
        main.push_str(&format!(
            "<section aria-labelledby=\"leavers\"><h2 id=\"leavers\">Leavers and exceptions</h2>\
             <p>Dormant access: {}</p><p>Offboardings: {} (slowest time to revoke {:.0} ms).</p>\
             <p>Exceptions expiring within 14 days or expired: {}.</p></section>",
            if dormant_list.is_empty() {
                "none (every leaver's access is closed).".to_owned()
            } else {
                format!("<ul class=\"bad\">{dormant_list}</ul>")
            },
            offboardings.len(),
            slowest,
            expiring.len()
        ));
        Ok(main)
    }
}

/// `GET /console/people`: everyone with their coverage, searched and filtered on the server,
/// fifty a page, or every match as CSV.
pub async fn people(
    State(state): State<AppState>,
    caller: Console<AnyStaff>,
    Query(q): Query<ListQuery>,
) -> Response {
    with(caller, |caller| async move {
        let now = state.now_ms();
        let report =
            coverage::compute(&state.db, now, state.settings.min_authenticators, Some(None))
                .await?;
        let needle = q.q.trim().to_lowercase();
        let only_exposed = q.exposed.as_deref() == Some("1");
        let matches: Vec<&PersonCoverage> = report
            .people
            .iter()
            .filter(|p| {
                needle.is_empty()
                    || p.user_name.to_lowercase().contains(&needle)
                    || p.population.to_lowercase().contains(&needle)
            })
            .filter(|p| q.state.as_deref().is_none_or(|s| s.is_empty() || p.status.as_str() == s))
            .filter(|p| !only_exposed || exposed(p.status))
            .collect();
        let classes_of = |p: &PersonCoverage, sep: &str| {
            let classes: Vec<&str> = p.device_classes.iter().map(|c| c.as_str()).collect();
            classes.join(sep)
        };
        if q.format.as_deref() == Some("csv") {
            let rows = matches.iter().map(|p| {
                vec![
                    p.user_name.clone(),
                    p.population.clone(),
                    p.status.as_str().to_owned(),
                    p.active_authenticators.to_string(),
                    classes_of(p, " "),
                ]
            });
            let header = "user_name,population,status,active_authenticators,device_classes";
            return Ok(csv("people", header, rows));
        }
        let pages = matches.len().div_ceil(LIST_PAGE).max(1);
        let current = q.page.unwrap_or(1).clamp(1, pages);
        let rows: String = matches
            .iter()
            .skip((current - 1) * LIST_PAGE)
            .take(LIST_PAGE)
            .map(|p| person_row(p, &classes_of(p, ", ")))
            .collect();
        let statuses = [
            ("", "any status"),
            ("compliant", "compliant"),
            ("below_minimum", "below minimum"),
            ("single_device_class", "one device class"),
            ("no_authenticator", "no authenticator"),
            ("under_exception", "under exception"),
        ];
        let exposed_box = format!(
            "<label><input type=\"checkbox\" name=\"exposed\" value=\"1\"{}> only exposed</label>",
            if only_exposed { " checked" } else { "" }
        );
        let filters = filters("/console/people", "user name or population", &q.q, &statuses, q.state.as_deref(), &exposed_box);
        let link = |page: usize| {
            format!(
                "/console/people?q={}&amp;state={}&amp;exposed={}&amp;page={page}",
                esc(&url_encode(&q.q)),
                esc(q.state.as_deref().unwrap_or("")),
                if only_exposed { "1" } else { "" }
            )
        };
        let pager = pager(current, matches.len(), LIST_PAGE, "people", link);
        let main = format!(
            "<h1>People</h1>{filters}\
             <section aria-label=\"People found\" tabindex=\"0\"><table id=\"people-table\"><thead><tr><th scope=\"col\">Person</th><th scope=\"col\">Population</th><th scope=\"col\">Status</th><th scope=\"col\">Active authenticators</th><th scope=\"col\">Device classes</th></tr></thead><tbody>{rows}</tbody></table></section>{pager}",
        );
        Ok(page("People", "/console/people", Some(&caller), &main).into_response())
    })
    .await
}

/// A person's row in a list: name (linking to their page), population, status, active
/// authenticators, and `last` (already escaped).
fn person_row(p: &PersonCoverage, last: &str) -> String {
    format!(
        "<tr><td><a href=\"/console/people/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(&p.person_id),
        esc(&p.user_name),
        esc(&p.population),
        badge(p.status.as_str()),
        p.active_authenticators,
        esc(last),
    )
}

/// `GET /console/people/{id}`: one person: status, authenticators, laptops, recoveries,
/// history, and the actions the caller's role has.
pub async fn person(
    State(state): State<AppState>,
    caller: Console<AnyStaff>,
    Path(id): Path<String>,
) -> Response {
    with(caller, |caller| async move {
        let db = &state.db;
        let page_data = crate::store::console::person_page(db, &id)
            .await?
            .or_not_found(ErrorCode::PersonUnknown, format!("no person with id {id}"))?;
        let crate::store::console::PersonPage {
            person: p,
            laptops,
            recoveries,
            history,
            tickets,
        } = page_data;
        let creds = crate::store::credentials::of_person(db, &id).await?;
        // Keys IT issued: shown by where they stand in their activation.
        let issued = crate::store::issuing::of_person(db, &id).await?;
        let status_of = |c: &keywarden_protocol::CredentialView| -> String {
            match issued.iter().find(|k| k.credential_id == c.id) {
                Some(k) if c.status != "revoked" && crate::issuing::issue_state(k) != "active" => {
                    crate::issuing::issue_state(k).to_owned()
                }
                _ => c.status.clone(),
            }
        };
        let key_policy = {
            let mut tx = db.begin().await?;
            let (_, policy) = crate::enrol::policy_for(&state, &mut tx, &id).await?;
            tx.rollback().await?;
            policy.key_policy()
        };
        let may_act = matches!(caller.role, crate::auth::Role::Admin | crate::auth::Role::Helpdesk);
        let csrf_ok = p.active == 1 && may_act;
        let cred_rows: String = creds
            .iter()
            .map(|c| {
                let action = if csrf_ok && c.status == "active" {
                    format!(
                        "<form data-api=\"POST /api/v1/admin/credentials/{}/suspend\" data-done=\"reload\" class=\"inline\">\
                         <label for=\"r-{0}\" class=\"visually-hidden\">Why</label><input id=\"r-{0}\" name=\"reason\" required placeholder=\"why, e.g. reported lost by phone\">\
                         <button type=\"submit\">Suspend</button></form>",
                        esc(&c.id)
                    )
                } else {
                    String::new()
                };
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                    esc(c.name.as_deref().unwrap_or(c.model.as_deref().unwrap_or("(unnamed)"))),
                    esc(&c.device_class),
                    esc(&c.aaguid),
                    badge(&status_of(c)),
                    when(Some(c.created_at_ms)),
                    on_key_cell(c.on_key.as_ref(), key_policy.as_ref()),
                )
            })
            .collect();
        let laptop_rows: String = laptops
            .iter()
            .map(|l| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&l.hostname),
                    when(l.last_report_at),
                    if l.retired_at.is_some() { "retired" } else { "in service" }
                )
            })
            .collect();
        let now = state.now_ms();
        let ticket_rows: String = tickets
            .iter()
            .map(|t| {
                let state = match (t.redeemed_at, t.cancelled_at) {
                    (Some(at), _) => format!("used {}", when(Some(at))),
                    (None, Some(at)) => format!("cancelled {}", when(Some(at))),
                    (None, None) if t.expires_at <= now => "expired unused".to_owned(),
                    (None, None) => "open".to_owned(),
                };
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{state}</td></tr>",
                    when(Some(t.created_at)),
                    esc(&t.created_by),
                    when(Some(t.expires_at))
                )
            })
            .collect();
        let recovery_rows: String = recoveries
            .iter()
            .map(|r| {
                let approve = if may_act && r.state == "awaiting_approval" {
                    format!(
                        "<form data-api=\"POST /api/v1/admin/recoveries/{}/approvals\" data-done=\"reload\" class=\"inline\">{}<button type=\"submit\">Approve</button></form>",
                        esc(&r.id),
                        proofing_fields(&format!("a-{}", r.id))
                    )
                } else {
                    String::new()
                };
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{approve}</td></tr>",
                    esc(&r.kind),
                    esc(&r.state),
                    when(Some(r.created_at)),
                    when(Some(r.expires_at))
                )
            })
            .collect();
        let history_rows: String = history
            .iter()
            .map(|h| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                    when(Some(h.at)),
                    esc(&h.action),
                    esc(&h.actor)
                )
            })
            .collect();
        let source = match p.source.as_str() {
            "scim" => "from the HR feed",
            "setup" => "the first admin (set up with the console's setup link, not from the HR feed)",
            _ => "created by hand (not from the HR feed)",
        };
        let mut actions = String::new();
        if csrf_ok {
            actions.push_str(&format!(
                "<section aria-labelledby=\"act\"><h2 id=\"act\">Actions</h2>\
                 <form data-api=\"POST /api/v1/admin/enrolment-tickets\" data-done=\"show-link\" class=\"card\">\
                 <input type=\"hidden\" name=\"person_id\" value=\"{0}\">\
                 <h3>Enrolment ticket</h3><p>A one-time link for {1}'s first keys (10 minutes). They are told.</p>\
                 <button type=\"submit\">Issue ticket</button></form>\
                 <form data-api=\"POST /api/v1/admin/recoveries\" data-done=\"show-recovery\" class=\"card\">\
                 <input type=\"hidden\" name=\"person_id\" value=\"{0}\">\
                 <h3>Recovery</h3><p>After proofing who they are: with a key left they confirm with it; with none, a second person approves.</p>\
                 {2}<button type=\"submit\">Start recovery</button></form>\
                 <output id=\"result\" class=\"result\" aria-live=\"polite\"></output></section>",
                esc(&p.id),
                esc(&p.display_name),
                proofing_fields("r")
            ));
        }
        if caller.role == crate::auth::Role::Admin && p.active == 1 {
            let keys: String = creds
                .iter()
                .filter(|c| c.status == "active")
                .map(|c| {
                    format!(
                        "<option value=\"{}\">{}</option>",
                        esc(&c.id),
                        esc(c.name.as_deref().unwrap_or(c.model.as_deref().unwrap_or(&c.device_class)))
                    )
                })
                .collect();
            actions.push_str(&format!(
                "<section aria-labelledby=\"exc\"><h2 id=\"exc\">Exception</h2>\
                 <form data-api=\"POST /api/v1/admin/exceptions\" data-numbers=\"days\" data-done=\"reload\" class=\"card\">\
                 <input type=\"hidden\" name=\"person_id\" value=\"{}\">\
                 <p>Exempt them from the authenticator minimum for a while, or record a break-glass account whose key sits in a safe. Both expire.</p>\
                 <label for=\"x-kind\">Kind</label><select id=\"x-kind\" name=\"kind\"><option value=\"two_authenticator_rule\">exempt from the minimum</option><option value=\"break_glass\">break-glass account</option></select>\
                 <label for=\"x-key\">Break-glass key</label><select id=\"x-key\" name=\"credential_id\"><option value=\"\">(none)</option>{keys}</select>\
                 <label for=\"x-owner\">Owner</label><input id=\"x-owner\" name=\"owner\" required>\
                 <label for=\"x-reason\">Reason</label><input id=\"x-reason\" name=\"reason\" required>\
                 <label for=\"x-days\">Days</label><input id=\"x-days\" name=\"days\" type=\"number\" min=\"1\" max=\"365\" value=\"30\">\
                 <button type=\"submit\">Grant exception</button></form></section>",
                esc(&p.id)
            ));
        }
        if caller.role == crate::auth::Role::Admin && p.source == "scim" && p.active == 1 {
            actions.push_str(&format!(
                "<section aria-labelledby=\"role\"><h2 id=\"role\">Staff role</h2>\
                 <form data-api=\"PUT /api/v1/admin/staff/{}\" data-done=\"reload\" class=\"inline\">\
                 <label for=\"grant-role\">Role</label><select id=\"grant-role\" name=\"role\">\
                 <option value=\"helpdesk\">help desk</option><option value=\"auditor\">auditor</option><option value=\"admin\">admin</option></select>\
                 <button type=\"submit\">Grant</button></form></section>",
                esc(&p.id)
            ));
        }
        let main = format!(
            "<h1>{}</h1><p class=\"muted\">{} · {} · {}{}</p>\
             <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>{actions}\
             <section aria-labelledby=\"auths\"><h2 id=\"auths\">Authenticators</h2><table id=\"credentials\"><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Class</th><th scope=\"col\">AAGUID</th><th scope=\"col\">Status</th><th scope=\"col\">Enrolled</th><th scope=\"col\">On the key</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>{cred_rows}</tbody></table></section>\
             <section aria-labelledby=\"laps\"><h2 id=\"laps\">Laptops</h2><table><thead><tr><th scope=\"col\">Host</th><th scope=\"col\">Last check-in</th><th scope=\"col\">State</th></tr></thead><tbody>{laptop_rows}</tbody></table></section>\
             <section aria-labelledby=\"tix\"><h2 id=\"tix\">Enrolment tickets</h2><table id=\"tickets\"><thead><tr><th scope=\"col\">Issued</th><th scope=\"col\">By</th><th scope=\"col\">Expires</th><th scope=\"col\">State</th></tr></thead><tbody>{ticket_rows}</tbody></table></section>\
             <section aria-labelledby=\"recs\"><h2 id=\"recs\">Recoveries</h2><table id=\"recoveries\"><thead><tr><th scope=\"col\">Kind</th><th scope=\"col\">State</th><th scope=\"col\">Issued</th><th scope=\"col\">Expires</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>{recovery_rows}</tbody></table></section>\
             <section aria-labelledby=\"hist\"><h2 id=\"hist\">History</h2><table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">What</th><th scope=\"col\">Who</th></tr></thead><tbody>{history_rows}</tbody></table></section>",
            esc(&p.display_name),
            esc(&p.user_name),
            if p.active == 1 { "active" } else { "inactive (left)" },
            source,
            p.role.as_deref().map(|r| format!(" · staff role: {}", esc(r))).unwrap_or_default(),
        );
        Ok(page(&p.display_name, "/console/people", Some(&caller), &main).into_response())
    })
    .await
}

/// What a key enforced itself when enrolled, and what of the population's on-key policy it
/// lacks.
fn on_key_cell(
    on_key: Option<&keywarden_protocol::OnKeySettings>,
    policy: Option<&keywarden_protocol::KeyPolicy>,
) -> String {
    let Some(k) = on_key else {
        return "not recorded".to_owned();
    };
    let mut parts = vec![k.min_pin_length.map_or_else(
        || "minimum PIN unknown".to_owned(),
        |n| format!("PIN of at least {n}"),
    )];
    if k.always_uv == Some(true) {
        parts.push("PIN for every use".to_owned());
    }
    let mut cell = esc(&parts.join(", "));
    let unmet = policy.map(|p| k.unmet(p)).unwrap_or_default();
    if !unmet.is_empty() {
        cell.push_str(&format!(
            " <strong class=\"below-policy\">below policy: {}</strong>",
            esc(&unmet.join("; "))
        ));
    }
    cell
}

fn proofing_fields(prefix: &str) -> String {
    format!(
        "<label for=\"{prefix}-method\">Identity proofed by</label><select id=\"{prefix}-method\" name=\"proofing.method\">\
         <option value=\"in_person_id_document\">ID document, in person</option>\
         <option value=\"video_call_id_document\">ID document, video call</option>\
         <option value=\"manager_attestation\">manager's attestation</option>\
         <option value=\"hr_record_match\">HR record match</option></select>\
         <label for=\"{prefix}-detail\">What was checked</label><input id=\"{prefix}-detail\" name=\"proofing.detail\" required>"
    )
}

/// `GET /console/staff` (admin, auditor): who holds which staff role.
pub async fn staff(State(state): State<AppState>, caller: Console<AdminOrAuditor>) -> Response {
    with(caller, |caller| async move {
        let roles = super::roles::load(&state.db).await?;
        let admin = caller.role == crate::auth::Role::Admin;
        let rows: String = roles
            .iter()
            .map(|r| {
                let remove = if admin {
                    action_button("DELETE", &format!("/api/v1/admin/staff/{}", r.person_id), "Remove")
                } else {
                    String::new()
                };
                format!(
                    "<tr><td><a href=\"/console/people/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{remove}</td></tr>",
                    esc(&r.person_id),
                    esc(&r.display_name),
                    r.role.as_str(),
                    if r.source == "setup" { "first admin (not from HR)" } else { "HR feed" },
                    esc(&r.granted_by),
                    when(Some(r.granted_at_ms)),
                )
            })
            .collect();
        let main = format!(
            "<h1>Staff</h1><p>Roles are given to people from the HR feed on their page; a leaver's role ends with their offboarding.</p>\
             <p id=\"status\" role=\"status\" aria-live=\"polite\"></p>\
             <table id=\"staff-table\"><thead><tr><th scope=\"col\">Person</th><th scope=\"col\">Role</th><th scope=\"col\">Source</th><th scope=\"col\">Granted by</th><th scope=\"col\">When</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>{rows}</tbody></table>"
        );
        Ok(page("Staff", "/console/staff", Some(&caller), &main).into_response())
    })
    .await
}

/// `POST /console/sign-out`: end the session, back to the console's sign-in page.
pub async fn sign_out(
    state: State<AppState>,
    form: crate::selfservice::pages::PageForm,
) -> Response {
    crate::selfservice::pages::sign_out_to(state, form, "/console/sign-in").await
}
