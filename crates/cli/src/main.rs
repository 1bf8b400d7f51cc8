//! `keywarden`: the headless Keywarden agent, for IT scripting and the terminal.
//!
//! Everything here is a thin layer over `keywarden-agent`; prompts (which key, PIN, touch) go
//! through the same callback trait the desktop app implements.

mod args;
mod enrol;
mod issue;
mod output;
mod prompts;
mod sheets;

use crate::args::{Cli, Command, Global};
use crate::enrol::{enrol, enrol_in, print_browser_link, EnrolOptions};
use crate::output::{no_key_message, print_checkin, print_flush, print_key};
use crate::prompts::{read_pin, select_by_touch, two_pins, TerminalPrompts, TouchNotice};
use clap::Parser;
use keywarden_agent::enrol::EnrolPrompts as _;
use keywarden_agent::keys::Keyring;
use keywarden_agent::Agent;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYWARDEN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => keywarden_agent::exit_with_causes("keywarden", e.as_ref()),
    }
}

fn keyring(global: &Global) -> Keyring {
    let keys = keywarden_agent::keyring::assemble(keywarden_agent::keyring::KeySources {
        no_hid: global.no_hid,
        soft_keys: global.soft_keys.clone(),
        lock: None,
    });
    let soft = &keys.soft_keys;
    if !soft.is_empty() {
        eprintln!(
            "note: {} {} in use: {} (not a real security key)",
            soft.len(),
            if soft.len() == 1 {
                "software key (test/demo) is"
            } else {
                "software keys (test/demo) are"
            },
            soft.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    keys.keyring
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (paths, managed) = keywarden_agent::local_setup(cli.global.home.as_deref())?;
    let agent = Agent::new(paths, keyring(&cli.global)).with_managed(managed);
    let json = cli.global.json;
    match cli.command {
        Command::Provision {
            server,
            token,
            reprovision,
        } => {
            let server = agent.effective_server(server.as_deref())?;
            let cfg = agent.provision(&server, &token, reprovision)?;
            if json {
                print_json(&cfg)?;
            } else {
                println!(
                    "provisioned: this laptop is device {} with {}",
                    cfg.device_id, cfg.server_url
                );
                match agent.relying_party() {
                    Ok(rp) => println!("signs only for: {} ({})", rp.rp_id, rp.origin),
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
        }
        Command::Report { queue_only } => {
            let report = agent.queue_report()?;
            if queue_only {
                println!("queued report {}", report.report_id);
                return Ok(());
            }
            let outcome = agent.flush()?;
            if json {
                print_json(&serde_json::json!({"report": report, "outcome": outcome}))?;
            } else {
                println!(
                    "report {}: {} key(s), posture schema {}",
                    report.report_id,
                    report.keys.len(),
                    report.posture.schema_version
                );
                print_flush(&outcome);
            }
            if let Some(why) = outcome.stopped_by {
                anyhow::bail!("{} report(s) still queued: {why}", outcome.pending);
            }
        }
        Command::Flush => {
            let outcome = agent.flush()?;
            if json {
                print_json(&outcome)?
            } else {
                print_flush(&outcome)
            }
            if let Some(why) = outcome.stopped_by {
                anyhow::bail!("{} report(s) still queued: {why}", outcome.pending);
            }
        }
        Command::Select => {
            let id = select_by_touch(&agent)?;
            println!("{id}");
        }
        Command::Keys => {
            let inv = agent.inventory()?;
            let keys = inv.keys;
            if json {
                print_json(&keys)?;
            } else if keys.is_empty() {
                println!("{}", no_key_message());
                for f in &inv.findings {
                    println!("  why: {} [{}]", f.problem, f.code);
                    println!("  fix: {}", f.fix);
                }
            } else {
                for k in &keys {
                    print_key(k);
                }
            }
        }
        Command::Status => {
            let cfg = agent.config_if_any()?;
            let pending = agent.outbox().len()?;
            let checkin = agent.checkin_status()?;
            let managed = agent.managed().map(|m| m.source.display().to_string());
            let locked = agent.managed().and_then(|m| m.locked_server()).is_some();
            if json {
                print_json(&serde_json::json!({
                    "config": cfg,
                    "relying_party": agent.relying_party().ok(),
                    "outbox_pending": pending,
                    "checkin": checkin,
                    "managed_config": managed,
                    "server_locked": locked,
                    "ca_bundle": agent.managed().and_then(|m| m.ca_bundle.as_ref()),
                    "pin_ca_sha256": agent.managed().and_then(|m| m.pin_ca_sha256.as_ref()),
                }))?;
            } else {
                match cfg {
                    Some(c) => {
                        println!("provisioned: device {} with {}", c.device_id, c.server_url)
                    }
                    None => println!("not provisioned"),
                }
                match agent.relying_party() {
                    Ok(rp) => println!(
                        "signs only for: {} ({}){}",
                        rp.rp_id,
                        rp.origin,
                        if rp.managed {
                            ", set by your organisation"
                        } else {
                            ", pinned at provisioning"
                        }
                    ),
                    Err(keywarden_agent::Error::NotProvisioned) => {}
                    Err(e) => println!("signs for: nothing yet: {e}"),
                }
                if let Some(m) = managed {
                    println!(
                        "managed configuration: {m}{}",
                        if locked { " (server URL locked)" } else { "" }
                    );
                }
                if let Some(m) = agent.managed() {
                    if let Some(bundle) = &m.ca_bundle {
                        match &m.pin_ca_sha256 {
                            Some(pin) => println!(
                                "service certificate: only a chain to the CA {pin} of {}",
                                bundle.display()
                            ),
                            None => println!(
                                "service certificate: the system's roots and the CAs of {}",
                                bundle.display()
                            ),
                        }
                    }
                }
                println!("outbox: {pending} report(s) waiting");
                print_checkin(&checkin);
            }
        }
        Command::Checkin => {
            let status = agent.check_in(keywarden_agent::checkin::Trigger::Manual)?;
            if json {
                print_json(&status)?;
            } else {
                print_checkin(&status);
            }
            if let Some(e) = status.last_error {
                anyhow::bail!("check-in failed: {e}");
            }
        }
        Command::Run {
            poll_seconds,
            run_for,
        } => {
            use keywarden_agent::locks::{BackgroundLock, Claim};
            let _background = match BackgroundLock::claim(agent.paths())? {
                Claim::Ours(lock) => lock,
                Claim::Taken { pid } => anyhow::bail!(
                    "the background check-in already runs{} (keywarden-tray or keywarden run); \
                     not starting a second one",
                    pid.map_or_else(String::new, |p| format!(" (pid {p})"))
                ),
            };
            let (tx, rx) = std::sync::mpsc::channel();
            if let Some(secs) = run_for {
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_secs(secs));
                    let _ = tx.send(keywarden_agent::checkin::Control::Stop);
                });
            } else {
                // Keep the sender alive for the life of the process (SIGTERM ends it).
                std::mem::forget(tx);
            }
            keywarden_agent::checkin::run(
                &agent,
                std::time::Duration::from_secs(poll_seconds.max(1)),
                &rx,
                &|| false,
                &|event| match event {
                    keywarden_agent::checkin::Event::Keys(c) => {
                        for id in &c.added {
                            eprintln!("key plugged in: {id}");
                        }
                        for id in &c.removed {
                            eprintln!("key removed: {id}");
                        }
                    }
                    keywarden_agent::checkin::Event::CheckedIn(s) => match &s.last_error {
                        None => eprintln!(
                            "checked in ({}); {} report(s) waiting",
                            s.last_trigger.as_deref().unwrap_or("?"),
                            s.outbox_pending
                        ),
                        Some(e) => eprintln!("check-in failed: {e}"),
                    },
                },
            );
        }
        Command::Credentials { key, rp, pin_stdin } => {
            let pin = read_pin(pin_stdin)?;
            let creds = agent.key_credentials(&key, &rp, &pin)?;
            if json {
                print_json(&creds)?;
            } else if creds.is_empty() {
                println!("no passkeys for {rp} on {key}");
            } else {
                for c in &creds {
                    println!("{}  {}  {}", c.rp_id, c.user_name, c.credential_id);
                }
            }
        }
        Command::ChangePin { key, pin_stdin } => {
            let prompts = if pin_stdin {
                let mut lines = prompts::stdin_lines()?.into_iter();
                let (current, new) = (lines.next(), lines.next());
                if new.is_none() {
                    anyhow::bail!("--pin-stdin needs two lines: the current PIN, then the new one");
                }
                TerminalPrompts {
                    pin_from_stdin: current,
                    new_pin_from_stdin: new,
                }
            } else {
                TerminalPrompts {
                    pin_from_stdin: None,
                    new_pin_from_stdin: None,
                }
            };
            let key = match key {
                Some(k) => k,
                None => {
                    let keys = agent.keys()?;
                    match keys.len() {
                        0 => anyhow::bail!("{}", no_key_message()),
                        1 => keys[0].id.clone(),
                        _ => keys[prompts.choose_key(&keys)?].id.clone(),
                    }
                }
            };
            let (info, new_pin) = {
                let mut k = agent.open_key(&key)?;
                let new_pin = keywarden_agent::pin::change_pin(k.as_mut(), &prompts, None)?;
                (k.info()?, new_pin)
            };
            // A key IT issued is activated now that its PIN is the person's.
            issue::activate_after_change(&agent, &key, &new_pin);
            if json {
                print_json(&info)?;
            } else {
                println!(
                    "PIN changed on {} [{}]; it needs at least {} characters.",
                    info.label,
                    info.id,
                    keywarden_agent::pin::min_pin_length(&info)
                );
            }
        }
        Command::Enrol {
            ticket,
            mut keys,
            pin_stdin,
            touch_to_choose,
            with_key,
            browser_link,
        } => {
            if keys.is_empty() && touch_to_choose && agent.keys()?.len() > 1 {
                keys.push(select_by_touch(&agent)?);
            }
            let opts = EnrolOptions {
                pin_stdin,
                json,
                browser_link,
            };
            enrol(&agent, &ticket, with_key.as_deref(), &keys, opts)?
        }
        Command::AddKey {
            with_key,
            keys,
            pin_stdin,
            browser_link,
        } => {
            let (proof_pin, new_pin) = two_pins(pin_stdin)?;
            let proof_pin = match proof_pin {
                Some(p) => p,
                None => read_pin(false)?,
            };
            // Fresh posture first, so the credential is bound with this laptop's current posture.
            if let Err(e) = agent.report() {
                eprintln!("note: could not send a posture report before enrolling: {e}");
            }
            eprintln!("Confirm it is you with the key you already have.");
            let session =
                keywarden_agent::stepup::add_key(&agent, &with_key, &proof_pin, &TouchNotice)?;
            let prompts = TerminalPrompts {
                pin_from_stdin: new_pin,
                new_pin_from_stdin: None,
            };
            let session = enrol_in(&agent, session, &keys, &prompts, json)?;
            if browser_link {
                print_browser_link(&agent, &session)?;
            }
        }
        Command::SignIn { key, pin_stdin } => {
            let pin = read_pin(pin_stdin)?;
            let who = keywarden_agent::stepup::sign_in(&agent, &key, &pin, &TouchNotice)?;
            if json {
                print_json(&who)?;
            } else {
                println!(
                    "Signed in as {} <{}> with credential {}.",
                    who.person.display_name, who.person.user_name, who.signed_in_with
                );
                for c in &who.credentials {
                    println!(
                        "  {}  {}  {}{}",
                        c.id,
                        c.status,
                        c.model.as_deref().unwrap_or("unknown model"),
                        if c.id == who.signed_in_with {
                            "  (this key)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        Command::Lost {
            credential,
            key,
            reason,
            pin_stdin,
        } => {
            let pin = read_pin(pin_stdin)?;
            let c = keywarden_agent::stepup::report_lost(
                &agent,
                &credential,
                &key,
                &pin,
                reason.as_deref(),
                &TouchNotice,
            )?;
            if json {
                print_json(&c)?;
            } else {
                println!("Credential {} is {} now: it no longer works. Ask the help desk for a recovery ticket to enrol a replacement.", c.id, c.status);
            }
        }
        Command::Recover {
            ticket,
            with_key,
            keys,
            pin_stdin,
        } => {
            let (first, second) = two_pins(pin_stdin)?;
            let step_pin = match (&with_key, first) {
                (Some(_), Some(p)) => Some(p),
                (Some(_), None) => Some(read_pin(false)?),
                (None, _) => None,
            };
            let key = with_key.as_deref().zip(step_pin.as_deref());
            let session = keywarden_agent::stepup::recover(&agent, &ticket, key, &TouchNotice)?;
            let prompts = TerminalPrompts {
                pin_from_stdin: second,
                new_pin_from_stdin: None,
            };
            enrol_in(&agent, session, &keys, &prompts, json)?;
        }
        Command::Issue {
            csv,
            scim_group,
            out,
            keys_per_person,
            staff_key,
            pin_stdin,
        } => issue::issue(
            &agent,
            &issue::IssueOptions {
                csv: csv.as_deref(),
                scim_group: scim_group.as_deref(),
                out: &out,
                keys_per_person,
                staff_key: &staff_key,
                pin_stdin,
                json,
            },
        )?,
        Command::ActivateKey { key, pin_stdin } => issue::activate(&agent, &key, pin_stdin)?,
        Command::Reclaim { pin_stdin } => {
            let pin = if pin_stdin {
                Some(read_pin(true)?)
            } else {
                None
            };
            let done = keywarden_agent::reclaim::run(&agent, pin.as_deref(), &TouchNotice)?;
            if json {
                let receipts: Vec<_> = done.iter().map(|r| &r.receipt).collect();
                print_json(&receipts)?;
            } else if done.is_empty() {
                println!("no key here belongs to someone who left; nothing to reclaim");
            } else {
                for r in &done {
                    println!(
                        "{}: {} ({}) — {}{}",
                        r.directive.key_id,
                        r.directive.reason,
                        match r.receipt.outcome {
                            keywarden_protocol::ReclaimOutcome::Done => "done",
                            keywarden_protocol::ReclaimOutcome::Failed => "NOT done",
                        },
                        r.receipt.detail,
                        if r.recorded {
                            "; recorded as reclaimed"
                        } else if r.queued {
                            "; the receipt waits on this laptop and is sent when the service can be reached"
                        } else {
                            ""
                        }
                    );
                }
            }
            if done.iter().any(|r| !r.recorded) {
                anyhow::bail!("some keys were not reclaimed; see above");
            }
        }
    }
    Ok(())
}
