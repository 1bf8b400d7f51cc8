//! IT reclaim station: for every key plugged in, ask the service whether it belongs to someone
//! who left; if so remove the organisation's credentials — a factory reset for an
//! organisation-owned key, only the organisation's credentials (with the PIN) for a personal
//! key, never a reset — check the key afterwards, and send a receipt.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_keys::{Authenticator, KeyInfo, Prompt};
use keywarden_protocol::{
    KeyCredentialIds, ProbePurpose, ReclaimAction, ReclaimDirective, ReclaimOutcome, ReclaimPlan,
    ReclaimQuery, ReclaimReceipt, ReclaimedKey,
};

use crate::error::Result;
use crate::receipts::ReceiptOutbox;
use crate::Agent;

/// What the station did to one key.
#[derive(Debug, Clone)]
pub struct Reclaimed {
    /// What the service asked for.
    pub directive: ReclaimDirective,
    /// What was done and found.
    pub receipt: ReclaimReceipt,
    /// Whether the service recorded the key as reclaimed.
    pub recorded: bool,
    /// Whether the receipt still waits in the [`ReceiptOutbox`] (the service could not take it).
    pub queued: bool,
}

impl From<Reclaimed> for ReclaimedKey {
    /// The wire form the desktop app shows.
    fn from(r: Reclaimed) -> Self {
        ReclaimedKey {
            directive: r.directive,
            receipt: r.receipt,
            recorded: r.recorded,
            queued: Some(r.queued),
        }
    }
}

/// The organisation's credentials still on the key (needs the PIN).
fn org_credentials(key: &mut dyn Authenticator, rp_id: &str, pin: &str) -> Result<Vec<String>> {
    Ok(key
        .list_credentials(rp_id, pin)?
        .into_iter()
        .map(|c| URL_SAFE_NO_PAD.encode(c.credential_id))
        .collect())
}

fn delete_with_pin(
    key: &mut dyn Authenticator,
    d: &ReclaimDirective,
    pin: &str,
) -> Result<(Vec<String>, Vec<String>)> {
    let mut removed = Vec::new();
    for id in org_credentials(key, &d.rp_id, pin)? {
        let raw = URL_SAFE_NO_PAD.decode(&id).unwrap_or_default();
        key.delete_credential(&raw, pin)?;
        removed.push(id);
    }
    let remaining = org_credentials(key, &d.rp_id, pin)?;
    Ok((removed, remaining))
}

/// Carry out one directive on an opened key.
pub fn carry_out(
    key: &mut dyn Authenticator,
    d: &ReclaimDirective,
    pin: Option<&str>,
    prompt: &dyn Prompt,
) -> ReclaimReceipt {
    let receipt = |action, outcome, removed, remaining, detail: String| ReclaimReceipt {
        directive_id: d.id.clone(),
        key_id: d.key_id.clone(),
        action,
        outcome,
        removed_credential_ids: removed,
        remaining_credential_ids: remaining,
        detail,
    };
    // Nothing removed: every credential the directive names is still there.
    let failed = |action, detail: String| {
        let remaining = d.credential_ids.clone();
        receipt(
            action,
            ReclaimOutcome::Failed,
            Vec::new(),
            remaining,
            detail,
        )
    };
    let by_pin = |key: &mut dyn Authenticator, pin: &str, note: &str| {
        match delete_with_pin(key, d, pin) {
        Ok((removed, remaining)) if remaining.is_empty() => receipt(
            ReclaimAction::DeleteCredentials,
            ReclaimOutcome::Done,
            removed.clone(),
            remaining,
            format!("{note}removed {} of the organisation's credentials; the check afterwards found none left", removed.len()),
        ),
        Ok((removed, remaining)) => receipt(
            ReclaimAction::DeleteCredentials,
            ReclaimOutcome::Failed,
            removed,
            remaining.clone(),
            format!("{} of the organisation's credentials are still on the key after deleting", remaining.len()),
        ),
        Err(e) => failed(ReclaimAction::DeleteCredentials, format!("could not remove the credentials: {e}")),
    }
    };
    match d.action {
        ReclaimAction::DeleteCredentials => match pin {
            Some(pin) => by_pin(key, pin, "personal key, not reset: "),
            None => failed(ReclaimAction::DeleteCredentials, "this is a personal key: it is never reset, and removing the organisation's credentials needs its PIN; ask its owner to type it".to_owned()),
        },
        ReclaimAction::Reset => match key.reset(prompt) {
            Ok(()) => match key.info() {
                Ok(info) if !info.pin_set => receipt(
                    ReclaimAction::Reset,
                    ReclaimOutcome::Done,
                    d.credential_ids.clone(),
                    Vec::new(),
                    "factory reset; the check afterwards found no PIN and no credentials".to_owned(),
                ),
                Ok(_) => failed(ReclaimAction::Reset, "the key still has a PIN after the reset: it did not reset".to_owned()),
                Err(e) => failed(ReclaimAction::Reset, format!("could not check the key after the reset: {e}")),
            },
            // An organisation-owned key that this agent cannot reset: with the PIN, its
            // credentials are removed instead.
            Err(e) => match pin {
                Some(pin) => by_pin(key, pin, &format!("reset not possible ({e}); ")),
                None => failed(ReclaimAction::Reset, format!("could not reset the key: {e}")),
            },
        },
    }
}

