//! The console's pages of records: the audit log with its hash chain checked, the keys in use by
//! model with the roots their attestation is trusted by, the exceptions register; links to the
//! evidence exports.

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::access::{with, Console};
use super::html::{badge, page, when};
use crate::auth::{AdminOrAuditor, AnyStaff};
use crate::csf::esc;
use crate::state::AppState;

/// `GET /console/audit` query.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    /// Actions starting with this, e.g. `staff_role.` or `ticket.issued`.
    #[serde(default)]
    pub action: String,
    /// Page, from 1.
    pub page: Option<i64>,
    /// `csv` for the matching records as CSV (up to 100,000).
    pub format: Option<String>,
}

const PAGE: i64 = 100;

/// `GET /console/audit` (admin, auditor): whether the chain is intact, and the records, newest
/// first, filtered by action on the server, a hundred a page, or as CSV.
pub async fn audit(
    State(state): State<AppState>,
    caller: Console<AdminOrAuditor>,
    Query(q): Query<AuditQuery>,
) -> Response {
    with(caller, |caller| async move {
        let db = &state.db;
        if q.format.as_deref() == Some("csv") {
            let (rows, _) = crate::store::console::audit_page(db, &q.action, 100_000, 0).await?;
            let mut csv = String::from("at,actor,action,subject,detail\n");
            for r in rows {
                let fields = [
                    crate::secrets::fmt_time(r.at),
                    r.actor,
                    r.action,
                    r.subject,
                    r.detail,
                ];
                let line: Vec<String> = fields.iter().map(|f| super::pages::csv_field(f)).collect();
                csv.push_str(&line.join(","));
                csv.push('\n');
            }
            return Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (header::CONTENT_DISPOSITION, "attachment; filename=\"audit.csv\""),
                ],
                csv,
            )
                .into_response());
        }
        let verification = crate::audit::verify(db).await?;
        let current = q.page.unwrap_or(1).max(1);
        let (rows, total) =
            crate::store::console::audit_page(db, &q.action, PAGE, (current - 1) * PAGE).await?;
        let pages = ((total + PAGE - 1) / PAGE).max(1);
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
        let action = url::form_urlencoded::byte_serialize(q.action.as_bytes()).collect::<String>();
        let link = |page: i64| format!("/console/audit?action={}&amp;page={page}", esc(&action));
        let mut pager = format!("<p class=\"pager\">Page {current} of {pages} ({total} records)");
        if current > 1 {
            pager.push_str(&format!(" · <a href=\"{}\" rel=\"prev\">Previous</a>", link(current - 1)));
        }
        if current < pages {
            pager.push_str(&format!(" · <a href=\"{}\" rel=\"next\">Next</a>", link(current + 1)));
        }
        pager.push_str(&format!(" · <a href=\"/console/audit?action={}&amp;format=csv\">Export CSV</a></p>", esc(&action)));
        let main = format!(
            "<h1>Audit log</h1>{chain}\
             <p>Evidence: <a href=\"/api/v1/admin/evidence/csf.html\">NIST CSF 2.0 (PR.AA)</a> · \
             <a href=\"/api/v1/admin/reports/dormant-access.html\">dormant access</a> · \
             <a href=\"/api/v1/admin/audit/export\">the whole chain (JSON lines)</a></p>\
             <form method=\"get\" action=\"/console/audit\" class=\"filters\" role=\"search\">\
             <label for=\"action\">Action starts with</label><input id=\"action\" name=\"action\" value=\"{}\" placeholder=\"e.g. staff_role.\">\
             <button type=\"submit\">Filter</button></form>\
             <section aria-label=\"Audit records\" tabindex=\"0\"><table id=\"audit-table\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">What</th><th scope=\"col\">Who</th><th scope=\"col\">On</th><th scope=\"col\">Detail</th></tr></thead><tbody>{body}</tbody></table></section>{pager}",
            esc(&q.action)
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
        let report =
            crate::coverage::compute(&state.db, now, state.settings.min_authenticators, None)
                .await?;
        let trust = crate::trust::list(&state.db, now).await?;
        let models: String = report
            .keys_by_model
            .iter()
            .map(|m| {
                format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                    esc(m.model.as_deref().unwrap_or("unknown model")),
                    esc(&m.aaguid),
                    m.credentials
                )
            })
            .collect();
        let classes: String = report
            .credentials_by_class
            .iter()
            .map(|(c, n)| format!("<li>{}: {n}</li>", esc(c)))
            .collect();
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
        let mds = trust.mds.as_ref().map_or_else(
            || "No FIDO metadata is loaded: only roots an admin added are trusted.".to_owned(),
            |m| format!("FIDO metadata blob {} loaded{}.", m.blob_no, if m.stale { "; it is STALE: load the current one" } else { "" }),
        );
        let main = format!(
            "<h1>Keys</h1><section aria-labelledby=\"models\"><h2 id=\"models\">Active credentials by model</h2>\
             <table id=\"models-table\"><thead><tr><th scope=\"col\">Model</th><th scope=\"col\">AAGUID</th><th scope=\"col\">Active credentials</th></tr></thead><tbody>{models}</tbody></table>\
             <p>By device class:</p><ul>{classes}</ul><p>Synced passkeys: {}.</p></section>\
             <section aria-labelledby=\"roots\"><h2 id=\"roots\">Trusted attestation roots</h2><p>{}</p>\
             <table><thead><tr><th scope=\"col\">Label</th><th scope=\"col\">Source</th><th scope=\"col\">Subject</th><th scope=\"col\">Fingerprint</th><th scope=\"col\">Valid until</th></tr></thead><tbody>{anchors}</tbody></table></section>",
            report.synced_credentials,
            esc(&mds),
        );
        Ok(page("Keys", "/console/keys", Some(&caller), &main).into_response())
    })
    .await
}

