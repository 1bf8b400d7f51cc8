//! HTTPS for the service: how it listens (TLS from certificate files, reloaded on SIGHUP; plain
//! HTTP only on loopback or behind a TLS-terminating proxy the admin names), and `tls init`, a
//! private CA and server certificate for a pilot.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use sha2::Digest as _;

/// How the service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// HTTPS with this certificate chain and key (PEM files), reloaded on SIGHUP.
    Tls {
        /// The server certificate followed by its intermediates.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// Plain HTTP: on loopback, or behind a reverse proxy that terminates TLS.
    Plain,
}

impl Listen {
    /// Choose from the command line: TLS when given the files; else plain HTTP, which is
    /// refused on an address other machines reach unless the admin says a proxy terminates TLS.
    pub fn choose(
        listen: SocketAddr,
        files: Option<(PathBuf, PathBuf)>,
        behind_tls_proxy: bool,
    ) -> anyhow::Result<Listen> {
        match files {
            Some((cert, key)) => Ok(Listen::Tls { cert, key }),
            None if listen.ip().is_loopback() || behind_tls_proxy => Ok(Listen::Plain),
            None => anyhow::bail!(
                "refusing plain HTTP on {listen}, an address other machines reach: give \
                 --tls-cert and --tls-key (`keywarden-server tls init` makes a pilot CA and \
                 certificate), or --behind-tls-proxy when a reverse proxy in front terminates TLS"
            ),
        }
    }
}

/// Serve `app` on `listener` until Ctrl-C, with TLS when `listen` says so.
pub async fn serve(
    listener: tokio::net::TcpListener,
    listen: Listen,
    app: axum::Router,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let (cert, key) = match listen {
        Listen::Plain => {
            tracing::info!(%addr, "keywarden-server listening (plain HTTP)");
            println!("listening on http://{addr}");
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            return Ok(());
        }
        Listen::Tls { cert, key } => (cert, key),
    };
    // Only ring is built in; naming it keeps rustls from guessing.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
        .await
        .with_context(|| {
            format!(
                "cannot load the TLS certificate {} and key {}",
                cert.display(),
                key.display()
            )
        })?;
    tokio::spawn(reload_on_sighup(config.clone(), cert, key));
    let handle = axum_server::Handle::new();
    let stop = handle.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    tracing::info!(%addr, "keywarden-server listening (HTTPS)");
    println!("listening on https://{addr}");
    axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(app.into_make_service_with_connect_info::<SocketAddr>())
        .await?;
    Ok(())
}

/// On each SIGHUP, read the certificate and key files again and serve them to new connections;
/// the listener and open connections stay. Files that do not load leave the current ones.
async fn reload_on_sighup(
    config: axum_server::tls_rustls::RustlsConfig,
    cert: PathBuf,
    key: PathBuf,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGHUP: the TLS certificate will not reload");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        match config.reload_from_pem_file(&cert, &key).await {
            Ok(()) => tracing::info!(cert = %cert.display(), "TLS certificate reloaded"),
            Err(e) => tracing::error!(
                error = %e,
                cert = %cert.display(),
                key = %key.display(),
                "TLS certificate not reloaded; still serving the previous one"
            ),
        }
    }
}

/// What `tls init` wrote.
#[derive(Debug)]
pub struct Pilot {
    /// The CA certificate agents trust (`ca_bundle` in their managed configuration).
    pub ca_cert: PathBuf,
    /// SHA-256 of the CA certificate (DER), lowercase hex (`pin_ca_sha256`).
    pub ca_sha256: String,
    /// The server certificate chain (server, then CA) for `--tls-cert`.
    pub server_cert: PathBuf,
    /// Its key for `--tls-key`.
    pub server_key: PathBuf,
}

/// How long the pilot CA is valid.
const CA_DAYS: i64 = 5 * 365;
/// How long the server certificate is valid (browsers refuse longer ones; the console is browsed).
const SERVER_DAYS: i64 = 397;

