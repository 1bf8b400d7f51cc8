//! HTTPS end to end: the real `keywarden-server` serving the certificate `tls init` made, and
//! the agent's client trusting (or not) that pilot CA through its managed configuration: with
//! the CA bundle it gets through, without it or with another CA pinned it does not, it follows
//! no redirect, it sends nothing over plain HTTP off loopback, and a SIGHUP makes the service
//! serve new certificate files on the same listener.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::ServiceProcess;
use keywarden_agent::config::Paths;
use keywarden_agent::keys::Keyring;
use keywarden_agent::managed::ManagedConfig;
use keywarden_agent::{Agent, Error};
use serde_json::json;

const SERVER: &str = env!("CARGO_BIN_EXE_keywarden-server");

/// What `keywarden-server tls init` made in `dir`.
struct Pilot {
    dir: PathBuf,
    /// The CA fingerprint it printed.
    fingerprint: String,
}

impl Pilot {
    fn init(dir: &Path) -> Pilot {
        let out = Command::new(SERVER)
            .args(["tls", "init", "--hostname", "127.0.0.1", "--hostname"])
            .arg("localhost")
            .arg("--dir")
            .arg(dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "tls init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fingerprint = stdout
            .lines()
            .find_map(|l| l.strip_prefix("CA SHA-256 fingerprint: "))
            .unwrap_or_else(|| panic!("no fingerprint printed: {stdout}"))
            .trim()
            .to_owned();
        Pilot {
            dir: dir.to_owned(),
            fingerprint,
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The service over HTTPS with these certificate files, on loopback.
fn serve_tls(cert: &Path, key: &Path) -> ServiceProcess {
    ServiceProcess::start([
        "--listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ])
    .unwrap()
}

/// An agent under `home` with this managed configuration (none when `None`).
fn agent(home: &Path, managed: Option<serde_json::Value>) -> Agent {
    let managed = managed.map(|m| {
        let path = home.join("managed.json");
        std::fs::write(&path, m.to_string()).unwrap();
        ManagedConfig::load(&path).unwrap().unwrap()
    });
    Agent::new(Paths::under(home), Keyring::new()).with_managed(managed)
}

/// Provision against `base` with a made-up token: `Ok` when the request got through to the
/// service (which refuses the token), the agent's error when it did not.
fn reaches(agent: &Agent, base: &str) -> Result<(), Error> {
    match agent.provision(base, "kwp_made-up", true) {
        Err(Error::Service { .. }) => Ok(()),
        Err(e) => Err(e),
        Ok(c) => panic!("provisioned with a made-up token: {c:?}"),
    }
}

/// An error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |c| c.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

fn assert_certificate_refused(result: Result<(), Error>) {
    let e = result.expect_err("got through without trusting the service's CA");
    assert!(matches!(e, Error::Unreachable { .. }), "{}", chain(&e));
    assert!(e.is_untrusted_certificate(), "{}", chain(&e));
    let ui = e.to_ui().message;
    assert!(
        ui.contains("certificate this laptop does not trust"),
        "{ui}"
    );
}

#[test]
fn tls_init_writes_owner_only_keys_and_prints_the_ca_fingerprint() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let pilot = Pilot::init(&pki);
    let mode = |name: &str| {
        std::fs::metadata(pilot.file(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("ca.key"), 0o600);
    assert_eq!(mode("server.key"), 0o600);
    assert_eq!(mode("ca.pem"), 0o644);
    assert_eq!(mode("server.pem"), 0o644);
    let ca = openssl::x509::X509::from_pem(&std::fs::read(pilot.file("ca.pem")).unwrap()).unwrap();
    assert_eq!(
        pilot.fingerprint,
        hex::encode(ca.digest(openssl::hash::MessageDigest::sha256()).unwrap())
    );
    // The chain is the server's certificate, issued by the CA, then the CA.
    let chain =
        openssl::x509::X509::stack_from_pem(&std::fs::read(pilot.file("server.pem")).unwrap())
            .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(ca.issued(&chain[0]), openssl::x509::X509VerifyResult::OK);
    assert!(chain[0].verify(&ca.public_key().unwrap()).unwrap());

    // A second run replaces nothing: agents may already trust that CA.
    let before = std::fs::read(pilot.file("ca.key")).unwrap();
    let again = Command::new(SERVER)
        .args(["tls", "init", "--dir"])
        .arg(&pki)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already there"));
    assert_eq!(std::fs::read(pilot.file("ca.key")).unwrap(), before);
}

#[test]
fn the_agent_reaches_the_service_only_through_the_ca_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let pilot = Pilot::init(&dir.path().join("pilot"));
    let other = Pilot::init(&dir.path().join("other"));
    let service = serve_tls(&pilot.file("server.pem"), &pilot.file("server.key"));
    assert!(
        service.base.starts_with("https://127.0.0.1:"),
        "{}",
        service.base
    );
    let home = |name: &str| {
        let h = dir.path().join(name);
        std::fs::create_dir_all(&h).unwrap();
        h
    };

    // (a) With the pilot CA as the bundle, pinned or not, the request gets through.
    let bundle = json!({"ca_bundle": pilot.file("ca.pem")});
    reaches(&agent(&home("bundle"), Some(bundle)), &service.base).unwrap();
    let pinned = json!({"ca_bundle": pilot.file("ca.pem"), "pin_ca_sha256": pilot.fingerprint});
    reaches(&agent(&home("pinned"), Some(pinned)), &service.base).unwrap();

    // (b) Without it, the system's roots do not lead to the pilot CA.
    assert_certificate_refused(reaches(&agent(&home("none"), None), &service.base));
    let other_only = json!({"ca_bundle": other.file("ca.pem")});
    assert_certificate_refused(reaches(
        &agent(&home("other"), Some(other_only)),
        &service.base,
    ));

    // (c) Both CAs in the bundle, the other one pinned: the pilot's chain is refused.
    let both = dir.path().join("both.pem");
    std::fs::write(
        &both,
        [
            std::fs::read(pilot.file("ca.pem")).unwrap(),
            std::fs::read(other.file("ca.pem")).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let wrong_pin = json!({"ca_bundle": both, "pin_ca_sha256": other.fingerprint});
    assert_certificate_refused(reaches(
        &agent(&home("wrong-pin"), Some(wrong_pin)),
        &service.base,
    ));
    let right_pin = json!({"ca_bundle": both, "pin_ca_sha256": pilot.fingerprint.to_uppercase()});
    reaches(&agent(&home("right-pin"), Some(right_pin)), &service.base).unwrap();

    // A pin that names no CA of the bundle, or no bundle, is a managed file IT must fix.
    for bad in [
        json!({"ca_bundle": pilot.file("ca.pem"), "pin_ca_sha256": other.fingerprint}),
        json!({"pin_ca_sha256": pilot.fingerprint}),
        json!({"ca_bundle": pilot.file("ca.pem"), "pin_ca_sha256": "not hex"}),
        json!({"ca_bundle": pilot.file("server.key")}),
        json!({"ca_bundle": dir.path().join("missing.pem")}),
    ] {
        let path = home("bad").join("managed.json");
        std::fs::write(&path, bad.to_string()).unwrap();
        let e = ManagedConfig::load(&path).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{bad}: {e}");
    }
}

/// A corporate PKI as IT has it: a root, an intermediate that issues server certificates, and
/// the server's certificate for loopback; the service serves the server's and the
/// intermediate's, the agents' bundle holds the root (among other roots).
#[test]
fn a_corporate_ca_bundle_with_an_intermediate_is_trusted_and_pinned() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca_params = |name: &str| {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_owned());
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p
    };
    let root_key = KeyPair::generate().unwrap();
    let root_params = ca_params("Example Corp Root");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, &root_key);
    let issuing_key = KeyPair::generate().unwrap();
    let issuing_params = ca_params("Example Corp Issuing CA");
    let issuing = issuing_params
        .signed_by(&issuing_key, &root_issuer)
        .unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    server_params.use_authority_key_identifier_extension = true;
    let server = server_params
        .signed_by(&server_key, &Issuer::new(issuing_params, &issuing_key))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cert = write("server.pem", format!("{}{}", server.pem(), issuing.pem()));
    let key = write("server.key", server_key.serialize_pem());
    let unrelated = Pilot::init(&dir.path().join("unrelated"));
    let bundle = write(
        "corporate-roots.pem",
        format!(
            "{}{}",
            std::fs::read_to_string(unrelated.file("ca.pem")).unwrap(),
            root.pem()
        ),
    );
    let service = serve_tls(&cert, &key);
    let root_sha256 = hex::encode(openssl::sha::sha256(root.der()));

    let home = |name: &str| {
        let h = dir.path().join(name);
        std::fs::create_dir_all(&h).unwrap();
        h
    };
    reaches(
        &agent(&home("bundle"), Some(json!({"ca_bundle": bundle}))),
        &service.base,
    )
    .unwrap();
    reaches(
        &agent(
            &home("pinned"),
            Some(json!({"ca_bundle": bundle, "pin_ca_sha256": root_sha256})),
        ),
        &service.base,
    )
    .unwrap();
    assert_certificate_refused(reaches(
        &agent(
            &home("other-pinned"),
            Some(json!({"ca_bundle": bundle, "pin_ca_sha256": unrelated.fingerprint})),
        ),
        &service.base,
    ));
}

#[test]
fn the_agent_follows_no_redirect() {
    let dir = tempfile::tempdir().unwrap();
    let pilot = Pilot::init(&dir.path().join("pilot"));
    let service = serve_tls(&pilot.file("server.pem"), &pilot.file("server.key"));
    // A loopback listener that sends every request on to the real service.
    let redirector = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let from = format!("http://{}", redirector.local_addr().unwrap());
    let to = format!("{}/api/v1/agent/provision", service.base);
    let location = to.clone();
    std::thread::spawn(move || {
        for stream in redirector.incoming() {
            let mut stream = stream.unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let agent = agent(dir.path(), Some(json!({"ca_bundle": pilot.file("ca.pem")})));
    // Followed, it would reach the service (which trusts the bundle) and be refused there.
    match reaches(&agent, &from) {
        Err(Error::Redirected {
            status, location, ..
        }) => {
            assert_eq!(status, 307);
            assert_eq!(location, to);
        }
        other => panic!("the redirect was not refused: {other:?}"),
    }
}

#[test]
fn plain_http_off_loopback_is_refused_by_agent_and_service() {
    let dir = tempfile::tempdir().unwrap();
    // (e) The agent sends nothing to a plain-HTTP address off loopback.
    let e = agent(dir.path(), None)
        .provision("http://192.0.2.10:8443", "kwp_made-up", true)
        .unwrap_err();
    assert!(matches!(e, Error::ServerUrl { .. }), "{e}");
    let path = dir.path().join("managed.json");
    std::fs::write(&path, r#"{"server_url": "http://192.0.2.10:8443"}"#).unwrap();
    assert!(matches!(
        ManagedConfig::load(&path).unwrap_err(),
        Error::Corrupt { .. }
    ));

    // A service that is not there is unreachable, not a certificate problem.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("https://{}", closed.local_addr().unwrap());
    drop(closed);
    let e = agent(dir.path(), None)
        .provision(&base, "kwp_made-up", true)
        .unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(!e.is_untrusted_certificate(), "{}", chain(&e));

    // The service will not serve plain HTTP on an address other machines reach...
    let err = ServiceProcess::start(["--listen", "0.0.0.0:0"])
        .err()
        .expect("served plain HTTP off loopback");
    assert!(err.contains("refusing plain HTTP on 0.0.0.0:0"), "{err}");
    assert!(err.contains("--behind-tls-proxy"), "{err}");
    // ...unless the admin says a reverse proxy terminates TLS in front of it.
    let behind = ServiceProcess::start(["--listen", "0.0.0.0:0", "--behind-tls-proxy"]).unwrap();
    assert!(
        behind.base.starts_with("http://0.0.0.0:"),
        "{}",
        behind.base
    );
}

#[test]
fn sighup_reloads_the_certificate_on_the_same_listener() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pilot::init(&dir.path().join("first"));
    let second = Pilot::init(&dir.path().join("second"));
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    let install = |p: &Pilot| {
        for f in ["server.pem", "server.key"] {
            std::fs::copy(p.file(f), served.join(f)).unwrap();
        }
    };
    install(&first);
    let service = serve_tls(&served.join("server.pem"), &served.join("server.key"));
    let home = |name: &str| {
        let h = dir.path().join(name);
        std::fs::create_dir_all(&h).unwrap();
        h
    };
    let trusts_first = agent(
        &home("a"),
        Some(json!({"ca_bundle": first.file("ca.pem"), "pin_ca_sha256": first.fingerprint})),
    );
    let trusts_second = agent(
        &home("b"),
        Some(json!({"ca_bundle": second.file("ca.pem"), "pin_ca_sha256": second.fingerprint})),
    );
    reaches(&trusts_first, &service.base).unwrap();
    assert_certificate_refused(reaches(&trusts_second, &service.base));

    // Files that do not load leave the current certificate served.
    std::fs::write(served.join("server.pem"), "not a certificate").unwrap();
    hang_up(&service);
    std::thread::sleep(Duration::from_millis(500));
    reaches(&trusts_first, &service.base).unwrap();

    install(&second);
    hang_up(&service);
    let deadline = Instant::now() + Duration::from_secs(10);
    while reaches(&trusts_second, &service.base).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_certificate_refused(reaches(&trusts_first, &service.base));
}

fn hang_up(service: &ServiceProcess) {
    let status = Command::new("kill")
        .args(["-HUP", &service.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
