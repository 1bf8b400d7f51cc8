//! NIST CSF 2.0 evidence export for the Identity Management, Authentication and Access Control
//! category: for PR.AA-01, PR.AA-02, PR.AA-03 and PR.AA-05, what this service can show —
//! counts, lists and audit excerpts — as JSON and as a readable page. Everything comes from the
//! database at the time of the export; nothing is asserted that the records do not show.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use utoipa::ToSchema;

use crate::auth::{AdminOrAuditor, Staff};
use crate::error::Result;
use crate::state::AppState;

/// Routes for the evidence export.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/evidence/csf", get(json_handler))
        .route("/api/v1/admin/evidence/csf.html", get(html_handler))
}

/// One measured fact.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Fact {
    /// What is counted or listed.
    pub label: String,
    /// The value (a number, or a list).
    pub value: serde_json::Value,
}

/// An audit record, shortened.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Excerpt {
    /// Chain position.
    pub seq: i64,
    /// When (unix ms).
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On whom or what.
    pub subject: String,
}

/// Evidence for one CSF subcategory.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Subcategory {
    /// e.g. `PR.AA-01`.
    pub id: String,
    /// The outcome the subcategory describes.
    pub outcome: String,
    /// How this service supports it.
    pub how: String,
    /// Counts and lists.
    pub facts: Vec<Fact>,
    /// The latest matching audit records.
    pub audit_excerpts: Vec<Excerpt>,
}

/// The export.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CsfEvidence {
    /// Framework.
    pub framework: String,
    /// When generated (unix ms).
    pub generated_at_ms: i64,
    /// Whether the audit chain verified at export time.
    pub audit_chain_intact: bool,
    /// Audit rows checked.
    pub audit_rows: u64,
    /// The four subcategories.
    pub subcategories: Vec<Subcategory>,
}

async fn count(db: &AnyPool, sql: &str) -> Result<serde_json::Value> {
    let n: i64 = sqlx::query_scalar(sql).fetch_one(db).await?;
    Ok(n.into())
}

async fn grouped(db: &AnyPool, sql: &str) -> Result<serde_json::Value> {
    let mut map = serde_json::Map::new();
    let rows: Vec<(String, i64)> = sqlx::query_as(sql).fetch_all(db).await?;
    for (k, n) in rows {
        map.insert(k, n.into());
    }
    Ok(serde_json::Value::Object(map))
}

async fn excerpts(db: &AnyPool, prefixes: &[&str]) -> Result<Vec<Excerpt>> {
    let cond = prefixes
        .iter()
        .enumerate()
        .map(|(i, _)| format!("action LIKE ${}", i + 1))
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = format!(
        "SELECT seq, at, actor, action, subject FROM audit_log WHERE {cond} ORDER BY seq DESC LIMIT 10"
    );
    let mut q = sqlx::query_as::<_, (i64, i64, String, String, String)>(&sql);
    for p in prefixes {
        q = q.bind(format!("{p}%"));
    }
    Ok(q.fetch_all(db)
        .await?
        .into_iter()
        .map(|(seq, at_ms, actor, action, subject)| Excerpt {
            seq,
            at_ms,
            actor,
            action,
            subject,
        })
        .collect())
}