/// `GET /console/exceptions`: the exceptions and break-glass accounts, each with its owner,
/// reason and expiry; those expired or expiring within 14 days first. Admins revoke one.
pub async fn exceptions(State(state): State<AppState>, caller: Console<AnyStaff>) -> Response {
    with(caller, |caller| async move {
        let now = state.now_ms();
        let mut list = crate::exceptions::load(&state.db, now, false).await?;
        list.sort_by_key(|e| (e.revoked_at_ms.is_some(), e.expires_at_ms));
        let admin = caller.role == crate::auth::Role::Admin;
        let soon = now + 14 * 86_400_000;
        let rows: String = list
            .iter()
            .map(|e| {
                let state = match (e.revoked_at_ms, e.expired) {
                    (Some(_), _) => badge("revoked"),
                    (None, true) => "<span class=\"badge bad\">expired: needs a decision</span>".to_owned(),
                    (None, false) if e.expires_at_ms <= soon => "<span class=\"badge warn\">expires soon</span>".to_owned(),
                    (None, false) => "<span class=\"badge ok\">in force</span>".to_owned(),
                };
                let revoke = if admin && e.revoked_at_ms.is_none() {
                    format!(
                        "<form data-api=\"DELETE /api/v1/admin/exceptions/{}\" data-done=\"reload\" class=\"inline\"><button type=\"submit\">Revoke</button></form>",
                        esc(&e.id)
                    )
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
        let main = format!(
            "<h1>Exceptions and break-glass</h1><p>An exception exempts its person from coverage until it expires; \
             an expired one exempts nobody and needs a decision.</p><p id=\"status\" role=\"status\" aria-live=\"polite\"></p>\
             <section aria-label=\"Exceptions\" tabindex=\"0\"><table id=\"exceptions-table\"><thead><tr><th scope=\"col\">Whom</th><th scope=\"col\">Kind</th><th scope=\"col\">Owner</th><th scope=\"col\">Reason</th><th scope=\"col\">Expires</th><th scope=\"col\">State</th><th scope=\"col\"><span class=\"visually-hidden\">Actions</span></th></tr></thead><tbody>{rows}</tbody></table></section>"
        );
        Ok(page("Exceptions", "/console/exceptions", Some(&caller), &main).into_response())
    })
    .await
}
