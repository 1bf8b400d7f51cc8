//! A FIDO Metadata Service blob loaded offline becomes a population's AAGUID allow-list only
//! when its certificate chain leads to the trusted root and its signature verifies; revoked
//! models are left out; a refused blob changes nothing. Its models' attestation roots become
//! trust anchors (not those of revoked models); a blob past its nextUpdate is flagged stale;
//! admins add and remove their own roots with `keywarden-server trust`.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::StatusCode;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use common::App;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;
use openssl::x509::{X509Name, X509};
use serde_json::json;

both_backends!(
    verified_blob_sets_the_allow_list,
    blob_roots_become_trust_anchors_and_a_stale_blob_is_flagged
);

fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map(|(c, _)| c.subject_name()).unwrap_or(&name))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let serial = openssl::bn::BigNum::from_u32(rand::random::<u32>())
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    b.set_serial_number(&serial).unwrap();
    if issuer.is_none() {
        b.append_extension(
            openssl::x509::extension::BasicConstraints::new()
                .critical()
                .ca()
                .build()
                .unwrap(),
        )
        .unwrap();
    }
    b.sign(
        issuer.map(|(_, k)| k).unwrap_or(key),
        MessageDigest::sha256(),
    )
    .unwrap();
    b.build()
}

fn key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

fn blob(leaf: &X509, leaf_key: &PKey<Private>, payload: &serde_json::Value) -> String {
    let header =
        json!({"alg": "RS256", "typ": "JWT", "x5c": [STANDARD.encode(leaf.to_der().unwrap())]});
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut s = Signer::new(MessageDigest::sha256(), leaf_key).unwrap();
    s.update(format!("{h}.{p}").as_bytes()).unwrap();
    format!(
        "{h}.{p}.{}",
        URL_SAFE_NO_PAD.encode(s.sign_to_vec().unwrap())
    )
}

