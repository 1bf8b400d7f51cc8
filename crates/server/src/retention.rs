//! Retention: what the service keeps only for a while, pruned daily (and on demand with
//! `keywarden-server prune`). The audit trail is never pruned, and every pruning is itself
//! audited (`retention.pruned`, with the table, how many rows and the cut-off).
//!
//! - laptop reports older than the retention period (`--report-retention-days`), but never a
//!   laptop's latest, which coverage and the console read;
//! - step-up and browser challenges, a day after they expired (each lives minutes);
//! - ticket redemption attempts, a day after they left the rate-limit window;
//! - self-service sessions and one-time links, a day after they expired or ended.
//!
//! Rows go in batches, each with its own transaction and audit record, so a large backlog never
//! holds SQLite's write lock for long and a crash loses no record of what was pruned.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::state::AppState;

/// Rows deleted per transaction.
const BATCH: i64 = 5_000;

/// A day, after which what expired is no longer needed to explain a refusal.
const GRACE_MS: i64 = 24 * 3600 * 1000;

/// How many rows each table lost.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    /// `(table, rows)`, in the order pruned; tables that lost nothing are left out.
    pub tables: Vec<(&'static str, u64)>,
}

impl Pruned {
    /// Rows deleted from `table`.
    pub fn of(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .filter(|(t, _)| *t == table)
            .map(|(_, n)| n)
            .sum()
    }
}

/// What goes and from when: `(table, delete statement for one batch, cut-off)`. Each statement
/// deletes at most `$2` rows older than `$1`.
fn rules(
    now: i64,
    keep_reports: Duration,
    redeem_window: Duration,
) -> Vec<(&'static str, &'static str, i64)> {
    let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    vec![
        (
            "reports",
            "DELETE FROM reports WHERE (device_id, report_id) IN (SELECT r.device_id, r.report_id FROM reports r \
             WHERE r.received_at < $1 AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = r.device_id AND d.last_report_id = r.report_id) LIMIT $2)",
            now.saturating_sub(ms(keep_reports)),
        ),
        (
            "assertion_challenges",
            "DELETE FROM assertion_challenges WHERE id IN (SELECT id FROM assertion_challenges WHERE expires_at < $1 LIMIT $2)",
            now - GRACE_MS,
        ),
        (
            "web_challenges",
            "DELETE FROM web_challenges WHERE id IN (SELECT id FROM web_challenges WHERE expires_at < $1 LIMIT $2)",
            now - GRACE_MS,
        ),
        (
            "ticket_attempts",
            "DELETE FROM ticket_attempts WHERE id IN (SELECT id FROM ticket_attempts WHERE at < $1 LIMIT $2)",
            now.saturating_sub(ms(redeem_window)) - GRACE_MS,
        ),
        (
            "web_links",
            "DELETE FROM web_links WHERE id IN (SELECT id FROM web_links WHERE expires_at < $1 LIMIT $2)",
            now - GRACE_MS,
        ),
        (
            "web_sessions",
            "DELETE FROM web_sessions WHERE id IN (SELECT s.id FROM web_sessions s WHERE COALESCE(s.ended_at, s.expires_at) < $1 \
             AND NOT EXISTS (SELECT 1 FROM web_challenges c WHERE c.session_id = s.id) LIMIT $2)",
            now - GRACE_MS,
        ),
    ]
}

/// Prune everything past its time at `now`, keeping reports for `keep_reports`.
pub async fn prune(state: &AppState, now: i64, keep_reports: Duration) -> Result<Pruned> {
    let mut pruned = Pruned::default();
    for (table, sql, before) in rules(now, keep_reports, state.settings.redeem_window) {
        let mut total = 0u64;
        loop {
            let mut tx = crate::db::begin(&state.db).await?;
            let n = sqlx::query(sql)
                .bind(before)
                .bind(BATCH)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            if n > 0 {
                crate::audit::record(
                    &mut tx,
                    now,
                    "service",
                    "retention.pruned",
                    table,
                    serde_json::json!({"rows": n, "older_than_ms": before}),
                )
                .await?;
            }
            tx.commit().await?;
            total += n;
            if n < u64::try_from(BATCH).unwrap_or(u64::MAX) {
                break;
            }
        }
        if total > 0 {
            pruned.tables.push((table, total));
        }
    }
    Ok(pruned)
}

/// Prune once a day, from the service's start.
pub async fn run(state: AppState, keep_reports: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(24 * 3600));
    loop {
        tick.tick().await;
        match prune(&state, state.now_ms(), keep_reports).await {
            Ok(p) if !p.tables.is_empty() => tracing::info!(?p, "retention: old rows pruned"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "retention: pruning failed; tried again tomorrow")
            }
        }
    }
}