fn fact(label: &str, value: serde_json::Value) -> Fact {
    Fact {
        label: label.to_owned(),
        value,
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Build the export.
pub async fn compute(db: &AnyPool, now: i64, min_authenticators: u32) -> Result<CsfEvidence> {
    let chain = crate::audit::verify(db).await?;
    let coverage = crate::coverage::compute(db, now, min_authenticators, None).await?;
    let dormant = crate::offboard::dormant(db, now).await?;
    let offboardings = crate::offboard::load(db).await?;
    let mut revoke: Vec<f64> = offboardings.iter().filter_map(|o| o.revoke_ms).collect();
    revoke.sort_by(f64::total_cmp);
    let mut acked: Vec<f64> = offboardings
        .iter()
        .filter_map(|o| o.acknowledged_ms)
        .collect();
    acked.sort_by(f64::total_cmp);
    let expired = crate::exceptions::load(db, now, true).await?;
    let open_exceptions = count(
        db,
        &format!("SELECT COUNT(*) FROM exceptions WHERE revoked_at IS NULL AND expires_at > {now}"),
    )
    .await?;
    let compliant = coverage.by_status.get("compliant").copied().unwrap_or(0);
    let active_people: u64 = coverage.by_status.values().sum();

    let aa01 = Subcategory {
        id: "PR.AA-01".into(),
        outcome: "Identities and credentials for authorized users, services, and hardware are managed by the organization".into(),
        how: "People come from the HR feed over SCIM 2.0; each credential is bound to one person and moves active → suspended → revoked; laptops hold device keys until retired or marked lost; API tokens are per role, issued to a named person (staff) and expire.".into(),
        facts: vec![
            fact("people (active)", count(db, "SELECT COUNT(*) FROM people WHERE active = 1").await?),
            fact("people (inactive)", count(db, "SELECT COUNT(*) FROM people WHERE active = 0").await?),
            fact("credentials by status", grouped(db, "SELECT status, COUNT(*) FROM credentials GROUP BY status ORDER BY status").await?),
            fact("provisioned laptops", count(db, "SELECT COUNT(*) FROM devices").await?),
            fact("laptops in service", count(db, "SELECT COUNT(*) FROM devices WHERE retired_at IS NULL").await?),
            fact("API tokens in force by role", grouped(db, &format!("SELECT t.role, COUNT(*) FROM api_tokens t LEFT JOIN people p ON p.id = t.person_id \
                WHERE t.revoked_at IS NULL AND t.expires_at > {now} AND (t.person_id IS NULL OR p.active = 1) GROUP BY t.role ORDER BY t.role")).await?),
            fact("SCIM changes recorded", count(db, "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'scim.%'").await?),
        ],
        audit_excerpts: excerpts(db, &["scim.", "credential.", "api_token.", "staff_role.", "device.retired"]).await?,
    };
    let aa02 = Subcategory {
        id: "PR.AA-02".into(),
        outcome: "Identities are proofed and bound to credentials based on the context of interactions".into(),
        how: "Enrolment needs a single-use ticket bound to an HR-provisioned person; webauthn-rs verifies each key's attestation and the raw evidence is kept; a recovery needs a recorded identity proofing plus a fresh assertion from another key, or two other approvers.".into(),
        facts: vec![
            fact("credentials by attestation type", grouped(db, "SELECT attestation_type, COUNT(*) FROM credentials GROUP BY attestation_type ORDER BY attestation_type").await?),
            fact("enrolments with kept evidence", count(db, "SELECT COUNT(*) FROM enrolment_evidence").await?),
            fact("enrolment tickets issued", count(db, "SELECT COUNT(*) FROM enrolment_tickets WHERE created_by NOT LIKE 'recovery:%'").await?),
            fact("enrolment tickets redeemed", count(db, "SELECT COUNT(*) FROM enrolment_tickets WHERE redeemed_at IS NOT NULL AND created_by NOT LIKE 'recovery:%'").await?),
            fact("recoveries by kind", grouped(db, "SELECT kind, COUNT(*) FROM recoveries GROUP BY kind ORDER BY kind").await?),
            fact("recovery approvals recorded", count(db, "SELECT COUNT(*) FROM recovery_approvals").await?),
        ],
        audit_excerpts: excerpts(db, &["ticket.", "credential.enrolled", "recovery."]).await?,
    };
    let aa03 = Subcategory {
        id: "PR.AA-03".into(),
        outcome: "Users, services, and hardware are authenticated".into(),
        how: "People hold phishing-resistant FIDO2 credentials with user verification; coverage shows who meets the per-population minimum; every laptop request is signed by its device key and replay-protected.".into(),
        facts: vec![
            fact("active people compliant with their population's policy", serde_json::json!({"compliant": compliant, "of": active_people})),
            fact("people by coverage status", serde_json::to_value(&coverage.by_status).unwrap_or_default()),
            fact("active FIDO2 credentials", count(db, "SELECT COUNT(*) FROM credentials WHERE status = 'active'").await?),
            fact("device-signed reports stored", count(db, "SELECT COUNT(*) FROM reports").await?),
            fact("step-up sign-ins", count(db, "SELECT COUNT(*) FROM audit_log WHERE action = 'person.signed_in'").await?),
            fact("refused authentication attempts", count(db, "SELECT COUNT(*) FROM audit_log WHERE action IN ('step_up.refused', 'enrolment.refused', 'ticket.redemption_refused', 'report.rejected')").await?),
        ],
        audit_excerpts: excerpts(db, &["person.signed_in", "step_up.refused", "enrolment.refused", "break_glass.used"]).await?,
    };
    let aa05 = Subcategory {
        id: "PR.AA-05".into(),
        outcome: "Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and reviewed, and incorporate the principles of least privilege and separation of duties".into(),
        how: "Populations carry the policy; roles separate admin, help desk, auditor and HR feed; recoveries without a key need two approvers other than the person; offboarding from HR revokes everything in one transaction and the dormant-access report shows anything left; exceptions have an owner and an expiry.".into(),
        facts: vec![
            fact("populations with a policy", count(db, "SELECT COUNT(*) FROM populations").await?),
            fact("offboardings", serde_json::json!(offboardings.len())),
            fact("time to revoke, p50 / p99 (ms, SCIM request → committed)", serde_json::json!({"p50": percentile(&revoke, 50.0), "p99": percentile(&revoke, 99.0)})),
            fact("time to IdP acknowledgement, p50 / p99 (ms)", serde_json::json!({"p50": percentile(&acked, 50.0), "p99": percentile(&acked, 99.0)})),
            fact("inactive people with access still live (dormant-access report)", serde_json::json!(dormant.people.len())),
            fact("exceptions in force", open_exceptions),
            fact("expired exceptions awaiting a decision", serde_json::json!(expired.iter().map(|e| &e.id).collect::<Vec<_>>())),
            fact("revocation events not yet acknowledged by the IdP", count(db, "SELECT COUNT(*) FROM outbox_events WHERE sink = 'idp' AND delivered_at IS NULL").await?),
        ],
        audit_excerpts: excerpts(db, &["person.offboarded", "exception.", "policy.", "recovery.approved"]).await?,
    };
    Ok(CsfEvidence {
        framework: "NIST Cybersecurity Framework 2.0".into(),
        generated_at_ms: now,
        audit_chain_intact: chain.intact,
        audit_rows: chain.rows,
        subcategories: vec![aa01, aa02, aa03, aa05],
    })
}

/// `GET /api/v1/admin/evidence/csf` (admin, auditor): the export as JSON.
#[utoipa::path(get, path = "/api/v1/admin/evidence/csf", tag = "evidence", responses((status = 200, body = CsfEvidence)))]
pub async fn json_handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Json<CsfEvidence>> {
    Ok(Json(
        compute(&state.db, state.now_ms(), state.settings.min_authenticators).await?,
    ))
}

/// `GET /api/v1/admin/evidence/csf.html` (admin, auditor): the export as a readable page.
#[utoipa::path(get, path = "/api/v1/admin/evidence/csf.html", tag = "evidence",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
pub async fn html_handler(
    State(state): State<AppState>,
    _caller: Staff<AdminOrAuditor>,
) -> Result<Response> {
    let e = compute(&state.db, state.now_ms(), state.settings.min_authenticators).await?;
    Ok((
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        render_html(&e),
    )
        .into_response())
}

/// Escape text for HTML.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn value_html(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) if m.is_empty() => "<span class=none>none</span>".into(),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("<span class=kv>{}: <b>{}</b></span>", esc(k), value_html(v)))
            .collect::<Vec<_>>()
            .join(" "),
        serde_json::Value::Array(a) if a.is_empty() => "<span class=none>none</span>".into(),
        serde_json::Value::Array(a) => a.iter().map(value_html).collect::<Vec<_>>().join(", "),
        serde_json::Value::Null => "<span class=none>no data yet</span>".into(),
        serde_json::Value::String(s) => esc(s),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        other => esc(&other.to_string()),
    }
}

