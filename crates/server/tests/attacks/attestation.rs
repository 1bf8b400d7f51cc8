//! Attack scenarios: attestation anchored in trust (see main.rs). A key counts only when its
//! attestation chain leads to a trust anchor (a root from the FIDO metadata, bound to its
//! models, or one an admin added), unless its population allows self attestation; the PIN
//! length and device class the policy judges come from verified data, never from the key
//! description the agent sends.

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keywarden_keys::attestation::{attestation_object, AttestationStatement, COSE_ALG_ES256};
use keywarden_protocol::SOFT_KEY_AAGUID;
use keywarden_server::mds::{MdsBlob, MdsEntry};
use openssl::hash::MessageDigest;
use openssl::sign::Signer;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{begin, App, Device, SoftKey, SOFT_KEY_ROOT_LABEL};
use crate::{refused, refused_saying, snapshot};

crate::both_backends!(
    self_attested_key_claiming_an_allow_listed_aaguid_is_refused,
    chain_to_a_root_that_is_not_an_anchor_is_refused,
    mds_root_vouches_only_for_its_own_models,
    lying_about_the_min_pin_length_does_not_help,
    unknown_min_pin_length_is_refused_where_a_minimum_is_required,
    the_device_class_comes_from_metadata_not_the_client,
    chain_to_an_mds_root_is_accepted_and_the_evidence_names_it,
    population_allowing_self_attestation_accepts_it,
    stale_metadata_is_flagged,
    admin_adds_and_removes_a_root,
);

/// Another vendor's model, for the scenarios that need an AAGUID other than the soft key's.
const OTHER_AAGUID: &str = "cb69481e-8ff7-4039-93ec-0a2729a154a8";

