//! `keywarden`: the headless Keywarden agent, for IT scripting and the terminal.
//!
//! Everything here is a thin layer over `keywarden-agent`; prompts (which key, PIN, touch) go
//! through the same callback trait the desktop app implements.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use keywarden_agent::config::Paths;
use keywarden_agent::enrol::EnrolPrompts;
use keywarden_agent::keys::{KeyInfo, Keyring, Prompt};
use keywarden_agent::{Agent, Error};

/// Keywarden agent: provision this laptop, report its posture and security keys, and enrol
/// keys for the person whose one-time ticket IT issued.
#[derive(Debug, Parser)]
#[command(name = "keywarden", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Keep config and state under this folder instead of the platform folders
    /// (also KEYWARDEN_HOME).
    #[arg(long, global = true, env = "KEYWARDEN_HOME")]
    home: Option<PathBuf>,
    /// Use a software key (test/demo only) kept in this state file; repeat for several.
    /// It is never used unless named here (or in KEYWARDEN_SOFT_KEYS, colon-separated).
    #[arg(long = "soft-key", global = true, value_name = "FILE")]
    soft_keys: Vec<PathBuf>,
    /// Do not look for real security keys over USB HID.
    #[arg(long, global = true)]
    no_hid: bool,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register this laptop with the service using a one-time provisioning token from IT.
    Provision {
        /// Service URL, e.g. https://keywarden.example.com (optional when a managed
        /// configuration names it; refused when it locks another one).
        #[arg(long)]
        server: Option<String>,
        /// The one-time provisioning token.
        #[arg(long, env = "KEYWARDEN_PROVISIONING_TOKEN", hide_env_values = true)]
        token: String,
        /// Replace an existing device identity (the old one stops working).
        #[arg(long)]
        reprovision: bool,
    },
    /// Send posture and the key inventory now (queued durably first; resent until acknowledged).
    Report {
        /// Only queue the report; do not send.
        #[arg(long)]
        queue_only: bool,
    },
    /// Send reports still waiting in the outbox.
    Flush,
    /// List the security keys this laptop can see.
    Keys,
    /// Show provisioning, managed configuration, last check-in and outbox status.
    Status,
    /// Check in now: queue a report, send the outbox, and record the outcome (what the tray's
    /// "check in now" does).
    Checkin,
    /// Run in the background: check in on the schedule and whenever a key is plugged in
    /// (without a desktop; in a desktop session `keywarden-tray` does this, with a tray icon).
    /// Only one background check-in runs per person. Stops on SIGTERM or after --for seconds.
    Run {
        /// Seconds between key polls.
        #[arg(long, default_value_t = 2)]
        poll_seconds: u64,
        /// Stop after this many seconds (for benchmarks and tests).
        #[arg(long = "for", value_name = "SECONDS")]
        run_for: Option<u64>,
    },
    /// List the organisation's passkeys stored on a key (credential management; needs the PIN).
    Credentials {
        /// Key id (from `keywarden keys`).
        #[arg(long = "key", value_name = "ID")]
        key: String,
        /// Relying party id, e.g. example.com.
        #[arg(long)]
        rp: String,
        /// Read the PIN from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Several keys plugged in? Touch the one you mean: prints its id. Every key that can do
    /// CTAP 2.1 selection waits for a touch; the first one touched wins.
    Select,
    /// Enrol security keys for the person named by a one-time enrolment ticket. Someone who
    /// already has a key proves it is them with it (--with-key), or uses `add-key` instead.
    Enrol {
        /// The one-time enrolment ticket from IT.
        #[arg(long, env = "KEYWARDEN_TICKET", hide_env_values = true)]
        ticket: String,
        /// Key to enrol (id from `keywarden keys`); repeat to enrol a primary then a backup
        /// key in the same session. Without it you are asked which key when several are present.
        #[arg(long = "key", value_name = "ID")]
        keys: Vec<String>,
        /// Read the PIN from the first line of standard input (for scripting).
        #[arg(long)]
        pin_stdin: bool,
        /// When several keys are present and no --key is given, choose by touching the key
        /// instead of typing its number.
        #[arg(long)]
        touch_to_choose: bool,
        /// A key of yours that is enrolled already: someone who has a key proves it is them
        /// with it (its PIN and a touch) before a ticket adds another. With --pin-stdin the
        /// first line is this key's PIN and the next the new key's.
        #[arg(long = "with-key", value_name = "ID")]
        with_key: Option<String>,
        /// After the keys, print a one-time link to standard error that opens your
        /// organisation's self-service page in a browser, to add this laptop's or your phone's
        /// passkey there. The link is a secret that signs a browser in once: open it yourself,
        /// do not paste it anywhere else.
        #[arg(long)]
        browser_link: bool,
    },
    /// Add a security key, proving it is you with a key you already have (its PIN and a
    /// touch): no ticket needed. The new key is enrolled as with a ticket.
    AddKey {
        /// The key you already have (id from `keywarden keys`).
        #[arg(long = "with-key", value_name = "ID")]
        with_key: String,
        /// The new key(s) to enrol; without it you are asked which when several are present.
        #[arg(long = "key", value_name = "ID")]
        keys: Vec<String>,
        /// Read the PINs from standard input: the first line for --with-key, the next for the
        /// new key (the first is used for both when there is only one).
        #[arg(long)]
        pin_stdin: bool,
        /// After the new key, print a one-time link to your self-service page to standard
        /// error, as `enrol --browser-link` does.
        #[arg(long)]
        browser_link: bool,
    },
    /// Sign in with one of your keys: shows who you are and your keys known to the service.
    SignIn {
        /// Key id (from `keywarden keys`).
        #[arg(long = "key", value_name = "ID")]
        key: String,
        /// Read the PIN from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Report one of your keys lost, proving it is you with another of your keys: the lost key
    /// is suspended at once.
    Lost {
        /// The lost key's credential id (from `keywarden sign-in`).
        #[arg(long, value_name = "CREDENTIAL")]
        credential: String,
        /// The key you still have.
        #[arg(long = "key", value_name = "ID")]
        key: String,
        /// What happened.
        #[arg(long)]
        reason: Option<String>,
        /// Read the PIN from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Enrol a replacement for a lost key with the recovery ticket from the help desk and a
    /// fresh sign-in with another of your keys (--with-key), or, when no key is left and two
    /// approvers agreed, the ticket alone.
    Recover {
        /// The recovery ticket from the help desk.
        #[arg(long)]
        ticket: String,
        /// A key you still have (omit only when the help desk says no key is needed).
        #[arg(long = "with-key", value_name = "ID")]
        with_key: Option<String>,
        /// The replacement key(s) to enrol.
        #[arg(long = "key", value_name = "ID")]
        keys: Vec<String>,
        /// Read the PIN from standard input: the first line for --with-key, the next for the
        /// replacement (the first is used for both when there is only one).
        #[arg(long)]
        pin_stdin: bool,
    },
    /// IT reclaim station: wipe the keys plugged in that belong to people who left (a factory
    /// reset for organisation-owned keys; only the organisation's credentials, with the PIN,
    /// for personal keys), check each key afterwards and send a receipt to the service.
    Reclaim {
        /// Read the PIN of a personal key from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
}

/// Tells the person at the terminal to touch a key.
struct TouchNotice;

impl Prompt for TouchNotice {
    fn touch(&self, key: &KeyInfo) {
        eprintln!("Waiting for a touch: {} [{}]", key.label, key.id);
    }
}

/// CTAP selection over every key present; returns the id of the one touched.
fn select_by_touch(agent: &Agent) -> anyhow::Result<String> {
    let ids: Vec<String> = agent.keys()?.into_iter().map(|k| k.id).collect();
    if ids.is_empty() {
        anyhow::bail!("{}", no_key_message());
    }
    eprintln!("Touch the key you want to use.");
    Ok(agent.select_by_touch(&ids, std::sync::Arc::new(TouchNotice))?)
}

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
        Err(e) => {
            eprintln!("keywarden: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
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
    let paths = Paths::resolve(cli.global.home.as_deref())?;
    let managed = keywarden_agent::managed::ManagedConfig::load(
        &keywarden_agent::managed::ManagedConfig::default_path(),
    )?;
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
            };
            enrol_in(&agent, session, &keys, &prompts, json)?;
        }
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

fn print_flush(o: &keywarden_agent::FlushOutcome) {
    for ack in &o.sent {
        println!(
            "  sent {}{}",
            ack.report_id,
            if ack.newly_stored {
                ""
            } else {
                " (already stored; not stored again)"
            }
        );
    }
    for (id, why) in &o.rejected {
        println!("  refused {id}: {why} (kept in outbox/rejected)");
    }
    if o.pending > 0 {
        println!("  {} report(s) still waiting in the outbox", o.pending);
    }
}

fn print_checkin(c: &keywarden_protocol::CheckinStatus) {
    let when =
        |ms: Option<i64>| ms.map_or_else(|| "never".to_owned(), |m| format!("{m} (unix ms)"));
    println!(
        "last check-in: {} ({}){}",
        when(c.last_attempt_at_ms),
        c.last_trigger.as_deref().unwrap_or("none"),
        c.last_error
            .as_deref()
            .map(|e| format!(", failed: {e}"))
            .unwrap_or_default()
    );
    println!("last successful report: {}", when(c.last_success_at_ms));
    println!(
        "check-in every {} s and when a key is plugged in",
        c.interval_seconds
    );
}

fn no_key_message() -> String {
    "no security key found. Plug one in. On Linux, if a key is plugged in but not seen, install \
     the udev rule for FIDO devices (installer/linux/70-keywarden-fido.rules) and re-plug the key."
        .to_owned()
}

fn print_key(k: &KeyInfo) {
    println!("{}", k.id);
    println!(
        "  {}{}",
        k.label,
        k.model
            .as_deref()
            .map(|m| format!(" — {m}"))
            .unwrap_or_default()
    );
    println!("  aaguid {}  versions {}", k.aaguid, k.versions.join(","));
    println!(
        "  PIN {}{}",
        if k.pin_set { "set" } else { "not set" },
        k.pin_retries
            .filter(|_| k.pin_set)
            .map(|r| format!(", {r} retries left"))
            .unwrap_or_default()
    );
    if let Some(n) = k.remaining_discoverable_credentials {
        println!("  {n} discoverable credential slot(s) free");
    }
}

/// Terminal prompts: numbered key choice, hidden PIN entry typed twice for a new PIN.
struct TerminalPrompts {
    pin_from_stdin: Option<String>,
}

impl Prompt for TerminalPrompts {
    fn touch(&self, key: &KeyInfo) {
        eprintln!("Touch your key now: {}", key.label);
    }
}

impl TerminalPrompts {
    fn read_hidden(&self, prompt: &str) -> keywarden_agent::Result<String> {
        if let Some(p) = &self.pin_from_stdin {
            return Ok(p.clone());
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::NeedsInput(
                "a PIN is needed but there is no terminal; pass --pin-stdin".into(),
            ));
        }
        rpassword::prompt_password(prompt).map_err(|_| Error::Cancelled)
    }
}

impl EnrolPrompts for TerminalPrompts {
    fn choose_key(&self, keys: &[KeyInfo]) -> keywarden_agent::Result<usize> {
        eprintln!("Several keys are present. Which one do you want to enrol?");
        for (i, k) in keys.iter().enumerate() {
            eprintln!(
                "  {}) {} {} [{}]",
                i + 1,
                k.label,
                k.model.as_deref().unwrap_or(""),
                k.id
            );
        }
        if !std::io::stdin().is_terminal() {
            return Err(Error::NeedsInput(
                "several keys are present; choose one with --key".into(),
            ));
        }
        eprint!("number: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|_| Error::Cancelled)?;
        line.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=keys.len()).contains(n))
            .map(|n| n - 1)
            .ok_or(Error::Cancelled)
    }

    fn new_pin(&self, key: &KeyInfo, min_len: u32) -> keywarden_agent::Result<String> {
        eprintln!(
            "{} has no PIN yet. Choose one of at least {min_len} characters.",
            key.label
        );
        let first = self.read_hidden("New PIN: ")?;
        if self.pin_from_stdin.is_none() {
            let again = self.read_hidden("New PIN again: ")?;
            if again != first {
                return Err(Error::PinRejected(
                    "the two PINs differ; nothing was changed".into(),
                ));
            }
        }
        Ok(first)
    }

    fn pin(
        &self,
        key: &KeyInfo,
        retries: Option<u32>,
        last_failed: bool,
    ) -> keywarden_agent::Result<String> {
        if last_failed && self.pin_from_stdin.is_some() {
            return Err(Error::PinRejected("wrong PIN".into()));
        }
        if let Some(r) = retries {
            if last_failed {
                eprintln!("Wrong PIN. {r} attempts left before the key locks.");
            }
            if r <= 3 {
                eprintln!(
                    "Careful: {r} PIN attempts left before {} locks for good.",
                    key.label
                );
            }
        }
        self.read_hidden(&format!("PIN for {}: ", key.label))
    }
}

/// With `--pin-stdin`, two PINs from standard input: the first line for the key that proves
/// who you are, the next for the key to enrol (the first for both when there is one line).
fn two_pins(pin_stdin: bool) -> anyhow::Result<(Option<String>, Option<String>)> {
    if !pin_stdin {
        return Ok((None, None));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
        .context("cannot read the PINs from stdin")?;
    let mut lines = text.lines().map(str::to_owned);
    let first = lines.next().unwrap_or_default();
    let second = lines.next().unwrap_or_else(|| first.clone());
    Ok((Some(first), Some(second)))
}

/// How `keywarden enrol` runs.
struct EnrolOptions {
    pin_stdin: bool,
    json: bool,
    /// Print the one-time self-service link to stderr after the keys.
    browser_link: bool,
}

fn enrol(
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
    let (proof_pin, pin_from_stdin) = match (with_key, pin_stdin) {
        (Some(_), _) => two_pins(pin_stdin)?,
        (None, true) => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the PIN from stdin")?;
            (None, Some(line.trim_end_matches(['\r', '\n']).to_owned()))
        }
        (None, false) => (None, None),
    };
    let prompts = TerminalPrompts { pin_from_stdin };
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
fn print_browser_link(
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

/// Read one PIN: from the first line of stdin, or from the terminal.
fn read_pin(pin_stdin: bool) -> anyhow::Result<String> {
    if pin_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the PIN from stdin")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("PIN: ").context("cannot read the PIN")
    } else {
        anyhow::bail!("a PIN is needed but there is no terminal; pass --pin-stdin");
    }
}

/// Enrol `keys` (or the one chosen) in an open session, printing progress.
fn enrol_in(
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
            view.active_authenticators,
            view.required_authenticators
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
            println!(
                "You have {} of {} required authenticators.",
                r.active_authenticators, r.required_authenticators
            );
        }
        results.push(done);
    }
    if let Some(last) = results.last() {
        let r = &last.result;
        if !json {
            if r.active_authenticators < r.required_authenticators {
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