async fn verified_blob_sets_the_allow_list(app: App) {
    let (s, _) = app
        .call("PUT", "/api/v1/admin/populations/employees", &app.admin,
            Some(json!({"priority": 1, "selector": {"kind": "attribute", "key": "user_type", "value": "Employee"}})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (root_key, leaf_key, rogue_key) = (key(), key(), key());
    let root = cert("Test MDS Root", &root_key, None);
    let leaf = cert("Test MDS Signer", &leaf_key, Some((&root, &root_key)));
    let rogue = cert("Rogue", &rogue_key, None);
    let payload = json!({"no": 42, "nextUpdate": "2026-12-31", "entries": [
        {"aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "metadataStatement": {"description": "YubiKey 5 NFC"},
         "statusReports": [{"status": "FIDO_CERTIFIED_L1"}]},
        {"aaguid": "ee882879-721c-4913-9775-3dfcce97072a", "metadataStatement": {"description": "Old key"},
         "statusReports": [{"status": "REVOKED"}]},
        {"aaid": "4e4e#4005", "metadataStatement": {"description": "UAF only"}},
    ]});
    let dir = tempfile::tempdir().unwrap();
    let root_pem = dir.path().join("root.pem");
    std::fs::write(&root_pem, root.to_pem().unwrap()).unwrap();
    let good = blob(&leaf, &leaf_key, &payload);
    let parts: Vec<&str> = good.split('.').collect();
    let altered_payload =
        URL_SAFE_NO_PAD.encode(payload.to_string().replace("REVOKED", "FIDO_CERTIFIED"));
    let cases = [
        (
            "altered",
            format!("{}.{altered_payload}.{}", parts[0], parts[2]),
            "signature does not verify",
        ),
        (
            "untrusted",
            blob(&rogue, &rogue_key, &payload),
            "does not lead to the trusted root",
        ),
        ("garbage", "not a blob".to_owned(), "not a JWS"),
    ];
    let load_mds = |blob: &std::path::Path| {
        let (blob, root) = (blob.to_str().unwrap(), root_pem.to_str().unwrap());
        [
            "load-mds",
            "--population",
            "employees",
            "--blob",
            blob,
            "--root-cert",
            root,
        ]
        .map(str::to_owned)
    };
    let policy_before = app.rows("SELECT policy FROM populations").await;
    for (what, text, expect) in cases {
        let path = dir.path().join(format!("{what}.jwt"));
        std::fs::write(&path, text).unwrap();
        let out = app.server_cli(&load_mds(&path));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} refused");
        assert!(err.contains(expect), "{what}: {err}");
        assert_eq!(
            app.rows("SELECT policy FROM populations").await,
            policy_before,
            "{what} changed nothing"
        );
    }
    let path = dir.path().join("good.jwt");
    std::fs::write(&path, &good).unwrap();
    let out = app.server_cli(&load_mds(&path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("MDS blob 42 verified"));
    let (_, pops) = app
        .call("GET", "/api/v1/admin/populations", &app.admin, None)
        .await;
    assert_eq!(
        pops[0]["policy"]["aaguid_allow_list"],
        json!(["cb69481e-8ff7-4039-93ec-0a2729a154a8"]),
        "revoked model left out"
    );
    assert!(app
        .audit_actions()
        .await
        .contains(&"policy.changed".to_owned()));
}

async fn blob_roots_become_trust_anchors_and_a_stale_blob_is_flagged(app: App) {
    let (root_key, leaf_key) = (key(), key());
    let root = cert("Test MDS Root", &root_key, None);
    let leaf = cert("Test MDS Signer", &leaf_key, Some((&root, &root_key)));
    let (vendor_key, revoked_key) = (key(), key());
    let vendor_root = cert("Vendor Attestation Root", &vendor_key, None);
    let revoked_root = cert("Revoked Vendor Root", &revoked_key, None);
    let der = |c: &X509| STANDARD.encode(c.to_der().unwrap());
    // Due for replacement before today: stale.
    let payload = json!({"no": 5, "nextUpdate": "2026-01-01", "entries": [
        {"aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8",
         "metadataStatement": {"description": "Vendor key", "attachmentHint": ["external", "wired"],
                               "attestationRootCertificates": [der(&vendor_root)]},
         "statusReports": [{"status": "FIDO_CERTIFIED_L1"}]},
        {"aaguid": "ee882879-721c-4913-9775-3dfcce97072a",
         "metadataStatement": {"description": "Old key", "attestationRootCertificates": [der(&revoked_root)]},
         "statusReports": [{"status": "ATTESTATION_KEY_COMPROMISE"}]},
    ]});
    let dir = tempfile::tempdir().unwrap();
    let root_pem = dir.path().join("root.pem");
    std::fs::write(&root_pem, root.to_pem().unwrap()).unwrap();
    let blob_path = dir.path().join("blob.jwt");
    std::fs::write(&blob_path, blob(&leaf, &leaf_key, &payload)).unwrap();
    let (ok, text) = app.cli(&[
        "load-mds",
        "--blob",
        blob_path.to_str().unwrap(),
        "--root-cert",
        root_pem.to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("MDS blob 5 verified; 1 trust anchors for 2 models stored"),
        "{text}"
    );
    assert!(
        text.contains("STALE") && text.contains("2026-01-01"),
        "{text}"
    );
    let fp = |c: &X509| hex::encode(c.digest(MessageDigest::sha256()).unwrap());
    let (s, listing) = app
        .call("GET", "/api/v1/admin/trust-anchors", &app.admin, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{listing}");
    let mds: Vec<&serde_json::Value> = listing["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["source"] == "mds")
        .collect();
    assert_eq!(
        mds.len(),
        1,
        "the compromised model's root is not an anchor: {listing}"
    );
    assert_eq!(mds[0]["fingerprint"], fp(&vendor_root).as_str());
    assert_eq!(
        mds[0]["aaguids"],
        json!(["cb69481e-8ff7-4039-93ec-0a2729a154a8"]),
        "bound to its model"
    );
    assert_eq!(listing["mds"]["stale"], true, "{listing}");
    assert_eq!(listing["mds"]["blob_no"], 5);
    let (ok, text) = app.cli(&["trust", "list"]);
    assert!(ok, "{text}");
    assert!(text.contains("STALE since 2026-01-01"), "{text}");
    assert!(text.contains(&fp(&vendor_root)), "{text}");

    // An admin's own root: added, listed, removed; roots from the metadata are not removable.
    let own = dir.path().join("own.pem");
    std::fs::write(&own, cert("Acme Keys Root", &key(), None).to_pem().unwrap()).unwrap();
    let (ok, text) = app.cli(&[
        "trust",
        "add",
        "--pem",
        own.to_str().unwrap(),
        "--label",
        "Acme keys root",
    ]);
    assert!(ok && text.contains("trust anchor added"), "{text}");
    let added = text.split_whitespace().nth(3).unwrap().to_owned();
    let (ok, text) = app.cli(&["trust", "list"]);
    assert!(ok && text.contains("Acme keys root"), "{text}");
    let (ok, text) = app.cli(&["trust", "remove", &fp(&vendor_root)]);
    assert!(
        !ok && text.contains("comes from the FIDO metadata"),
        "{text}"
    );
    let (ok, text) = app.cli(&["trust", "remove", &added]);
    assert!(ok, "{text}");
    let (ok, text) = app.cli(&["trust", "list"]);
    assert!(ok && !text.contains("Acme keys root"), "{text}");
    let actions = app.audit_actions().await;
    for a in [
        "trust.mds_loaded",
        "trust_anchor.added",
        "trust_anchor.removed",
    ] {
        assert!(actions.contains(&a.to_owned()), "{a} audited");
    }
}
