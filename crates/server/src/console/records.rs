//! The console's pages of records: the audit log with its hash chain checked, the keys in use by
//! model with the roots their attestation is trusted by, the laptops with their posture, the
//! exceptions register; links to the evidence exports. Lists are filtered and paged on the
//! server and export as CSV.

use axum::extract::{Path, Query, State};

use axum::response::{IntoResponse, Response};

use super::access::{with, Console};
use super::html::{
    action_button, badge, csv, filters, page, pager, url_encode, when, ListQuery, LIST_PAGE,
};
use crate::auth::{AdminOrAuditor, AnyStaff};
use crate::csf::esc;
use crate::error::OrNotFound as _;
use crate::state::AppState;
use keywarden_protocol::ErrorCode;

const PAGE: usize = 100;

/// `GET /console/audit` (admin, auditor): whether the chain is intact, and the records, newest
/// first, filtered by action on the server, a hundred a page, or as CSV.
pub async fn audit(
    State(state): State<AppState>,
    caller: Console<AdminOrAuditor>,
    Query(q): Query<ListQuery>,
) -> Response {
    with(caller, |caller| async move {
        let db = &state.db;
        if q.format.as_deref() == Some("csv") {
            let (rows, _) = crate::store::console::audit_page(db, q.q.trim(), 100_000, 0).await?;
            let rows = rows.into_iter().map(|r| {
                vec![crate::secrets::fmt_time(r.at), r.actor, r.action, r.subject, r.detail]
            });
            return Ok(csv("audit", "at,actor,action,subject,detail", rows));
        }
        let verification = crate::audit::verify(db).await?;
        let current = q.page.unwrap_or(1).max(1);
        let offset = i64::try_from((current - 1) * PAGE).unwrap_or(i64::MAX);
        let (rows, total) =
            crate::store::console::audit_page(db, q.q.trim(), i64::try_from(PAGE).unwrap_or(100), offset).await?;
        let total = usize::try_from(total).unwrap_or(0);
        let chain = if verification.intact {
            format!(
                "<p class=\"ok\" id=\"chain\">The hash chain is intact: {} records checked.</p>",
                verification.rows
            )
        } else {
            format!(
                "<p class=\"bad\" id=\"chain\" role=\"alert\">The hash chain is broken: {}.</p>",
                esc(verification.problem.as_deref().unwrap_or("unknown"))
            )
        };
        let body: String = rows
            .iter()
            .map(|r| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    when(Some(r.at)),
                    esc(&r.action),
                    esc(&r.actor),
                    esc(&r.subject),
                    esc(&r.detail)
                )
            })
            .collect();
        let link = |page: usize| format!("/console/audit?q={}&amp;page={page}", esc(&url_encode(&q.q)));
        let pager = pager(current, total, PAGE, "records", link);
        let filters = filters("/console/audit", "action starts with, e.g. staff_role.", &q.q, &[], None, "");
        let main = format!(
            "<h1>Audit log</h1>{chain}\
             <p>Evidence: <a href=\"/api/v1/admin/evidence/csf.html\">NIST CSF 2.0 (PR.AA)</a> · \
             <a href=\"/api/v1/admin/reports/dormant-access.html\">dormant access</a> · \
             <a href=\"/api/v1/admin/audit/export\">the whole chain (JSON lines)</a></p>\
             {filters}\
             <section aria-label=\"Audit records\" tabindex=\"0\"><table id=\"audit-table\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">What</th><th scope=\"col\">Who</th><th scope=\"col\">On</th><th scope=\"col\">Detail</th></tr></thead><tbody>{body}</tbody></table></section>{pager}",
        );
        Ok(page("Audit log", "/console/audit", Some(&caller), &main).into_response())
    })
    .await
}

