//! `keywarden enrol`: redeeming a ticket and enrolling keys in the session, with progress.

use crate::print_json;
use crate::prompts::{read_pin, stdin_lines, two_pins, TerminalPrompts, TouchNotice};
use anyhow::Context as _;
use keywarden_agent::Agent;

/// How `keywarden enrol` runs.
pub(crate) struct EnrolOptions {
    pub(crate) pin_stdin: bool,
    pub(crate) json: bool,
    /// Print the one-time self-service link to stderr after the keys.
    pub(crate) browser_link: bool,
}

pub(crate) fn enrol(
    agent: &Agent,
    ticket: &str,
    with_key: Option<&str>,
    keys: &[String],
    opts: EnrolOptions,
) -> anyhow::Result<()> {
    let EnrolOptions {
        pin_stdin,
        json,
        browser_link,
    } = opts;
    let (proof_pin, pin_from_stdin, new_pin_from_stdin) = match (with_key, pin_stdin) {
        (Some(_), _) => {
            let (proof, pin) = two_pins(pin_stdin)?;
            (proof, pin, None)
        }
        // The PIN, then (only read when the key asks for a new PIN) the new one.
        (None, true) => {
            let mut lines = stdin_lines()?.into_iter();
            (None, Some(lines.next().unwrap_or_default()), lines.next())
        }
        (None, false) => (None, None, None),
    };
    let prompts = TerminalPrompts {
        pin_from_stdin,
        new_pin_from_stdin,
    };
    // Fresh posture first, so the credential is bound with this laptop's current posture.
    if let Err(e) = agent.report() {
        eprintln!("note: could not send a posture report before enrolling: {e}");
    }
    let session = match with_key {
        Some(proof_key) => {
            let pin = match proof_pin {
                Some(p) => p,
                None => read_pin(false)?,
            };
            eprintln!("Confirm it is you with the key you already have.");
            keywarden_agent::stepup::enrol_with_step_up(
                agent,
                ticket,
                proof_key,
                &pin,
                &TouchNotice,
            )?
        }
        None => match keywarden_agent::enrol::Session::open(agent, ticket) {
            Err(e) if e.service_code() == Some(keywarden_protocol::ErrorCode::StepUpRequired) => {
                // The ticket is for someone who has a key already: a ticket alone does not add
                // another; say the two ways that do.
                return Err(anyhow::Error::new(e).context(
                    "you already have an active key, so a ticket alone cannot add another. \
                     Prove it is you with that key: run `keywarden add-key --with-key ID` (no \
                     ticket needed), or run this command again with --with-key ID \
                     (`keywarden keys` lists the ids)",
                ));
            }
            other => other?,
        },
    };
    let session = enrol_in(agent, session, keys, &prompts, json)?;
    if browser_link {
        print_browser_link(agent, &session)?;
    }
    Ok(())
}

/// The session's one-time self-service link, to standard error only (never to stdout or the
/// JSON output, which scripts keep): the person opens it in a browser to add this laptop's or
/// their phone's passkey.
pub(crate) fn print_browser_link(
    agent: &Agent,
    session: &keywarden_agent::enrol::Session,
) -> anyhow::Result<()> {
    let link = session
        .web_link(agent)
        .context("cannot get the link to your self-service page")?;
    let minutes = (link.expires_at_ms - keywarden_agent::now_ms()).max(0) / 60_000;
    eprintln!(
        "To add this laptop or your phone, open this link in a browser (it works once, for the next {minutes} minute{}; it signs the browser in as you, so share it with no one):\n{}",
        if minutes == 1 { "" } else { "s" },
        link.url()
    );
    Ok(())
}

/// Enrol `keys` (or the one chosen) in an open session, printing progress.
pub(crate) fn enrol_in(
    agent: &Agent,
    mut session: keywarden_agent::enrol::Session,
    keys: &[String],
    prompts: &TerminalPrompts,
    json: bool,
) -> anyhow::Result<keywarden_agent::enrol::Session> {
    let view = session.view();
    if !json {
        println!(
            "Enrolment for {} <{}>: {} of {} required authenticators enrolled so far.",
            view.person.display_name,
            view.person.user_name,
            view.standing.active_authenticators,
            view.standing.required_authenticators
        );
    }
    let wanted: Vec<Option<&str>> = if keys.is_empty() {
        vec![None]
    } else {
        keys.iter().map(|k| Some(k.as_str())).collect()
    };
    let mut results = Vec::new();
    for key_id in &wanted {
        let done = session.enrol(agent, *key_id, prompts)?;
        let r = &done.result;
        if !json {
            println!(
                "Enrolled {} ({}): credential {} verified by the service, attestation {} ({}).",
                done.key.label,
                r.credential.model.as_deref().unwrap_or("unknown model"),
                r.credential.id,
                r.credential.attestation_format,
                r.credential.attestation_type
            );
            if let Some(p) = &done.key_policy {
                for what in &p.applied {
                    println!("Set on the key for your organisation: {what}.");
                }
                for what in &p.unmet {
                    println!("Your organisation asks for {what}.");
                }
            }
            println!(
                "You have {} of {} required authenticators.",
                r.standing.active_authenticators, r.standing.required_authenticators
            );
        }
        results.push(done);
    }
    if let Some(last) = results.last() {
        let r = &last.result.standing;
        if !json {
            if r.meets_policy == Some(false) {
                // The service judged the whole policy (the count and the kinds of device).
                println!(
                    "{}",
                    r.policy_text
                        .as_deref()
                        .unwrap_or("Below your organisation's policy: enrol another key.")
                );
            } else if r.active_authenticators < r.required_authenticators {
                println!(
                    "Enrol a backup key next (another key with --key): with a single key, losing it locks you out."
                );
            } else {
                println!(
                    "Coverage met. If a key is lost, report it to the help desk at once: it is suspended, and your other key plus a help-desk ticket lets you enrol a replacement."
                );
            }
        }
    }
    if json {
        print_json(&results)?;
    }
    Ok(session)
}
