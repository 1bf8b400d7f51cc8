//! HTTPS between the real binaries: `keywarden-server tls init` makes a pilot CA and the
//! service serves its certificate; the `keywarden` agent gets through only with that CA in its
//! managed configuration (pinned), and then provisions and sends its reports.

use std::process::Command;

use keywarden_e2e::{bin, Laptop, Server};
use serde_json::json;

#[test]
fn the_agent_binary_reaches_the_service_over_https_only_with_the_managed_ca() {
    let pki = tempfile::tempdir().unwrap();
    let init = Command::new(bin("keywarden-server"))
        .args(["tls", "init", "--hostname", "127.0.0.1", "--dir"])
        .arg(pki.path())
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let stdout = String::from_utf8(init.stdout).unwrap();
    let fingerprint = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CA SHA-256 fingerprint: "))
        .unwrap()
        .trim()
        .to_owned();
    let server = Server::start_tls(pki.path());
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    // A laptop that was not given the pilot CA does not get through, and says why.
    let stranger = Laptop::new(0);
    let token = server.provisioning_token();
    let err = stranger.fails(
        &["provision", "--server", &server.url, "--token", &token],
        None,
    );
    assert!(err.contains("cannot reach the Keywarden service"), "{err}");
    assert!(err.contains("certificate"), "{err}");

    // With it in the managed configuration, pinned, it provisions and reports.
    let laptop = Laptop::new(1);
    std::fs::write(
        laptop.home.path().join("managed.json"),
        json!({
            "server_url": server.url,
            "ca_bundle": pki.path().join("ca.pem"),
            "pin_ca_sha256": fingerprint,
        })
        .to_string(),
    )
    .unwrap();
    let device_id = laptop.provision(&server);
    let status = laptop.ok(&["status"], None);
    assert!(
        status.contains(&format!(
            "service certificate: only a chain to the CA {fingerprint}"
        )),
        "{status}"
    );
    laptop.ok(&["report"], None);
    let (s, devices) = server.admin("GET", "/api/v1/admin/devices", None);
    assert_eq!(s, 200, "{devices}");
    let device = devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == device_id.as_str())
        .unwrap();
    assert_eq!(device["report_count"], 1, "{device}");
}