/// `GET /console/keys` (admin, auditor): active credentials by model and class, and the roots
/// attestation chains are trusted to (from the FIDO metadata or added by an admin).
pub async fn keys(State(state): State<AppState>, caller: Console<AdminOrAuditor>) -> Response {
    with(caller, |caller| async move {
        let now = state.now_ms();
        // Counted in the database: the keys page never computes everyone's coverage.
        let by_class = crate::store::console::credentials_by_class(&state.db).await?;
        let trust = crate::trust::list(&state.db, now).await?;
        let models: String = crate::store::console::models_by_attestation(&state.db)
            .await?
            .iter()
            .map(|m| {
                let min_pin = match (m.min_pin_lo, m.min_pin_hi) {
                    (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
                    (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
                    _ => "not recorded".to_owned(),
                };
                let unrecorded = m.n - m.with_min_pin;
                let min_pin = if unrecorded > 0 && m.with_min_pin > 0 {
                    format!("{min_pin} ({unrecorded} not recorded)")
                } else {
                    min_pin
                };
                format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{} ({})</td><td>{}</td><td>{}</td><td>{} of {}</td></tr>",
                    esc(m.model.as_deref().unwrap_or("unknown model")),
                    esc(&m.aaguid),
                    esc(&m.attestation_format),
                    esc(&m.attestation_type),
                    m.n,
                    esc(&min_pin),
                    m.always_uv,
                    m.n
                )
            })
            .collect();
        let policies =
            crate::policy::Policies::load(&state.db, state.settings.min_authenticators).await?;
        let pins: String = policies
            .populations
            .iter()
            .map(|p| (p.name.as_str(), &p.spec.policy))
            .chain([(crate::policy::DEFAULT_POPULATION, &policies.default)])
            .map(|(name, p)| {
                let mut rule = p.min_pin_length.map_or_else(
                    || "no minimum beyond the key's own".to_owned(),
                    |n| format!("at least {n} characters, set on the key at enrolment and read from its attested minPinLength"),
                );
                if p.always_uv {
                    rule.push_str("; the PIN for every use (alwaysUv), set on the key at enrolment");
                }
                format!("<li>{}: {rule}</li>", esc(name))
            })
            .collect();
        let classes: String = by_class
            .iter()
            .map(|c| format!("<li>{}: {}</li>", esc(&c.device_class), c.n))
            .collect();
        let synced: i64 = by_class.iter().map(|c| c.synced).sum();
        let anchors: String = trust
            .anchors
            .iter()
            .map(|a| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}…</code></td><td>{}</td></tr>",
                    esc(&a.label),
                    esc(&a.source),
                    esc(&a.subject),
                    esc(a.fingerprint.get(..16).unwrap_or(&a.fingerprint)),
                    esc(&a.not_after)
                )
            })
            .collect();
        let issued: String = crate::store::issuing::listing(&state.db, 200)
            .await?
            .iter()
            .map(|k| {
                format!(
                    "<tr><td><a href=\"/console/people/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&k.person_id),
                    esc(&k.user_name),
                    esc(k.model.as_deref().unwrap_or("unknown model")),
                    when(Some(k.issued_at)),
                    when(Some(k.expires_at)),
                    badge(crate::issuing::issue_state(k)),
                )
            })
            .collect();
        let mds = trust.mds.as_ref().map_or_else(
            || "No FIDO metadata is loaded: only roots an admin added are trusted.".to_owned(),
            |m| format!("FIDO metadata blob {} loaded{}.", m.blob_no, if m.stale { "; it is STALE: load the current one" } else { "" }),
        );
        let main = format!(
            "<h1>Keys</h1><section aria-labelledby=\"models\"><h2 id=\"models\">Active credentials by model</h2>\
             <table id=\"models-table\"><thead><tr><th scope=\"col\">Model</th><th scope=\"col\">AAGUID</th><th scope=\"col\">Attestation</th><th scope=\"col\">Active credentials</th><th scope=\"col\">Minimum PIN length on the key</th><th scope=\"col\">PIN for every use (alwaysUv)</th></tr></thead><tbody>{models}</tbody></table>\
             <p>By device class:</p><ul>{classes}</ul><p>Synced passkeys: {}.</p></section>\
             <section aria-labelledby=\"issued\"><h2 id=\"issued\">Keys IT issued</h2>\
             <table id=\"issued-table\"><thead><tr><th scope=\"col\">Person</th><th scope=\"col\">Model</th><th scope=\"col\">Issued</th><th scope=\"col\">Activate by</th><th scope=\"col\">State</th></tr></thead><tbody>{issued}</tbody></table></section>\
             <section aria-labelledby=\"pins\"><h2 id=\"pins\">On-key PIN rules by population</h2><ul>{pins}</ul></section>\
             <section aria-labelledby=\"roots\"><h2 id=\"roots\">Trusted attestation roots</h2><p>{}</p>\
             <table><thead><tr><th scope=\"col\">Label</th><th scope=\"col\">Source</th><th scope=\"col\">Subject</th><th scope=\"col\">Fingerprint</th><th scope=\"col\">Valid until</th></tr></thead><tbody>{anchors}</tbody></table></section>",
            synced,
            esc(&mds),
        );
        Ok(page("Keys", "/console/keys", Some(&caller), &main).into_response())
    })
    .await
}

