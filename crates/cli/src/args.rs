//! Command-line arguments, defined once with clap derive.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Keywarden agent: provision this laptop, report its posture and security keys, and enrol
/// keys for the person whose one-time ticket IT issued.
#[derive(Debug, Parser)]
#[command(name = "keywarden", version, about)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Keep config and state under this folder instead of the platform folders
    /// (also KEYWARDEN_HOME).
    #[arg(long, global = true, env = "KEYWARDEN_HOME")]
    pub(crate) home: Option<PathBuf>,
    /// Use a software key (test/demo only) kept in this state file; repeat for several.
    /// It is never used unless named here (or in KEYWARDEN_SOFT_KEYS, colon-separated).
    #[arg(long = "soft-key", global = true, value_name = "FILE")]
    pub(crate) soft_keys: Vec<PathBuf>,
    /// Do not look for real security keys over USB HID.
    #[arg(long, global = true)]
    pub(crate) no_hid: bool,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Change a key's PIN. A key that asks for a new PIN before it can be used (IT set it so,
    /// or its minimum PIN length was raised) is unlocked this way; `enrol` also guides you
    /// through it. Shows the key's minimum PIN length and the attempts left.
    ChangePin {
        /// Key id (from `keywarden keys`); without it you are asked which when several are
        /// present.
        #[arg(long = "key", value_name = "ID")]
        key: Option<String>,
        /// Read the PINs from standard input: the current PIN on the first line, the new one
        /// on the second.
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
        /// Read the PIN from the first line of standard input (for scripting); a second line is
        /// the new PIN, used only when the key asks for one.
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
    /// IT issuing station: enrol organisation-owned keys for the people of a list, each blank
    /// key getting a random PIN and a forced PIN change, and write a handover sheet per person
    /// and a separate PIN sheet per key (PDF) into --out. Confirm with your own staff key
    /// first (its PIN and a touch). The PINs appear only on the PIN sheets.
    Issue {
        /// CSV list: a header `user_name[,keys]`, then one row a person.
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "scim_group",
            required_unless_present = "scim_group"
        )]
        csv: Option<PathBuf>,
        /// Issue keys to the members of this SCIM group (its display name) instead.
        #[arg(long, value_name = "NAME")]
        scim_group: Option<String>,
        /// Folder for the handover and PIN sheets (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Keys per person (1 or 2), where the list does not say.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=2))]
        keys_per_person: u32,
        /// Your own key (id from `keywarden keys`), which confirms you may issue keys.
        #[arg(long = "staff-key", value_name = "ID")]
        staff_key: String,
        /// Read your key's PIN from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
    /// Activate a key IT issued to you, after changing its PIN (`change-pin` does this
    /// itself): its new PIN and a touch show the service the PIN is yours now.
    ActivateKey {
        /// Key id (from `keywarden keys`).
        #[arg(long = "key", value_name = "ID")]
        key: String,
        /// Read the PIN from the first line of standard input.
        #[arg(long)]
        pin_stdin: bool,
    },
}