/// Make a private CA and a server certificate for `hostnames` (DNS names or IP addresses) in
/// `dir`: `ca.pem`, `ca.key`, `server.pem` (the chain) and `server.key`. Keys are 0600; nothing
/// already there is replaced (a CA agents trust is not overwritten by accident).
pub fn init(dir: &Path, hostnames: &[String], now: time::OffsetDateTime) -> anyhow::Result<Pilot> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    anyhow::ensure!(!hostnames.is_empty(), "give at least one --hostname");
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let names = ["ca.pem", "ca.key", "server.pem", "server.key"].map(|n| dir.join(n));
    if let Some(there) = names.iter().find(|p| p.symlink_metadata().is_ok()) {
        anyhow::bail!(
            "{} is already there: tls init does not replace a CA agents may trust; use another \
             folder, or move the old files away",
            there.display()
        );
    }
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "Keywarden pilot CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(CA_DAYS);
    let ca_key = KeyPair::generate().context("cannot make the CA key")?;
    let ca_cert = ca.self_signed(&ca_key).context("cannot sign the CA")?;

    let mut server = CertificateParams::new(hostnames.to_vec())
        .context("a --hostname is neither a DNS name nor an IP address")?;
    server.distinguished_name = DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, hostnames[0].as_str());
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    server.not_before = now - time::Duration::hours(1);
    server.not_after = now + time::Duration::days(SERVER_DAYS);
    let server_key = KeyPair::generate().context("cannot make the server key")?;
    let server_cert = server
        .signed_by(&server_key, &Issuer::new(ca, &ca_key))
        .context("cannot sign the server certificate")?;

    let [ca_pem, ca_key_pem, chain_pem, server_key_pem] = &names;
    write_new(ca_key_pem, &ca_key.serialize_pem(), true)?;
    write_new(ca_pem, &ca_cert.pem(), false)?;
    write_new(server_key_pem, &server_key.serialize_pem(), true)?;
    write_new(
        chain_pem,
        &format!("{}{}", server_cert.pem(), ca_cert.pem()),
        false,
    )?;
    Ok(Pilot {
        ca_cert: ca_pem.clone(),
        ca_sha256: hex::encode(sha2::Sha256::digest(ca_cert.der())),
        server_cert: chain_pem.clone(),
        server_key: server_key_pem.clone(),
    })
}

/// Write `text` to a new file at `path`, whole (a temporary file renamed into place, never
/// over one already there); `secret` keeps the temporary file's mode 0600, else it becomes 0644.
fn write_new(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let what = || format!("cannot write {}", path.display());
    let mut file = tempfile::Builder::new()
        .prefix(".keywarden-tls")
        .tempfile_in(dir)
        .with_context(what)?;
    file.write_all(text.as_bytes()).with_context(what)?;
    #[cfg(unix)]
    if !secret {
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(what)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.as_file().sync_all().with_context(what)?;
    file.persist_noclobber(path)
        .map_err(|e| e.error)
        .with_context(what)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_http_is_refused_off_loopback_unless_a_proxy_terminates_tls() {
        let lan: SocketAddr = "0.0.0.0:8443".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:8443".parse().unwrap();
        let v6_loopback: SocketAddr = "[::1]:8443".parse().unwrap();
        let e = Listen::choose(lan, None, false).unwrap_err().to_string();
        assert!(e.contains("refusing plain HTTP on 0.0.0.0:8443"), "{e}");
        assert!(e.contains("--behind-tls-proxy"), "{e}");
        assert_eq!(Listen::choose(lan, None, true).unwrap(), Listen::Plain);
        assert_eq!(
            Listen::choose(loopback, None, false).unwrap(),
            Listen::Plain
        );
        assert_eq!(
            Listen::choose(v6_loopback, None, false).unwrap(),
            Listen::Plain
        );
        let files = (PathBuf::from("c.pem"), PathBuf::from("k.pem"));
        assert_eq!(
            Listen::choose(lan, Some(files.clone()), false).unwrap(),
            Listen::Tls {
                cert: files.0,
                key: files.1
            }
        );
    }
}