/// `GET /console/exceptions`: the exceptions and break-glass accounts, each with its owner,
/// reason and expiry; those expired or expiring within 14 days first. Admins revoke one.
pub async fn exceptions(
    State(state): State<AppState>,
    caller: Console<AnyStaff>,
    Query(q): Query<ListQuery>,
) -> Response {
    with(caller, |caller| async move {
        let now = state.now_ms();
        let mut list = crate::exceptions::load(&state.db, now, false).await?;
        list.retain(|e| match q.state.as_deref().unwrap_or("") {
            "in_force" => e.revoked_at_ms.is_none() && !e.expired,
            "expired" => e.revoked_at_ms.is_none() && e.expired,
            "revoked" => e.revoked_at_ms.is_some(),
            _ => true,
        });
        list.sort_by_key(|e| (e.revoked_at_ms.is_some(), e.expires_at_ms));
        if q.format.as_deref() == Some("csv") {
            let rows = list.iter().map(|e| {
                vec![
                    e.person_id.clone(),
                    e.kind.clone(),
                    e.owner.clone(),
                    e.reason.clone(),
                    crate::secrets::fmt_time(e.expires_at_ms),
                    e.revoked_at_ms.map_or_else(String::new, crate::secrets::fmt_time),
                ]
            });
            return Ok(csv("exceptions", "person_id,kind,owner,reason,expires,revoked", rows));
        }
        let admin = caller.role == crate::auth::Role::Admin;
        let soon = now + 14 * 86_400_000;
        let total = list.len();
        let current = q.page.unwrap_or(1).max(1);
        let rows: String = list
            .iter()
            .skip((current - 1) * LIST_PAGE)
            .take(LIST_PAGE)
            .map(|e| {
                let state = match (e.revoked_at_ms, e.expired) {
                    (Some(_), _) => badge("revoked"),
                    (None, true) => "<span class=\"badge bad\">expired: needs a decision</span>".to_owned(),
                    (None, false) if e.expires_at_ms <= soon => "<span class=\"badge warn\">expires soon</span>".to_owned(),
                    (None, false) => "<span class=\"badge ok\">in force</span>".to_owned(),
                };
                let revoke = if admin && e.revoked_at_ms.is_none() {
                    action_button("DELETE", &format!("/api/v1/admin/exceptions/{}", e.id), "Revoke")
                } else {
                    String::new()
                };
                format!(
                    "<tr><td><a href=\"/console/people/{}\">person</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{state}</td><td>{revoke}</td></tr>",
                    esc(&e.person_id),
                    esc(&e.kind),
                    esc(&e.owner),
                    esc(&e.reason),
                    when(Some(e.expires_at_ms)),
                )
            })
            .collect();
        let link = |page: usize| {
            format!(
                "/console/exceptions?state={}&amp;page={page}",
                esc(q.state.as_deref().unwrap_or(""))
            )
        };
        let pager = pager(current, total, LIST_PAGE, "exceptions", link);
        let filters = filters("/console/exceptions", "", "", &[("", "any state"), ("in_force", "in force"), ("expired", "expired"), ("revoked", "revoked")], q.state.as_deref(), "");
        let main = format!(
            "<h1>Exceptions and break-glass</h1><p>An exception exempts its person from coverage until it expires; \
             an expired one exempts nobody and needs a decision.</p><p id=\"status\" role=\"status\" aria-live=\"polite\"></p>{filters}\
             <section aria-label=\"Exceptions\" tabindex=\"0\"><table id=\"exceptions-table\"><thead><tr><th scope=\"col\">Whom</th><th scope=\"col\">Kind</th><th scope=\"col\">Owner</th><th scope=\"col\">Reason</th><th scope=\"col\">Expires</th><th scope=\"col\">State</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>{rows}</tbody></table></section>{pager}"
        );
        Ok(page("Exceptions", "/console/exceptions", Some(&caller), &main).into_response())
    })
    .await
}

/// A posture signal for people: on, off, or unknown with the probe's reason (never guessed).
fn signal(o: &keywarden_protocol::Observed<bool>) -> String {
    match o {
        keywarden_protocol::Observed::Known { value: true, .. } => badge("on"),
        keywarden_protocol::Observed::Known { value: false, .. } => badge("off"),
        keywarden_protocol::Observed::Unknown { reason } => {
            format!("<span class=\"badge warn\" title=\"{0}\">unknown</span><span class=\"visually-hidden\"> ({0})</span>", esc(reason))
        }
    }
}