/// A plan (and each of its directives) must be about the organisation's own relying party:
/// a service naming another would have the station list and delete someone's other passkeys.
fn check_plan(agent: &Agent, plan: &ReclaimPlan) -> Result<()> {
    agent.check_relying_party(&plan.rp_id, None)?;
    for d in &plan.directives {
        agent.check_relying_party(&d.rp_id, None)?;
    }
    Ok(())
}

/// Ask for directives for every key present, carry them out, send the receipts.
///
/// Keys the service cannot match by their id (no serial) are probed silently for the
/// credentials of people who left (`POST /api/v1/agent/keys/probe`, purpose `reclaim`; no PIN,
/// no touch), so
/// an organisation key is recognised and reset without its PIN; with the PIN, keys still
/// unmatched are matched by the organisation's credentials listed on them. Each receipt goes
/// into the durable [`ReceiptOutbox`] before it is sent (receipts left by an earlier run are
/// sent first); one the service could not take now stays there, shown as not recorded, and is
/// sent at the next run or check-in.
pub fn run(agent: &Agent, pin: Option<&str>, prompt: &dyn Prompt) -> Result<Vec<Reclaimed>> {
    let outbox = ReceiptOutbox::of(agent);
    outbox.send(agent)?;
    let mut out = wipe(agent, pin, prompt)?;
    let sent = outbox.send(agent)?;
    let waiting = outbox.pending()?;
    for r in &mut out {
        r.recorded = sent
            .acked
            .iter()
            .any(|a| a.directive_id == r.directive.id && a.reclaimed);
        r.queued = waiting
            .iter()
            .any(|(_, w)| w.directive_id == r.directive.id);
    }
    Ok(out)
}

/// The part of [`run`] at the keys: the directives for every key present (probing keys without
/// a serial, and with the PIN listing their credentials), each carried out and its receipt put
/// into the [`ReceiptOutbox`], not sent yet (`recorded` false, `queued` true).
pub fn wipe(agent: &Agent, pin: Option<&str>, prompt: &dyn Prompt) -> Result<Vec<Reclaimed>> {
    let outbox = ReceiptOutbox::of(agent);
    let keys = agent.keys()?;
    let query = |credentials_on_keys, probed| ReclaimQuery {
        keys: keys.clone(),
        credentials_on_keys,
        probed,
    };
    let mut plan: ReclaimPlan =
        agent.call_signed("/api/v1/agent/reclaim/directives", &query(Vec::new(), None))?;
    check_plan(agent, &plan)?;
    let unmatched =
        |plan: &ReclaimPlan, k: &&KeyInfo| !plan.directives.iter().any(|d| d.key_id == k.id);
    let probe_these: Vec<KeyInfo> = keys
        .iter()
        .filter(|k| unmatched(&plan, k) && crate::orgkeys::needs_probe(k))
        .cloned()
        .collect();
    let probed = if probe_these.is_empty() {
        None
    } else {
        let answers = crate::orgkeys::probe_keys(agent, ProbePurpose::Reclaim, &probe_these)?;
        (!answers.answers.is_empty()).then_some(answers)
    };
    // With the PIN, keys whose id says nothing and that no probe matched (a credential made
    // with credProtect 3 never answers one) are matched by the organisation's credentials on
    // them. One PIN attempt per such key.
    let mut found = Vec::new();
    if let Some(pin) = pin {
        let answered = |k: &KeyInfo| {
            probed
                .as_ref()
                .is_some_and(|p| p.answers.iter().any(|a| a.key_id == k.id))
        };
        for k in keys.iter().filter(|k| unmatched(&plan, k) && !answered(k)) {
            let Ok(mut key) = agent.open_key(&k.id) else {
                continue;
            };
            if let Ok(ids) = org_credentials(key.as_mut(), &plan.rp_id, pin) {
                if !ids.is_empty() {
                    found.push(KeyCredentialIds {
                        key_id: k.id.clone(),
                        credential_ids: ids,
                    });
                }
            }
        }
    }
    if !found.is_empty() || probed.is_some() {
        plan = agent.call_signed("/api/v1/agent/reclaim/directives", &query(found, probed))?;
        check_plan(agent, &plan)?;
    }
    let mut out = Vec::with_capacity(plan.directives.len());
    for d in plan.directives {
        let receipt = match agent.open_key(&d.key_id) {
            Ok(mut key) => carry_out(key.as_mut(), &d, pin, prompt),
            Err(e) => ReclaimReceipt {
                directive_id: d.id.clone(),
                key_id: d.key_id.clone(),
                action: d.action,
                outcome: ReclaimOutcome::Failed,
                removed_credential_ids: Vec::new(),
                remaining_credential_ids: d.credential_ids.clone(),
                detail: format!("could not open the key: {e}"),
            },
        };
        outbox.push(&receipt)?;
        out.push(Reclaimed {
            directive: d,
            receipt,
            recorded: false,
            queued: true,
        });
    }
    Ok(out)
}
