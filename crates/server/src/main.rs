//! `keywarden-server`: serve the Keywarden API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use clap::Subcommand;
use keywarden_server::auth::Role;
use keywarden_server::{
    admin, audit, coverage, db, devices, mds, router, service_keys, tokens, trust, AppState,
    Clock as _, Settings, SystemClock,
};

mod tls;

/// The Keywarden central service: binds FIDO2 credentials to verified identities, receives
/// device reports, and answers the admin and SCIM APIs. Without a subcommand it serves.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Folder for the embedded SQLite database (created if missing).
    #[arg(
        long,
        env = "KEYWARDEN_DATA_DIR",
        default_value = "./keywarden-data",
        global = true
    )]
    data_dir: PathBuf,
    /// Database URL; overrides --data-dir. `sqlite:///path/file.db` (default, embedded) or
    /// `postgres://user@host:port/db`.
    #[arg(long, env = "KEYWARDEN_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Lifetime of an enrolment ticket when the issuer gives none, in seconds.
    #[arg(long, default_value_t = 600)]
    ticket_ttl_seconds: u64,
    /// Address to listen on.
    #[arg(long, env = "KEYWARDEN_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// The server certificate chain (PEM: the server's certificate, then its intermediates) to
    /// serve HTTPS with; reloaded with its key on SIGHUP. Give it with --tls-key.
    #[arg(long, env = "KEYWARDEN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "KEYWARDEN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback --listen address because a reverse proxy in front
    /// terminates TLS. Without it (or --tls-cert) plain HTTP is served on loopback only.
    #[arg(long, env = "KEYWARDEN_BEHIND_TLS_PROXY", conflicts_with = "tls_cert")]
    behind_tls_proxy: bool,
    /// WebAuthn relying party id: the organisation's domain.
    #[arg(long, env = "KEYWARDEN_RP_ID", default_value = "keywarden.localhost")]
    rp_id: String,
    /// Origin agents put into clientDataJSON; its host must be the rp id or below it.
    #[arg(
        long,
        env = "KEYWARDEN_ORIGIN",
        default_value = "https://keywarden.localhost"
    )]
    origin: url::Url,
    /// Active authenticators every person needs (coverage policy).
    #[arg(long, default_value_t = 2)]
    min_authenticators: u32,
    /// Where the first-start admin token goes (a new file, mode 0600). Without it the token is
    /// shown on the terminal when there is one, else written to `first-admin-token` in the data
    /// directory; it never goes to a log or to output a service manager collects.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
    /// Where the console's one-time setup link for the first admin goes (mode 0600), written at
    /// each start while nobody holds the admin role (a new link ends an unused earlier one).
    /// Default: `console-setup-link` in the data directory; never a log.
    #[arg(long)]
    setup_link_file: Option<PathBuf>,
    /// The file holding the service's webhook signing key (created mode 0600 on first start;
    /// refused when others may read it). Replicas share one. Default: `webhook-signing.key` in
    /// the data directory. The database keeps only the public half.
    #[arg(long, env = "KEYWARDEN_WEBHOOK_KEY_FILE", global = true)]
    webhook_key_file: Option<PathBuf>,
    /// Where signed audit checkpoints are appended (JSON lines): put it on write-once storage.
    /// Default: `audit-checkpoints.jsonl` in the data directory.
    #[arg(long, env = "KEYWARDEN_AUDIT_CHECKPOINT_FILE", global = true)]
    audit_checkpoint_file: Option<PathBuf>,
    /// How often the service signs the audit chain's head (when it grew), in seconds; 0: only
    /// on demand (`audit checkpoint`).
    #[arg(long, default_value_t = 3600)]
    audit_checkpoint_interval_seconds: u64,
    /// Where each audit checkpoint is also POSTed (signed JSON, event type `audit.checkpoint`,
    /// through the outbox): write-once storage behind a webhook.
    #[arg(long, env = "KEYWARDEN_AUDIT_CHECKPOINT_WEBHOOK", global = true)]
    audit_checkpoint_webhook: Option<url::Url>,
    /// The file holding the key that signs audit checkpoints (as --webhook-key-file).
    /// Default: `audit-checkpoint.key` in the data directory.
    #[arg(long, env = "KEYWARDEN_CHECKPOINT_KEY_FILE", global = true)]
    checkpoint_key_file: Option<PathBuf>,
    /// How long a touch of the key counts as fresh for the console's sensitive actions
    /// (issue, approve, suspend, retire, change policy or roles), in seconds: 1 to 300.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=300))]
    fresh_touch_seconds: u64,
    /// How many days a key IT issued at an issuing station waits for its person to change the
    /// PIN and activate it; after that it is suspended and flagged "expired before activation".
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u64).range(1..=365))]
    issued_key_expiry_days: u64,
    /// Where notifications to people are POSTed (signed JSON); without it they stay queued.
    #[arg(long, env = "KEYWARDEN_NOTIFY_WEBHOOK")]
    notify_webhook: Option<url::Url>,
    /// Where signed revocation events go when someone leaves (the IdP); without it they stay queued.
    #[arg(long, env = "KEYWARDEN_IDP_WEBHOOK")]
    idp_webhook: Option<url::Url>,
    /// First retry delay of a failed webhook delivery, in milliseconds (doubles per attempt, at most 5 min).
    #[arg(long, default_value_t = 1000)]
    webhook_backoff_ms: u64,
    /// Lifetime of a recovery ticket when the issuer gives none, in seconds.
    #[arg(long, default_value_t = 1800)]
    recovery_ttl_seconds: u64,
    /// How long laptops' reports are kept, in days (each laptop's latest is always kept).
    #[arg(long, default_value_t = 395, global = true, value_parser = clap::value_parser!(u64).range(1..=36500))]
    report_retention_days: u64,
    /// Longest a request may run, in seconds; a request still running is dropped and nothing
    /// of it is kept (503 `request_timeout`).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout_seconds: u64,
    /// Requests this process serves at once; more are refused at once (503 `service_busy`).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_in_flight: u64,
    /// Of those, how many may be on the routes open to callers who have proved nothing yet
    /// (provisioning, ticket and link redemption, sign-in, the console's first setup).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65536))]
    max_open_in_flight: u64,
    /// Requests per minute one address may make to those open routes (0: no per-address
    /// limit). Behind --behind-tls-proxy the address is the one the proxy appends to
    /// X-Forwarded-For.
    #[arg(long, default_value_t = 60)]
    open_requests_per_minute: u32,
    /// How many of those one address may make at once before the rate applies.
    #[arg(long, default_value_t = 30)]
    open_burst: u32,
    /// Lifetime of an API token, in days: the default, and the most an issuer may ask for.
    /// Tokens never live for ever.
    #[arg(long, env = "KEYWARDEN_TOKEN_TTL_DAYS", default_value_t = 90, global = true,
        value_parser = clap::value_parser!(u64).range(1..=3650))]
    token_ttl_days: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// HTTPS certificates.
    Tls {
        #[command(subcommand)]
        action: TlsCommand,
    },
    /// The audit log: check its hash chain, or export it.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Delete what the service keeps only for a while (old reports but each laptop's latest,
    /// expired challenges, sessions and links, old redemption attempts) now; the service also
    /// does it daily. The audit trail is kept, and records each pruning.
    Prune,
    /// Coverage reports for admins and auditors.
    Report {
        #[command(subcommand)]
        what: ReportCommand,
    },
    /// Load a FIDO Metadata Service blob (a file, offline) after checking its certificate chain
    /// against the trusted root and its signature: its models' attestation roots become trust
    /// anchors, and with --population its trusted models become that population's allow-list.
    LoadMds {
        /// The MDS3 blob (JWS) file.
        #[arg(long)]
        blob: PathBuf,
        /// The trusted root certificate (PEM), e.g. the FIDO Alliance MDS root.
        #[arg(long)]
        root_cert: PathBuf,
        /// The population whose AAGUID allow-list is replaced by the blob's trusted models.
        #[arg(long)]
        population: Option<String>,
    },
    /// Roots that attestation chains must lead to: list them, or add and remove roots by hand
    /// (those from the FIDO metadata change with `load-mds`).
    Trust {
        #[command(subcommand)]
        action: TrustCommand,
    },
    /// Issue an API token for a role and print it once (e.g. the SCIM token for the IdP).
    /// Admin, help-desk and auditor tokens belong to a person: give --person.
    IssueToken {
        /// The token's role.
        #[arg(long, value_enum)]
        role: Role,
        /// What the token is for.
        #[arg(long)]
        label: String,
        /// The person id the token is issued to: required for admin, helpdesk and auditor
        /// tokens (a person from the HR feed or created by an admin); none for scim.
        #[arg(long)]
        person: Option<String>,
        /// Lifetime in days (default and maximum: --token-ttl-days).
        #[arg(long)]
        ttl_days: Option<u64>,
    },
    /// API tokens: list them (with person, expiry and last use) or revoke one.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Laptops: retire one or mark it lost (its device key stops working at once).
    Device {
        #[command(subcommand)]
        action: DeviceCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Make a private CA and a server certificate for a pilot: `ca.pem` (what agents trust),
    /// `ca.key`, `server.pem` and `server.key` (for --tls-cert and --tls-key), keys mode 0600;
    /// prints the CA's SHA-256 fingerprint for the agents' `pin_ca_sha256`. Replaces nothing.
    Init {
        /// The folder to write them in (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// A name (or IP address) agents and browsers reach the service by; repeat for several.
        #[arg(long = "hostname", default_value = "localhost")]
        hostnames: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Every token with its role, person, label, expiry, last use and state; never the secret.
    List,
    /// Revoke a token by id.
    Revoke {
        /// The token id (from `token list`).
        id: String,
        /// Why, for the audit log.
        #[arg(long, default_value = "revoked from the service CLI")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// Take a laptop out of service: its key is refused, its bindings end, open enrolment
    /// sessions on it close, credentials living in it are revoked; its history is kept.
    Retire {
        /// The device id (GET /api/v1/admin/devices).
        id: String,
        /// Why it leaves service.
        #[arg(long, value_enum)]
        reason: devices::RetireReason,
        /// What happened, for the audit log.
        #[arg(long)]
        note: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum TrustCommand {
    /// Every trust anchor, and whether the FIDO metadata is stale (past its nextUpdate).
    List,
    /// Trust a root certificate (PEM) for attestation chains of any key model.
    Add {
        /// The root certificate, PEM.
        #[arg(long)]
        pem: PathBuf,
        /// What it is, e.g. "Acme keys root (procurement 2026)" or "software key (test/demo) root".
        #[arg(long)]
        label: String,
    },
    /// Stop trusting a root added by hand, by its SHA-256 fingerprint (from `trust list`).
    Remove {
        /// The fingerprint (hex).
        fingerprint: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and check it against the signed checkpoints; exits non-zero and
    /// names the row when anything was changed, deleted, rewritten with its hashes recomputed,
    /// or cut from the end.
    Verify {
        /// The checkpoints to check against (JSON lines, as the service appends them; a copy
        /// from write-once storage). Default: the --audit-checkpoint-file, when it exists.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// The audit checkpoint key's public half (base64url, which may start with `-`), for an
        /// auditor without the key file. Default: read from the --checkpoint-key-file.
        #[arg(long, allow_hyphen_values = true)]
        checkpoint_public_key: Option<String>,
    },
    /// Sign the chain's head now and append the checkpoint to the --audit-checkpoint-file.
    Checkpoint,
    /// Print every record as JSON lines.
    Export,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Share of people compliant per population, people by status, keys, posture.
    Coverage {
        /// Recompute everyone's coverage from their credentials and compare it with what the
        /// service keeps; exits non-zero and names each difference when they disagree.
        #[arg(long)]
        verify: bool,
    },
    /// Every active person with their status.
    People {
        /// Only people with this status.
        #[arg(long, value_enum)]
        status: Option<coverage::Status>,
    },
    /// Active credentials by key model.
    Keys,
    /// Laptop posture compliance by signal, and per population against its ongoing policy.
    Posture,
    /// Inactive people with anything still live (credentials, tickets, recoveries, laptops,
    /// exceptions, keys not reclaimed, API tokens, laptops left in service). Exits non-zero
    /// when it is not empty.
    Dormant,
    /// Offboardings and their time-to-revoke.
    Offboardings,
    /// NIST CSF 2.0 evidence (PR.AA-01, -02, -03, -05).
    Csf {
        /// The output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// JSON, for scripts.
    Json,
    /// A standalone HTML page.
    Html,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYWARDEN_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keywarden-server: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    if let Some(Command::Tls {
        action: TlsCommand::Init { dir, hostnames },
    }) = &cli.command
    {
        let now = time::OffsetDateTime::from_unix_timestamp(clock.now_ms() / 1000)?;
        let p = tls::init(dir, hostnames, now)?;
        println!(
            "CA certificate (what agents trust): {}",
            p.ca_cert.display()
        );
        println!("CA SHA-256 fingerprint: {}", p.ca_sha256);
        println!(
            "Serve with: keywarden-server --tls-cert {} --tls-key {}",
            p.server_cert.display(),
            p.server_key.display()
        );
        println!(
            "Agents' managed configuration: \"ca_bundle\": \"<where ca.pem is installed>\", \"pin_ca_sha256\": \"{}\"",
            p.ca_sha256
        );
        return Ok(());
    }
    let listen = match &cli.command {
        None | Some(Command::Serve) => Some(tls::Listen::choose(
            cli.listen,
            cli.tls_cert.clone().zip(cli.tls_key.clone()),
            cli.behind_tls_proxy,
        )?),
        _ => None,
    };
    // Where the signing keys and the audit checkpoints are (the commands below take parts of
    // `cli` by value).
    let files = key_files(&cli);
    let checkpoints_at = checkpoint_file(&cli);
    let url = match cli.database_url.clone() {
        Some(u) => u,
        None => {
            std::fs::create_dir_all(&cli.data_dir).with_context(|| {
                format!("cannot create data directory {}", cli.data_dir.display())
            })?;
            let dir = std::fs::canonicalize(&cli.data_dir)?;
            db::sqlite_url(&dir.join("keywarden.db"))
        }
    };
    let pool = db::connect(&url)
        .await
        .context("cannot open the database")?;
    let max_ttl = Duration::from_secs(cli.token_ttl_days.saturating_mul(86_400));
    let keep_reports = Duration::from_secs(cli.report_retention_days.saturating_mul(86_400));
    match cli.command {
        None | Some(Command::Serve) => {}
        Some(Command::Tls { .. }) => unreachable!("handled before the database opens"),
        Some(Command::Audit { action }) => {
            return match action {
                AuditCommand::Verify {
                    checkpoints,
                    checkpoint_public_key,
                } => {
                    let file =
                        checkpoints.or_else(|| Some(checkpoints_at.clone()).filter(|f| f.exists()));
                    let signed = match &file {
                        Some(f) => audit::checkpoint::read(f)?,
                        None => Vec::new(),
                    };
                    let trusted = match checkpoint_public_key {
                        Some(k) => Some(
                            keywarden_server::secrets::unb64(&k)
                                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                                .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
                                .context(
                                    "--checkpoint-public-key is not a base64url Ed25519 public key",
                                )?,
                        ),
                        None if signed.is_empty() => None,
                        None => Some(service_keys::public_key_in(&files.checkpoint)?),
                    };
                    let v = audit::verify_with(&pool, &signed, trusted.as_ref()).await?;
                    match v.problem {
                        None => {
                            println!(
                                "audit log intact: {} rows, hash chain verified, {} signed checkpoint(s) agree",
                                v.rows, v.checkpoints
                            );
                            Ok(())
                        }
                        Some(p) => {
                            anyhow::bail!("audit log TAMPERED: {p} ({} rows checked)", v.rows)
                        }
                    }
                }
                AuditCommand::Checkpoint => {
                    let (keys, _) =
                        service_keys::ServiceKeys::load(&pool, &files, clock.now_ms()).await?;
                    let file = checkpoints_at;
                    let now = clock.now_ms();
                    let to_webhook = cli.audit_checkpoint_webhook.is_some();
                    match audit::checkpoint::take(&pool, &keys, now).await? {
                        Some(c) => {
                            audit::checkpoint::publish(&pool, &c, &file, to_webhook, now).await?;
                            println!(
                                "checkpoint of row {} ({}) appended to {}{}",
                                c.seq,
                                c.hash,
                                file.display(),
                                if to_webhook {
                                    "; queued for the checkpoint webhook (the running service sends it)"
                                } else {
                                    ""
                                }
                            );
                        }
                        None => println!("the audit log is empty: nothing to sign"),
                    }
                    Ok(())
                }
                AuditCommand::Export => {
                    print!("{}", audit::to_json_lines(&audit::export(&pool).await?)?);
                    Ok(())
                }
            };
        }
        Some(Command::Prune) => {
            let state = AppState::new(
                pool,
                Settings::new(cli.rp_id.clone(), cli.origin.clone()),
                clock.clone(),
                service_keys::ServiceKeys::ephemeral(),
            )?;
            let pruned =
                keywarden_server::retention::prune(&state, clock.now_ms(), keep_reports).await?;
            if pruned.tables.is_empty() {
                println!("nothing to prune");
            }
            for (table, n) in pruned.tables {
                println!("{table}: {n} row(s) pruned");
            }
            return Ok(());
        }
        Some(Command::Report {
            what: ReportCommand::Dormant,
        }) => {
            let report = keywarden_server::offboard::dormant(&pool, clock.now_ms()).await?;
            print!("{}", keywarden_server::offboard::render(&report));
            if !report.people.is_empty() {
                anyhow::bail!(
                    "{} inactive people still have live access",
                    report.people.len()
                );
            }
            return Ok(());
        }
        Some(Command::Report {
            what: ReportCommand::Offboardings,
        }) => {
            for o in keywarden_server::offboard::load(&pool).await? {
                let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
                println!(
                    "{} person {} {} revoked in {} acknowledged in {} ({} credentials)",
                    o.id,
                    o.person_id,
                    o.trigger,
                    ms(o.revoke_ms),
                    ms(o.acknowledged_ms),
                    o.summary.credentials_revoked.len()
                );
            }
            return Ok(());
        }
        Some(Command::Report {
            what: ReportCommand::Csf { format },
        }) => {
            let e = keywarden_server::csf::compute(&pool, clock.now_ms(), cli.min_authenticators)
                .await?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&e)?),
                Format::Html => println!("{}", keywarden_server::csf::render_html(&e)),
            }
            return Ok(());
        }
        Some(Command::Report {
            what: ReportCommand::Coverage { verify: true },
        }) => {
            let found = coverage::verify(&pool, clock.now_ms(), cli.min_authenticators).await?;
            if found.is_empty() {
                println!("coverage verified: what the service keeps equals a recompute");
                return Ok(());
            }
            for m in &found {
                println!("{}: kept {} recomputed {}", m.field, m.kept, m.recomputed);
            }
            anyhow::bail!(
                "coverage differs from a recompute in {} places",
                found.len()
            );
        }
        Some(Command::Report { what }) => {
            let (filter, name) = match &what {
                ReportCommand::Coverage { .. } => (None, "coverage"),
                ReportCommand::Keys => (None, "keys"),
                ReportCommand::Posture => (None, "posture"),
                ReportCommand::Dormant
                | ReportCommand::Offboardings
                | ReportCommand::Csf { .. } => {
                    unreachable!("handled above")
                }
                ReportCommand::People { status } => (Some(*status), "people"),
            };
            let report =
                coverage::compute(&pool, clock.now_ms(), cli.min_authenticators, filter).await?;
            print!("{}", coverage::render(&report, name));
            return Ok(());
        }
        Some(Command::LoadMds {
            blob,
            root_cert,
            population,
        }) => {
            let text = std::fs::read_to_string(&blob)
                .with_context(|| format!("cannot read {}", blob.display()))?;
            let root = std::fs::read(&root_cert)
                .with_context(|| format!("cannot read {}", root_cert.display()))?;
            let verified = mds::verify(&text, &root)?;
            let now = clock.now_ms();
            let stored = mds::store_metadata(&pool, now, "service-cli", &verified).await?;
            println!(
                "MDS blob {} verified; {} trust anchors for {} models stored",
                verified.number, stored.anchors, stored.models
            );
            if let Some(population) = population {
                let n =
                    mds::load_into_population(&pool, now, "service-cli", &population, &verified)
                        .await?;
                println!("population {population} now allows {n} AAGUIDs");
            }
            if verified.stale_at(now) {
                println!(
                    "STALE: this blob was due to be replaced on {} (nextUpdate); fetch the current blob, revocations may be missing",
                    verified.next_update
                );
            }
            return Ok(());
        }
        Some(Command::Trust { action }) => {
            let now = clock.now_ms();
            match action {
                TrustCommand::List => {
                    let listing = trust::list(&pool, now).await?;
                    match &listing.mds {
                        Some(m) if m.stale => println!(
                            "FIDO metadata: blob {} STALE since {} (nextUpdate); load the current blob",
                            m.blob_no, m.next_update
                        ),
                        Some(m) => println!(
                            "FIDO metadata: blob {}, {} models, next update due {}",
                            m.blob_no, m.models, m.next_update
                        ),
                        None => println!("FIDO metadata: none loaded"),
                    }
                    for a in &listing.anchors {
                        let models = if a.aaguids.is_empty() {
                            "any model".to_owned()
                        } else {
                            format!("{} model(s)", a.aaguids.len())
                        };
                        println!(
                            "{}  {:<5}  {}  [{}]  {models}",
                            a.fingerprint, a.source, a.label, a.subject
                        );
                    }
                }
                TrustCommand::Add { pem, label } => {
                    let text = std::fs::read_to_string(&pem)
                        .with_context(|| format!("cannot read {}", pem.display()))?;
                    let a =
                        trust::add_admin_anchor(&pool, now, "service-cli", &text, &label).await?;
                    println!(
                        "trust anchor added: {} {} [{}]",
                        a.fingerprint, a.label, a.subject
                    );
                }
                TrustCommand::Remove { fingerprint } => {
                    trust::remove_admin_anchor(&pool, now, "service-cli", &fingerprint).await?;
                    println!("trust anchor removed: {fingerprint}");
                }
            }
            return Ok(());
        }
        Some(Command::IssueToken {
            role,
            label,
            person,
            ttl_days,
        }) => {
            let new = tokens::NewToken {
                role,
                label: &label,
                person_id: person.as_deref(),
                ttl: ttl_days.map(|d| Duration::from_secs(d.saturating_mul(86_400))),
                max_ttl,
            };
            let t = tokens::create_token(&pool, &new, "service-cli", clock.now_ms()).await?;
            println!(
                "{} token {} valid until {} (shown once, store it now): {}",
                role.as_str(),
                t.id,
                keywarden_server::secrets::fmt_time(t.expires_at_ms),
                t.token
            );
            return Ok(());
        }
        Some(Command::Token { action }) => {
            return match action {
                TokenCommand::List => {
                    let fmt = |v: Option<i64>| {
                        v.map_or("-".to_owned(), keywarden_server::secrets::fmt_time)
                    };
                    for t in tokens::load(&pool, clock.now_ms()).await? {
                        println!(
                            "{}  {:<8} {:<15} person {} ({})  label {:?}  expires {}  last used {}{}",
                            t.id,
                            t.role,
                            t.state,
                            t.person_id.as_deref().unwrap_or("-"),
                            t.person_user_name.as_deref().unwrap_or("service token"),
                            t.label,
                            fmt(t.expires_at_ms),
                            fmt(t.last_used_at_ms),
                            t.revoked_at_ms.map_or(String::new(), |at| format!(
                                "  revoked {} ({})",
                                keywarden_server::secrets::fmt_time(at),
                                t.revoked_reason.as_deref().unwrap_or("")
                            )),
                        );
                    }
                    Ok(())
                }
                TokenCommand::Revoke { id, reason } => {
                    tokens::revoke_by_id(&pool, &id, "service-cli", &reason, clock.now_ms())
                        .await?;
                    println!("token {id} revoked");
                    Ok(())
                }
            };
        }
        Some(Command::Device {
            action: DeviceCommand::Retire { id, reason, note },
        }) => {
            let r =
                devices::retire_by_id(&pool, &id, reason, note.as_deref(), clock.now_ms()).await?;
            println!(
                "laptop {} ({}) {}: {} binding(s) ended, {} enrolment session(s) closed, {} recovery(ies) cancelled, {} credential(s) living in it revoked",
                r.id,
                r.hostname,
                r.reason,
                r.unbound_people.len(),
                r.sessions_closed,
                r.recoveries_cancelled.len(),
                r.credentials_revoked.len()
            );
            return Ok(());
        }
    }
    first_start_admin_token(&pool, &cli, clock.now_ms()).await?;
    console_setup_link(&pool, &cli, clock.now_ms()).await?;
    let mut settings = Settings::new(cli.rp_id, cli.origin);
    settings.min_authenticators = cli.min_authenticators;
    settings.ticket_ttl = std::time::Duration::from_secs(cli.ticket_ttl_seconds);
    settings.recovery_ttl = std::time::Duration::from_secs(cli.recovery_ttl_seconds);
    settings.notify_webhook = cli.notify_webhook;
    settings.idp_webhook = cli.idp_webhook;
    settings.webhook_backoff = std::time::Duration::from_millis(cli.webhook_backoff_ms.max(1));
    settings.token_ttl = max_ttl;
    settings.fresh_touch = std::time::Duration::from_secs(cli.fresh_touch_seconds);
    settings.issued_key_expiry =
        std::time::Duration::from_secs(cli.issued_key_expiry_days * 24 * 3600);
    settings.request_timeout = std::time::Duration::from_secs(cli.request_timeout_seconds);
    settings.max_in_flight = usize::try_from(cli.max_in_flight).unwrap_or(usize::MAX);
    settings.max_open_in_flight = usize::try_from(cli.max_open_in_flight).unwrap_or(usize::MAX);
    settings.open_per_minute = cli.open_requests_per_minute;
    settings.open_burst = cli.open_burst;
    settings.behind_proxy = cli.behind_tls_proxy;
    settings.audit_checkpoint_file = Some(checkpoints_at.clone());
    settings.audit_checkpoint_webhook = cli.audit_checkpoint_webhook;
    let (keys, loaded) = service_keys::ServiceKeys::load(&pool, &files, clock.now_ms())
        .await
        .context("cannot load the service's signing keys")?;
    for (what, file, how) in [
        ("webhook signing key", &files.webhook, &loaded[0]),
        ("audit checkpoint key", &files.checkpoint, &loaded[1]),
    ] {
        match how {
            service_keys::Loaded::Created => {
                tracing::info!(file = %file.display(), "{what} created (mode 0600); back it up with the TLS key")
            }
            service_keys::Loaded::MovedOut => {
                tracing::warn!(file = %file.display(), "{what} moved out of the database into its own file (mode 0600); back it up with the TLS key")
            }
            service_keys::Loaded::FromFile => {}
        }
    }
    let state = AppState::new(pool, settings, clock, keys)?;
    // An offboarding's second step (retiring the laptops the leaver left) may not have run
    // before a crash or restart: finish it before serving.
    keywarden_server::offboard::retire_left_behind(&state).await?;
    // Rows from before populations were kept on them (an upgrade) get theirs before serving;
    // the reports also assign any left (rows written by hand), so read-only commands need not.
    coverage::assign::unassigned(&state.db)
        .await
        .context("cannot assign populations")?;
    tokio::spawn(keywarden_server::console::snapshots::run(state.clone()));
    tokio::spawn(keywarden_server::issuing::run(state.clone()));
    tokio::spawn(keywarden_server::retention::run(
        state.clone(),
        keep_reports,
    ));
    if cli.audit_checkpoint_interval_seconds > 0 {
        tokio::spawn(audit::checkpoint::run(
            state.clone(),
            checkpoints_at,
            std::time::Duration::from_secs(cli.audit_checkpoint_interval_seconds),
        ));
    }
    if keywarden_server::webhooks::Deliverer::has_work(&state) {
        tokio::spawn(keywarden_server::webhooks::Deliverer::new()?.run(state.clone()));
    } else {
        tracing::info!("no webhook configured: notifications and revocation events stay queued (see GET /api/v1/admin/outbox)");
    }
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let listen = listen.expect("chosen above for serving, the only command that gets here");
    tls::serve(listener, listen, router(state)).await
}

/// On first start (no admin token yet), create the admin token and hand it over where only the
/// operator reads it: the file named by `--admin-token-file`; else the terminal, when standard
/// output is one; else `first-admin-token` in the data directory (under a service manager, whose
/// collected output is a log). A file is created new with mode 0600 before the token exists, so
/// a file already there (an earlier token, or a link someone planted) stops the start with
/// nothing issued.
async fn first_start_admin_token(
    pool: &sqlx::AnyPool,
    cli: &Cli,
    now_ms: i64,
) -> anyhow::Result<()> {
    use std::io::{IsTerminal as _, Write as _};
    if !admin::needs_bootstrap(pool).await? {
        return Ok(());
    }
    let path = match &cli.admin_token_file {
        Some(p) => Some(p.clone()),
        None if std::io::stdout().is_terminal() => None,
        None => {
            std::fs::create_dir_all(&cli.data_dir).with_context(|| {
                format!("cannot create data directory {}", cli.data_dir.display())
            })?;
            Some(cli.data_dir.join("first-admin-token"))
        }
    };
    let file = match &path {
        Some(p) => Some(service_keys::new_secret_file(p).with_context(|| {
            format!(
                "cannot create {} for the first admin token (if it is there, it may hold an \
                 earlier one: move it away and start again)",
                p.display()
            )
        })?),
        None => None,
    };
    let deliver = |token: &str| match (file, &path) {
        (Some(mut f), Some(p)) => f
            .write_all(token.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|source| keywarden_server::Error::Io {
                what: format!("cannot write the first admin token to {}", p.display()),
                source,
            }),
        _ => {
            println!("First start: admin API token (shown once, store it now): {token}");
            Ok(())
        }
    };
    let issued = admin::bootstrap_admin_token(pool, now_ms, deliver).await;
    match (&issued, &path) {
        (Ok(Some(_)), Some(p)) => println!(
            "First start: the admin API token is in {} (mode 0600, shown nowhere else); store it and delete the file",
            p.display()
        ),
        // Another replica issued it meanwhile, or it could not be delivered (then nothing was
        // issued): the file would only mislead.
        (Ok(None) | Err(_), Some(p)) => {
            let _ = std::fs::remove_file(p);
        }
        _ => {}
    }
    issued?;
    Ok(())
}

/// While the console has no admin, write a new one-time setup link for the first admin to
/// `--setup-link-file` or `console-setup-link` in the data directory (mode 0600, replaced
/// whole: a link planted in its place is replaced, not followed), and say where it is.
async fn console_setup_link(pool: &sqlx::AnyPool, cli: &Cli, now_ms: i64) -> anyhow::Result<()> {
    use std::io::Write as _;
    if !keywarden_server::console::setup::needs_admin(pool).await? {
        return Ok(());
    }
    let path = match &cli.setup_link_file {
        Some(p) => p.clone(),
        None => {
            std::fs::create_dir_all(&cli.data_dir).with_context(|| {
                format!("cannot create data directory {}", cli.data_dir.display())
            })?;
            cli.data_dir.join("console-setup-link")
        }
    };
    let deliver = |url: &str| {
        let io = |source| keywarden_server::Error::Io {
            what: format!("cannot write the console setup link to {}", path.display()),
            source,
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        // tempfile creates it 0600; the rename puts it in place whole.
        let mut file = tempfile::Builder::new()
            .prefix(".console-setup-link")
            .tempfile_in(dir)
            .map_err(io)?;
        writeln!(file, "{url}")
            .and_then(|()| file.as_file().sync_all())
            .map_err(io)?;
        file.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    };
    if keywarden_server::console::setup::issue_link(pool, cli.origin.as_str(), now_ms, deliver)
        .await?
        .is_some()
    {
        println!(
            "Console: the first admin's one-time setup link is in {} (mode 0600, works once, for 24 hours)",
            path.display()
        );
    }
    Ok(())
}

/// Where the signing keys are: as given, else in the data directory.
fn key_files(cli: &Cli) -> service_keys::KeyFiles {
    let default = service_keys::KeyFiles::in_dir(&cli.data_dir);
    service_keys::KeyFiles {
        webhook: cli.webhook_key_file.clone().unwrap_or(default.webhook),
        checkpoint: cli
            .checkpoint_key_file
            .clone()
            .unwrap_or(default.checkpoint),
    }
}

/// Where audit checkpoints are appended: as given, else in the data directory.
fn checkpoint_file(cli: &Cli) -> PathBuf {
    cli.audit_checkpoint_file
        .clone()
        .unwrap_or_else(|| cli.data_dir.join("audit-checkpoints.jsonl"))
}