/// The screen lock as a badge, with the inactivity delay when it locks and the delay is known.
fn screen_lock(p: &keywarden_protocol::Posture) -> String {
    match (&p.screen_lock, &p.screen_lock_delay_secs) {
        (
            keywarden_protocol::Observed::Known { value: true, .. },
            keywarden_protocol::Observed::Known { value: secs, .. },
        ) => format!("{} after {secs} s", badge("on")),
        (locks, _) => signal(locks),
    }
}

/// The platform protections the laptop could read (System Integrity Protection, Gatekeeper,
/// Defender, MDM), each with its state; those its system does not have are left out.
fn protections(p: &keywarden_protocol::Posture) -> String {
    let read: Vec<String> = [
        ("integrity protection", &p.integrity_protection),
        ("app verification", &p.app_verification),
        ("malware protection", &p.malware_protection),
        ("MDM", &p.mdm_enrolled),
    ]
    .into_iter()
    .filter(|(_, o)| o.value().is_some())
    .map(|(name, o)| format!("{name} {}", signal(o)))
    .collect();
    if read.is_empty() {
        "none read".to_owned()
    } else {
        read.join(", ")
    }
}

/// `GET /console/laptops`: every provisioned laptop with its latest posture and the keys seen;
/// the help desk and admins retire one (lost or returned) with a fresh touch.
pub async fn laptops(
    State(state): State<AppState>,
    caller: Console<AnyStaff>,
    Query(q): Query<ListQuery>,
) -> Response {
    with(caller, |caller| async move {
        let needle = q.q.trim().to_lowercase();
        let devices: Vec<_> = crate::store::admin::devices(&state.db)
            .await?
            .into_iter()
            .filter(|d| needle.is_empty() || d.hostname.to_lowercase().contains(&needle))
            .filter(|d| match q.state.as_deref().unwrap_or("") {
                "in_service" => d.retired_at_ms.is_none(),
                "retired" => d.retired_at_ms.is_some(),
                _ => true,
            })
            .collect();
        if q.format.as_deref() == Some("csv") {
            fn text<T: ToString>(o: Option<&keywarden_protocol::Observed<T>>) -> String {
                match o {
                Some(keywarden_protocol::Observed::Known { value, .. }) => value.to_string(),
                Some(keywarden_protocol::Observed::Unknown { reason }) => format!("unknown: {reason}"),
                None => "no report".to_owned(),
                }
            }
            let rows = devices.iter().map(|d| {
                let p = d.posture.as_ref();
                vec![
                    d.hostname.clone(),
                    d.last_report_at_ms.map_or_else(String::new, crate::secrets::fmt_time),
                    text(p.map(|p| &p.disk_encryption)),
                    text(p.map(|p| &p.firewall)),
                    text(p.map(|p| &p.secure_boot)),
                    text(p.map(|p| &p.screen_lock)),
                    text(p.map(|p| &p.screen_lock_delay_secs)),
                    d.keys.len().to_string(),
                    d.retired_reason.clone().unwrap_or_else(|| "in service".to_owned()),
                ]
            });
            let header = "hostname,last_check_in,disk_encryption,firewall,secure_boot,screen_lock,screen_lock_delay_secs,keys_seen,state";
            return Ok(csv("laptops", header, rows));
        }
        let total = devices.len();
        let current = q.page.unwrap_or(1).max(1);
        let may_retire = matches!(
            caller.role,
            crate::auth::Role::Admin | crate::auth::Role::Helpdesk
        );
        let rows: String = devices
            .iter()
            .skip((current - 1) * LIST_PAGE)
            .take(LIST_PAGE)
            .map(|d| {
                let (disk, firewall, boot, lock) = d.posture.as_ref().map_or_else(
                    || ("no report yet".to_owned(), String::new(), String::new(), String::new()),
                    |p| (signal(&p.disk_encryption), signal(&p.firewall), signal(&p.secure_boot), screen_lock(p)),
                );
                let retire = if may_retire && d.retired_at_ms.is_none() {
                    format!(
                        "<form data-api=\"POST /api/v1/admin/devices/{0}/retire\" data-done=\"reload\" class=\"inline\">\
                         <label for=\"why-{0}\" class=\"visually-hidden\">Why</label><select id=\"why-{0}\" name=\"reason\">\
                         <option value=\"retired\">returned</option><option value=\"lost\">lost or stolen</option></select>\
                         <button type=\"submit\">Retire</button></form>",
                        esc(&d.id)
                    )
                } else {
                    String::new()
                };
                format!(
                    "<tr><td><a href=\"/console/laptops/{}\">{}</a></td><td>{}</td><td>{disk}</td><td>{firewall}</td><td>{boot}</td><td>{lock}</td><td>{}</td><td>{}</td><td>{retire}</td></tr>",
                    esc(&d.id),
                    esc(&d.hostname),
                    when(d.last_report_at_ms),
                    d.keys.len(),
                    d.retired_reason.as_deref().map_or_else(|| "in service".to_owned(), |r| format!("retired ({})", esc(r))),
                )
            })
            .collect();
        let link = |page: usize| {
            format!(
                "/console/laptops?q={}&amp;state={}&amp;page={page}",
                esc(&url_encode(&q.q)),
                esc(q.state.as_deref().unwrap_or(""))
            )
        };
        let pager = pager(current, total, LIST_PAGE, "laptops", link);
        let filters = filters("/console/laptops", "host name", &q.q, &[("", "any state"), ("in_service", "in service"), ("retired", "retired")], q.state.as_deref(), "");
        let main = format!(
            "<h1>Laptops</h1><p id=\"status\" role=\"status\" aria-live=\"polite\"></p>{filters}\
             <section aria-labelledby=\"all\" tabindex=\"0\"><h2 id=\"all\">Provisioned laptops ({})</h2>\
             <table id=\"laptops-table\"><thead><tr><th scope=\"col\">Host</th><th scope=\"col\">Last check-in</th><th scope=\"col\">Disk encryption</th><th scope=\"col\">Firewall</th><th scope=\"col\">Secure boot</th><th scope=\"col\">Screen lock</th><th scope=\"col\">Keys seen</th><th scope=\"col\">State</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>{rows}</tbody></table></section>{pager}",
            total
        );
        Ok(page("Laptops", "/console/laptops", Some(&caller), &main).into_response())
    })
    .await
}

