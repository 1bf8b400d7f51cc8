//! `keywarden-server`: serve the Keywarden API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use keywarden_server::{admin, db, router, AppState, Clock as _, Settings, SystemClock};

/// The Keywarden central service: binds FIDO2 credentials to verified identities, receives
/// device reports, and answers the admin API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Folder for the embedded SQLite database (created if missing).
    #[arg(long, env = "KEYWARDEN_DATA_DIR", default_value = "./keywarden-data")]
    data_dir: PathBuf,
    /// Database URL; overrides --data-dir. `sqlite:///path/file.db` (default, embedded) or
    /// `postgres://...`.
    #[arg(long, env = "KEYWARDEN_DATABASE_URL")]
    database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "KEYWARDEN_LISTEN", default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
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
    /// Also write the first-start admin token to this file (mode 0600), for scripted set-ups.
    #[arg(long)]
    admin_token_file: Option<PathBuf>,
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
    let url = match cli.database_url {
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
    let clock = Arc::new(SystemClock);
    if let Some(token) = admin::bootstrap_admin_token(&pool, clock.now_ms()).await? {
        // Shown once, on the terminal only; the service keeps just its hash.
        println!("First start: admin API token (shown once, store it now): {token}");
        if let Some(path) = &cli.admin_token_file {
            write_secret_file(path, &token)
                .with_context(|| format!("cannot write admin token to {}", path.display()))?;
        }
    }
    let mut settings = Settings::new(cli.rp_id, cli.origin);
    settings.min_authenticators = cli.min_authenticators;
    let state = AppState::new(pool, settings, clock)?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "keywarden-server listening");
    println!("listening on http://{addr}");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn write_secret_file(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(secret.as_bytes())?;
    f.sync_all()
}