/// The start of a self-contained admin page (house style shared by the readable reports).
pub(crate) fn page_head(title: &str) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{}</title><style>",
        esc(title)
    ));
    s.push_str("body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1d2329;padding:0 1rem}h1{font-size:1.5rem;margin-bottom:.2rem}");
    s.push_str(".meta{color:#555;margin-bottom:1.5rem}.ok{color:#0a6b2d;font-weight:600}.bad{color:#a11;font-weight:600}");
    s.push_str("section{border:1px solid #d5dbe1;border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}h2{font-size:1.15rem;margin:.1rem 0}");
    s.push_str(".outcome{font-style:italic;color:#333}.how{color:#444}table{border-collapse:collapse;width:100%;margin:.6rem 0}");
    s.push_str("td,th{border-bottom:1px solid #e6e9ec;padding:.3rem .5rem;text-align:left;vertical-align:top}th{background:#f4f6f8;font-weight:600}");
    s.push_str(".kv{display:inline-block;margin-right:.8rem}.none{color:#595959}code{font-size:.85em}</style></head><body>");
    s
}

/// The export as a self-contained HTML page.
pub fn render_html(e: &CsfEvidence) -> String {
    let mut s = page_head("Keywarden — NIST CSF 2.0 evidence");
    s.push_str(&format!(
        "<h1>NIST CSF 2.0 evidence — Identity management, authentication and access control</h1><div class=meta>Generated {} by Keywarden from its records. Audit chain: {} ({} rows checked).</div>",
        esc(&crate::secrets::fmt_time(e.generated_at_ms)),
        if e.audit_chain_intact { "<span class=ok>intact</span>" } else { "<span class=bad>BROKEN — see audit verify</span>" },
        e.audit_rows
    ));
    for sub in &e.subcategories {
        s.push_str(&format!(
            "<section id=\"{}\"><h2>{}</h2><div class=outcome>{}</div><p class=how>{}</p><table><tr><th>Evidence</th><th>Value</th></tr>",
            esc(&sub.id),
            esc(&sub.id),
            esc(&sub.outcome),
            esc(&sub.how)
        ));
        for f in &sub.facts {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&f.label),
                value_html(&f.value)
            ));
        }
        s.push_str("</table><table><tr><th>#</th><th>When</th><th>Action</th><th>Actor</th><th>Subject</th></tr>");
        if sub.audit_excerpts.is_empty() {
            s.push_str("<tr><td colspan=5 class=none>no matching audit records yet</td></tr>");
        }
        for x in &sub.audit_excerpts {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                x.seq,
                esc(&crate::secrets::fmt_time(x.at_ms)),
                esc(&x.action),
                esc(&x.actor),
                esc(&x.subject)
            ));
        }
        s.push_str("</table></section>");
    }
    s.push_str("</body></html>");
    s
}