async fn set_policy(app: &App, name: &str, priority: i64, user_type: &str, policy: Value) {
    let (s, v) = app
        .call(
            "PUT",
            &format!("/api/v1/admin/populations/{name}"),
            &app.admin,
            Some(json!({"priority": priority,
                "selector": {"kind": "attribute", "key": "user_type", "value": user_type},
                "policy": policy})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

/// A person of a user type (so a population selects them), with a fresh ceremony on a laptop.
async fn ceremony(app: &App, user_name: &str, user_type: &str) -> (Device, Value) {
    let v = app
        .as_admin(
            "POST",
            "/api/v1/admin/people",
            Some(json!({"user_name": user_name, "display_name": user_name})),
            StatusCode::CREATED,
        )
        .await;
    let id = v["id"].as_str().unwrap().to_owned();
    sqlx::query("UPDATE people SET user_type = $1 WHERE id = $2")
        .bind(user_type)
        .bind(&id)
        .execute(&app.state.db)
        .await
        .unwrap();
    let laptop = app.device(&format!("{user_name}-laptop")).await;
    let (s, b) = begin(app, &laptop, &app.ticket_secret(&id).await).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (laptop, b)
}

/// Contractors bring their own keys: their population accepts self attestation.
async fn contractors_may_self_attest(app: &App) {
    set_policy(
        app,
        "byod",
        1,
        "Contractor",
        json!({"require_trusted_attestation": false}),
    )
    .await;
}

async fn send(app: &App, laptop: &Device, begin: &Value, body: &Value) -> (StatusCode, Value) {
    let path = format!(
        "/api/v1/agent/ceremonies/{}/finish",
        begin["ceremony_id"].as_str().unwrap()
    );
    laptop.signed(app, &path, body).await
}

fn unb64(s: &Value) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s.as_str().unwrap()).unwrap()
}

/// The authenticatorData inside a finish request's attestationObject.
fn auth_data(finish: &Value) -> Vec<u8> {
    let obj: ciborium::Value =
        ciborium::from_reader(unb64(&finish["attestation_object"]).as_slice()).unwrap();
    obj.as_map()
        .unwrap()
        .iter()
        .find(|(k, _)| k.as_text() == Some("authData"))
        .and_then(|(_, v)| v.as_bytes())
        .unwrap()
        .clone()
}

/// Re-sign a soft key's answer as `packed` self attestation (signed by the new credential's own
/// key, no certificate), over `auth_data`: what any software can produce, claiming any AAGUID.
fn self_attested(finish: &Value, key: &SoftKey, auth_data: &[u8]) -> Value {
    let state: Value =
        serde_json::from_slice(&std::fs::read(key.dir.path().join("key.json")).unwrap()).unwrap();
    let cred = state["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == finish["credential_id"])
        .unwrap();
    let pkey = openssl::pkey::PKey::private_key_from_pem(
        cred["private_key_pem"].as_str().unwrap().as_bytes(),
    )
    .unwrap();
    let mut signer = Signer::new(MessageDigest::sha256(), &pkey).unwrap();
    signer.update(auth_data).unwrap();
    signer
        .update(&Sha256::digest(unb64(&finish["client_data_json"])))
        .unwrap();
    let statement = AttestationStatement {
        alg: Some(COSE_ALG_ES256),
        sig: signer.sign_to_vec().unwrap(),
        x5c: Vec::new(),
    };
    let mut out = finish.clone();
    out["attestation_object"] =
        json!(URL_SAFE_NO_PAD.encode(attestation_object("packed", auth_data, Some(&statement))));
    out
}

/// The same authenticatorData claiming another AAGUID.
fn with_aaguid(auth_data: &[u8], aaguid: &str) -> Vec<u8> {
    let mut a = auth_data.to_vec();
    a[37..53].copy_from_slice(uuid::Uuid::parse_str(aaguid).unwrap().as_bytes());
    a
}

fn entry(aaguid: &str, description: &str, attachment: &[&str], roots: &[&str]) -> MdsEntry {
    MdsEntry {
        aaguid: aaguid.to_owned(),
        description: Some(description.to_owned()),
        trusted: true,
        attachment_hint: attachment.iter().map(|s| (*s).to_owned()).collect(),
        root_certificates: roots
            .iter()
            .map(|pem| openssl::x509::X509::from_pem(pem.as_bytes()).unwrap())
            .collect(),
    }
}

/// The metadata entry for the soft key's model, with `key`'s batch root.
fn soft_key_model(key: &SoftKey) -> MdsEntry {
    entry(
        SOFT_KEY_AAGUID,
        "Keywarden soft key (test/demo)",
        &["external"],
        &[&key.root_pem()],
    )
}

/// Store a verified blob's metadata (the JWS checks are in tests/mds.rs).
async fn load_metadata(app: &App, no: i64, next_update: &str, entries: Vec<MdsEntry>) {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(next_update, &format).unwrap();
    let blob = MdsBlob {
        number: no,
        entries,
        next_update: next_update.to_owned(),
        next_update_ms: day.midnight().assume_utc().unix_timestamp() * 1000,
    };
    keywarden_server::mds::store_metadata(&app.state.db, app.now(), "test", &blob)
        .await
        .unwrap();
}

async fn evidence(app: &App, credential_id: &Value) -> Value {
    let (s, v) = app
        .call(
            "GET",
            &format!(
                "/api/v1/admin/credentials/{}/evidence",
                credential_id.as_str().unwrap()
            ),
            &app.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["verification"].clone()
}

/// A person of `user_type` enrols `key` (which must be bound); returns the enrolment's evidence.
async fn enrolled_evidence(app: &App, user_name: &str, user_type: &str, key: &SoftKey) -> Value {
    let (laptop, b) = ceremony(app, user_name, user_type).await;
    let (s, v) = crate::common::finish(app, &laptop, &b, key).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    evidence(app, &v["credential"]["id"]).await
}

/// A person of `user_type` tries to enrol `key`, whose chain leads to no trust anchor.
async fn untrusted_is_refused(app: &App, user_name: &str, user_type: &str, key: &SoftKey) -> Value {
    let (laptop, b) = ceremony(app, user_name, user_type).await;
    refused(
        app,
        StatusCode::FORBIDDEN,
        "attestation_untrusted",
        crate::common::finish(app, &laptop, &b, key),
    )
    .await
}

async fn self_attested_key_claiming_an_allow_listed_aaguid_is_refused(app: App) {
    // Organisation keys: only the soft key's model, with a trusted chain (the default).
    set_policy(
        &app,
        "staff",
        1,
        "Employee",
        json!({"aaguid_allow_list": [SOFT_KEY_AAGUID]}),
    )
    .await;
    let key = SoftKey::new();
    let (laptop, b) = ceremony(&app, "mallory", "Employee").await;
    let honest = key.make_credential(&b);
    // Any software can sign its own attestation and name an allow-listed AAGUID.
    let forged = self_attested(&honest, &key, &auth_data(&honest));
    refused_saying(
        &app,
        StatusCode::FORBIDDEN,
        "attestation_chain_required",
        "self attestation",
        send(&app, &laptop, &b, &forged),
    )
    .await;
    let refusals = app
        .count("SELECT COUNT(*) FROM audit_log WHERE action = 'enrolment.refused'")
        .await;
    assert_eq!(refusals, 1, "the refusal is audited");
    // The same key with its attestation chain is bound.
    let (s, v) = send(&app, &laptop, &b, &honest).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn chain_to_a_root_that_is_not_an_anchor_is_refused(app: App) {
    let stranger = SoftKey::untrusted();
    let (laptop, b) = ceremony(&app, "trudy", "Employee").await;
    refused_saying(
        &app,
        StatusCode::FORBIDDEN,
        "attestation_untrusted",
        "trusted root",
        crate::common::finish(&app, &laptop, &b, &stranger),
    )
    .await;
    // A key of the trusted batch in the same ceremony is bound.
    let (s, v) = crate::common::finish(&app, &laptop, &b, &SoftKey::new()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

async fn mds_root_vouches_only_for_its_own_models(app: App) {
    // The metadata lists this root for another vendor's model only.
    let key = SoftKey::untrusted();
    load_metadata(
        &app,
        7,
        "2027-01-31",
        vec![entry(
            OTHER_AAGUID,
            "Another key",
            &["external"],
            &[&key.root_pem()],
        )],
    )
    .await;
    let v = untrusted_is_refused(&app, "oscar", "Employee", &key).await;
    assert!(
        crate::common::error_message(&v).contains("only for other models"),
        "{v}"
    );
}

async fn lying_about_the_min_pin_length_does_not_help(app: App) {
    set_policy(&app, "staff", 1, "Employee", json!({"min_pin_length": 6})).await;
    // The key enforces 4; the agent's description of it says 12.
    let key = SoftKey::new();
    let (laptop, b) = ceremony(&app, "liar", "Employee").await;
    let mut body = key.make_credential(&b);
    assert_eq!(body["key"]["min_pin_length"], 4);
    body["key"]["min_pin_length"] = json!(12);
    refused_saying(
        &app,
        StatusCode::FORBIDDEN,
        "pin_too_short",
        "minimum PIN length of 4",
        send(&app, &laptop, &b, &body),
    )
    .await;
    // The other way round: a key enforcing 6 described as enforcing 4 is bound, on its
    // verified value.
    let strict = SoftKey::with_options(&keywarden_keys::soft::SoftKeyOptions {
        min_pin_length: 6,
        ..Default::default()
    });
    let mut body = strict.make_credential(&b);
    body["key"]["min_pin_length"] = json!(4);
    let (s, v) = send(&app, &laptop, &b, &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let ev = evidence(&app, &v["credential"]["id"]).await;
    assert_eq!(ev["min_pin_length"], 6, "{ev}");
}

async fn unknown_min_pin_length_is_refused_where_a_minimum_is_required(app: App) {
    // People's own keys: self attestation allowed, but at least 6 PIN characters.
    set_policy(
        &app,
        "byod",
        1,
        "Contractor",
        json!({"require_trusted_attestation": false, "min_pin_length": 6}),
    )
    .await;
    let key = SoftKey::new();
    let (laptop, b) = ceremony(&app, "quiet", "Contractor").await;
    let honest = key.make_credential(&b);
    // A key that does not report minPinLength: no extension data in its authenticatorData.
    let mut plain = auth_data(&honest);
    let id_len = usize::from(u16::from_be_bytes([plain[53], plain[54]]));
    let mut rest = &plain[55 + id_len..];
    let _key: ciborium::Value = ciborium::from_reader(&mut rest).unwrap();
    let cut = plain.len() - rest.len();
    plain.truncate(cut);
    plain[32] &= !0x80;
    let mut body = self_attested(&honest, &key, &plain);
    body["key"]["min_pin_length"] = json!(63);
    refused_saying(
        &app,
        StatusCode::FORBIDDEN,
        "pin_length_unknown",
        "minPinLength",
        send(&app, &laptop, &b, &body),
    )
    .await;
}

async fn the_device_class_comes_from_metadata_not_the_client(app: App) {
    contractors_may_self_attest(&app).await;
    // The metadata says the other model is a platform authenticator.
    load_metadata(
        &app,
        8,
        "2027-01-31",
        vec![entry(
            OTHER_AAGUID,
            "A laptop's built-in authenticator",
            &["internal"],
            &[],
        )],
    )
    .await;
    let key = SoftKey::new();
    let (laptop, b) = ceremony(&app, "claire", "Contractor").await;
    let honest = key.make_credential(&b);
    let mut body = self_attested(
        &honest,
        &key,
        &with_aaguid(&auth_data(&honest), OTHER_AAGUID),
    );
    // The agent claims it is the software key, a hardware key of another model.
    body["key"]["aaguid"] = json!("ee882879-721c-4913-9775-3dfcce97072a");
    body["key"]["model"] = json!("YubiKey 5 NFC");
    let (s, v) = send(&app, &laptop, &b, &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["credential"]["aaguid"], OTHER_AAGUID);
    assert_eq!(
        v["credential"]["software_key"], false,
        "by the attested AAGUID"
    );
    assert_eq!(
        v["credential"]["model"],
        Value::Null,
        "the claimed model is not believed"
    );
    let class = app
        .rows("SELECT device_class FROM credentials WHERE aaguid = 'cb69481e-8ff7-4039-93ec-0a2729a154a8'")
        .await;
    assert_eq!(class, vec!["platform".to_owned()]);
    let ev = evidence(&app, &v["credential"]["id"]).await;
    assert!(
        ev["device_class_source"]
            .as_str()
            .unwrap()
            .contains("attachmentHint internal"),
        "{ev}"
    );
    // And a soft key described as a hardware key is still the software key (test/demo).
    let (laptop, b) = ceremony(&app, "dave", "Contractor").await;
    let mut body = key.make_credential(&b);
    body["key"]["backend"] = json!("hid");
    body["key"]["label"] = json!("YubiKey 5 NFC");
    let (s, v) = send(&app, &laptop, &b, &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["credential"]["software_key"], true);
    let classes = app
        .rows("SELECT device_class FROM credentials ORDER BY device_class")
        .await;
    assert_eq!(classes, vec!["platform".to_owned(), "software".to_owned()]);
}

async fn chain_to_an_mds_root_is_accepted_and_the_evidence_names_it(app: App) {
    // A key whose root nobody added by hand, listed in the metadata for its model.
    let key = SoftKey::untrusted();
    let root = openssl::x509::X509::from_pem(key.root_pem().as_bytes()).unwrap();
    let fingerprint = hex::encode(root.digest(MessageDigest::sha256()).unwrap());
    load_metadata(&app, 9, "2027-01-31", vec![soft_key_model(&key)]).await;
    let ev = enrolled_evidence(&app, "erin", "Employee", &key).await;
    let trust = &ev["attestation_trust"];
    assert_eq!(trust["required"], true, "{ev}");
    assert_eq!(trust["result"], "anchored", "{ev}");
    assert_eq!(trust["anchor"]["source"], "mds", "{ev}");
    assert_eq!(trust["anchor"]["fingerprint"], fingerprint.as_str(), "{ev}");
    assert!(
        trust["anchor"]["subject"]
            .as_str()
            .unwrap()
            .contains("Keywarden Soft Key Attestation CA"),
        "{ev}"
    );
    assert_eq!(trust["mds"]["blob_no"], 9, "{ev}");
    assert_eq!(trust["mds"]["stale"], false, "{ev}");
    assert_eq!(ev["min_pin_length"], 4, "{ev}");
    // A key of the tests' batch names the admin root.
    let ev = enrolled_evidence(&app, "frank", "Employee", &SoftKey::new()).await;
    assert_eq!(ev["attestation_trust"]["anchor"]["source"], "admin", "{ev}");
    assert_eq!(
        ev["attestation_trust"]["anchor"]["label"], SOFT_KEY_ROOT_LABEL,
        "{ev}"
    );
}

async fn population_allowing_self_attestation_accepts_it(app: App) {
    contractors_may_self_attest(&app).await;
    let key = SoftKey::new();
    let (laptop, b) = ceremony(&app, "pat", "Contractor").await;
    let honest = key.make_credential(&b);
    let body = self_attested(&honest, &key, &auth_data(&honest));
    let (s, v) = send(&app, &laptop, &b, &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["credential"]["attestation_type"], "self");
    let ev = evidence(&app, &v["credential"]["id"]).await;
    assert_eq!(ev["attestation_trust"]["required"], false, "{ev}");
    assert_eq!(ev["attestation_trust"]["result"], "self", "{ev}");
    assert_eq!(ev["attestation_trust"]["anchor"], Value::Null, "{ev}");
    // An untrusted chain is accepted there too, and recorded as such.
    let ev = enrolled_evidence(&app, "quinn", "Contractor", &SoftKey::untrusted()).await;
    assert_eq!(ev["attestation_trust"]["result"], "untrusted", "{ev}");
    // Employees (the default population) still need a trusted chain.
    let (laptop, b) = ceremony(&app, "rita", "Employee").await;
    let honest = key.make_credential(&b);
    let body = self_attested(&honest, &key, &auth_data(&honest));
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "attestation_chain_required",
        send(&app, &laptop, &b, &body),
    )
    .await;
}

async fn stale_metadata_is_flagged(app: App) {
    // The test clock is at the end of November 2026; this blob was due for replacement on
    // 1 November.
    let key = SoftKey::untrusted();
    load_metadata(&app, 3, "2026-11-01", vec![soft_key_model(&key)]).await;
    let listing = app
        .as_admin("GET", "/api/v1/admin/trust-anchors", None, StatusCode::OK)
        .await;
    assert_eq!(listing["mds"]["stale"], true, "{listing}");
    assert_eq!(listing["mds"]["next_update"], "2026-11-01", "{listing}");
    let sources = crate::common::field_of_each(&listing["anchors"], "source");
    assert_eq!(sources, ["admin", "mds"], "{listing}");
    // An enrolment still anchored by it says so in its evidence.
    let ev = enrolled_evidence(&app, "sam", "Employee", &key).await;
    assert_eq!(ev["attestation_trust"]["mds"]["stale"], true, "{ev}");
    // Loading an older blob than the current one is refused: it could bring back a model
    // revoked since.
    let older = MdsBlob {
        number: 2,
        entries: Vec::new(),
        next_update: "2027-01-01".to_owned(),
        next_update_ms: 1_798_761_600_000,
    };
    let before = snapshot(&app).await;
    let e = keywarden_server::mds::store_metadata(&app.state.db, app.now(), "test", &older)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        keywarden_protocol::ErrorCode::MdsOutdated,
        "{e:?}"
    );
    assert_eq!(snapshot(&app).await, before);
}

async fn admin_adds_and_removes_a_root(app: App) {
    let key = SoftKey::untrusted();
    let pem = key.root_pem();
    let helpdesk = app.token(keywarden_server::auth::Role::Helpdesk).await;
    refused(
        &app,
        StatusCode::FORBIDDEN,
        "role_forbidden",
        app.call(
            "POST",
            "/api/v1/admin/trust-anchors",
            &helpdesk,
            Some(json!({"pem": pem, "label": "sneaky"})),
        ),
    )
    .await;
    refused(
        &app,
        StatusCode::BAD_REQUEST,
        "trust_anchor_invalid",
        app.call(
            "POST",
            "/api/v1/admin/trust-anchors",
            &app.admin,
            Some(json!({"pem": "not a certificate", "label": "junk"})),
        ),
    )
    .await;
    let a = app
        .as_admin(
            "POST",
            "/api/v1/admin/trust-anchors",
            Some(json!({"pem": pem, "label": "Acme keys root"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(a["source"], "admin");
    enrolled_evidence(&app, "uma", "Employee", &key).await;
    let fp = a["fingerprint"].as_str().unwrap();
    app.as_admin(
        "DELETE",
        &format!("/api/v1/admin/trust-anchors/{fp}"),
        None,
        StatusCode::NO_CONTENT,
    )
    .await;
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"trust_anchor.added".to_owned()));
    assert!(actions.contains(&"trust_anchor.removed".to_owned()));
    // From now on the same key is refused.
    untrusted_is_refused(&app, "vic", "Employee", &key).await;
}
