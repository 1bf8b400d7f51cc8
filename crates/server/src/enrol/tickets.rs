//! Enrolment tickets: looking one up and checking it can be redeemed, marking it redeemed, and
//! recording refused redemptions (counted failures lock a ticket, then a laptop).

use keywarden_protocol::ErrorCode;
use sqlx::{Any, Transaction};

use crate::audit;
use crate::error::{Error, OrNotFound as _, Result};
use crate::secrets::{self, new_id};
use crate::state::AppState;

use super::sessions::{load_active_person, Person};
use super::store;
use super::STEP_UP_REFUSALS;

/// Ticket refusals that count against the per-device and per-ticket redemption limits.
pub(crate) const COUNTED_REFUSALS: &[ErrorCode] = &[
    ErrorCode::TicketUnknown,
    ErrorCode::TicketUsed,
    ErrorCode::TicketExpired,
    ErrorCode::TicketCancelled,
    ErrorCode::PersonInactive,
];

/// Record a refused ticket redemption in its own transaction (the refused work was rolled
/// back): a counted failure (it locks the ticket after a few, and a laptop after a few more) is
/// kept in `ticket_attempts` under `attempt_key` (a laptop id, or `browser`) and audited; a
/// policy or step-up refusal is audited.
pub(crate) async fn ticket_refused(
    state: &AppState,
    actor: &str,
    attempt_key: &str,
    ticket_id: Option<&str>,
    e: &Error,
    now: i64,
) -> Result<()> {
    let (_, code, message) = e.parts();
    if COUNTED_REFUSALS.contains(&code) || code == ErrorCode::TicketLocked {
        let mut tx = crate::db::begin(&state.db).await?;
        if code != ErrorCode::TicketLocked {
            store::insert_attempt(
                &mut tx,
                &new_id(),
                now,
                attempt_key,
                ticket_id,
                code.as_str(),
            )
            .await?;
        }
        audit::record(
            &mut tx,
            now,
            actor,
            "ticket.redemption_refused",
            ticket_id.unwrap_or("unknown-ticket"),
            serde_json::json!({"reason": code, "message": message}),
        )
        .await?;
        tx.commit().await?;
    } else if code == ErrorCode::LaptopNoncompliant || STEP_UP_REFUSALS.contains(&code) {
        audit::record_refusal(
            &state.db,
            now,
            actor,
            "enrolment.refused",
            attempt_key,
            serde_json::json!({"reason": code, "message": message}),
        )
        .await?;
    }
    Ok(())
}

/// Look a ticket up inside `tx` and check it can be redeemed now (known, not locked by failed
/// attempts, not cancelled, unused, unexpired, its person active); takes the person's row.
/// `ticket_id_out` learns the ticket's id as soon as it is known (for counting a failure).
pub(crate) async fn open_ticket(
    state: &AppState,
    tx: &mut Transaction<'_, Any>,
    ticket: &str,
    now: i64,
    ticket_id_out: &mut Option<String>,
) -> Result<(String, Person)> {
    let t = store::ticket(tx, &secrets::hash(ticket.trim()))
        .await?
        .or_not_found(
            ErrorCode::TicketUnknown,
            "unknown enrolment ticket; ask IT for a new one",
        )?;
    let ticket_id = t.id;
    *ticket_id_out = Some(ticket_id.clone());
    let window = i64::try_from(state.settings.redeem_window.as_millis()).unwrap_or(i64::MAX);
    let ticket_failures = store::failed_attempts(
        &mut **tx,
        store::AttemptsBy::Ticket,
        &ticket_id,
        now - window,
    )
    .await?;
    if ticket_failures >= i64::from(state.settings.redeem_limit_per_ticket) {
        return Err(Error::too_many(
            ErrorCode::TicketLocked,
            "this ticket was tried too often and is locked; ask IT for a new one",
        ));
    }
    // What ended the ticket, and when, in the sentence the person reads.
    let ended = |how: &str, at: i64| {
        format!(
            "ticket {how} at {}; ask IT for a new one",
            secrets::fmt_time(at)
        )
    };
    if let Some(at) = t.cancelled_at {
        return Err(Error::gone(
            ErrorCode::TicketCancelled,
            ended("was cancelled", at),
        ));
    }
    if let Some(at) = t.redeemed_at {
        return Err(Error::conflict(
            ErrorCode::TicketUsed,
            ended("was already used", at),
        ));
    }
    crate::error::before_expiry(now, t.expires_at, ErrorCode::TicketExpired, |at| {
        format!("ticket expired at {at}; ask IT for a new one")
    })?;
    let person = load_active_person(tx, &t.person_id).await?;
    Ok((ticket_id, person))
}

/// Mark a ticket redeemed (by a laptop, or `None`: in the browser) inside `tx`.
pub(crate) async fn mark_redeemed(
    tx: &mut Transaction<'_, Any>,
    ticket_id: &str,
    device_id: Option<&str>,
    now: i64,
) -> Result<()> {
    if !store::redeem_ticket(tx, ticket_id, device_id, now).await? {
        return Err(Error::conflict(
            ErrorCode::TicketUsed,
            "ticket was already used; ask IT for a new one",
        ));
    }
    Ok(())
}