/// `GET /console/laptops/{id}`: a laptop's posture over its newest thirty reports, so a signal
/// that changed (encryption turned off, an update missed) shows when it did.
pub async fn laptop(
    State(state): State<AppState>,
    caller: Console<AnyStaff>,
    Path(id): Path<String>,
) -> Response {
    with(caller, |caller| async move {
        let (hostname, reports) = crate::store::console::laptop_history(&state.db, &id)
            .await?
            .or_not_found(ErrorCode::DeviceUnknown, format!("no laptop with id {id}"))?;
        let rows: String = reports
            .iter()
            .map(|r| {
                let report: Option<keywarden_protocol::Report> = serde_json::from_str(&r.body).ok();
                let cells = report.map_or_else(
                    || "<td colspan=\"6\">unreadable report</td>".to_owned(),
                    |rep| {
                        let p = &rep.posture;
                        let os = match &p.os_version {
                            keywarden_protocol::Observed::Known { value, .. } => esc(value),
                            keywarden_protocol::Observed::Unknown { .. } => "unknown".to_owned(),
                        };
                        format!(
                            "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{os}</td>",
                            signal(&p.disk_encryption),
                            signal(&p.firewall),
                            signal(&p.secure_boot),
                            screen_lock(p),
                            protections(p)
                        )
                    },
                );
                format!("<tr><td>{}</td>{cells}</tr>", when(Some(r.created_at)))
            })
            .collect();
        let main = format!(
            "<h1>{}</h1><p><a href=\"/console/laptops\">All laptops</a></p>\
             <section aria-labelledby=\"hist\" tabindex=\"0\"><h2 id=\"hist\">Posture, newest first ({} reports)</h2>\
             <table id=\"posture-history\"><thead><tr><th scope=\"col\">Collected</th><th scope=\"col\">Disk encryption</th><th scope=\"col\">Firewall</th><th scope=\"col\">Secure boot</th><th scope=\"col\">Screen lock</th><th scope=\"col\">Platform protections</th><th scope=\"col\">OS version</th></tr></thead><tbody>{rows}</tbody></table></section>",
            esc(&hostname),
            reports.len()
        );
        Ok(page(&hostname, "/console/laptops", Some(&caller), &main).into_response())
    })
    .await
}
